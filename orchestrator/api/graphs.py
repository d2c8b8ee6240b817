"""The shape of a workflow for people to look at: tasks as nodes, transitions
as edges labelled ``success``, ``error``, ``complete`` or ``skip`` (reverse
workflows: ``requires``), joins flagged with the arrivals they need, and the
engine commands (``fail``, ``succeed``, ``pause``, ``noop``) as nodes of their
own.

``GET /v2/workflows/{name}/graph`` draws a stored workflow before it runs;
``GET /v2/executions/{id}/graph`` draws the spec an execution is pinned to
(for a reverse workflow run for a task, only the tasks that task needs), so
the picture matches what runs even after the workbook changed. Both are pure
functions of the spec, read through :class:`orchestrator.engine.graph.Graph`
as the engine reads it."""
from __future__ import annotations

from flask import Blueprint

from orchestrator import catalog
from orchestrator.api import config
from orchestrator.api.io import project
from orchestrator.api.views import execution_row
from orchestrator.dsl.spec import WorkflowSpec
from orchestrator.engine import specs
from orchestrator.engine.graph import Graph

bp = Blueprint("graphs", __name__)

CLAUSES = (("on_success", "success"), ("on_error", "error"), ("on_complete", "complete"),
           ("on_skip", "skip"))


def _text(value) -> str | None:
    return None if value is None else str(value)


def _node(name: str, task, start: bool, join, required: int | None) -> dict:
    return {"id": name, "kind": "task", "action": task.action, "workflow": _text(task.workflow),
            "join": join, "join_required": required, "start": start,
            "with_items": task.with_items is not None, "line": task.line}


def _command(name: str) -> dict:
    return {"id": name, "kind": "command", "action": None, "workflow": None, "join": None,
            "join_required": None, "start": False, "with_items": False, "line": 0}


def shape(spec: WorkflowSpec, target: str | None = None) -> dict:
    """Nodes and edges of ``spec``; ``target``: the task a reverse workflow runs for
    (None draws every task of it)."""
    nodes, edges = [], []
    if spec.type == "reverse":
        graph = Graph(spec, target) if target else None
        names = graph.closure if graph else list(spec.tasks)
        starts = set(graph.start_tasks()) if graph else {
            n for n in names if not spec.tasks[n].requires}
        for name in names:
            task = spec.tasks[name]
            required = len(task.requires) if len(task.requires) > 1 else None
            nodes.append(_node(name, task, name in starts, "all" if required else None,
                               required))
            edges += [{"source": r, "target": name, "on": "requires", "guard": None}
                      for r in task.requires]
        return {"workflow_name": spec.name, "type": spec.type, "target": target,
                "nodes": nodes, "edges": edges}
    graph = Graph(spec)
    starts = set(graph.start_tasks())
    commands: dict[str, dict] = {}
    for name, task in spec.tasks.items():
        join = task.join
        nodes.append(_node(name, task, name in starts, join,
                           graph.join_required(name) if join is not None else None))
        for attribute, label in CLAUSES:
            for t in getattr(task, attribute):
                if t.command is not None:
                    commands.setdefault(t.command, _command(t.command))
                edges.append({"source": name, "target": t.target, "on": label,
                              "guard": _text(t.guard)})
    return {"workflow_name": spec.name, "type": spec.type, "target": None,
            "nodes": nodes + list(commands.values()), "edges": edges}


@bp.get("/v2/workflows/<name>/graph")
def workflow_graph(name: str):
    with config().store.connect() as conn:
        row = catalog.get_workflow(conn, project(), name)
        spec = specs.load(conn, row["spec_hash"]).workflows[row["name"]]
    return shape(spec)


@bp.get("/v2/executions/<id>/graph")
def execution_graph(id: str):
    with config().store.connect() as conn:
        ex = execution_row(conn, id)
        spec = specs.load(conn, ex["spec_hash"]).workflows[ex["workflow_name"]]
    return shape(spec, (ex["params"] or {}).get("task_name"))
