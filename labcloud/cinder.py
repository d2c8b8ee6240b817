"""Cinder v3 (``/volume``): volumes (spec §3). Paths carry the project id
(``/v3/<project_id>/volumes``) or, as Cinder allows since 3.67, none."""
from __future__ import annotations

import ast
import json
import re

from flask import Blueprint, g, jsonify, request

from labcloud import rest
from labcloud.errors import BadRequest, NotFound
from labcloud.rest import invalid, required

bp = Blueprint("cinder", __name__, url_prefix="/volume")

LOWEST, HIGHEST = (3, 0), (3, 71)
PUBLIC = ("cinder.versions",)
METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. /]{1,255}$")
VOLUME_TYPE = "__DEFAULT__"
NOT_EMULATED = ("snapshot_id", "source_volid", "imageRef", "image_id", "backup_id",
                "consistencygroup_id", "group_id")


def route(rule: str, **options):
    """Register a view both at ``/v3/<project_id><rule>`` and at ``/v3<rule>``."""
    def register(view):
        bp.route(f"/v3/<project_id>{rule}", **options)(view)
        bp.route(f"/v3{rule}", defaults={"project_id": None}, **options)(view)
        return view

    return register


@bp.before_request
def _before() -> None:
    if request.endpoint in PUBLIC:
        return
    token = rest.authenticate()
    project_id = (request.view_args or {}).get("project_id")
    if project_id is not None and project_id != token.project_id:
        raise BadRequest("Malformed request url")
    g.cinder_version = rest.api_version("volume", None, LOWEST, HIGHEST)


@bp.after_request
def _after(resp):
    version = g.get("cinder_version")
    if version is not None:
        resp.headers["OpenStack-API-Version"] = f"volume {rest.vstr(version)}"
        resp.headers["Vary"] = "OpenStack-API-Version"
    return resp


def _at_least(version: tuple[int, int]) -> bool:
    return g.cinder_version >= version


