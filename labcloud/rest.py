"""What the lab cloud's HTTP services share: the cloud, the token check, request bodies,
microversions, paging, URLs and timestamp formats."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, request

from labcloud.errors import BadMediaType, BadRequest, Forbidden, NotAcceptable
from labcloud.identity import Token
from labcloud.model import Cloud

VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")  # nova/cinder api_version_request
MAX_LIMIT = 1000  # osapi_max_limit


def cloud() -> Cloud:
    return current_app.extensions["labcloud"]


def authenticate() -> Token:
    """The request's ``X-Auth-Token``, checked as keystonemiddleware does (401 otherwise)."""
    token = cloud().identity.check(request.headers.get("X-Auth-Token"))
    if token.project_id is None:
        raise Forbidden("Policy doesn't allow this request to be performed with an unscoped "
                        "token: ask Keystone for a token scoped to a project.")
    g.token = token
    return token


def json_body(strict_type: bool = True) -> Any:
    """The request's JSON document ({} when empty); 400 when malformed, 415 (with
    ``strict_type``, as Nova and Cinder) when sent as something else than JSON."""
    if strict_type and request.mimetype and request.mimetype not in (
            "application/json", "application/vnd.openstack.compute+json"):
        raise BadMediaType()
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest("Malformed request body") from None


def invalid(path: str, value: object, message: str) -> BadRequest:
    """A JSON-schema validation error worded as nova/cinder ``validation/validators.py``."""
    return BadRequest(f"Invalid input for field/attribute {path}. Value: {value}. {message}")


def required(body: object, key: str, path: str = "") -> Any:
    """``body[key]``; 400 when ``body`` is not an object or misses the key."""
    if not isinstance(body, dict):
        raise invalid(path, body, f"{body!r} is not of type 'object'") if path else BadRequest(
            f"{body!r} is not of type 'object'")
    if key not in body:
        message = f"'{key}' is a required property"
        raise invalid(path, body, message) if path else BadRequest(message)
    return body[key]


def api_version(service: str, legacy: str | None, lowest: tuple[int, int],
                highest: tuple[int, int]) -> tuple[int, int]:
    """The microversion asked by ``OpenStack-API-Version: <service> X.Y`` (or the legacy
    header; the former wins); the lowest when none, the highest for ``latest``."""
    value = None
    for item in request.headers.get("OpenStack-API-Version", "").split(","):
        parts = item.split()
        if len(parts) == 2 and parts[0].lower() == service:
            value = parts[1]
    if value is None and legacy:
        value = request.headers.get(legacy)
    if value is None:
        return lowest
    value = value.strip()
    if value.lower() == "latest":
        return highest
    match = VERSION.match(value)
    if not match:
        raise BadRequest(f"API Version String {value} is of invalid format. Must be of format "
                         "MajorNum.MinorNum.")
    version = (int(match[1]), int(match[2]))
    if not lowest <= version <= highest:
        raise NotAcceptable(f"Version {value} is not supported by the API. Minimum is "
                            f"{vstr(lowest)} and maximum is {vstr(highest)}.")
    return version


def vstr(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def page(items: list[dict], marker_missing) -> tuple[list[dict], list[dict]]:
    """The page of ``items`` asked by ``limit`` and ``marker`` (an id), and its links: a
    ``next`` link when the page is full, as Nova and Cinder do."""
    limit_arg, marker = request.args.get("limit"), request.args.get("marker")
    limit = MAX_LIMIT
    if limit_arg is not None:
        try:
            limit = int(limit_arg)
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise BadRequest("limit param must be positive")
        limit = min(limit, MAX_LIMIT)
    if marker is not None:
        index = next((i for i, item in enumerate(items) if item["id"] == marker), None)
        if index is None:
            raise marker_missing(marker)
        items = items[index + 1:]
    items = items[:limit]
    if not items or len(items) < limit:
        return items, []
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "marker"]
    href = f"{request.base_url}?{urlencode([*query, ('marker', items[-1]['id'])])}"
    return items, [{"rel": "next", "href": href}]


def host_url() -> str:
    """``http://host:port`` as the client reached us: the catalog works on any port."""
    return request.host_url.rstrip("/")


def nova_time(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cinder_time(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def keystone_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
