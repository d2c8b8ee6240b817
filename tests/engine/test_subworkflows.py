"""Sub-workflows: input, output as the task result, names by expression,
failure propagation, env inheritance."""
from __future__ import annotations

from orchestrator.engine import control

DOC = """
version: '2.0'
parent:
  input:
    - which: child
    - value: 20
  tasks:
    call:
      workflow: <% $.which %>
      input:
        value: <% $.value %>
      publish:
        got: <% task().result.doubled %>
      on-error: report
    report:
      action: std.echo output=<% task(call).state_info %>
  output:
    got: <% $.got %>
child:
  input: [value]
  tasks:
    double:
      action: std.echo output=<% $.value * 2 %>
      publish:
        doubled: <% task().result %>
  output:
    doubled: <% $.doubled %>
other:
  input: [value]
  tasks:
    negate:
      action: std.echo output=<% -$.value %>
  output:
    doubled: <% task(negate).result %>
broken:
  input: [value]
  tasks:
    explode:
      action: std.fail error_data="boom <% $.value %>"
"""


def _children(runner, execution_id):
    task = control.task_rows(runner.store, execution_id)[0]
    return [control.execution(runner.store, a["child_execution_id"])
            for a in control.action_rows(runner.store, task["id"])]


def test_a_sub_workflow_gets_its_input_and_its_output_is_the_task_result(runner):
    execution_id = runner.start(DOC, workflow="parent")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "call")["result"] == {"doubled": 40}
    assert s["output"] == {"got": 40}
    child, = _children(runner, execution_id)
    assert (child["workflow_name"], child["state"], child["input"]) == (
        "child", "SUCCESS", {"value": 20})
    assert child["root_execution_id"] == execution_id


def test_the_sub_workflow_name_may_be_an_expression(runner):
    execution_id = runner.start(DOC, workflow="parent", input={"which": "other"})
    runner.drive()
    s = runner.summary(execution_id)
    assert s["output"] == {"got": -20}
    assert _children(runner, execution_id)[0]["workflow_name"] == "other"


def test_a_sub_workflow_failure_fails_the_parent_task_with_the_child_cause(runner):
    execution_id = runner.start(DOC, workflow="parent", input={"which": "broken", "value": 7})
    runner.drive()
    s = runner.summary(execution_id)
    call = runner.task(s, "call")
    assert call["state"] == "ERROR"
    assert "sub-workflow broken" in call["state_info"]
    assert "boom 7" in call["state_info"]
    assert runner.task(s, "report")["result"] == call["state_info"]
    assert s["state"] == "SUCCESS"  # handled by on-error
    assert _children(runner, execution_id)[0]["state"] == "ERROR"


def test_an_unknown_sub_workflow_name_fails_the_task(runner):
    execution_id = runner.start(DOC, workflow="parent", input={"which": "nowhere"})
    runner.drive()
    call = runner.task(runner.summary(execution_id), "call")
    assert call["state"] == "ERROR"
    assert "unknown workflow 'nowhere'" in call["state_info"]


def test_an_unhandled_sub_workflow_failure_fails_every_level(runner):
    s = runner.run("""
version: '2.0'
top:
  tasks:
    mid:
      workflow: middle
middle:
  tasks:
    low:
      workflow: bottom
bottom:
  tasks:
    fail:
      action: std.fail error_data="deep cause"
""", workflow="top")
    assert s["state"] == "ERROR"
    assert "deep cause" in s["state_info"]
    assert "sub-workflow middle" in s["state_info"]


def test_a_sub_workflow_sees_the_parent_env(runner):
    s = runner.run("""
version: '2.0'
top:
  tasks:
    call:
      workflow: inner
inner:
  tasks:
    read:
      action: std.echo output=<% env().region %>
  output:
    region: <% task(read).result %>
""", workflow="top", env={"region": "eu-1"})
    assert runner.task(s, "call")["result"] == {"region": "eu-1"}


def test_with_items_starts_one_sub_workflow_per_item(runner):
    s = runner.run("""
version: '2.0'
top:
  tasks:
    each:
      with-items: v in [1, 2, 3]
      workflow: inner
      input:
        v: <% $.v %>
inner:
  input: [v]
  tasks:
    t:
      action: std.echo output=<% $.v * 10 %>
  output:
    r: <% task(t).result %>
""", workflow="top")
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "each")["result"] == [{"r": 10}, {"r": 20}, {"r": 30}]
