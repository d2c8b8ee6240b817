"""Joins: all, N and one; a join that can never be satisfied fails."""
from __future__ import annotations

from orchestrator.engine import control


def test_join_all_waits_for_every_branch_and_runs_once(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fork:
      on-success: [a, b, c]
    a:
      publish: {x: 1}
      on-success: joined
    b:
      publish: {y: 2}
      on-success: joined
    c:
      action: std.echo output=3 delay=0.01
      publish: {z: <% task().result %>}
      on-success: joined
    joined:
      join: all
      action: std.echo output=<% $.x + $.y + $.z %>
""")
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]].count("joined") == 1
    assert runner.task(s, "joined")["result"] == 6


def test_join_n_starts_after_n_branches_arrive(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fork:
      on-success: [fast1, fast2, slow]
    fast1:
      on-success: two
    fast2:
      on-success: two
    slow:
      action: std.async_noop
      on-success: two
    two:
      join: 2
      action: std.echo output=joined
""")
    # The async branch never finished, yet the join ran after two arrivals.
    assert s["state"] == "RUNNING"
    assert runner.task(s, "two")["state"] == "SUCCESS"
    assert runner.task(s, "slow")["state"] == "RUNNING"


def test_join_one_runs_on_the_first_arrival_only(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fork:
      on-success: [a, b]
    a:
      on-success: first
    b:
      on-success: first
    first:
      join: one
      action: std.echo output=once
""")
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]].count("first") == 1


def test_an_unsatisfiable_join_fails_the_join_task_and_the_workflow(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fork:
      on-success:
        - a
        - b: <% false %>
    a:
      on-success: joined
    b:
      on-success: joined
    joined:
      join: all
      action: std.noop
""")
    assert s["state"] == "ERROR"
    joined = runner.task(s, "joined")
    assert joined["state"] == "ERROR"
    assert "can never be satisfied" in joined["state_info"]
    assert "1 of 2" in joined["state_info"]
    assert "joined" in s["state_info"]


def test_a_join_reached_through_an_error_branch_still_counts_the_arrival(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fork:
      on-success: [good, bad]
    good:
      on-success: joined
    bad:
      action: std.fail
      on-error: joined
    joined:
      join: all
      action: std.echo output="after both"
""")
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "joined")["result"] == "after both"


def test_a_join_completed_by_a_later_step_runs_its_async_action_and_finishes(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    fork:
      on-success: [quick, slow]
    quick:
      on-success: joined
    slow:
      action: std.async_noop
      on-success: joined
    joined:
      join: all
      action: std.async_noop
""")
    runner.drive()
    for name in ("slow", "joined"):
        task = [t for t in control.task_rows(runner.store, execution_id) if t["name"] == name][0]
        action = control.action_rows(runner.store, task["id"])[0]
        control.complete_action(runner.store, action["id"], "SUCCESS", name)
        runner.drive()
    ex = control.execution(runner.store, execution_id)
    assert (ex["state"], ex["active_tasks"], ex["waiting_joins"]) == ("SUCCESS", 0, 0)
