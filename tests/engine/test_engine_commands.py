"""Engine commands in on-* lists: succeed, fail, pause and noop, with msg,
processed in list order."""
from __future__ import annotations

from orchestrator.engine import control


def test_succeed_ends_the_workflow_successfully_even_after_an_error(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    broken:
      action: std.fail
      on-error:
        - succeed msg="good enough"
        - never
    never:
      action: std.noop
  output:
    x: 1
""")
    assert (s["state"], s["state_info"], s["output"]) == ("SUCCESS", "good enough", {"x": 1})
    assert [t["name"] for t in s["tasks"]] == ["broken"]


def test_fail_ends_the_workflow_with_its_message_even_after_a_success(runner):
    s = runner.run("""
version: '2.0'
wf:
  input:
    - reason: quota
  tasks:
    fine:
      action: std.echo output=1
      on-success:
        - 'fail msg="stopped: <% $.reason %>"'
        - never
    never:
      action: std.noop
""")
    assert s["state"] == "ERROR"
    assert s["state_info"] == "stopped: quota"
    assert s["output"] == {"result": "stopped: quota"}
    assert [t["name"] for t in s["tasks"]] == ["fine"]
    assert runner.task(s, "fine")["state"] == "SUCCESS"


def test_fail_without_msg_names_the_task(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fine:
      on-success: fail
""")
    assert s["state"] == "ERROR"
    assert "fine" in s["state_info"]


def test_a_guarded_command_applies_only_when_its_guard_is_true(runner):
    text = """
version: '2.0'
wf:
  input: [ok]
  tasks:
    check:
      on-success:
        - fail: <% not $.ok %>
        - next
    next:
      action: std.echo output=continued
"""
    assert runner.run(text, {"ok": True})["state"] == "SUCCESS"
    failed = runner.run(text, {"ok": False})
    assert failed["state"] == "ERROR"
    assert [t["name"] for t in failed["tasks"]] == ["check"]


def test_noop_does_nothing_and_the_workflow_ends_normally(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    broken:
      action: std.fail
      on-error: noop
""")
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "broken")["state"] == "ERROR"


def test_pause_in_a_list_runs_what_comes_before_and_the_rest_only_after_resume(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    first:
      on-success:
        - task_a
        - pause msg="check task_a"
        - task_b
    task_a:
      action: std.echo output=a
    task_b:
      action: std.echo output=b
""")
    runner.drive()
    s = runner.summary(execution_id)
    assert (s["state"], s["state_info"]) == ("PAUSED", "check task_a")
    assert [(t["name"], t["state"]) for t in s["tasks"]] == [
        ("first", "SUCCESS"), ("task_a", "SUCCESS")]
    control.resume(runner.store, execution_id)
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]] == ["first", "task_a", "task_b"]


def test_a_task_named_like_a_command_overrides_the_command(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    start:
      on-success: fail
    fail:
      action: std.echo output="I am a task"
""")
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "fail")["result"] == "I am a task"


def test_output_on_error_sees_what_the_task_that_fails_the_workflow_published(runner):
    s = runner.run("""
version: '2.0'
wf:
  output-on-error:
    cleaned: <% $.get('cleaned', false) %>
  tasks:
    broken:
      action: std.fail
      on-error: cleanup
    cleanup:
      action: std.echo output=done
      publish:
        cleaned: true
      on-success:
        - fail msg="gave up after cleaning"
""")
    assert s["state"] == "ERROR"
    assert s["output"] == {"cleaned": True, "result": "gave up after cleaning"}


def test_output_sees_what_the_task_that_succeeds_the_workflow_published(runner):
    s = runner.run("""
version: '2.0'
wf:
  output:
    x: <% $.x %>
  tasks:
    first:
      action: std.echo output=7
      publish:
        x: <% task().result %>
      on-success:
        - succeed
""")
    assert (s["state"], s["output"]) == ("SUCCESS", {"x": 7})
