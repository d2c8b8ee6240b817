"""The REST API v2: ``create_app(config)`` builds the Flask application, one
blueprint per resource, one error shape for every failure."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from orchestrator import metrics
from orchestrator.api.auth import NO_AUTH, Forbidden, Principal, authenticate, token_of
from orchestrator.errors import OrchestratorError
from orchestrator.store.db import Store

log = logging.getLogger(__name__)

METHOD_ROLE = {"GET": "viewer", "HEAD": "viewer", "OPTIONS": "viewer", "POST": "operator",
               "PUT": "operator", "PATCH": "operator", "DELETE": "admin"}
PUBLIC = {"health", "openapi.document", "metrics"}  # metrics: aggregates only, see README


@dataclass
class ApiConfig:
    store: Store
    tokens: dict[str, Principal] = field(default_factory=dict)
    no_auth: bool = False  # every request acts as admin of project "default"
    max_body: int = 1024 * 1024  # bytes; bigger bodies get 413
    on_change: object = None  # called (no args) after a request that made work: wakes the engine


def role(name: str):
    """Override the role a view needs (default: by HTTP method)."""

    def mark(fn):
        fn.required_role = name
        return fn

    return mark


def _error(status: int, kind: str, message: str, extra: dict | None = None):
    body = {"error": kind, "message": message}
    body.update(extra or {})
    return jsonify(body), status


def create_app(config: ApiConfig) -> Flask:
    from orchestrator import dashboard
    from orchestrator.api import (
        action_executions,
        definitions,
        environments,
        executions,
        graphs,
        io,
        openapi,
        tasks,
        triggers,
        whoami,
    )

    app = Flask("orchestrator")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    app.json.sort_keys = False
    app.extensions["orchestrator"] = config
    metrics.init_app(app, config.store)  # GET /metrics, HTTP latency
    for module in (definitions, executions, tasks, action_executions, environments, triggers,
                   openapi, graphs, whoami, dashboard):
        app.register_blueprint(module.bp)
    public = PUBLIC | dashboard.PUBLIC

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.before_request
    def check_access():
        if request.endpoint in public:
            return None
        if config.no_auth:
            g.principal = NO_AUTH
        else:
            g.principal = authenticate(token_of(request.headers.get("Authorization"),
                                                request.headers.get("X-Auth-Token")),
                                       config.tokens)
        if request.routing_exception is not None:  # 404 or 405 (with Allow), not a 403
            raise request.routing_exception
        view = app.view_functions.get(request.endpoint)
        needed = getattr(view, "required_role", None) or METHOD_ROLE.get(request.method, "admin")
        if not g.principal.allows(needed):
            raise Forbidden(f"role {g.principal.role!r} cannot do this ({needed} needed)")
        return None

    @app.before_request
    def check_path():
        io.check_path()  # after check_access: a request without a token is a 401 first

    @app.after_request
    def wake_engine(response):
        if request.method in ("POST", "PUT", "DELETE") and response.status_code < 400 \
                and callable(config.on_change):
            config.on_change()
        return response

    @app.errorhandler(OrchestratorError)
    def orchestrator_error(e: OrchestratorError):
        if e.status_code >= 500:
            log.error("request %s %s failed: %s", request.method, request.path, e)
        body = e.to_dict()
        return _error(e.status_code, body.pop("error"), body.pop("message"), body)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        messages = {
            404: f"no such resource: {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is larger than {config.max_body} bytes",
        }
        name = type(e).__name__
        body, status = _error(e.code or 500, name, messages.get(e.code, e.description or name))
        valid = getattr(e, "valid_methods", None)
        if e.code == 405 and valid:  # RFC 9110: a 405 says which methods the path has
            return body, status, {"Allow": ", ".join(sorted(valid))}
        return body, status

    @app.errorhandler(Exception)
    def internal_error(e: Exception):
        from orchestrator.store.db import DISK_FULL, is_disk_full

        if is_disk_full(e):  # nothing was written; once space returns, requests succeed
            log.error("%s %s: %s", request.method, request.path, DISK_FULL)
            body, status = _error(503, "ServiceUnavailable", DISK_FULL)
            return body, status, {"Retry-After": "30"}
        ref = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", ref, request.method, request.path)
        return _error(500, "InternalError", f"internal error (reference {ref}); see the "
                                            "server log")

    return app


def config() -> ApiConfig:
    from flask import current_app

    return current_app.extensions["orchestrator"]
