"""The lab cloud's HTTP API: ``create_app(cloud)`` serves Keystone (``/identity``), Nova
(``/compute``), Cinder (``/volume``) and the lab's own admin API (``/lab``, not OpenStack).

Every response carries ``X-Openstack-Request-Id``. Errors are rendered once, here: Nova and
Cinder's ``{faultName: {code, message}}``, Keystone's (and every 401's)
``{"error": {code, title, message}}`` with ``WWW-Authenticate``.
"""
from __future__ import annotations

import logging
import uuid

from flask import Blueprint, Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from labcloud import cinder, keystone, nova, rest
from labcloud.errors import BadMediaType, BadMethod, BadRequest, CloudError, NotFound, Unauthorized
from labcloud.model import Cloud

log = logging.getLogger(__name__)

lab = Blueprint("lab", __name__, url_prefix="/lab")


def create_app(cloud: Cloud) -> Flask:
    app = Flask("labcloud")
    app.extensions["labcloud"] = cloud
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    for blueprint in (keystone.bp, nova.bp, cinder.bp, lab):
        app.register_blueprint(blueprint)
    app.before_request(_request_id)
    app.after_request(_request_id_header)
    app.register_error_handler(CloudError, _cloud_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def _request_id() -> None:
    g.request_id = f"req-{uuid.uuid4()}"


def _request_id_header(resp):
    resp.headers["X-Openstack-Request-Id"] = g.get("request_id") or f"req-{uuid.uuid4()}"
    return resp


def _cloud_error(e: CloudError):
    keystone_shape = isinstance(e, Unauthorized) or request.path.startswith("/identity")
    if keystone_shape:
        body = {"error": {"code": e.status_code, "title": e.title, "message": e.message}}
    else:
        body = e.to_dict()
    resp = jsonify(body)
    resp.status_code = e.status_code
    if isinstance(e, Unauthorized):
        resp.headers["WWW-Authenticate"] = f'Keystone uri="{rest.host_url()}/identity"'
    if e.retry_after is not None:
        resp.headers["Retry-After"] = e.retry_after
    return resp


def _http_error(e: HTTPException):
    """Werkzeug's own errors (no such route, method, ...) in the service's shape."""
    known = {400: BadRequest, 404: NotFound, 405: BadMethod, 415: BadMediaType}.get(e.code or 0)
    error = known() if known else CloudError(e.description)
    error.status_code = e.code or 500
    return _cloud_error(error)


def _unexpected(e: Exception):
    log.exception("lab cloud: %s %s failed", request.method, request.path)
    return _cloud_error(CloudError(f"Unexpected error: {type(e).__name__}: {e}"))


# -- the lab's own API: fault rules, the whole state, reset -------------------------------
@lab.post("/faults")
def add_fault():
    body = rest.json_body()
    kind = rest.required(body, "kind")
    rule = rest.cloud().add_fault(kind, body.get("match", ""), body.get("times", 1))
    return jsonify(rule), 201


@lab.get("/faults")
def list_faults():
    return jsonify({"faults": rest.cloud().faults()})


@lab.delete("/faults")
def clear_faults():
    rest.cloud().clear_faults()
    return "", 204


@lab.delete("/faults/<rule_id>")
def remove_fault(rule_id: str):
    rest.cloud().remove_fault(rule_id)
    return "", 204


@lab.get("/state")
def state():
    return jsonify(rest.cloud().state())


@lab.post("/reset")
def reset():
    rest.cloud().reset()
    return "", 204
