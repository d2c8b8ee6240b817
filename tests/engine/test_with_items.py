"""with-items: one list, zipped lists, result order, concurrency, failures."""
from __future__ import annotations

from orchestrator.engine import control


def test_with_items_runs_the_action_once_per_item_and_returns_results_in_order(runner):
    s = runner.run("""
version: '2.0'
wf:
  input:
    - names: [a, b, c]
  tasks:
    greet:
      with-items: name in <% $.names %>
      action: std.echo output="hi <% $.name %>"
      publish:
        greetings: <% task().result %>
  output:
    greetings: <% $.greetings %>
""")
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"greetings": ["hi a", "hi b", "hi c"]}


def test_with_items_accepts_a_literal_list(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    square:
      with-items: x in [1, 2, 3]
      action: std.echo output=<% $.x * $.x %>
""")
    assert runner.task(s, "square")["result"] == [1, 4, 9]


def test_several_lists_are_zipped_item_by_item(runner):
    s = runner.run("""
version: '2.0'
wf:
  input:
    - hosts: [h1, h2]
    - ports: [80, 443]
  tasks:
    connect:
      with-items:
        - host in <% $.hosts %>
        - port in <% $.ports %>
      action: std.echo output="<% $.host %>:<% $.port %>"
""")
    assert runner.task(s, "connect")["result"] == ["h1:80", "h2:443"]


def test_zipped_lists_of_different_lengths_fail_the_task(runner):
    s = runner.run("""
version: '2.0'
wf:
  input:
    - a: [1, 2]
    - b: [1]
  tasks:
    zip:
      with-items:
        - x in <% $.a %>
        - y in <% $.b %>
      action: std.noop
""")
    assert s["state"] == "ERROR"
    assert "different lengths" in runner.task(s, "zip")["state_info"]


def test_an_empty_list_succeeds_with_an_empty_result(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    none:
      with-items: x in <% [] %>
      action: std.fail
      on-success: after
    after:
      action: std.echo output=<% task(none).result %>
""")
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "none")["result"] == []
    assert runner.task(s, "after")["result"] == []


def test_results_follow_item_order_even_when_items_finish_in_reverse(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    wait:
      with-items: i in [0, 1, 2]
      action: std.async_noop
""")
    runner.drive()
    task = control.task_rows(runner.store, execution_id)[0]
    for action in reversed(control.action_rows(runner.store, task["id"])):
        control.complete_action(runner.store, action["id"], "SUCCESS",
                                f"done {action['item_index']}")
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "wait")["result"] == ["done 0", "done 1", "done 2"]


def _running(runner, task_id):
    return [a for a in control.action_rows(runner.store, task_id) if a["state"] == "RUNNING"]


def test_concurrency_bounds_how_many_items_run_at_once(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    limited:
      with-items: i in <% range(5) %>
      concurrency: 2
      action: std.async_noop
""")
    runner.drive()
    task_id = control.task_rows(runner.store, execution_id)[0]["id"]
    seen = []
    while running := _running(runner, task_id):
        seen.append(len(running))
        control.complete_action(runner.store, running[0]["id"], "SUCCESS",
                                running[0]["item_index"])
        runner.drive()
    assert seen == [2, 2, 2, 2, 1]
    s = runner.summary(execution_id)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "limited")["result"] == [0, 1, 2, 3, 4]


def test_concurrency_may_be_an_expression(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  input:
    - width: 3
  tasks:
    limited:
      with-items: i in <% range(6) %>
      concurrency: <% $.width %>
      action: std.async_noop
""")
    runner.drive()
    task_id = control.task_rows(runner.store, execution_id)[0]["id"]
    assert len(_running(runner, task_id)) == 3


def test_a_failed_item_fails_the_task_after_every_item_ran(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    mixed:
      with-items: i in [1, 2, 3]
      action: <% switch($.i = 2 => 'std.fail', true => 'std.echo') %>
      input: <% switch($.i = 2 => {}, true => {output => $.i}) %>
      on-error: report
    report:
      action: std.echo output=<% task(mixed).state %>
""")
    mixed = runner.task(s, "mixed")
    assert mixed["state"] == "ERROR"
    assert mixed["state_info"].startswith("One or more actions had failed.")
    assert "item 1" in mixed["state_info"]
    actions = control.action_rows(runner.store, mixed["id"])
    assert [a["state"] for a in actions] == ["SUCCESS", "ERROR", "SUCCESS"]
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "report")["result"] == "ERROR"


def test_item_variables_are_visible_in_publish_only_through_the_result(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    double:
      with-items: n in [1, 2]
      action: std.echo output=<% $.n * 2 %>
      publish:
        total: <% task().result.sum() %>
""")
    assert runner.task(s, "double")["published"] == {"total": 6}


def test_a_with_items_source_that_is_not_a_list_fails_the_task(runner):
    s = runner.run("""
version: '2.0'
wf:
  input:
    - hosts: just-one
  tasks:
    each:
      with-items: host in <% $.hosts %>
      action: std.noop
""")
    each = runner.task(s, "each")
    assert each["state"] == "ERROR"
    assert each["state_info"] == "task 'each': with-items: 'host' must be a list, got str"
    assert s["state"] == "ERROR"
