"""/v2/executions: start (idempotent with a client id), list, read, change
state, delete; an execution's tasks, its event history and its report."""
from __future__ import annotations

import re
import uuid

from flask import Blueprint, request
from sqlalchemy import select

from orchestrator import catalog, secrets
from orchestrator.api import config
from orchestrator.api.io import (
    MAX_LIMIT,
    bool_arg,
    enum_arg,
    field,
    int_arg,
    json_body,
    page,
    project,
)
from orchestrator.api.views import T, Views, execution_row
from orchestrator.engine import control
from orchestrator.engine.states import TaskState, WorkflowState
from orchestrator.errors import Conflict, InvalidInput
from orchestrator.store import schema

bp = Blueprint("executions", __name__)

START_FIELDS = {"workflow_name", "input", "params", "description", "id"}
PARAMS = {"env", "task_name", "secrets"}
# An id the client chooses is a UUID: one that another project uses cannot be
# guessed, so a conflict tells nothing that was not already known.
CLIENT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}$")
STATES = ("PAUSED", "RUNNING", "CANCELLED", "ERROR", "SUCCESS")
# Target state -> the states it can be reached from through the API.
CHANGES = {
    "PAUSED": ("RUNNING",),
    "RUNNING": ("PAUSED",),
    "CANCELLED": ("RUNNING", "PAUSED"),
    "ERROR": ("RUNNING", "PAUSED"),
    "SUCCESS": ("RUNNING", "PAUSED"),
}
EVENTS_LIMIT = MAX_LIMIT