@bp.get("/")
@bp.get("/v3")
@bp.get("/v3/")
def versions():
    return jsonify({"versions": [{
        "id": "v3.0", "status": "CURRENT", "version": rest.vstr(HIGHEST),
        "min_version": rest.vstr(LOWEST), "updated": "2023-08-31T00:00:00Z",
        "links": [{"rel": "self", "href": f"{rest.host_url()}/volume/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}]}]})


@route("/volumes", methods=["POST"])
def create_volume(project_id: str | None):
    v = rest.cloud().create_volume(g.token, fail=request.headers.get("X-Lab-Fail"),
                                   **_volume_request(rest.json_body()))
    return jsonify({"volume": volume_view(v)}), 202


@route("/volumes", methods=["GET"])
def list_volumes(project_id: str | None):
    found, links = _volumes_page()
    body: dict = {"volumes": [{"id": v["id"], "name": v["name"], "links": _links(v["id"])}
                              for v in found]}
    if links:
        body["volumes_links"] = links
    return jsonify(body)


@route("/volumes/detail", methods=["GET"])
def list_volumes_detail(project_id: str | None):
    found, links = _volumes_page()
    body: dict = {"volumes": [volume_view(v) for v in found]}
    if links:
        body["volumes_links"] = links
    return jsonify(body)


@route("/volumes/<volume_id>", methods=["GET"])
def show_volume(project_id: str | None, volume_id: str):
    return jsonify({"volume": volume_view(rest.cloud().volume(g.token, volume_id))})


@route("/volumes/<volume_id>", methods=["DELETE"])
def delete_volume(project_id: str | None, volume_id: str):
    rest.cloud().delete_volume(g.token, volume_id)
    return "", 202


def _volumes_page() -> tuple[list[dict], list[dict]]:
    """The volumes filtered by ``name``, ``status`` and ``metadata`` (exact), then paged."""
    found = rest.cloud().volumes(g.token)
    for key in ("name", "status"):
        if key in request.args:
            found = [v for v in found if v[key] == request.args[key]]
    if "metadata" in request.args:
        wanted = _metadata_filter(request.args["metadata"])
        found = [v for v in found
                 if all(v["metadata"].get(k) == str(x) for k, x in wanted.items())]
    return rest.page(found, lambda marker: NotFound(f"Marker {marker} could not be found."))


def _metadata_filter(text: str) -> dict:
    """Cinder takes ``metadata={'k': 'v'}`` (a Python literal); JSON works too."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            return value
    raise BadRequest(f"Invalid input received: metadata filter {text!r} must be a dict "
                     "such as {'key': 'value'}")


def volume_view(v: dict) -> dict:
    d = {
        "id": v["id"], "name": v["name"], "description": v["description"],
        "status": v["status"], "size": v["size"], "availability_zone": "nova",
        "created_at": rest.cinder_time(v["created"]),
        "updated_at": rest.cinder_time(v["updated"]),
        "attachments": [{"server_id": a["server_id"], "attachment_id": a["id"],
                         "attached_at": rest.cinder_time(a["attached_at"]), "host_name": None,
                         "volume_id": a["volume_id"], "device": a["device"],
                         "id": a["volume_id"]} for a in v["attachments"]],
        "bootable": "false", "encrypted": False, "multiattach": False,
        "metadata": v["metadata"], "volume_type": VOLUME_TYPE, "user_id": v["user_id"],
        "snapshot_id": None, "source_volid": None, "consistencygroup_id": None,
        "replication_status": None, "migration_status": None,
        "os-vol-tenant-attr:tenant_id": v["project_id"],
        "os-vol-host-attr:host": "lab@lvmdriver-1#lvmdriver-1",
        "links": _links(v["id"]),
    }
    if _at_least((3, 13)):
        d["group_id"] = None
    if _at_least((3, 21)):
        d["provider_id"] = None
    if _at_least((3, 48)):
        d.update(shared_targets=False, service_uuid=None)
    if _at_least((3, 63)):
        d["volume_type_id"] = None
    if _at_least((3, 65)):
        d["consumes_quota"] = True
    return d


def _volume_request(body: object) -> dict:
    """The keyword arguments of ``Cloud.create_volume`` from a checked request body."""
    volume = required(body, "volume")
    if not isinstance(volume, dict):
        raise invalid("volume", volume, f"{volume!r} is not of type 'object'")
    for key in NOT_EMULATED:
        if volume.get(key) is not None:
            raise BadRequest(f"The lab cloud only creates empty volumes ({key} is not "
                             "emulated).")
    size = volume.get("size")
    if isinstance(size, str) and re.fullmatch(r"[0-9]+", size):
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BadRequest(f"Invalid input received: Volume size '{volume.get('size')}' must be an "
                         "integer and greater than 0")
    for key in ("name", "description"):
        value = volume.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise invalid(key, value, f"{value!r} is not a string of at most 255 characters")
    volume_type = volume.get("volume_type")
    if volume_type not in (None, VOLUME_TYPE):
        raise NotFound(f"Volume type with name {volume_type} could not be found.")
    zone = volume.get("availability_zone")
    if zone not in (None, "nova"):
        raise BadRequest(f"Invalid input received: Availability zone '{zone}' is invalid.")
    if volume.get("multiattach"):
        raise BadRequest("The lab cloud does not emulate multiattach volumes.")
    metadata = volume.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid("metadata", metadata, f"{metadata!r} is not of type 'object'")
    for key, value in metadata.items():
        if not METADATA_KEY.match(key):
            raise invalid("metadata", metadata,
                          f"Additional properties are not allowed ({key!r} was unexpected)")
        if not isinstance(value, str) or len(value) > 255:
            raise invalid(key, value, f"{value!r} is not a string of at most 255 characters")
    return {"size": size, "name": volume.get("name"), "description": volume.get("description"),
            "metadata": metadata}


def _links(volume_id: str) -> list[dict]:
    project_id = g.token.project_id
    host = rest.host_url()
    return [{"rel": "self", "href": f"{host}/volume/v3/{project_id}/volumes/{volume_id}"},
            {"rel": "bookmark", "href": f"{host}/volume/{project_id}/volumes/{volume_id}"}]
