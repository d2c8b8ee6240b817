"""Operations from outside: pause, resume, cancel, force end, rerun, skip and
completing asynchronous actions."""
from __future__ import annotations

import pytest

from orchestrator.engine import control
from orchestrator.errors import Conflict, InvalidInput

ASYNC_CHAIN = """
version: '2.0'
wf:
  tasks:
    wait:
      action: std.async_noop
      publish:
        answer: <% task().result %>
      on-success: next
    next:
      action: std.echo output=<% $.answer %>
  output:
    answer: <% $.answer %>
"""


def _task(runner, execution_id, name):
    return [t for t in control.task_rows(runner.store, execution_id) if t["name"] == name][-1]


def _action(runner, execution_id, name, index=0):
    return control.action_rows(runner.store, _task(runner, execution_id, name)["id"])[index]


def test_an_async_action_stays_running_until_completed_from_outside(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    assert runner.summary(execution_id)["state"] == "RUNNING"
    action = _action(runner, execution_id, "wait")
    assert (action["name"], action["state"]) == ("std.async_noop", "RUNNING")
    control.complete_action(runner.store, action["id"], "SUCCESS", {"n": 42})
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"answer": {"n": 42}}
    assert runner.task(s, "next")["result"] == {"n": 42}


def test_an_async_action_completed_with_error_fails_the_task_with_that_output(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    control.complete_action(runner.store, _action(runner, execution_id, "wait")["id"],
                            "ERROR", "remote side broke")
    s = runner.summary(execution_id)
    assert s["state"] == "ERROR"
    assert runner.task(s, "wait")["state_info"] == "remote side broke"


def test_an_async_action_completed_with_error_and_no_output_says_unknown_error(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    control.complete_action(runner.store, _action(runner, execution_id, "wait")["id"], "ERROR")
    assert _task(runner, execution_id, "wait")["state_info"] == "Unknown error"


def test_completing_an_action_twice_is_a_conflict(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    action_id = _action(runner, execution_id, "wait")["id"]
    control.complete_action(runner.store, action_id, "SUCCESS", 1)
    with pytest.raises(Conflict):
        control.complete_action(runner.store, action_id, "SUCCESS", 2)
    with pytest.raises(InvalidInput):
        control.complete_action(runner.store, action_id, "PAUSED")


def test_pause_holds_new_tasks_until_resume(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    control.pause(runner.store, execution_id)
    control.complete_action(runner.store, _action(runner, execution_id, "wait")["id"],
                            "SUCCESS", "x")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "PAUSED"
    assert [(t["name"], t["state"]) for t in s["tasks"]] == [("wait", "SUCCESS")]
    control.resume(runner.store, execution_id)
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "next")["result"] == "x"


def test_pause_and_resume_refuse_executions_in_the_wrong_state(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    with pytest.raises(Conflict):
        control.resume(runner.store, execution_id)
    control.pause(runner.store, execution_id)
    with pytest.raises(Conflict):
        control.pause(runner.store, execution_id)


def test_cancel_ends_the_execution_and_its_running_tasks_and_actions(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    control.cancel(runner.store, execution_id)
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "CANCELLED"
    assert [(t["name"], t["state"]) for t in s["tasks"]] == [("wait", "CANCELLED")]
    assert _action(runner, execution_id, "wait")["state"] == "CANCELLED"
    with pytest.raises(Conflict):
        control.cancel(runner.store, execution_id)


NESTED = """
version: '2.0'
top:
  tasks:
    call:
      workflow: middle
middle:
  tasks:
    call:
      workflow: bottom
bottom:
  tasks:
    wait:
      action: std.async_noop
"""


def _descendants(runner, execution_id):
    out = []
    for task in control.task_rows(runner.store, execution_id):
        for action in control.action_rows(runner.store, task["id"]):
            if action["child_execution_id"]:
                out.append(action["child_execution_id"])
                out += _descendants(runner, action["child_execution_id"])
    return out


def test_cancel_cascades_to_sub_workflows_at_every_depth(runner):
    execution_id = runner.start(NESTED, workflow="top")
    runner.drive()
    children = _descendants(runner, execution_id)
    assert len(children) == 2
    control.cancel(runner.store, execution_id)
    runner.drive()
    assert control.execution(runner.store, execution_id)["state"] == "CANCELLED"
    assert [control.execution(runner.store, c)["state"] for c in children] == [
        "CANCELLED", "CANCELLED"]
    bottom_wait = _action(runner, children[1], "wait")
    assert bottom_wait["state"] == "CANCELLED"


def test_pause_and_resume_cascade_to_sub_workflows(runner):
    execution_id = runner.start(NESTED, workflow="top")
    runner.drive()
    children = _descendants(runner, execution_id)
    control.pause(runner.store, execution_id)
    assert [control.execution(runner.store, c)["state"] for c in children] == [
        "PAUSED", "PAUSED"]
    control.resume(runner.store, execution_id)
    assert [control.execution(runner.store, c)["state"] for c in children] == [
        "RUNNING", "RUNNING"]
    control.complete_action(runner.store, _action(runner, children[1], "wait")["id"],
                            "SUCCESS", "deep")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "call")["result"] is None


def test_force_end_sets_the_state_and_message(runner):
    execution_id = runner.start(ASYNC_CHAIN)
    runner.drive()
    control.force_end(runner.store, execution_id, "ERROR", "operator gave up")
    s = runner.summary(execution_id)
    assert (s["state"], s["state_info"]) == ("ERROR", "operator gave up")
    assert s["output"] == {"result": "operator gave up"}
    with pytest.raises(Conflict):
        control.force_end(runner.store, execution_id, "SUCCESS")


def test_force_end_to_success_evaluates_the_output(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  input:
    - x: 3
  tasks:
    wait:
      action: std.async_noop
  output:
    x: <% $.x %>
""")
    runner.drive()
    control.force_end(runner.store, execution_id, "SUCCESS")
    s = runner.summary(execution_id)
    assert (s["state"], s["output"]) == ("SUCCESS", {"x": 3})
    with pytest.raises(InvalidInput):
        control.force_end(runner.store, execution_id, "CANCELLED")


RERUN = """
version: '2.0'
wf:
  tasks:
    deploy:
      action: std.async_noop
      publish:
        deployed: <% task().result %>
      on-success: verify
    verify:
      action: std.echo output="verified <% $.deployed %>"
  output:
    result: <% task(verify).result %>
"""


def test_rerun_of_a_failed_task_resumes_the_failed_workflow_to_success(runner):
    execution_id = runner.start(RERUN)
    runner.drive()
    control.complete_action(runner.store, _action(runner, execution_id, "deploy")["id"],
                            "ERROR", "network blip")
    assert runner.summary(execution_id)["state"] == "ERROR"
    deploy = _task(runner, execution_id, "deploy")
    control.rerun_task(runner.store, deploy["id"])
    assert runner.summary(execution_id)["state"] == "RUNNING"
    runner.drive()
    actions = control.action_rows(runner.store, deploy["id"])
    assert [(a["state"], a["superseded"]) for a in actions] == [
        ("ERROR", True), ("RUNNING", False)]
    control.complete_action(runner.store, actions[1]["id"], "SUCCESS", "v2")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"result": "verified v2"}
    assert [t["name"] for t in s["tasks"]] == ["deploy", "verify"]


FORK_JOIN = """
version: '2.0'
wf:
  tasks:
    start:
      on-success: [volumes, servers]
    volumes:
      action: std.async_noop
      on-success: attach
    servers:
      action: std.echo output=up
      on-success: attach
    attach:
      join: all
      action: std.echo output=attached
  output:
    result: <% task(attach).result %>
"""


def test_rerun_of_a_failed_branch_lets_its_join_run(runner):
    """A join that could not be satisfied because a branch failed waits again when
    that branch reruns, and runs once it arrives (Mistral: rerun resumes the joins)."""
    execution_id = runner.start(FORK_JOIN)
    runner.drive()
    control.complete_action(runner.store, _action(runner, execution_id, "volumes")["id"],
                            "ERROR", "quota")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "ERROR"
    assert runner.task(s, "attach")["state"] == "ERROR"
    control.rerun_task(runner.store, _task(runner, execution_id, "volumes")["id"])
    runner.drive()
    assert runner.task(runner.summary(execution_id), "attach")["state"] == "WAITING"
    actions = control.action_rows(runner.store, _task(runner, execution_id, "volumes")["id"])
    control.complete_action(runner.store, actions[-1]["id"], "SUCCESS", "made")
    runner.drive()
    s = runner.summary(execution_id)
    assert (s["state"], s["output"]) == ("SUCCESS", {"result": "attached"})
    assert [t["name"] for t in s["tasks"]].count("attach") == 1


def test_a_failed_branch_that_fails_again_fails_its_join_again(runner):
    execution_id = runner.start(FORK_JOIN)
    runner.drive()
    volumes = _task(runner, execution_id, "volumes")
    control.complete_action(runner.store, _action(runner, execution_id, "volumes")["id"],
                            "ERROR", "quota")
    runner.drive()
    control.rerun_task(runner.store, volumes["id"])
    runner.drive()
    actions = control.action_rows(runner.store, volumes["id"])
    control.complete_action(runner.store, actions[-1]["id"], "ERROR", "quota again")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "ERROR"
    attach = runner.task(s, "attach")
    assert attach["state"] == "ERROR" and "can never be satisfied" in attach["state_info"]


def test_rerun_refuses_a_task_that_did_not_fail(runner):
    execution_id = runner.start(RERUN)
    runner.drive()
    with pytest.raises(Conflict):
        control.rerun_task(runner.store, _task(runner, execution_id, "deploy")["id"])


ITEMS = """
version: '2.0'
wf:
  tasks:
    each:
      with-items: host in [a, b, c, d]
      action: std.async_noop
  output:
    results: <% task(each).result %>
"""


def _complete_items(runner, task_id, outcome):
    for action in control.action_rows(runner.store, task_id):
        if action["state"] == "RUNNING":
            state, output = outcome(action["item_index"])
            control.complete_action(runner.store, action["id"], state, output)


def test_rerun_without_reset_runs_only_the_failed_items_again(runner):
    execution_id = runner.start(ITEMS)
    runner.drive()
    each = _task(runner, execution_id, "each")
    _complete_items(runner, each["id"], lambda i: ("ERROR", "odd") if i % 2 else
                    ("SUCCESS", f"first {i}"))
    assert runner.summary(execution_id)["state"] == "ERROR"

    control.rerun_task(runner.store, each["id"], reset=False)
    runner.drive()
    rerun = [a for a in control.action_rows(runner.store, each["id"]) if a["state"] == "RUNNING"]
    assert sorted(a["item_index"] for a in rerun) == [1, 3]
    _complete_items(runner, each["id"], lambda i: ("SUCCESS", f"second {i}"))
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"results": ["first 0", "second 1", "first 2", "second 3"]}


def test_rerun_with_reset_runs_every_item_again(runner):
    execution_id = runner.start(ITEMS)
    runner.drive()
    each = _task(runner, execution_id, "each")
    _complete_items(runner, each["id"], lambda i: ("ERROR", "no") if i == 0 else
                    ("SUCCESS", f"first {i}"))
    control.rerun_task(runner.store, each["id"], reset=True)
    runner.drive()
    running = [a for a in control.action_rows(runner.store, each["id"])
               if a["state"] == "RUNNING"]
    assert len(running) == 4
    _complete_items(runner, each["id"], lambda i: ("SUCCESS", f"second {i}"))
    runner.drive()
    assert runner.summary(execution_id)["output"] == {
        "results": ["second 0", "second 1", "second 2", "second 3"]}


def test_rerun_without_reset_needs_a_with_items_task(runner):
    execution_id = runner.start(RERUN)
    runner.drive()
    control.complete_action(runner.store, _action(runner, execution_id, "deploy")["id"],
                            "ERROR", "x")
    with pytest.raises(InvalidInput):
        control.rerun_task(runner.store, _task(runner, execution_id, "deploy")["id"],
                           reset=False)


def test_skip_marks_a_failed_task_skipped_and_follows_on_success(runner):
    execution_id = runner.start(RERUN)
    runner.drive()
    control.complete_action(runner.store, _action(runner, execution_id, "deploy")["id"],
                            "ERROR", "cannot deploy")
    assert runner.summary(execution_id)["state"] == "ERROR"
    control.skip_task(runner.store, _task(runner, execution_id, "deploy")["id"])
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "deploy")["state"] == "SKIPPED"
    assert runner.task(s, "verify")["result"] == "verified None"


def test_skip_refuses_a_task_that_did_not_fail(runner):
    execution_id = runner.start(RERUN)
    runner.drive()
    with pytest.raises(Conflict):
        control.skip_task(runner.store, _task(runner, execution_id, "deploy")["id"])


def test_skip_publishes_publish_on_skip_and_follows_on_skip(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    deploy:
      action: std.fail
      publish-on-skip:
        skipped: true
      on-skip: after_skip
      on-success: never
    after_skip:
      action: std.echo output=<% $.skipped %>
    never:
      action: std.noop
""")
    runner.drive()
    control.skip_task(runner.store, _task(runner, execution_id, "deploy")["id"])
    runner.drive()
    s = runner.summary(execution_id)
    assert [t["name"] for t in s["tasks"]] == ["deploy", "after_skip"]
    assert runner.task(s, "after_skip")["result"] is True
