"""Workbooks, workflows and ad-hoc actions: YAML documents in, JSON rows out.

``GET /v2/actions`` also lists the system actions (the registry's Python
actions, ``is_system: true``); they are not rows, so that list is paged in memory.
"""
from __future__ import annotations

import time
import uuid
from functools import partial

from flask import Blueprint, request

from orchestrator import catalog
from orchestrator.actions import registry
from orchestrator.api import config, role
from orchestrator.api.io import (
    SORT_KEYS,
    iso,
    list_args,
    next_link,
    page,
    project,
    text_body,
)
from orchestrator.errors import InvalidDefinition, InvalidInput, NotFound
from orchestrator.store.schema import action_definitions, workbooks, workflow_definitions

bp = Blueprint("definitions", __name__)

SYSTEM_IDS = uuid.UUID("6f1c3c5e-53a4-4f8e-9a51-0b8f5b0e2a10")  # uuid5 namespace


def _listed(table, plural: str, endpoint: str, serialize, filters: dict | None = None):
    with config().store.connect() as conn:
        return page(conn, table, filters or {}, plural, endpoint,
                    lambda rows: [serialize(conn, row) for row in rows])


def _validation(kind: str):
    try:
        with config().store.connect() as conn:
            catalog.validate(conn, project(), text_body(), kind)
    except InvalidDefinition as e:
        return {"valid": False, "error": e.message,
                "problems": [p.to_dict() for p in e.problems]}
    except InvalidInput as e:
        return {"valid": False, "error": e.message}
    return {"valid": True}


# --- workbooks ---------------------------------------------------------------------------

def workbook_json(_conn, row) -> dict:
    return {"id": row["id"], "name": row["name"], "definition": row["definition"],
            "tags": list(row["tags"] or []), "project": row["project"],
            "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


@bp.post("/v2/workbooks")
def create_workbook():
    text = text_body()
    with config().store.begin() as conn:
        return workbook_json(conn, catalog.create_workbook(conn, project(), text, time.time())), 201


@bp.put("/v2/workbooks")
def update_workbook():
    text = text_body()
    with config().store.begin() as conn:
        return workbook_json(conn, catalog.update_workbook(conn, project(), text, time.time()))


@bp.get("/v2/workbooks")
def list_workbooks():
    return _listed(workbooks, "workbooks", "definitions.list_workbooks", workbook_json)


@bp.get("/v2/workbooks/<name>")
def get_workbook(name: str):
    with config().store.connect() as conn:
        return workbook_json(conn, catalog.get_workbook(conn, project(), name))


@bp.delete("/v2/workbooks/<name>")
def delete_workbook(name: str):
    with config().store.begin() as conn:
        catalog.delete_workbook(conn, project(), name)
    return "", 204


@bp.post("/v2/workbooks/validate")
@role("viewer")
def validate_workbook():
    return _validation(catalog.WORKBOOK_FILE)


# --- workflows ---------------------------------------------------------------------------

def _param(p) -> dict:
    out = {"name": p.name, "required": p.required}
    if not p.required:
        out["default"] = p.default
    return out


def workflow_json(conn, row) -> dict:
    spec = catalog.spec_of(conn, row)
    return {"id": row["id"], "name": row["name"], "workbook_name": row["workbook_name"],
            "definition": row["definition"], "input": [_param(p) for p in spec.input],
            "project": row["project"], "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"])}


def _written(kind: str, plural: str, serialize, create: bool):
    text = text_body()
    write = catalog.create_standalone if create else catalog.update_standalone
    with config().store.begin() as conn:
        rows = write(conn, project(), text, kind, time.time())
        return {plural: [serialize(conn, r) for r in rows]}, 201 if create else 200


@bp.post("/v2/workflows")
def create_workflows():
    return _written(catalog.WORKFLOWS_FILE, "workflows", workflow_json, create=True)


@bp.put("/v2/workflows")
def update_workflows():
    return _written(catalog.WORKFLOWS_FILE, "workflows", workflow_json, create=False)


