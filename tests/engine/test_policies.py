"""Task policies: retry, wait-before, wait-after, timeout, pause-before,
fail-on, keep-result. Timers fire by driving the worker with a future ``now``."""
from __future__ import annotations

import time

from orchestrator.engine import control


def _actions(runner, execution_id, name):
    task = [t for t in control.task_rows(runner.store, execution_id) if t["name"] == name][-1]
    return task, control.action_rows(runner.store, task["id"])


def _start_at(runner, text, now, **kw):
    execution_id = runner.start(text, now=now, **kw)
    runner.drive(now)
    return execution_id


def test_retry_runs_the_action_count_more_times_then_fails(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    flaky:
      action: std.fail
      retry:
        count: 2
        delay: 0
""")
    assert s["state"] == "ERROR"
    task = runner.task(s, "flaky")
    actions = control.action_rows(runner.store, task["id"])
    assert [a["state"] for a in actions] == ["ERROR"] * 3


def test_retry_in_the_one_line_form(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    flaky:
      action: std.fail
      retry: count=1 delay=0
""")
    assert len(control.action_rows(runner.store, runner.task(s, "flaky")["id"])) == 2


def test_retry_delay_waits_before_the_next_attempt(runner):
    t0 = time.time()
    execution_id = _start_at(runner, """
version: '2.0'
wf:
  tasks:
    flaky:
      action: std.fail
      retry:
        count: 1
        delay: 30
""", t0)
    task, actions = _actions(runner, execution_id, "flaky")
    assert task["state"] == "RUNNING_DELAYED"
    assert len(actions) == 1
    runner.drive(t0 + 29)
    assert len(_actions(runner, execution_id, "flaky")[1]) == 1
    runner.drive(t0 + 31)
    task, actions = _actions(runner, execution_id, "flaky")
    assert (task["state"], len(actions)) == ("ERROR", 2)
    assert runner.summary(execution_id)["state"] == "ERROR"


def test_retry_succeeds_when_a_later_attempt_succeeds(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    poll:
      action: std.async_noop
      retry:
        count: 5
        delay: 0
      on-success: done
    done:
      action: std.echo output=<% task(poll).result %>
""")
    runner.drive()
    task, actions = _actions(runner, execution_id, "poll")
    control.complete_action(runner.store, actions[0]["id"], "ERROR", "not yet")
    runner.drive()
    task, actions = _actions(runner, execution_id, "poll")
    assert [a["state"] for a in actions] == ["ERROR", "RUNNING"]
    control.complete_action(runner.store, actions[1]["id"], "SUCCESS", "ready")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "done")["result"] == "ready"


def test_break_on_stops_retrying_when_its_condition_is_true(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    flaky:
      action: std.fail error_data=fatal
      retry:
        count: 5
        delay: 0
        break-on: <% task().result = 'fatal' %>
""")
    task = runner.task(s, "flaky")
    assert len(control.action_rows(runner.store, task["id"])) == 1
    assert (task["state"], s["state"]) == ("ERROR", "ERROR")


def test_continue_on_repeats_a_successful_action_while_its_condition_holds(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    count_up:
      action: std.async_noop
      retry:
        count: 5
        delay: 0
        continue-on: <% task().result < 3 %>
      publish:
        last: <% task().result %>
  output:
    last: <% $.last %>
""")
    runner.drive()
    for value in (1, 2, 3):
        _, actions = _actions(runner, execution_id, "count_up")
        control.complete_action(runner.store, actions[-1]["id"], "SUCCESS", value)
        runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"last": 3}
    assert len(control.action_rows(runner.store, runner.task(s, "count_up")["id"])) == 3


def test_retry_of_a_with_items_task_relaunches_every_item(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    items:
      with-items: i in [1, 2, 3]
      action: <% switch($.i = 2 => 'std.fail', true => 'std.noop') %>
      retry:
        count: 1
        delay: 0
""")
    actions = control.action_rows(runner.store, runner.task(s, "items")["id"])
    assert len(actions) == 6
    assert [a["item_index"] for a in actions if not a["superseded"]] == [0, 1, 2]
    assert s["state"] == "ERROR"


def test_wait_before_delays_the_start_of_the_task(runner):
    t0 = time.time()
    execution_id = _start_at(runner, """
version: '2.0'
wf:
  tasks:
    later:
      wait-before: 10
      action: std.echo output=ran
""", t0)
    task, actions = _actions(runner, execution_id, "later")
    assert (task["state"], actions) == ("RUNNING_DELAYED", [])
    runner.drive(t0 + 11)
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "later")["result"] == "ran"