def _unknown(data: dict, known: set[str], where: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise InvalidInput(f"unknown {where} {', '.join(map(repr, extra))}; "
                           f"known: {', '.join(sorted(known))}")


def _params(conn, raw: dict) -> dict:
    """``params`` as stored: a named environment is copied (pinned) as stored, its
    secret values still encrypted, its secret names joined to those of the request
    (the engine encrypts the secret values of an inline ``env`` when it starts)."""
    _unknown(raw, PARAMS, "params field")
    env = field(raw, "env", (dict, str), default={})
    task_name = field(raw, "task_name", str)
    names = field(raw, "secrets", list, default=[])
    if not all(isinstance(n, str) for n in names):
        raise InvalidInput("params.secrets must be a list of variable names (strings)")
    if isinstance(env, str):
        stored = catalog.get_environment(conn, project(), env)
        env = dict(stored["variables"] or {})
        names = list(stored["secrets"] or []) + names
    missing = [n for n in names if n not in env]
    if missing:
        raise InvalidInput(f"params.secrets names {', '.join(map(repr, missing))}, which "
                           f"params.env does not have")
    out: dict = {"env": env}
    if task_name:
        out["task_name"] = task_name
    if names:
        out["secrets"] = list(dict.fromkeys(names))
    return out


def _same_request(row: dict, workflow_name: str) -> None:
    """An execution id used again: the same project and workflow is a retry of the
    same request; anything else is a conflict. Another project's execution is not
    revealed beyond "this id is taken", worded as for any id of this project, and
    ids are UUIDs: another project's cannot be guessed."""
    if row["project"] != project():
        raise Conflict(f"execution id {row['id']} is already used; choose another id")
    if row["workflow_name"] != workflow_name:
        raise Conflict(f"execution {row['id']} already exists for workflow "
                       f"{row['workflow_name']!r}, not {workflow_name!r}")


@bp.post("/v2/executions")
def start():
    data = json_body()
    _unknown(data, START_FIELDS, "field")
    name = field(data, "workflow_name", str, required=True)
    input_ = field(data, "input", dict, default={})
    description = field(data, "description", str, default="")
    execution_id = field(data, "id", str)
    if execution_id is not None and not CLIENT_ID.match(execution_id):
        raise InvalidInput(f"field 'id' must be a UUID (such as {uuid.uuid4()}), "
                           f"not {execution_id[:40]!r}")
    store = config().store
    with store.connect() as conn:
        doc, qualified = catalog.workflow_document(conn, project(), name)
        params = _params(conn, field(data, "params", dict, default={}))
    row, created = control.create(store, doc, qualified, input_, params,
                                  execution_id=execution_id, project=project(),
                                  description=description)
    if not created:
        _same_request(row, qualified)
    with store.connect() as conn:
        return Views(conn).execution(execution_row(conn, row["id"])), 201 if created else 200


@bp.get("/v2/executions")
def list_executions():
    args = request.args
    filters = {"state": enum_arg("state", [str(s) for s in WorkflowState]),
               "workflow_name": args.get("workflow_name"),
               "root_execution_id": args.get("root_execution_id")}
    with config().store.connect() as conn:
        v = Views(conn)
        return page(conn, schema.executions, filters, "executions",
                    "executions.list_executions", lambda rows: [v.execution(r) for r in rows])


@bp.get("/v2/executions/<id>")
def get(id):
    with config().store.connect() as conn:
        return Views(conn).execution(execution_row(conn, id))


@bp.put("/v2/executions/<id>")
def update(id):
    data = json_body()
    _unknown(data, {"state", "state_info", "description"}, "field")
    state = field(data, "state", str)
    info = field(data, "state_info", str)
    description = field(data, "description", str)
    if state is None and description is None:
        raise InvalidInput("send 'state' (one of " + ", ".join(STATES) + ") and/or "
                           "'description'")
    if state is not None and state not in STATES:
        raise InvalidInput(f"state {state!r} is not one of {', '.join(STATES)}")
    if info is not None and state not in ("CANCELLED", "ERROR", "SUCCESS"):
        raise InvalidInput("state_info goes with state CANCELLED, ERROR or SUCCESS")
    store = config().store
    with store.connect() as conn:
        current = execution_row(conn, id)["state"]
    if description is not None:
        control.describe(store, id, description)
    if state is not None and state != current:  # the same state again changes nothing
        if current not in CHANGES[state]:
            hint = ""
            if current == "ERROR" and state == "RUNNING":
                hint = "; rerun its failed tasks instead (PUT /v2/tasks/{id})"
            raise Conflict(f"execution {id} is {current}: it cannot change to "
                           f"{state} (only from {' or '.join(CHANGES[state])}){hint}")
        if state == "PAUSED":
            control.pause(store, id)
        elif state == "RUNNING":
            control.resume(store, id)
        elif state == "CANCELLED":
            control.cancel(store, id, info or "cancelled by user")
        else:
            control.force_end(store, id, state, info)
    with store.connect() as conn:
        return Views(conn).execution(execution_row(conn, id))


@bp.delete("/v2/executions/<id>")
def delete(id):
    force = bool_arg("force")
    store = config().store
    with store.connect() as conn:
        execution_row(conn, id)
    control.delete(store, id, force=force)
    return "", 204


@bp.get("/v2/executions/<id>/tasks")
def tasks(id):
    args = request.args
    with config().store.connect() as conn:
        v = Views(conn)
        v.remember(execution_row(conn, id))
        return page(conn, T, {"execution_id": id,
                              "state": enum_arg("state", [str(s) for s in TaskState]),
                              "name": args.get("name")},
                    "tasks", "executions.tasks", v.tasks, default_sort="seq",
                    id=id)


@bp.get("/v2/executions/<id>/events")
def events(id):
    after = int_arg("after", 0)
    limit = int_arg("limit", EVENTS_LIMIT, 1, EVENTS_LIMIT)
    e = schema.events
    with config().store.connect() as conn:
        v = Views(conn)
        v.remember(execution_row(conn, id))
        rows = conn.execute(select(e).where(e.c.execution_id == id, e.c.id > after)
                            .order_by(e.c.id).limit(limit)).mappings()
        return {"events": [v.event(r) for r in rows]}


@bp.get("/v2/executions/<id>/report")
def report(id):
    """The tree of tasks, action executions and sub-executions with the root
    cause of a failure: the first failing task, followed down failed
    sub-workflows to the deepest one (null when nothing failed, or when the
    execution failed outside any task: its state_info says why)."""
    errors_only = bool_arg("errors_only")
    max_depth = int_arg("max_depth", -1, minimum=-1)
    store = config().store
    with store.connect() as conn:
        execution_row(conn, id)
    tree = control.report(store, id, errors_only=errors_only,
                          max_depth=None if max_depth < 0 else max_depth)
    with store.connect() as conn:
        v = Views(conn)
        cause = tree["root_cause"]
        if cause is not None and cause["task"] is not None:
            cause = {"task": cause["task"]["name"], "execution_id": cause["execution"]["id"],
                     "state_info": secrets.mask(cause["state_info"],
                                                v.secrets_of(cause["execution"]))}
        else:
            cause = None
        return {"root_cause": cause, "execution": _node(v, tree["execution"]),
                "statistics": tree["statistics"]}


def _node(v: Views, node: dict) -> dict:
    out = v.execution(node["execution"])
    out["tasks"] = [
        {**v.task(t["task"]), "action_executions": v.actions(t["actions"]),
         "sub_executions": [_node(v, s) for s in t["sub_executions"]]}
        for t in node["tasks"]
    ]
    return out