@bp.get("/v2/workflows")
def list_workflows():
    return _listed(workflow_definitions, "workflows", "definitions.list_workflows",
                   workflow_json, {"workbook_name": request.args.get("workbook_name")})


@bp.get("/v2/workflows/<name>")
def get_workflow(name: str):
    with config().store.connect() as conn:
        return workflow_json(conn, catalog.get_workflow(conn, project(), name))


@bp.delete("/v2/workflows/<name>")
def delete_workflow(name: str):
    with config().store.begin() as conn:
        catalog.delete_workflow(conn, project(), name)
    return "", 204


@bp.post("/v2/workflows/validate")
@role("viewer")
def validate_workflows():
    return _validation(catalog.WORKFLOWS_FILE)


# --- actions -----------------------------------------------------------------------------

def _signature(params) -> str:
    """``host, port=22``: Mistral's ``input`` string of an action."""
    return ", ".join(name if default is _REQUIRED else f"{name}={default!r}"
                     for name, default in params)


_REQUIRED = object()


def action_json(conn, row) -> dict:
    spec = catalog.spec_of(conn, row)
    params = [(p.name, _REQUIRED if p.required else p.default) for p in spec.input]
    return {"id": row["id"], "name": row["name"], "workbook_name": row["workbook_name"],
            "definition": row["definition"], "is_system": False, "input": _signature(params),
            "description": spec.description or None, "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"])}


def system_action_json(name: str) -> dict:
    cls = registry.get(name)
    required, optional, kwargs = registry.params(cls)
    params = [(n, _REQUIRED) for n in required] + list(optional.items())
    text = _signature(params) + (", **kwargs" if kwargs and params else "**kwargs" if kwargs
                                 else "")
    doc = (cls.__doc__ or "").strip().splitlines()
    return {"id": str(uuid.uuid5(SYSTEM_IDS, name)), "name": name, "workbook_name": None,
            "definition": None, "is_system": True, "input": text,
            "description": doc[0] if doc else None, "created_at": None, "updated_at": None}


def _sort_value(item: dict, key: str):
    value = item.get(key)
    return (value is not None, value if isinstance(value, (str, int, float)) else str(value))


def _memory_page(items: list[dict], plural: str, endpoint: str) -> dict:
    """``io.page`` over a list: same arguments, same ``next``. System actions have
    no creation time, so they sort first by ``created_at``."""
    limit, keys, dirs = list_args(SORT_KEYS[plural], "created_at")
    for key, d in reversed(list(zip(keys, dirs))):  # stable sorts, last key first
        items.sort(key=partial(_sort_value, key=key), reverse=d == "desc")
    marker = request.args.get("marker")
    if marker:
        ids = [item["id"] for item in items]
        if marker not in ids:
            raise NotFound(f"marker {marker!r} is not an item of this list")
        items = items[ids.index(marker) + 1:]
    out: dict = {plural: items[:limit]}
    if len(items) > limit:
        out["next"] = next_link(endpoint, {"marker": items[limit - 1]["id"]})
    return out


@bp.post("/v2/actions")
def create_actions():
    return _written(catalog.ACTIONS_FILE, "actions", action_json, create=True)


@bp.put("/v2/actions")
def update_actions():
    return _written(catalog.ACTIONS_FILE, "actions", action_json, create=False)


@bp.get("/v2/actions")
def list_actions():
    with config().store.connect() as conn:
        rows = conn.execute(action_definitions.select().where(
            action_definitions.c.project == project())).mappings()
        items = [action_json(conn, r) for r in rows]
    items += [system_action_json(name) for name in registry.names()]
    return _memory_page(items, "actions", "definitions.list_actions")


@bp.get("/v2/actions/<name>")
def get_action(name: str):
    with config().store.connect() as conn:
        row = catalog.get_action(conn, project(), name)
        return system_action_json(name) if row is None else action_json(conn, row)


@bp.delete("/v2/actions/<name>")
def delete_action(name: str):
    with config().store.begin() as conn:
        catalog.delete_action(conn, project(), name)
    return "", 204


@bp.post("/v2/actions/validate")
@role("viewer")
def validate_actions():
    return _validation(catalog.ACTIONS_FILE)