def test_wait_after_holds_the_task_before_its_transitions(runner):
    t0 = time.time()
    execution_id = _start_at(runner, """
version: '2.0'
wf:
  tasks:
    first:
      action: std.echo output=1
      wait-after: <% 5 * 2 %>
      on-success: second
    second:
      action: std.noop
""", t0)
    s = runner.summary(execution_id)
    assert [(t["name"], t["state"]) for t in s["tasks"]] == [("first", "RUNNING_DELAYED")]
    runner.drive(t0 + 11)
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert [(t["name"], t["state"]) for t in s["tasks"]] == [
        ("first", "SUCCESS"), ("second", "SUCCESS")]
    assert runner.task(s, "first")["result"] == 1


def test_timeout_fails_a_task_whose_action_runs_too_long_and_cancels_the_action(runner):
    t0 = time.time()
    execution_id = _start_at(runner, """
version: '2.0'
wf:
  tasks:
    slow:
      action: std.async_noop
      timeout: 5
      retry:
        count: 3
        delay: 0
      on-error: handle
    handle:
      action: std.echo output=<% task(slow).state_info %>
""", t0)
    assert _actions(runner, execution_id, "slow")[0]["state"] == "RUNNING"
    runner.drive(t0 + 6)
    task, actions = _actions(runner, execution_id, "slow")
    assert task["state"] == "ERROR"
    assert [a["state"] for a in actions] == ["CANCELLED"]  # no retry after a timeout
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "handle")["result"] == "task 'slow' timed out after 5s"


def test_a_task_finished_before_its_timeout_is_not_affected_by_it(runner):
    t0 = time.time()
    execution_id = _start_at(runner, """
version: '2.0'
wf:
  tasks:
    quick:
      action: std.echo output=ok
      timeout: 5
""", t0)
    runner.drive(t0 + 6)
    s = runner.summary(execution_id)
    assert (s["state"], runner.task(s, "quick")["state"]) == ("SUCCESS", "SUCCESS")


def test_pause_before_pauses_the_workflow_until_resumed(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    first:
      on-success: gated
    gated:
      pause-before: true
      action: std.echo output=go
""")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "PAUSED"
    assert runner.task(s, "gated")["state"] == "IDLE"
    control.resume(runner.store, execution_id)
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "gated")["result"] == "go"


def test_pause_before_may_be_an_expression_that_is_false(runner):
    s = runner.run("""
version: '2.0'
wf:
  input:
    - careful: false
  tasks:
    gated:
      pause-before: <% $.careful %>
      action: std.echo output=go
""")
    assert s["state"] == "SUCCESS"


def test_fail_on_fails_a_task_whose_action_succeeded(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    check:
      action: std.echo output=5
      fail-on: <% task().result > 3 %>
      publish-on-error:
        seen: <% task().result %>
""")
    assert s["state"] == "ERROR"
    check = runner.task(s, "check")
    assert check["state"] == "ERROR"
    assert "fail-on" in check["state_info"]
    assert check["published"] == {"seen": 5}


def test_fail_on_false_leaves_the_task_successful(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    check:
      action: std.echo output=1
      fail-on: <% task().result > 3 %>
""")
    assert runner.task(s, "check")["state"] == "SUCCESS"


def test_keep_result_false_drops_the_result_but_publish_still_sees_it(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    big:
      action: std.echo output="a large blob"
      keep-result: false
      publish:
        size: <% len(task().result) %>
      on-success: after
    after:
      action: std.echo output=<% task(big).result %>
""")
    assert s["state"] == "SUCCESS"
    big = runner.task(s, "big")
    assert (big["result"], big["published"]) == (None, {"size": 12})
    assert runner.task(s, "after")["result"] is None


def test_timeout_of_a_sub_workflow_task_cancels_the_child_execution(runner):
    t0 = time.time()
    execution_id = _start_at(runner, """
version: '2.0'
top:
  tasks:
    call:
      workflow: slow
      timeout: 5
slow:
  tasks:
    wait:
      action: std.async_noop
""", t0, workflow="top")
    runner.drive(t0 + 6)
    task, actions = _actions(runner, execution_id, "call")
    assert task["state"] == "ERROR"
    assert "timed out after 5s" in task["state_info"]
    child = control.execution(runner.store, actions[0]["child_execution_id"])
    assert child["state"] == "CANCELLED"
    assert runner.summary(execution_id)["state"] == "ERROR"
