"""/v2/action_executions: list and read action executions, and complete an
asynchronous one from outside (its callback)."""
from __future__ import annotations

from flask import Blueprint, request

from orchestrator.api import config
from orchestrator.api.io import enum_arg, field, json_body, page
from orchestrator.api.views import A, Views, action_row
from orchestrator.engine import control
from orchestrator.engine.states import ActionState
from orchestrator.errors import InvalidInput

bp = Blueprint("action_executions", __name__)
RESULTS = ("SUCCESS", "ERROR", "CANCELLED")


@bp.get("/v2/action_executions")
def list_actions():
    args = request.args
    filters = {"task_execution_id": args.get("task_execution_id"),
               "execution_id": args.get("workflow_execution_id"),
               "state": enum_arg("state", [str(s) for s in ActionState])}
    with config().store.connect() as conn:
        return page(conn, A, filters, "action_executions", "action_executions.list_actions",
                    Views(conn).actions)


@bp.get("/v2/action_executions/<id>")
def get(id):
    with config().store.connect() as conn:
        action, ex = action_row(conn, id)
        v = Views(conn)
        v.remember(ex)
        return v.action(action)


@bp.put("/v2/action_executions/<id>")
def update(id):
    """``{"state": "SUCCESS"|"ERROR"|"CANCELLED", "output": any}``: the result of
    a RUNNING asynchronous action; for ERROR, ``output`` is the error."""
    data = json_body()
    extra = sorted(set(data) - {"state", "output"})
    if extra:
        raise InvalidInput(f"unknown field {', '.join(map(repr, extra))}; known: output, state")
    state = field(data, "state", str, required=True)
    if state not in RESULTS:
        raise InvalidInput(f"state {state!r} is not one of {', '.join(RESULTS)}")
    store = config().store
    with store.connect() as conn:
        action_row(conn, id)
    control.complete_action(store, id, state, data.get("output"))
    with store.connect() as conn:
        action, ex = action_row(conn, id)
        v = Views(conn)
        v.remember(ex)
        return v.action(action)
