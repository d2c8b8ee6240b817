"""Keystone v3 (``/identity``): password tokens with a catalog (spec §1)."""
from __future__ import annotations

import uuid

from flask import Blueprint, jsonify, request

from labcloud import rest
from labcloud.errors import BadRequest, NotFound, Unauthorized
from labcloud.identity import Token

bp = Blueprint("keystone", __name__, url_prefix="/identity")

CATALOG_NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
INTERFACES = ("public", "internal", "admin")
SERVICES = (  # type, name, URL below the host ({project}: the token's project id)
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("block-storage", "cinder", "/volume/v3/{project}"),
    ("volumev3", "cinderv3", "/volume/v3/{project}"),
)
COMPLY = ("The server could not comply with the request since it is either malformed or "
          "otherwise incorrect. The client is assumed to be in error.")


def version_doc() -> dict:
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{rest.host_url()}/identity/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}]}


@bp.get("/")
def versions():
    return jsonify({"versions": {"values": [version_doc()]}}), 300


@bp.get("/v3")
@bp.get("/v3/")
def version():
    return jsonify({"version": version_doc()})


@bp.post("/v3/auth/tokens")
def issue():
    auth = _expect(rest.json_body(strict_type=False), "auth", "request body")
    identity = _expect(auth, "identity", "auth")
    methods = _expect(identity, "methods", "identity", list)
    if "password" not in methods:
        raise Unauthorized("Attempted to authenticate with an unsupported method.")
    user = _expect(_expect(identity, "password", "identity"), "user", "password")
    if "id" not in user and "name" not in user:
        raise _missing("id or name", "user")
    if "id" not in user:
        _expect(user, "domain", "user")
    password = _expect(user, "password", "user", str)
    scope, project = auth.get("scope"), None
    if scope is not None:
        if not isinstance(scope, dict) or "project" not in scope:
            raise Unauthorized("The lab cloud only grants project-scoped tokens.")
        project = _expect(scope, "project", "scope")
        if "id" not in project:
            _expect(project, "name", "project", str)
            _expect(project, "domain", "project")
    token = rest.cloud().identity.issue(
        password=password, user_id=user.get("id"), user_name=user.get("name"),
        user_domain=user.get("domain"), project_id=project and project.get("id"),
        project_name=project and project.get("name"),
        project_domain=project and project.get("domain"))
    resp = jsonify(token_body(token, catalog="nocatalog" not in request.args))
    resp.status_code = 201
    resp.headers["X-Subject-Token"] = token.id
    resp.headers["Vary"] = "X-Auth-Token"
    return resp


@bp.get("/v3/auth/tokens")
def validate():
    rest.cloud().identity.check(request.headers.get("X-Auth-Token"))
    token = _subject()
    resp = jsonify(token_body(token, catalog="nocatalog" not in request.args))
    resp.headers["X-Subject-Token"] = token.id
    resp.headers["Vary"] = "X-Auth-Token"
    return resp


@bp.delete("/v3/auth/tokens")
def revoke():
    rest.cloud().identity.check(request.headers.get("X-Auth-Token"))
    rest.cloud().identity.revoke(request.headers.get("X-Subject-Token", ""))
    return "", 204


def _subject() -> Token:
    subject = request.headers.get("X-Subject-Token", "")
    try:
        return rest.cloud().identity.check(subject)
    except Unauthorized:
        raise NotFound(f"Could not find token: {subject}.") from None


def _expect(container: object, key: str, target: str, kind: type = dict):
    """``container[key]`` of type ``kind``; Keystone's 400 ValidationError otherwise."""
    value = container.get(key) if isinstance(container, dict) else None
    if not isinstance(value, kind):
        raise _missing(key, target)
    return value


def _missing(attribute: str, target: str) -> BadRequest:
    return BadRequest(f"Expecting to find {attribute} in {target}. {COMPLY}")


def token_body(token: Token, catalog: bool = True) -> dict:
    ident = rest.cloud().identity
    domain = {"id": ident.domain_id, "name": ident.domain_name}
    body: dict = {
        "methods": ["password"], "audit_ids": [token.audit_id],
        "issued_at": rest.keystone_time(token.issued_at),
        "expires_at": rest.keystone_time(token.expires_at),
        "user": {"id": token.user_id, "name": token.user_name, "domain": domain,
                 "password_expires_at": None},
    }
    if token.project_id is not None:
        body.update(project={"id": token.project_id, "name": token.project_name,
                             "domain": domain},
                    is_domain=False, roles=[{"id": i, "name": n} for i, n in token.roles])
        if catalog:
            body["catalog"] = service_catalog(token.project_id)
    return {"token": body}


def service_catalog(project_id: str) -> list[dict]:
    host, region = rest.host_url(), rest.cloud().config.region
    return [{"type": kind, "name": name, "id": uuid.uuid5(CATALOG_NS, kind).hex,
             "endpoints": [{"id": uuid.uuid5(CATALOG_NS, f"{kind}/{i}").hex, "interface": i,
                            "region": region, "region_id": region,
                            "url": host + path.format(project=project_id)}
                           for i in INTERFACES]}
            for kind, name, path in SERVICES]
