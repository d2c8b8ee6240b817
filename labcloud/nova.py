"""Nova compute v2.1 (``/compute``): servers, flavors and os-volume_attachments, with
microversions 2.1-2.104 (spec §2). Request checks and their messages follow Nova's."""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import uuid

from flask import Blueprint, g, jsonify, request

from labcloud import rest
from labcloud.config import FLAVORS, Flavor
from labcloud.errors import BadRequest, NotFound
from labcloud.rest import invalid, required

bp = Blueprint("nova", __name__, url_prefix="/compute")

LOWEST, HIGHEST = (2, 1), (2, 104)
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
PUBLIC = ("nova.versions", "nova.version")  # no token needed
STATUSES = ("ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD",
            "PAUSED", "REBOOT", "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE", "SHELVED",
            "SHELVED_OFFLOADED", "SHUTOFF", "SOFT_DELETED", "SUSPENDED", "UNKNOWN",
            "VERIFY_RESIZE")
METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
DEVICE = r"(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$"
BASE64 = re.compile(r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
SERVER_KEYS = {  # what the create schema accepts -> the microversion that added it
    "name": LOWEST, "imageRef": LOWEST, "flavorRef": LOWEST, "adminPass": LOWEST,
    "metadata": LOWEST, "networks": LOWEST, "OS-DCF:diskConfig": LOWEST,
    "accessIPv4": LOWEST, "accessIPv6": LOWEST, "key_name": LOWEST,
    "availability_zone": LOWEST, "config_drive": LOWEST, "min_count": LOWEST,
    "max_count": LOWEST, "return_reservation_id": LOWEST, "security_groups": LOWEST,
    "user_data": LOWEST, "block_device_mapping_v2": LOWEST, "description": (2, 19),
    "tags": (2, 52), "hostname": (2, 90),
}


@bp.before_request
def _before() -> None:
    if request.endpoint not in PUBLIC:
        rest.authenticate()
    g.nova_version = rest.api_version("compute", LEGACY_HEADER, LOWEST, HIGHEST)


@bp.after_request
def _after(resp):
    resp.headers["X-Compute-Request-Id"] = g.request_id
    version = g.get("nova_version")
    if version is not None:  # not on keystonemiddleware's 401: it answers before Nova
        resp.headers[LEGACY_HEADER] = rest.vstr(version)
        resp.headers["OpenStack-API-Version"] = f"compute {rest.vstr(version)}"
        resp.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    return resp


def _at_least(version: tuple[int, int]) -> bool:
    return g.nova_version >= version


# -- versions and flavors -----------------------------------------------------------------
def version_doc() -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": rest.vstr(HIGHEST),
            "min_version": rest.vstr(LOWEST), "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{rest.host_url()}/compute/v2.1/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


@bp.get("/")
def versions():
    return jsonify({"versions": [version_doc()]})


@bp.get("/v2.1")
@bp.get("/v2.1/")
def version():
    return jsonify({"version": version_doc()})


@bp.get("/v2.1/flavors")
def flavors():
    return jsonify({"flavors": [{"id": f.id, "name": f.name, "links": _links("flavors", f.id)}
                                for f in FLAVORS.values()]})


@bp.get("/v2.1/flavors/detail")
def flavors_detail():
    return jsonify({"flavors": [_flavor_detail(f) for f in FLAVORS.values()]})


@bp.get("/v2.1/flavors/<flavor_id>")
def flavor(flavor_id: str):
    if flavor_id not in FLAVORS:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return jsonify({"flavor": _flavor_detail(FLAVORS[flavor_id])})


def _flavor_detail(f: Flavor) -> dict:
    d = {"id": f.id, "name": f.name, "ram": f.ram, "vcpus": f.vcpus, "disk": f.disk,
         "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
         "swap": 0 if _at_least((2, 75)) else "", "rxtx_factor": 1.0,
         "os-flavor-access:is_public": True, "links": _links("flavors", f.id)}
    if _at_least((2, 55)):
        d["description"] = None
    if _at_least((2, 61)):
        d["extra_specs"] = {}
    return d


# -- servers ------------------------------------------------------------------------------
@bp.post("/v2.1/servers")
def create_server():
    args = _server_request(rest.json_body())
    admin_pass = args.pop("admin_pass") or secrets.token_urlsafe(9)
    s = rest.cloud().create_server(g.token, fail=request.headers.get("X-Lab-Fail"), **args)
    links = _links("servers", s["id"])
    resp = jsonify({"server": {"id": s["id"], "links": links, "OS-DCF:diskConfig": "AUTO",
                               "security_groups": [{"name": n} for n in s["security_groups"]],
                               "adminPass": admin_pass}})
    resp.status_code = 202
    resp.headers["Location"] = links[0]["href"]
    return resp


@bp.get("/v2.1/servers")
def list_servers():
    found, links = _servers_page()
    body: dict = {"servers": [{"id": s["id"], "name": s["name"],
                               "links": _links("servers", s["id"])} for s in found]}
    if links:
        body["servers_links"] = links
    return jsonify(body)


@bp.get("/v2.1/servers/detail")
def list_servers_detail():
    found, links = _servers_page()
    body: dict = {"servers": [server_view(s) for s in found]}
    if links:
        body["servers_links"] = links
    return jsonify(body)


@bp.get("/v2.1/servers/<server_id>")
def show_server(server_id: str):
    return jsonify({"server": server_view(rest.cloud().server(g.token, server_id))})


@bp.delete("/v2.1/servers/<server_id>")
def delete_server(server_id: str):
    rest.cloud().delete_server(g.token, server_id)
    return "", 204


def _servers_page() -> tuple[list[dict], list[dict]]:
    """The servers filtered by ``name`` (a regex) and ``status``, then paged."""
    found = rest.cloud().servers(g.token)
    name = request.args.get("name")
    if name is not None:
        try:
            pattern = re.compile(name)
        except re.error as e:
            raise BadRequest(f"Invalid regular expression {name!r} for name: {e}") from None
        found = [s for s in found if pattern.search(s["name"])]
    statuses = [s.upper() for s in request.args.getlist("status")]
    if statuses:
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown and _at_least((2, 38)):
            raise BadRequest(f"Invalid status value: {unknown[0]}")
        found = [s for s in found if s["status"] in statuses]
    return rest.page(found, lambda marker: BadRequest(f"marker [{marker}] not found"))


def server_view(s: dict) -> dict:
    """A server as ``GET /servers/{id}`` shows it at the request's microversion."""
    host = rest.host_url()
    flavor = FLAVORS[s["flavor_id"]]
    addresses: dict[str, list] = {}
    for port in s["addresses"]:
        addresses.setdefault(port["network"], []).append(
            {"addr": port["addr"], "version": 4, "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": port["mac"]})
    d = {
        "id": s["id"], "name": s["name"], "status": s["status"],
        "tenant_id": s["project_id"], "user_id": s["user_id"], "metadata": s["metadata"],
        "hostId": "" if s["status"] == "BUILD" else hashlib.sha224(
            (s["project_id"] + "lab").encode()).hexdigest(),
        "image": {"id": s["image_id"], "links": [
            {"rel": "bookmark", "href": f"{host}/compute/images/{s['image_id']}"}]},
        "flavor": {"id": flavor.id, "links": [
            {"rel": "bookmark", "href": f"{host}/compute/flavors/{flavor.id}"}]},
        "created": rest.nova_time(s["created"]), "updated": rest.nova_time(s["updated"]),
        "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
        "links": _links("servers", s["id"]), "OS-DCF:diskConfig": "AUTO", "progress": 0,
        "OS-EXT-AZ:availability_zone": s["availability_zone"] or "nova", "config_drive": "",
        "key_name": s["key_name"], "OS-SRV-USG:launched_at": rest.cinder_time(s["launched_at"]),
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": n} for n in s["security_groups"]],
        "OS-EXT-STS:task_state": s["task_state"], "OS-EXT-STS:vm_state": s["vm_state"],
        "OS-EXT-STS:power_state": s["power_state"],
        "os-extended-volumes:volumes_attached": [
            {"id": a["volume_id"], "delete_on_termination": a["delete_on_termination"]}
            if _at_least((2, 3)) else {"id": a["volume_id"]} for a in s["attachments"]],
    }
    if s["fault"] is not None:
        d["fault"] = {**s["fault"], "created": rest.nova_time(s["fault"]["created"])}
    if _at_least((2, 9)):
        d["locked"] = False
    if _at_least((2, 19)):
        d["description"] = s["description"]
    if _at_least((2, 26)):
        d["tags"] = []
    if _at_least((2, 47)):
        d["flavor"] = {"original_name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram,
                       "disk": flavor.disk, "ephemeral": 0, "swap": 0, "extra_specs": {}}
    if _at_least((2, 73)):
        d["locked_reason"] = None
    return d


def _server_request(body: object) -> dict:
    """The keyword arguments of ``Cloud.create_server`` from a checked request body."""
    server = required(body, "server")
    required(server, "name", "server")  # also: 400 when not an object
    extra = sorted(k for k in server if k not in SERVER_KEYS or not _at_least(SERVER_KEYS[k]))
    if extra:
        listed = ", ".join(repr(k) for k in extra)
        raise invalid("server", server, f"Additional properties are not allowed ({listed} "
                      f"{'was' if len(extra) == 1 else 'were'} unexpected)")
    required(server, "flavorRef", "server")
    if _at_least((2, 37)):
        required(server, "networks", "server")
    name = server["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or name != name.strip():
        raise invalid("name", name, f"{name!r} is not a 'name'")
    flavor_ref = server["flavorRef"]
    if isinstance(flavor_ref, bool) or not isinstance(flavor_ref, str | int) or flavor_ref == "":
        raise invalid("flavorRef", flavor_ref, f"{flavor_ref!r} is not of type 'string', 'integer'")
    if server.get("block_device_mapping_v2"):
        raise BadRequest("The lab cloud does not emulate boot from volume "
                         "(block_device_mapping_v2): give imageRef.")
    if not server.get("imageRef"):
        raise BadRequest("Missing imageRef attribute")
    for key in ("min_count", "max_count"):
        if server.get(key, 1) != 1:
            raise BadRequest(f"The lab cloud creates one server per request ({key} must be 1).")
    return {"name": name, "image_ref": server["imageRef"], "flavor_ref": flavor_ref,
            "networks": _networks(server.get("networks", "auto")),
            "metadata": _metadata(server.get("metadata", {})),
            "user_data": _user_data(server.get("user_data")),
            "key_name": server.get("key_name"),
            "availability_zone": server.get("availability_zone"),
            "security_groups": _security_groups(server.get("security_groups")),
            "description": server.get("description"), "admin_pass": server.get("adminPass")}


def _networks(networks: object) -> object:
    if networks in ("auto", "none") and _at_least((2, 37)):
        return networks
    if not isinstance(networks, list):
        why = ("is not valid under any of the given schemas" if _at_least((2, 37))
               else "is not of type 'array'")
        raise invalid("networks", networks, f"{networks!r} {why}")
    for net in networks:
        if not isinstance(net, dict):
            raise invalid("networks", net, f"{net!r} is not of type 'object'")
        extra = sorted(set(net) - {"uuid", "port", "fixed_ip", "tag"})
        if extra:
            raise invalid("networks", net, f"Additional properties are not allowed "
                          f"({', '.join(map(repr, extra))} was unexpected)")
        if "uuid" in net and not _is_uuid(net["uuid"]):
            raise invalid("uuid", net["uuid"], f"{net['uuid']!r} is not a 'uuid'")
        if "fixed_ip" in net and not _is_ipv4(net["fixed_ip"]):
            raise invalid("fixed_ip", net["fixed_ip"], f"{net['fixed_ip']!r} is not a 'ipv4'")
    return networks


def _metadata(metadata: object) -> dict:
    if not isinstance(metadata, dict):
        raise invalid("metadata", metadata, f"{metadata!r} is not of type 'object'")
    for key, value in metadata.items():
        if not METADATA_KEY.match(key):
            raise invalid("metadata", metadata,
                          f"Additional properties are not allowed ({key!r} was unexpected)")
        if not isinstance(value, str):
            raise invalid(key, value, f"{value!r} is not of type 'string'")
        if len(value) > 255:
            raise invalid(key, value, f"{value!r} is too long")
    return metadata


def _user_data(user_data: object) -> str | None:
    if user_data is None:
        return None
    if not isinstance(user_data, str):
        raise invalid("user_data", user_data, f"{user_data!r} is not of type 'string'")
    if len(user_data) > 65535:
        raise invalid("user_data", "...", f"'{user_data[:20]}...' is too long")
    data = "".join(user_data.split())
    if not BASE64.match(data):
        raise BadRequest("User data needs to be valid base 64.")
    return user_data


def _security_groups(groups: object) -> list[str] | None:
    if groups is None:
        return None
    if not isinstance(groups, list) or not all(
            isinstance(x, dict) and isinstance(x.get("name"), str) for x in groups):
        raise invalid("security_groups", groups, f"{groups!r} is not valid: give "
                      "[{'name': ...}]")
    return [x["name"] for x in groups]


# -- volume attachments -------------------------------------------------------------------
@bp.get("/v2.1/servers/<server_id>/os-volume_attachments")
def list_attachments(server_id: str):
    found = rest.cloud().attachments(g.token, server_id)
    return jsonify({"volumeAttachments": [attachment_view(a) for a in found]})


@bp.get("/v2.1/servers/<server_id>/os-volume_attachments/<volume_id>")
def show_attachment(server_id: str, volume_id: str):
    a = rest.cloud().attachment(g.token, server_id, volume_id)
    return jsonify({"volumeAttachment": attachment_view(a)})


@bp.post("/v2.1/servers/<server_id>/os-volume_attachments")
def attach(server_id: str):
    att = required(rest.json_body(), "volumeAttachment")
    volume_id = required(att, "volumeId", "volumeAttachment")
    allowed = {"volumeId", "device"} | ({"tag"} if _at_least((2, 49)) else set()) | (
        {"delete_on_termination"} if _at_least((2, 79)) else set())
    extra = sorted(set(att) - allowed)
    if extra:
        raise invalid("volumeAttachment", att, f"Additional properties are not allowed "
                      f"({', '.join(map(repr, extra))} was unexpected)")
    if not _is_uuid(volume_id):
        raise invalid("volumeId", volume_id, f"{volume_id!r} is not a 'uuid'")
    device = att.get("device")
    if device is not None and (not isinstance(device, str) or not re.match(DEVICE, device)):
        raise invalid("device", device, f"{device!r} does not match '{DEVICE}'")
    tag = att.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > 60 or "/" in tag
                            or "," in tag):
        raise invalid("tag", tag, f"{tag!r} is not a valid tag (at most 60 characters, "
                      "no '/' or ',')")
    dot = att.get("delete_on_termination", False)
    if not isinstance(dot, bool):
        raise invalid("delete_on_termination", dot, f"{dot!r} is not of type 'boolean'")
    a = rest.cloud().attach_volume(g.token, server_id, volume_id, device=device, tag=tag,
                                   delete_on_termination=dot,
                                   fail=request.headers.get("X-Lab-Fail"))
    if _at_least((2, 101)):
        return "", 202
    return jsonify({"volumeAttachment": attachment_view(a, created=True)})


@bp.delete("/v2.1/servers/<server_id>/os-volume_attachments/<volume_id>")
def detach(server_id: str, volume_id: str):
    rest.cloud().detach_volume(g.token, server_id, volume_id)
    return "", 202


def attachment_view(a: dict, created: bool = False) -> dict:
    """An attachment at the request's microversion: from 2.89 GETs show ``attachment_id``
    and ``bdm_uuid`` instead of ``id`` (the create response keeps ``id``)."""
    d = {"serverId": a["server_id"], "volumeId": a["volume_id"], "device": a["device"]}
    if created or not _at_least((2, 89)):
        d["id"] = a["volume_id"]
    if _at_least((2, 70)):
        d["tag"] = a["tag"]
    if _at_least((2, 79)):
        d["delete_on_termination"] = a["delete_on_termination"]
    if _at_least((2, 89)) and not created:
        d.update(attachment_id=a["id"], bdm_uuid=a["bdm_uuid"])
    return d


def _links(kind: str, item_id: str) -> list[dict]:
    host = rest.host_url()
    return [{"rel": "self", "href": f"{host}/compute/v2.1/{kind}/{item_id}"},
            {"rel": "bookmark", "href": f"{host}/compute/{kind}/{item_id}"}]


def _is_uuid(value: object) -> bool:
    return _parses(uuid.UUID, value)


def _is_ipv4(value: object) -> bool:
    return _parses(ipaddress.IPv4Address, value)


def _parses(parse, value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse(value)
    except ValueError:
        return False
    return True
