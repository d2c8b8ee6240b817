"""/v2/tasks: list and read task executions, rerun or skip a failed one, and
list its action executions."""
from __future__ import annotations

from flask import Blueprint, request

from orchestrator.api import config
from orchestrator.api.io import enum_arg, field, json_body, page
from orchestrator.api.views import A, T, Views, task_row
from orchestrator.engine import control
from orchestrator.engine.states import TaskState
from orchestrator.errors import InvalidInput

bp = Blueprint("tasks", __name__)


@bp.get("/v2/tasks")
def list_tasks():
    args = request.args
    filters = {"execution_id": args.get("workflow_execution_id"),
               "state": enum_arg("state", [str(s) for s in TaskState]),
               "name": args.get("name")}
    with config().store.connect() as conn:
        return page(conn, T, filters, "tasks", "tasks.list_tasks", Views(conn).tasks,
                    default_sort="created_at,seq")


@bp.get("/v2/tasks/<id>")
def get(id):
    with config().store.connect() as conn:
        task, ex = task_row(conn, id)
        v = Views(conn)
        v.remember(ex)
        return v.task(task)


@bp.put("/v2/tasks/<id>")
def update(id):
    """``{"state": "RUNNING", "reset": bool}`` reruns a failed task (all of it, or
    with ``reset`` false only the failed items of a with-items task);
    ``{"state": "SKIPPED"}`` skips it."""
    data = json_body()
    extra = sorted(set(data) - {"state", "reset"})
    if extra:
        raise InvalidInput(f"unknown field {', '.join(map(repr, extra))}; known: reset, state")
    state = field(data, "state", str, required=True)
    store = config().store
    with store.connect() as conn:
        task_row(conn, id)
    if state == "RUNNING":
        reset = field(data, "reset", bool)
        if reset is None:
            raise InvalidInput("a rerun needs 'reset': true reruns the whole task, false only "
                               "the failed items of a with-items task")
        control.rerun_task(store, id, reset=reset)
    elif state == "SKIPPED":
        if "reset" in data:
            raise InvalidInput("'reset' goes with state RUNNING (a rerun), not SKIPPED")
        control.skip_task(store, id)
    else:
        raise InvalidInput(f"state {state!r} cannot be set on a task: send RUNNING (rerun) "
                           "or SKIPPED")
    with store.connect() as conn:
        task, ex = task_row(conn, id)
        v = Views(conn)
        v.remember(ex)
        return v.task(task)


@bp.get("/v2/tasks/<id>/action_executions")
def action_executions(id):
    with config().store.connect() as conn:
        task_row(conn, id)
        return page(conn, A, {"task_execution_id": id}, "action_executions",
                    "tasks.action_executions", Views(conn).actions,
                    default_sort="item_index,created_at", id=id)
