"""``GET /v2/whoami``: the project and role of the token a request carries, so
a client (the dashboard) can check a token once and show only what its role
may do. The API still decides every request by itself."""
from __future__ import annotations

from flask import Blueprint, g

from orchestrator.api import config

bp = Blueprint("whoami", __name__)


@bp.get("/v2/whoami")
def whoami():
    principal = g.principal
    return {"project": principal.project, "role": principal.role, "name": principal.name,
            "auth": not config().no_auth}
