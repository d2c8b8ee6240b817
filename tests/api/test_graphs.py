"""/v2/workflows/{name}/graph, /v2/executions/{id}/graph and /v2/whoami: what the
dashboard reads besides the resources."""
from __future__ import annotations

from tests.api.test_executions import define, start

STACK = """
version: '2.0'
name: stack
workflows:
  deploy:
    tasks:
      plan:
        action: std.echo output=3
        on-success: [network, volumes]
      network:
        action: std.noop
        on-success: attach
      volumes:
        with-items: n in <% [1, 2] %>
        action: std.noop
        on-success:
          - attach: <% $.ready = true %>
        on-error: [cleanup]
      attach:
        join: all
        on-complete: [report]
      cleanup:
        action: std.noop
        on-success: [fail]
      report:
        workflow: notify
  notify:
    tasks:
      say:
        action: std.noop
"""

REVERSE = """
version: '2.0'
build:
  type: reverse
  tasks:
    base:
      action: std.noop
    left:
      requires: [base]
      action: std.noop
    right:
      requires: [base]
      action: std.noop
    top:
      requires: [left, right]
      action: std.noop
    unrelated:
      action: std.noop
"""


def graph_of(api, path: str) -> dict:
    r = api.get(path)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def by_id(graph: dict) -> dict:
    return {n["id"]: n for n in graph["nodes"]}


def edges(graph: dict) -> set[tuple]:
    return {(e["source"], e["target"], e["on"]) for e in graph["edges"]}


def test_a_workflow_graph_has_tasks_transitions_joins_and_commands(api):
    assert api.post("/v2/workbooks", yaml=STACK).status_code == 201
    graph = graph_of(api, "/v2/workflows/stack.deploy/graph")
    assert (graph["workflow_name"], graph["type"], graph["target"]) == \
        ("stack.deploy", "direct", None)
    nodes = by_id(graph)
    assert list(nodes) == ["plan", "network", "volumes", "attach", "cleanup", "report", "fail"]
    assert nodes["plan"]["start"] and not nodes["network"]["start"]
    assert (nodes["attach"]["join"], nodes["attach"]["join_required"]) == ("all", 2)
    assert nodes["network"]["join"] is None and nodes["network"]["join_required"] is None
    assert nodes["volumes"]["with_items"] and nodes["volumes"]["action"] == "std.noop"
    assert nodes["report"]["workflow"] == "stack.notify" and nodes["report"]["action"] is None
    assert nodes["fail"]["kind"] == "command" and nodes["plan"]["kind"] == "task"
    assert nodes["plan"]["line"] == STACK.splitlines().index("      plan:") + 1
    assert edges(graph) == {
        ("plan", "network", "success"), ("plan", "volumes", "success"),
        ("network", "attach", "success"), ("volumes", "attach", "success"),
        ("volumes", "cleanup", "error"), ("attach", "report", "complete"),
        ("cleanup", "fail", "success"),
    }
    guarded = [e for e in graph["edges"] if e["guard"]]
    assert [(e["source"], e["guard"]) for e in guarded] == [("volumes", "<% $.ready = true %>")]


def test_a_reverse_workflow_draws_requires_edges_and_joins(api):
    define(api, REVERSE)
    graph = graph_of(api, "/v2/workflows/build/graph")
    nodes = by_id(graph)
    assert set(nodes) == {"base", "left", "right", "top", "unrelated"}
    assert nodes["top"]["join_required"] == 2 and nodes["left"]["join"] is None
    assert {n for n, node in nodes.items() if node["start"]} == {"base", "unrelated"}
    assert edges(graph) == {("base", "left", "requires"), ("base", "right", "requires"),
                            ("left", "top", "requires"), ("right", "top", "requires")}


def test_an_execution_graph_is_its_pinned_spec_and_its_target(api):
    define(api, REVERSE)
    ex = start(api, "build", params={"task_name": "left"})
    define_again = REVERSE.replace("    unrelated:\n      action: std.noop\n", "")
    assert api.put("/v2/workflows", yaml=define_again).status_code == 200
    graph = graph_of(api, f"/v2/executions/{ex['id']}/graph")
    assert (graph["type"], graph["target"]) == ("reverse", "left")
    assert list(by_id(graph)) == ["base", "left"]
    assert edges(graph) == {("base", "left", "requires")}

    assert api.post("/v2/workbooks", yaml=STACK).status_code == 201
    ex = start(api, "stack.deploy")
    assert api.put("/v2/workbooks", yaml=STACK.replace("on-complete: [report]", "")) \
        .status_code == 200
    assert ("attach", "report", "complete") in edges(
        graph_of(api, f"/v2/executions/{ex['id']}/graph"))
    assert ("attach", "report", "complete") not in edges(
        graph_of(api, "/v2/workflows/stack.deploy/graph"))


def test_graphs_of_another_projects_objects_are_not_found(api):
    define(api, REVERSE)
    ex = start(api, "build", params={"task_name": "top"})
    other = api.as_("op-b")
    assert other.get("/v2/workflows/build/graph").status_code == 404
    assert other.get(f"/v2/executions/{ex['id']}/graph").status_code == 404
    assert api.get("/v2/workflows/nope/graph").status_code == 404
    assert api.as_("view-a").get("/v2/workflows/build/graph").status_code == 200
    assert api.as_(None).get("/v2/workflows/build/graph").status_code == 401


def test_whoami_tells_the_project_and_role_of_the_token(api):
    assert api.as_("view-a").get("/v2/whoami").get_json() == \
        {"project": "alpha", "role": "viewer", "name": "victor", "auth": True}
    assert api.as_("admin-b").get("/v2/whoami").get_json()["role"] == "admin"
    r = api.as_("not-a-token").get("/v2/whoami")
    assert r.status_code == 401 and "not valid" in r.get_json()["message"]
