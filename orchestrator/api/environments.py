"""Environments: named sets of variables an execution reads with ``env()``.
Variables listed in ``secrets`` are stored encrypted and shown as ``***`` (a
mapping or list secret as a whole); a PUT that sends ``***`` back for one keeps
its stored value."""
from __future__ import annotations

import time

from flask import Blueprint

from orchestrator import catalog
from orchestrator.api import config
from orchestrator.api.io import field, iso, json_body, page, project
from orchestrator.store.schema import environments

bp = Blueprint("environments", __name__)


def environment_json(row) -> dict:
    return {"id": row["id"], "name": row["name"], "description": row["description"] or "",
            "variables": catalog.masked_variables(row), "secrets": list(row["secrets"]),
            "project": row["project"], "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"])}


@bp.post("/v2/environments")
def create_environment():
    data = json_body()
    name = field(data, "name", str, required=True)
    variables = field(data, "variables", dict, default={})
    secrets = field(data, "secrets", list, default=[])
    description = field(data, "description", str, default="")
    with config().store.begin() as conn:
        row = catalog.create_environment(conn, project(), name, variables, secrets,
                                         description, time.time())
        return environment_json(row), 201


@bp.put("/v2/environments")
def update_environment():
    data = json_body()
    name = field(data, "name", str, required=True)
    with config().store.begin() as conn:
        row = catalog.update_environment(
            conn, project(), name, time.time(), variables=field(data, "variables", dict),
            secrets=field(data, "secrets", list), description=field(data, "description", str))
        return environment_json(row)


@bp.get("/v2/environments")
def list_environments():
    with config().store.connect() as conn:
        return page(conn, environments, {}, "environments", "environments.list_environments",
                    lambda rows: [environment_json(r) for r in rows])


@bp.get("/v2/environments/<name>")
def get_environment(name: str):
    with config().store.connect() as conn:
        return environment_json(catalog.get_environment(conn, project(), name))


@bp.delete("/v2/environments/<name>")
def delete_environment(name: str):
    with config().store.begin() as conn:
        catalog.delete_environment(conn, project(), name)
    return "", 204
