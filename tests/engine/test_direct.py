"""Direct workflows: sequences, forks, guards, on-error as catch, on-complete
as finally, cycles, task-defaults, workbooks and standalone workflows."""
from __future__ import annotations

from orchestrator.engine import control


def test_tasks_run_in_sequence_and_each_sees_what_the_previous_published(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    first:
      action: std.echo output=1
      publish:
        a: <% task().result %>
      on-success: second
    second:
      action: std.echo output=<% $.a + 1 %>
      publish:
        b: <% task().result %>
      on-success: third
    third:
      action: std.echo
      input:
        output: <% [$.a, $.b] %>
""")
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]] == ["first", "second", "third"]
    assert runner.task(s, "third")["result"] == [1, 2]


def test_a_task_without_action_or_workflow_runs_noop_and_succeeds(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    nothing:
      publish:
        done: yes
""")
    assert s["state"] == "SUCCESS"
    t = runner.task(s, "nothing")
    assert (t["state"], t["result"], t["published"]) == ("SUCCESS", None, {"done": True})


def test_inline_parameters_are_merged_with_input_and_input_wins(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    inline_only:
      action: std.echo output="from inline" delay=0
    both:
      action: std.echo output="from inline"
      input:
        output: from input
""")
    assert runner.task(s, "inline_only")["result"] == "from inline"
    assert runner.task(s, "both")["result"] == "from input"


def test_all_tasks_without_inbound_transitions_start_in_parallel(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    a:
      action: std.echo output=a
    b:
      action: std.echo output=b
""")
    assert s["state"] == "SUCCESS"
    assert sorted(t["result"] for t in s["tasks"]) == ["a", "b"]


def test_a_fork_runs_every_next_task(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    start:
      on-success: [left, right]
    left:
      action: std.echo output=L
    right:
      action: std.echo output=R
""")
    assert s["state"] == "SUCCESS"
    assert {t["name"]: t["state"] for t in s["tasks"]} == {
        "start": "SUCCESS", "left": "SUCCESS", "right": "SUCCESS"}


GUARDS = """
version: '2.0'
wf:
  input: [n]
  tasks:
    check:
      action: std.echo output=<% $.n %>
      on-success:
        - small: <% task().result < 10 %>
        - big: "{{ task().result >= 10 }}"
    small:
      action: std.echo output=small
      publish:
        size: <% task().result %>
    big:
      action: std.echo output=big
      publish:
        size: <% task().result %>
  output:
    size: <% $.size %>
"""


def test_guards_choose_the_transition_taken_in_yaql_and_jinja(runner):
    small = runner.run(GUARDS, {"n": 3})
    big = runner.run(GUARDS, {"n": 30})
    assert [t["name"] for t in small["tasks"]] == ["check", "small"]
    assert [t["name"] for t in big["tasks"]] == ["check", "big"]
    assert (small["output"], big["output"]) == ({"size": "small"}, {"size": "big"})


ERROR_HANDLING = """
version: '2.0'
wf:
  tasks:
    broken:
      action: std.fail
      on-error: cleanup
      on-complete: always
    cleanup:
      action: std.echo output=cleaned
    always:
      action: std.echo output=finally
"""


def test_on_error_catches_the_error_so_the_workflow_succeeds(runner):
    s = runner.run(ERROR_HANDLING)
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "broken")["state"] == "ERROR"
    assert runner.task(s, "cleanup")["result"] == "cleaned"
    assert runner.task(s, "always")["result"] == "finally"


def test_on_complete_runs_like_finally_but_the_error_still_fails_the_workflow(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    broken:
      action: std.fail
      on-complete: always
    always:
      action: std.echo output=finally
""")
    assert s["state"] == "ERROR"
    assert runner.task(s, "always")["state"] == "SUCCESS"
    assert "broken" in s["state_info"]
    assert "Fail action expected exception." in s["state_info"]


def test_on_complete_runs_after_a_success_too(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    fine:
      on-success: one
      on-complete: two
    one:
      action: std.echo output=1
    two:
      action: std.echo output=2
""")
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]] == ["fine", "one", "two"]


def test_an_unhandled_task_error_fails_the_workflow_with_its_message(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    a:
      action: std.fail error_data="disk full"
      on-success: never
    never:
      action: std.noop
""")
    assert s["state"] == "ERROR"
    assert [t["name"] for t in s["tasks"]] == ["a"]
    assert "a [task_ex_id=" in s["state_info"] and "disk full" in s["state_info"]
    assert s["output"] == {"result": s["state_info"]}


