"""Reverse workflows: run the dependency closure of params.task_name."""
from __future__ import annotations

import pytest

from orchestrator.errors import InvalidInput

REVERSE = """
version: '2.0'
wf:
  type: reverse
  tasks:
    network:
      action: std.echo output=net
      publish:
        net: <% task().result %>
    disk:
      action: std.echo output=disk
      publish:
        disk: <% task().result %>
    vm:
      requires: [network, disk]
      action: std.echo output="vm on <% $.net %> with <% $.disk %>"
    unrelated:
      action: std.echo output=no
    app:
      requires: vm
      action: std.echo output=app
"""


def test_only_the_dependency_closure_of_the_target_runs_in_order(runner):
    s = runner.run(REVERSE, task_name="vm")
    assert s["state"] == "SUCCESS"
    names = [t["name"] for t in s["tasks"]]
    assert sorted(names) == ["disk", "network", "vm"]
    assert names[-1] == "vm"
    assert runner.task(s, "vm")["result"] == "vm on net with disk"


def test_a_target_without_requirements_runs_alone(runner):
    s = runner.run(REVERSE, task_name="unrelated")
    assert [t["name"] for t in s["tasks"]] == ["unrelated"]


def test_a_deep_target_runs_the_whole_chain(runner):
    s = runner.run(REVERSE, task_name="app")
    assert s["state"] == "SUCCESS"
    assert sorted(t["name"] for t in s["tasks"]) == ["app", "disk", "network", "vm"]
    assert [t["name"] for t in s["tasks"]][-2:] == ["vm", "app"]


def test_a_failed_requirement_stops_the_chain_and_fails_the_workflow(runner):
    s = runner.run(REVERSE.replace("action: std.echo output=disk", "action: std.fail"),
                   task_name="app")
    assert s["state"] == "ERROR"
    states = {t["name"]: t["state"] for t in s["tasks"]}
    assert states["disk"] == "ERROR"
    assert "app" not in states
    assert "disk" in s["state_info"]


def test_a_reverse_workflow_without_task_name_is_refused(runner):
    with pytest.raises(InvalidInput, match="reverse workflow"):
        runner.start(REVERSE)


def test_an_unknown_task_name_is_refused(runner):
    with pytest.raises(InvalidInput, match="no task 'nope'"):
        runner.start(REVERSE, task_name="nope")
