"""Cron triggers: created, listed, read and deleted (no PUT: delete and create
again, as in Mistral). Firing them is the scheduler's job."""
from __future__ import annotations

import time

from flask import Blueprint, request

from orchestrator import cron
from orchestrator.api import config
from orchestrator.api.io import MAX_INT, field, iso, json_body, page, project
from orchestrator.errors import InvalidInput
from orchestrator.store.schema import cron_triggers

bp = Blueprint("triggers", __name__)


def trigger_json(row) -> dict:
    return {"id": row["id"], "name": row["name"], "pattern": row["pattern"],
            "timezone": row["timezone"], "workflow_name": row["workflow_name"],
            "workflow_input": row["workflow_input"], "workflow_params": row["workflow_params"],
            "first_execution_time": iso(row["first_execution_time"]),
            "remaining_executions": row["remaining_executions"],
            "next_execution_time": iso(row["next_execution_time"]), "missed": row["missed"],
            "project": row["project"], "created_at": iso(row["created_at"])}


def _count(value: int | None) -> int | None:
    if value is not None and value > MAX_INT:
        raise InvalidInput(f"field 'remaining_executions' must be at most {MAX_INT}")
    return value


@bp.post("/v2/cron_triggers")
def create_trigger():
    data = json_body()
    known = ("name", "pattern", "workflow_name", "workflow_input", "workflow_params",
             "first_execution_time", "remaining_executions", "timezone", "missed")
    with config().store.begin() as conn:
        row = cron.create(
            conn, project(), time.time(),
            name=field(data, "name", str, required=True),
            pattern=field(data, "pattern", str, required=True),
            workflow_name=field(data, "workflow_name", str, required=True),
            workflow_input=field(data, "workflow_input", dict, default={}),
            workflow_params=field(data, "workflow_params", dict, default={}),
            first_execution_time=field(data, "first_execution_time", str),
            remaining_executions=_count(field(data, "remaining_executions", int)),
            timezone=field(data, "timezone", str, default="UTC"),
            missed=field(data, "missed", str, default="skip"),
            unknown=[k for k in data if k not in known])
        return trigger_json(row), 201


@bp.get("/v2/cron_triggers")
def list_triggers():
    with config().store.connect() as conn:
        return page(conn, cron_triggers, {"workflow_name": request.args.get("workflow_name")},
                    "cron_triggers", "triggers.list_triggers",
                    lambda rows: [trigger_json(r) for r in rows])


@bp.get("/v2/cron_triggers/<name>")
def get_trigger(name: str):
    with config().store.connect() as conn:
        return trigger_json(cron.get(conn, project(), name))


@bp.delete("/v2/cron_triggers/<name>")
def delete_trigger(name: str):
    with config().store.begin() as conn:
        cron.remove(conn, project(), name)
    return "", 204
