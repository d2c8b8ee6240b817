"""An expression that fails at run time fails its task (or the workflow) with
the task, the field and the expression named, follows on-error, and never
leaves the execution RUNNING."""
from __future__ import annotations

import pytest

BAD = "<% 1 / $.zero %>"


def _run(runner, tasks: str, extra: str = ""):
    text = f"""
version: '2.0'
wf:
  vars:
    zero: 0
  tasks:
{tasks}
    recover:
      action: std.echo output=recovered
{extra}"""
    return runner.run(text)


def _assert_names(info: str, *words: str):
    for word in words:
        assert word in info, f"{word!r} not in {info!r}"
    assert BAD in info


FIELD_CASES = {
    "input": """
    t:
      action: std.echo
      input:
        output: <% 1 / $.zero %>
      on-error: recover
""",
    "publish": """
    t:
      action: std.echo output=1
      publish:
        x: <% 1 / $.zero %>
      on-error: recover
""",
    "with-items": """
    t:
      with-items: x in <% 1 / $.zero %>
      action: std.noop
      on-error: recover
""",
    "action": """
    t:
      action: <% 1 / $.zero %>
      on-error: recover
""",
    "workflow": """
    t:
      workflow: <% 1 / $.zero %>
      on-error: recover
""",
    "wait-before": """
    t:
      wait-before: <% 1 / $.zero %>
      action: std.noop
      on-error: recover
""",
    "timeout": """
    t:
      timeout: <% 1 / $.zero %>
      action: std.noop
      on-error: recover
""",
    "concurrency": """
    t:
      with-items: x in [1, 2]
      concurrency: <% 1 / $.zero %>
      action: std.noop
      on-error: recover
""",
    "fail-on": """
    t:
      action: std.noop
      fail-on: <% 1 / $.zero %>
      on-error: recover
""",
    "retry": """
    t:
      action: std.fail
      retry:
        count: <% 1 / $.zero %>
        delay: 0
      on-error: recover
""",
    "wait-after": """
    t:
      action: std.noop
      wait-after: <% 1 / $.zero %>
      on-error: recover
""",
    "pause-before": """
    t:
      action: std.noop
      pause-before: <% 1 / $.zero %>
      on-error: recover
""",
    "keep-result": """
    t:
      action: std.noop
      keep-result: <% 1 / $.zero %>
      on-error: recover
""",
}


@pytest.mark.parametrize("field", list(FIELD_CASES))
def test_a_failing_task_expression_fails_the_task_naming_task_field_and_expression(
        runner, field):
    s = _run(runner, FIELD_CASES[field])
    t = runner.task(s, "t")
    assert t["state"] == "ERROR"
    _assert_names(t["state_info"], "'t'", field)
    assert runner.task(s, "recover")["result"] == "recovered"
    assert s["state"] == "SUCCESS"


def test_a_failing_input_expression_without_on_error_fails_the_workflow(runner):
    s = _run(runner, """
    t:
      action: std.echo
      input:
        output: <% 1 / $.zero %>
""")
    assert s["state"] == "ERROR"
    _assert_names(s["state_info"], "'t'", "input")


def test_a_failing_publish_on_error_expression_keeps_both_errors(runner):
    s = _run(runner, """
    t:
      action: std.fail error_data=original
      publish-on-error:
        x: <% 1 / $.zero %>
""")
    assert s["state"] == "ERROR"
    info = runner.task(s, "t")["state_info"]
    _assert_names(info, "original", "publish-on-error")


def test_a_failing_item_input_fails_only_that_item_and_the_task(runner):
    s = _run(runner, """
    t:
      with-items: d in [1, 0, 2]
      action: std.echo
      input:
        output: <% 1 / $.d %>
      on-error: recover
""")
    t = runner.task(s, "t")
    assert t["state"] == "ERROR"
    assert "item 1" in t["state_info"] and "input" in t["state_info"]
    assert s["state"] == "SUCCESS"


def test_a_failing_guard_fails_the_workflow_naming_the_task_and_the_transition(runner):
    s = _run(runner, """
    t:
      action: std.noop
      on-success:
        - recover: <% 1 / $.zero %>
""")
    assert s["state"] == "ERROR"
    _assert_names(s["state_info"], "'t'", "transition to 'recover'")


def test_a_failing_engine_command_message_fails_the_workflow(runner):
    s = _run(runner, """
    t:
      action: std.noop
      on-success:
        - succeed msg=<% 1 / $.zero %>
""")
    assert s["state"] == "ERROR"
    assert "'t'" in s["state_info"] and "1 / $.zero" in s["state_info"]


def test_a_failing_output_expression_fails_the_workflow_naming_output(runner):
    s = _run(runner, """
    t:
      action: std.noop
""", extra="""  output:
    bad: <% 1 / $.zero %>
""")
    assert s["state"] == "ERROR"
    _assert_names(s["state_info"], "wf", "output")
    assert s["output"] == {"result": s["state_info"]}


def test_a_failing_output_on_error_expression_is_added_to_the_error(runner):
    s = _run(runner, """
    t:
      action: std.fail error_data=first
""", extra="""  output-on-error:
    bad: <% 1 / $.zero %>
""")
    assert s["state"] == "ERROR"
    _assert_names(s["state_info"], "first", "output-on-error")


def test_a_failing_vars_expression_fails_the_workflow_at_start(runner):
    s = runner.run("""
version: '2.0'
wf:
  vars:
    bad: <% 1 / 0 %>
  tasks:
    t:
      action: std.noop
""")
    assert s["state"] == "ERROR"
    assert "vars" in s["state_info"] and "1 / 0" in s["state_info"]
    assert s["tasks"] == []


def test_a_sub_workflow_input_error_fails_the_parent_task(runner):
    s = runner.run("""
version: '2.0'
top:
  tasks:
    call:
      workflow: child
      input:
        v: <% 1 / 0 %>
child:
  input: [v]
  tasks:
    t:
      action: std.noop
""", workflow="top")
    assert s["state"] == "ERROR"
    call = runner.task(s, "call")
    assert call["state"] == "ERROR"
    assert "input" in call["state_info"] and "1 / 0" in call["state_info"]
