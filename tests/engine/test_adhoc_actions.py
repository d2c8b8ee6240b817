"""Ad-hoc actions: base, base-input over the action's input, defaults, output,
chains of ad-hoc actions."""
from __future__ import annotations

from orchestrator.engine import control

WORKBOOK = """
version: '2.0'
name: tools
actions:
  greet:
    base: std.echo
    base-input:
      output: "<% $.greeting %>, <% $.name %>!"
    input:
      - name
      - greeting: Hello
  shout:
    base: greet
    base-input:
      name: <% $.who %>
      greeting: HEY
    input: [who]
    output: <% $.toUpper() %>
  measure:
    base: std.echo
    base-input:
      output: <% $.text %>
    input: [text]
    output:
      length: <% len($) %>
  slow_greet:
    base: std.echo
    base-input:
      output: hi <% $.name %>
      delay: 0.01
    input: [name]
    output: <% $ + '.' %>
workflows:
  main:
    tasks:
      default_greeting:
        action: greet name=Ann
      given_greeting:
        action: tools.greet
        input:
          name: Bo
          greeting: Hi
      chained:
        action: shout who=cy
      shaped:
        action: measure text=abcd
      worker_side:
        action: slow_greet name=Di
"""


def test_adhoc_actions_run_their_base_with_base_input_defaults_and_output(runner):
    s = runner.run(WORKBOOK, workflow="main")
    assert s["state"] == "SUCCESS"
    assert runner.task(s, "default_greeting")["result"] == "Hello, Ann!"
    assert runner.task(s, "given_greeting")["result"] == "Hi, Bo!"
    assert runner.task(s, "chained")["result"] == "HEY, CY!"
    assert runner.task(s, "shaped")["result"] == {"length": 4}
    assert runner.task(s, "worker_side")["result"] == "hi Di."


def test_the_action_row_records_the_base_action_and_its_evaluated_input(runner):
    s = runner.run(WORKBOOK, workflow="main")
    action, = control.action_rows(runner.store, runner.task(s, "chained")["id"])
    assert (action["name"], action["adhoc"]) == ("std.echo", "tools.shout")
    assert action["input"] == {"output": "HEY, cy!"}


def test_an_adhoc_action_called_without_its_required_input_fails_the_task(runner):
    s = runner.run("""
version: '2.0'
name: wb
actions:
  needs_x:
    base: std.echo
    base-input:
      output: <% $.x %>
    input: [x]
workflows:
  wf:
    tasks:
      t:
        action: needs_x
        input: <% dict() %>
""")
    t = runner.task(s, "t")
    assert t["state"] == "ERROR"
    assert "needs input x" in t["state_info"]