def test_on_error_with_a_false_guard_does_not_handle_the_error(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    a:
      action: std.fail
      on-error:
        - recover: <% false %>
    recover:
      action: std.noop
""")
    assert s["state"] == "ERROR"
    assert [t["name"] for t in s["tasks"]] == ["a"]


def test_a_guarded_self_loop_counts_up_and_stops(runner):
    s = runner.run("""
version: '2.0'
wf:
  tasks:
    init:
      publish:
        i: 0
      on-success: loop
    loop:
      action: std.echo output=<% $.i + 1 %>
      publish:
        i: <% task().result %>
      on-success:
        - loop: <% $.i < 5 %>
        - done: <% $.i >= 5 %>
    done:
      action: std.echo output=<% $.i %>
  output:
    count: <% $.i %>
""")
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]] == ["init"] + ["loop"] * 5 + ["done"]
    assert runner.task(s, "done")["result"] == 5
    assert s["output"] == {"count": 5}


def test_a_cycle_between_two_tasks_sees_the_last_run_of_each(runner):
    s = runner.run("""
version: '2.0'
wf:
  vars:
    n: 0
  tasks:
    serve:
      on-success: ping
    ping:
      action: std.echo output=<% $.n + 1 %>
      publish:
        n: <% task().result %>
      on-success: pong
    pong:
      publish:
        last_ping: <% task(ping).result %>
      on-success:
        - ping: <% $.n < 3 %>
  output:
    last: <% $.last_ping %>
""")
    assert s["state"] == "SUCCESS"
    assert [t["name"] for t in s["tasks"]] == ["serve"] + ["ping", "pong"] * 3
    assert s["output"] == {"last": 3}


def test_task_defaults_apply_to_every_task_unless_the_task_overrides_them(runner):
    s = runner.run("""
version: '2.0'
wf:
  task-defaults:
    on-error: handler
    retry:
      count: 1
  tasks:
    a:
      action: std.fail
    b:
      action: std.fail
      retry:
        count: 2
    handler:
      on-error: []
      action: std.echo output=handled
""")
    assert s["state"] == "SUCCESS"
    by_name = {}
    for t in s["tasks"]:
        by_name.setdefault(t["name"], []).append(t)
    assert [t["state"] for t in by_name["a"]] == ["ERROR"]
    assert [t["state"] for t in by_name["b"]] == ["ERROR"]
    assert len(by_name["handler"]) == 2
    a_runs = runner.task(s, "a")["id"]
    b_runs = runner.task(s, "b")["id"]
    assert len(control.action_rows(runner.store, a_runs)) == 2
    assert len(control.action_rows(runner.store, b_runs)) == 3


WORKBOOK = """
version: '2.0'
name: deploy
actions:
  greet:
    base: std.echo
    base-input:
      output: hello <% $.who %>
    input: [who]
workflows:
  main:
    tasks:
      hi:
        action: greet who=world
        publish:
          said: <% task().result %>
        on-success: child
      child:
        workflow: helper
        input:
          text: <% $.said %>
    output:
      child_said: <% task(child).result.echoed %>
  helper:
    input: [text]
    tasks:
      echo:
        action: std.echo output=<% $.text %>
        publish:
          echoed: <% task().result %>
    output:
      echoed: <% $.echoed %>
"""


def test_a_workbook_namespaces_its_workflows_and_actions_and_local_names_resolve(runner):
    execution_id = runner.start(WORKBOOK, workflow="main")
    runner.drive()
    s = runner.summary(execution_id)
    assert s["workflow_name"] == "deploy.main"
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"child_said": "hello world"}


def test_a_workbook_workflow_can_be_chosen_by_its_qualified_name(runner):
    execution_id = runner.start(WORKBOOK, workflow="deploy.helper", input={"text": "x"})
    runner.drive()
    s = runner.summary(execution_id)
    assert (s["workflow_name"], s["state"], s["output"]) == ("deploy.helper", "SUCCESS",
                                                             {"echoed": "x"})


def test_a_standalone_document_with_several_workflows_runs_the_one_chosen(runner):
    text = """
version: '2.0'
one:
  tasks:
    t:
      action: std.echo output=one
  output:
    r: <% task(t).result %>
two:
  tasks:
    t:
      action: std.echo output=two
  output:
    r: <% task(t).result %>
"""
    execution_id = runner.start(text, workflow="two")
    runner.drive()
    s = runner.summary(execution_id)
    assert (s["workflow_name"], s["output"]) == ("two", {"r": "two"})


def test_an_unhandled_error_still_fails_the_workflow_after_a_guard_reads_another_task(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    broken:
      action: std.fail
      on-complete:
        - never: <% task(other).state = 'nope' %>
    other:
      action: std.async_noop
    never:
      action: std.noop
""")
    runner.drive()
    other = runner.task(runner.summary(execution_id), "other")
    action = control.action_rows(runner.store, other["id"])[0]
    control.complete_action(runner.store, action["id"], "SUCCESS", None)
    s = runner.summary(execution_id)
    assert s["state"] == "ERROR"
    assert "broken" in s["state_info"]
