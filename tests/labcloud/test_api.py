"""The lab cloud's OpenStack API over real HTTP: Keystone tokens, Nova servers and
attachments, Cinder volumes, their errors, microversions, failure injection and /lab."""
from __future__ import annotations

import re
import time
import types

import pytest
import requests

from labcloud import CloudConfig
from labcloud.config import CIRROS_ID, NETWORK_ID
from labcloud.model import NO_VALID_HOST

from .helpers import UUID, Client, password_auth, running, settle

NOVA_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
CINDER_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$"
KEYSTONE_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
NEW_UUID = "3e2b1f0a-9c8d-4e7f-a6b5-c4d3e2f1a0b9"


def fault(resp, name: str, code: int) -> str:
    """The message of a ``{name: {code, message}}`` error body."""
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert list(body) == [name] and body[name]["code"] == code, body
    return body[name]["message"]


# -- Keystone -----------------------------------------------------------------------------
def test_token_is_issued_in_the_subject_token_header_with_a_catalog(lab, client):
    _, server = lab
    resp = requests.post(f"{server.auth_url}/auth/tokens", json=password_auth())
    assert resp.status_code == 201
    token_id = resp.headers["X-Subject-Token"]
    assert token_id not in resp.text
    assert resp.headers["Vary"] == "X-Auth-Token"
    assert re.match(f"^req-{UUID}$", resp.headers["X-Openstack-Request-Id"])
    token = resp.json()["token"]
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == "admin"
    assert token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["project"]["name"] == "admin" and token["roles"][0]["name"] == "admin"
    assert re.match(KEYSTONE_TIME, token["expires_at"])
    catalog = {s["type"]: s for s in token["catalog"]}
    assert {"compute", "block-storage", "volumev3"} <= set(catalog)
    for kind in ("compute", "block-storage", "volumev3"):
        endpoints = catalog[kind]["endpoints"]
        assert sorted(e["interface"] for e in endpoints) == ["admin", "internal", "public"]
        assert all(e["region_id"] == "RegionOne" for e in endpoints)
    assert catalog["compute"]["endpoints"][0]["url"] == f"{server.url}/compute/v2.1"
    project = token["project"]["id"]
    assert catalog["volumev3"]["endpoints"][0]["url"] == f"{server.url}/volume/v3/{project}"
    # the token works against the endpoints the catalog gave
    resp = requests.get(f"{server.url}/compute/v2.1/servers",
                        headers={"X-Auth-Token": token_id})
    assert resp.status_code == 200 and resp.json() == {"servers": []}


def test_token_lives_3600_seconds(lab):
    resp = requests.post(f"{lab[1].auth_url}/auth/tokens", json=password_auth())
    token = resp.json()["token"]
    parse = time.strptime
    issued = time.mktime(parse(token["issued_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    expires = time.mktime(parse(token["expires_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert expires - issued == pytest.approx(3600, abs=1)


def test_token_by_user_id_and_project_id_and_without_catalog(lab, client):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": lab[0].identity.check(client.token).user_id, "password": "devstacker"}}},
        "scope": {"project": {"id": client.project_id}}}}
    resp = requests.post(f"{lab[1].auth_url}/auth/tokens?nocatalog", json=body)
    assert resp.status_code == 201, resp.text
    assert "catalog" not in resp.json()["token"]
    assert resp.json()["token"]["project"]["id"] == client.project_id


@pytest.mark.parametrize("change", [
    lambda b: b["auth"]["identity"]["password"]["user"].update(password="wrong"),
    lambda b: b["auth"]["identity"]["password"]["user"].update(name="nobody"),
    lambda b: b["auth"]["scope"]["project"].update(name="other"),
    lambda b: b["auth"]["identity"]["password"]["user"].update(domain={"name": "Other"}),
], ids=["password", "user", "project", "domain"])
def test_bad_credentials_are_401_in_keystone_shape(lab, change):
    body = password_auth()
    change(body)
    resp = requests.post(f"{lab[1].auth_url}/auth/tokens", json=body)
    assert resp.status_code == 401
    assert resp.json() == {"error": {"code": 401, "title": "Unauthorized", "message":
                                     "The request you have made requires authentication."}}
    assert resp.headers["WWW-Authenticate"] == f'Keystone uri="{lab[1].url}/identity"'
    assert "X-Subject-Token" not in resp.headers


def test_malformed_auth_requests_are_400(lab):
    url = f"{lab[1].auth_url}/auth/tokens"
    resp = requests.post(url, json={"auth": {}})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("Expecting to find identity in auth.")
    resp = requests.post(url, data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["title"] == "Bad Request"


@pytest.mark.parametrize("token", [None, "bogus"])
def test_nova_and_cinder_without_a_valid_token_are_401(lab, client, token):
    headers = {"X-Auth-Token": token} if token else {}
    for url in (f"{client.compute}/servers/detail", f"{client.volume}/volumes/detail"):
        resp = requests.get(url, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == 401
        assert resp.headers["WWW-Authenticate"] == f'Keystone uri="{lab[1].url}/identity"'
        assert resp.headers["X-Openstack-Request-Id"].startswith("req-")


def test_expired_token_is_401(monkeypatch):
    from labcloud import identity

    clock = types.SimpleNamespace(time=time.time)  # the identity service's clock, stepped
    monkeypatch.setattr(identity, "time", clock)
    with running(CloudConfig(time_scale=0, token_ttl=60)) as (_, server):
        client = Client(server)
        assert client.nova("GET", "/servers").status_code == 200
        later = time.time() + 61
        clock.time = lambda: later
        resp = client.nova("GET", "/servers")
        assert resp.status_code == 401 and resp.json()["error"]["title"] == "Unauthorized"
        client.close()


def test_token_validation_and_revocation(lab, client):
    url = f"{lab[1].auth_url}/auth/tokens"
    headers = {"X-Auth-Token": client.token, "X-Subject-Token": client.token}
    resp = requests.get(url, headers=headers)
    assert resp.status_code == 200 and resp.json()["token"]["user"]["name"] == "admin"
    assert requests.delete(url, headers=headers).status_code == 204
    assert client.nova("GET", "/servers").status_code == 401


def test_version_documents_need_no_token(lab):
    url = lab[1].url
    assert requests.get(f"{url}/identity/v3").json()["version"]["id"] == "v3.14"
    version = requests.get(f"{url}/compute/v2.1/").json()["version"]
    assert (version["version"], version["min_version"]) == ("2.104", "2.1")
    assert requests.get(f"{url}/volume/v3/").json()["versions"][0]["version"] == "3.71"


# -- Nova: servers ------------------------------------------------------------------------
def test_server_builds_to_active_with_the_fields_of_the_state_table(cloud, client):
    resp = client.nova("POST", "/servers", json={"server": {
        "name": "web-1", "imageRef": CIRROS_ID, "flavorRef": "1", "networks": "auto",
        "metadata": {"role": "web"}, "user_data": "IyEvYmluL3NoCmVjaG8gaGkK"}})
    assert resp.status_code == 202
    created = resp.json()["server"]
    assert {"id", "links", "adminPass"} <= set(created)
    assert resp.headers["Location"] == created["links"][0]["href"]
    assert resp.headers["Location"] == f"{client.compute}/servers/{created['id']}"
    settle(cloud)
    s = client.server(created["id"])
    assert (s["status"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:task_state"],
            s["OS-EXT-STS:power_state"]) == ("ACTIVE", "active", None, 1)
    [port] = s["addresses"]["private"]
    assert re.match(r"^10\.0\.0\.\d+$", port["addr"]) and port["version"] == 4
    assert "fault" not in s
    assert s["metadata"] == {"role": "web"} and s["name"] == "web-1"
    assert re.match(NOVA_TIME, s["created"]) and re.match(NOVA_TIME, s["updated"])
    assert s["flavor"]["original_name"] == "m1.tiny"  # 2.47+
    assert s["image"]["id"] == CIRROS_ID
    assert s["tenant_id"] == client.project_id


def test_a_new_server_is_building_and_scheduling(slow):
    _, client = slow
    s = client.server(client.create_server())
    assert (s["status"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:task_state"],
            s["OS-EXT-STS:power_state"], s["addresses"]) == ("BUILD", "building", "scheduling",
                                                             0, {})
    assert "fault" not in s


def test_networks_none_gives_no_addresses(cloud, client):
    server_id = client.create_server(networks="none")
    settle(cloud)
    s = client.server(server_id)
    assert s["status"] == "ACTIVE" and s["addresses"] == {}


def test_a_fixed_ip_is_given_once(cloud, client):
    server_id = client.create_server(networks=[{"uuid": NETWORK_ID, "fixed_ip": "10.0.0.50"}])
    settle(cloud)
    assert client.server(server_id)["addresses"]["private"][0]["addr"] == "10.0.0.50"
    resp = client.nova("POST", "/servers", json={"server": base_server(
        networks=[{"fixed_ip": "10.0.0.50"}])})
    assert fault(resp, "badRequest", 400) == "Fixed IP address 10.0.0.50 is already in use."


def test_each_server_gets_its_own_address(cloud, client):
    ids = [client.create_server(f"vm-{i}") for i in range(3)]
    settle(cloud)
    addrs = {client.server(i)["addresses"]["private"][0]["addr"] for i in ids}
    assert len(addrs) == 3


@pytest.mark.parametrize("how", ["header", "metadata", "rule"])
def test_build_fault_makes_the_server_go_error_with_a_fault(cloud, client, how):
    if how == "rule":
        cloud.add_fault("build", match="^doomed")
    server_id = client.create_server(
        "doomed-1", headers={"X-Lab-Fail": "build"} if how == "header" else None,
        metadata={"lab:fail": "build"} if how == "metadata" else {})
    settle(cloud)
    s = client.server(server_id)
    assert (s["status"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:task_state"],
            s["OS-EXT-STS:power_state"], s["addresses"]) == ("ERROR", "error", None, 0, {})
    assert s["fault"]["code"] == 500 and s["fault"]["message"] == NO_VALID_HOST
    assert re.match(NOVA_TIME, s["fault"]["created"])
    assert client.nova("DELETE", f"/servers/{server_id}").status_code == 204
    settle(cloud)
    assert client.nova("GET", f"/servers/{server_id}").status_code == 404


def test_a_fault_rule_is_used_up_after_its_times(cloud, client):
    cloud.add_fault("build", match="", times=1)
    first, second = client.create_server("a"), client.create_server("b")
    settle(cloud)
    assert client.server(first)["status"] == "ERROR"
    assert client.server(second)["status"] == "ACTIVE"
    assert cloud.faults() == []


def test_deleted_server_goes_away(cloud, client):
    server_id = client.create_server()
    settle(cloud)
    resp = client.nova("DELETE", f"/servers/{server_id}")
    assert resp.status_code == 204 and resp.content == b""
    settle(cloud)
    message = fault(client.nova("GET", f"/servers/{server_id}"), "itemNotFound", 404)
    assert message == f"Instance {server_id} could not be found."
    fault(client.nova("DELETE", f"/servers/{server_id}"), "itemNotFound", 404)


def test_a_deleting_server_shows_task_state_deleting(slow):
    cloud, client = slow
    server_id = client.create_server()
    assert client.nova("DELETE", f"/servers/{server_id}").status_code == 204
    s = client.server(server_id)
    assert (s["status"], s["OS-EXT-STS:task_state"]) == ("BUILD", "deleting")
    assert client.nova("DELETE", f"/servers/{server_id}").status_code == 204  # again: fine


def test_server_lists_filter_by_name_regex_and_status_and_page(cloud, client):
    ids = {name: client.create_server(name) for name in ("web-1", "web-10", "db-1")}
    client.create_server("broken", headers={"X-Lab-Fail": "build"})
    settle(cloud)

    def names(path, version=None):
        resp = client.nova("GET", path, version=version)
        assert resp.status_code == 200, resp.text
        return [s["name"] for s in resp.json()["servers"]]

    assert names("/servers/detail") == ["broken", "db-1", "web-10", "web-1"]  # newest first
    assert names("/servers/detail?name=web-1") == ["web-10", "web-1"]  # a regex: bob ~ bobb
    assert names("/servers/detail?name=^web-1$") == ["web-1"]
    assert names("/servers/detail?status=ERROR") == ["broken"]
    assert names("/servers/detail?status=active") == ["db-1", "web-10", "web-1"]
    assert names("/servers/detail?status=BOGUS", version="2.37") == []
    fault(client.nova("GET", "/servers/detail?status=BOGUS"), "badRequest", 400)  # 2.38+
    brief = client.nova("GET", "/servers?name=^db").json()["servers"]
    assert brief == [{"id": ids["db-1"], "name": "db-1", "links": brief[0]["links"]}]

    page = client.nova("GET", "/servers/detail?limit=3").json()
    assert [s["name"] for s in page["servers"]] == ["broken", "db-1", "web-10"]
    [link] = page["servers_links"]
    assert link["rel"] == "next" and f"marker={ids['web-10']}" in link["href"]
    rest = client.http.get(link["href"], headers={"X-Auth-Token": client.token}).json()
    assert [s["name"] for s in rest["servers"]] == ["web-1"] and "servers_links" not in rest
    message = fault(client.nova("GET", f"/servers/detail?marker={NEW_UUID}"), "badRequest", 400)
    assert message == f"marker [{NEW_UUID}] not found"
    fault(client.nova("GET", "/servers/detail?limit=x"), "badRequest", 400)


def base_server(**changes) -> dict:
    server = {"name": "vm", "imageRef": CIRROS_ID, "flavorRef": "1", "networks": "auto"}
    server.update(changes)
    return {key: value for key, value in server.items() if value is not None}


@pytest.mark.parametrize("body, version, message", [
    ({}, "2.79", "'server' is a required property"),
    ({"server": base_server(flavorRef=None)}, "2.79",
     "Invalid input for field/attribute server. Value: "),
    ({"server": base_server(networks=None)}, "2.37", "'networks' is a required property"),
    ({"server": base_server(networks="auto")}, "2.36", "'auto' is not of type 'array'"),
    ({"server": base_server(user_data="not base64!")}, "2.79",
     "User data needs to be valid base 64."),
    ({"server": base_server(imageRef=NEW_UUID)}, "2.79", "Can not find requested image"),
    ({"server": base_server(flavorRef="99")}, "2.79", "Invalid flavorRef provided."),
    ({"server": base_server(imageRef=None)}, "2.79", "Missing imageRef attribute"),
    ({"server": base_server(colour="red")}, "2.79",
     "Additional properties are not allowed ('colour' was unexpected)"),
    ({"server": base_server(metadata={"k": 1})}, "2.79", "1 is not of type 'string'"),
    ({"server": base_server(metadata={"k": "v" * 256})}, "2.79", "is too long"),
    ({"server": base_server(networks=[{"uuid": NEW_UUID}])}, "2.79",
     f"Network {NEW_UUID} could not be found."),
    ({"server": base_server(description="d")}, "2.18", "'description' was unexpected"),
    ({"server": base_server(networks=[{"fixed_ip": "ten"}])}, "2.79", "'ten' is not a 'ipv4'"),
    ({"server": base_server(networks=[{"fixed_ip": "192.168.1.5"}])}, "2.79",
     "IP address 192.168.1.5 is not a valid IP for the specified subnet"),
    ({"server": base_server(networks=[{"port": NEW_UUID}])}, "2.79",
     f"Port {NEW_UUID} could not be found."),
], ids=["no-server", "no-flavorRef", "no-networks", "auto-before-2.37", "user_data",
        "unknown-image", "unknown-flavor", "no-imageRef", "extra", "metadata-type",
        "metadata-length", "unknown-network", "description-before-2.19", "fixed-ip-format",
        "fixed-ip-subnet", "unknown-port"])
def test_invalid_server_requests_are_400(cloud, client, body, version, message):
    resp = client.nova("POST", "/servers", json=body, version=version)
    assert message in fault(resp, "badRequest", 400)
    assert cloud.state()["servers"] == []


def test_flavorRef_missing_names_the_field(client):
    resp = client.nova("POST", "/servers", json={"server": base_server(flavorRef=None)})
    assert fault(resp, "badRequest", 400).endswith("'flavorRef' is a required property")


def test_flavors_are_listed(client):
    flavors = client.nova("GET", "/flavors").json()["flavors"]
    assert [(f["id"], f["name"]) for f in flavors] == [
        ("1", "m1.tiny"), ("2", "m1.small"), ("3", "m1.medium"), ("4", "m1.large")]
    detail = client.nova("GET", "/flavors/detail").json()["flavors"][0]
    assert (detail["ram"], detail["vcpus"], detail["disk"]) == (512, 1, 1)
    assert client.nova("GET", "/flavors/2").json()["flavor"]["name"] == "m1.small"
    fault(client.nova("GET", "/flavors/9"), "itemNotFound", 404)


def test_http_level_errors_keep_the_fault_shape(lab, client):
    assert fault(client.nova("GET", "/nothing"), "itemNotFound", 404)
    assert fault(client.nova("PUT", "/servers"), "badMethod", 405)
    resp = client.nova("POST", "/servers", data="{oops",
                       headers={"Content-Type": "application/json"})
    assert fault(resp, "badRequest", 400) == "Malformed request body"
    resp = client.nova("POST", "/servers", data="x", headers={"Content-Type": "text/plain"})
    fault(resp, "badMediaType", 415)
    resp = requests.get(f"{lab[1].url}/identity/v3/nothing")
    assert resp.status_code == 404 and resp.json()["error"]["title"] == "Not Found"
    assert resp.headers["X-Openstack-Request-Id"].startswith("req-")


# -- Nova: microversions ------------------------------------------------------------------
def test_microversion_headers_are_echoed(client):
    resp = client.nova("GET", "/servers", version="2.79")
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.79"
    assert resp.headers["OpenStack-API-Version"] == "compute 2.79"
    assert resp.headers["Vary"] == "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    assert resp.headers["X-Compute-Request-Id"] == resp.headers["X-Openstack-Request-Id"]
    resp = client.http.get(f"{client.compute}/servers", headers={"X-Auth-Token": client.token})
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.1"  # no header: 2.1
    resp = client.http.get(f"{client.compute}/servers", headers={
        "X-Auth-Token": client.token, "X-OpenStack-Nova-API-Version": "2.60",
        "OpenStack-API-Version": "compute 2.70"})
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.70"  # the new header wins
    resp = client.nova("GET", "/servers", version="latest")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.104"


def test_out_of_range_microversion_is_406_compute_fault(client):
    resp = client.nova("GET", "/servers", version="2.200")
    assert fault(resp, "computeFault", 406) == (
        "Version 2.200 is not supported by the API. Minimum is 2.1 and maximum is 2.104.")
    assert "format" in fault(client.nova("GET", "/servers", version="2.x"), "badRequest", 400)


def test_flavor_of_a_server_before_2_47_is_a_reference(cloud, client):
    server_id = client.create_server()
    flavor = client.nova("GET", f"/servers/{server_id}", version="2.46").json()["server"]["flavor"]
    assert flavor["id"] == "1" and flavor["links"][0]["rel"] == "bookmark"


# -- Cinder: volumes ----------------------------------------------------------------------
def test_volume_is_created_then_available_then_deleted(cloud, client):
    resp = client.cinder("POST", "/volumes", json={"volume": {
        "size": 2, "name": "data-vm1", "description": None, "volume_type": None,
        "metadata": {"run": "r1"}}})
    assert resp.status_code == 202
    v = resp.json()["volume"]
    assert (v["status"], v["size"], v["attachments"], v["bootable"], v["encrypted"],
            v["multiattach"]) == ("creating", 2, [], "false", False, False)
    assert re.match(CINDER_TIME, v["created_at"]) and v["updated_at"] is None
    assert v["links"][0]["href"] == f"{client.volume}/volumes/{v['id']}"
    assert resp.headers["OpenStack-API-Version"] == "volume 3.0"
    settle(cloud)
    got = client.get_volume(v["id"])
    assert got["status"] == "available" and got["metadata"] == {"run": "r1"}
    assert "fault" not in got
    resp = client.cinder("DELETE", f"/volumes/{v['id']}")
    assert resp.status_code == 202 and resp.content == b""
    settle(cloud)
    message = fault(client.cinder("GET", f"/volumes/{v['id']}"), "itemNotFound", 404)
    assert message == f"Volume {v['id']} could not be found."


@pytest.mark.parametrize("how", ["header", "metadata", "rule"])
def test_volume_fault_leaves_it_in_error_without_fault_field(cloud, client, how):
    if how == "rule":
        cloud.add_fault("volume", match="bad")
    volume_id = client.create_volume(
        "bad-disk", headers={"X-Lab-Fail": "volume"} if how == "header" else None,
        metadata={"lab:fail": "volume"} if how == "metadata" else {})
    settle(cloud)
    v = client.get_volume(volume_id)
    assert v["status"] == "error" and "fault" not in v
    server_id = client.create_server()
    settle(cloud)
    message = fault(client.attach(server_id, volume_id), "badRequest", 400)
    assert f"Volume {volume_id} status must be available or downloading to reserve, but the " \
           "current status is error." in message
    assert client.cinder("DELETE", f"/volumes/{volume_id}").status_code == 202


def test_volume_lists_filter_and_page_with_or_without_project_in_the_path(cloud, client):
    a = client.create_volume("a", metadata={"run": "1"})
    b = client.create_volume("b", metadata={"run": "2"})
    settle(cloud)
    names = [v["name"] for v in client.cinder("GET", "/volumes/detail").json()["volumes"]]
    assert names == ["b", "a"]
    assert [v["id"] for v in client.cinder("GET", "/volumes/detail?name=a").json()[
        "volumes"]] == [a]
    found = client.cinder("GET", "/volumes/detail", params={"metadata": "{'run': '2'}"})
    assert [v["id"] for v in found.json()["volumes"]] == [b]
    page = client.cinder("GET", "/volumes?limit=1").json()
    assert [v["id"] for v in page["volumes"]] == [b] and page["volumes_links"]
    assert set(page["volumes"][0]) == {"id", "name", "links"}
    fault(client.cinder("GET", f"/volumes/detail?marker={NEW_UUID}"), "itemNotFound", 404)
    no_project = client.volume.rsplit("/", 1)[0]  # .../volume/v3 (Cinder 3.67+ style)
    resp = client.http.get(f"{no_project}/volumes/{a}", headers={"X-Auth-Token": client.token})
    assert resp.status_code == 200 and resp.json()["volume"]["name"] == "a"
    resp = client.http.get(f"{no_project}/{NEW_UUID.replace('-', '')}/volumes",
                           headers={"X-Auth-Token": client.token})
    assert fault(resp, "badRequest", 400) == "Malformed request url"


@pytest.mark.parametrize("body, code, message", [
    ({}, 400, "'volume' is a required property"),
    ({"volume": {"name": "x"}}, 400, "Volume size 'None' must be an integer and greater than 0"),
    ({"volume": {"size": 0}}, 400, "Volume size '0' must be an integer"),
    ({"volume": {"size": "big"}}, 400, "Volume size 'big' must be an integer"),
    ({"volume": {"size": 1, "volume_type": "gold"}}, 404,
     "Volume type with name gold could not be found."),
    ({"volume": {"size": 1, "metadata": {"k": 5}}}, 400, "5 is not a string"),
])
def test_invalid_volume_requests_are_rejected(cloud, client, body, code, message):
    resp = client.cinder("POST", "/volumes", json=body)
    assert message in fault(resp, "badRequest" if code == 400 else "itemNotFound", code)
    assert cloud.state()["volumes"] == []


def test_cinder_microversion_is_echoed_and_checked(client):
    resp = client.cinder("GET", "/volumes", headers={"OpenStack-API-Version": "volume 3.65"})
    assert resp.headers["OpenStack-API-Version"] == "volume 3.65"
    resp = client.cinder("GET", "/volumes", headers={"OpenStack-API-Version": "volume 3.99"})
    assert "maximum is 3.71" in fault(resp, "computeFault", 406)


# -- Nova: volume attachments -------------------------------------------------------------
def test_attach_and_detach_with_device_names_in_attach_order(cloud, client):
    server_id = client.create_server()
    v1, v2, v3 = (client.create_volume(f"d{i}") for i in (1, 2, 3))
    settle(cloud)
    resp = client.attach(server_id, v1)
    assert resp.status_code == 200
    assert resp.json() == {"volumeAttachment": {
        "serverId": server_id, "volumeId": v1, "device": "/dev/vdb", "id": v1, "tag": None,
        "delete_on_termination": False}}
    settle(cloud)
    volume = client.get_volume(v1)
    assert volume["status"] == "in-use"
    [att] = volume["attachments"]
    assert (att["server_id"], att["volume_id"], att["device"]) == (server_id, v1, "/dev/vdb")
    assert re.match(CINDER_TIME, att["attached_at"])
    assert client.attach(server_id, v2).json()["volumeAttachment"]["device"] == "/dev/vdc"
    settle(cloud)
    listed = client.nova("GET", f"/servers/{server_id}/os-volume_attachments").json()
    assert [a["device"] for a in listed["volumeAttachments"]] == ["/dev/vdb", "/dev/vdc"]
    assert client.server(server_id)["os-extended-volumes:volumes_attached"] == [
        {"id": v1, "delete_on_termination": False}, {"id": v2, "delete_on_termination": False}]
    shown = client.nova("GET", f"/servers/{server_id}/os-volume_attachments/{v1}")
    assert shown.json()["volumeAttachment"]["id"] == v1

    resp = client.nova("DELETE", f"/servers/{server_id}/os-volume_attachments/{v1}")
    assert resp.status_code == 202 and resp.content == b""
    settle(cloud)
    assert client.get_volume(v1)["status"] == "available"
    assert client.get_volume(v1)["attachments"] == []
    resp = client.nova("GET", f"/servers/{server_id}/os-volume_attachments/{v1}")
    assert fault(resp, "itemNotFound", 404) == (
        f"Instance {server_id} is not attached to volume {v1}")
    fault(client.nova("DELETE", f"/servers/{server_id}/os-volume_attachments/{v1}"),
          "itemNotFound", 404)  # a repeated detach
    assert client.attach(server_id, v3).json()["volumeAttachment"]["device"] == "/dev/vdb"


def test_microversions_2_89_and_2_101_change_attachments(cloud, client):
    server_id, volume_id = client.create_server(), client.create_volume()
    settle(cloud)
    resp = client.nova("POST", f"/servers/{server_id}/os-volume_attachments", version="2.101",
                       json={"volumeAttachment": {"volumeId": volume_id}})
    assert resp.status_code == 202 and resp.content == b""
    settle(cloud)
    shown = client.nova("GET", f"/servers/{server_id}/os-volume_attachments/{volume_id}",
                        version="2.89").json()["volumeAttachment"]
    assert "id" not in shown
    assert re.match(UUID, shown["attachment_id"]) and re.match(UUID, shown["bdm_uuid"])
    cinder_att = client.get_volume(volume_id)["attachments"][0]
    assert shown["attachment_id"] == cinder_att["attachment_id"]
    old = client.nova("GET", f"/servers/{server_id}/os-volume_attachments/{volume_id}",
                      version="2.1").json()["volumeAttachment"]
    assert set(old) == {"id", "serverId", "volumeId", "device"}


def test_attach_errors_are_synchronous(cloud, client):
    server_id, other_id = client.create_server("a"), client.create_server("b")
    broken_id = client.create_server("broken", headers={"X-Lab-Fail": "build"})
    used, free = client.create_volume("used"), client.create_volume("free")
    settle(cloud)
    assert client.attach(server_id, used).status_code == 200
    settle(cloud)
    message = fault(client.attach(other_id, used), "badRequest", 400)
    assert message == f"Invalid volume: volume {used} is already attached to instances: " \
                      f"{server_id}"
    message = fault(client.attach(broken_id, free), "conflictingRequest", 409)
    assert message == f"Cannot 'attach_volume' instance {broken_id} while it is in vm_state error"
    message = fault(client.attach(NEW_UUID, free), "itemNotFound", 404)
    assert message == f"Instance {NEW_UUID} could not be found."
    message = fault(client.attach(server_id, NEW_UUID), "itemNotFound", 404)
    assert message == f"Volume {NEW_UUID} could not be found."
    message = fault(client.attach(server_id, free, device="/dev/vdb"), "conflictingRequest", 409)
    assert message == "The supplied device path (/dev/vdb) is in use."
    assert "is not a 'uuid'" in fault(client.attach(server_id, "nope"), "badRequest", 400)
    resp = client.nova("POST", f"/servers/{server_id}/os-volume_attachments", version="2.1",
                       json={"volumeAttachment": {"volumeId": free,
                                                  "delete_on_termination": True}})
    assert "'delete_on_termination' was unexpected" in fault(resp, "badRequest", 400)
    message = fault(client.cinder("DELETE", f"/volumes/{used}"), "badRequest", 400)
    assert message.startswith("Invalid volume: Volume status must be available or error")
    assert client.get_volume(free)["status"] == "available"


def test_attach_to_a_building_server_or_a_creating_volume_is_refused(slow):
    _, client = slow
    building = client.create_server()
    creating = client.create_volume()
    message = fault(client.attach(building, creating), "conflictingRequest", 409)
    assert message == f"Cannot 'attach_volume' instance {building} while it is in " \
                      "vm_state building"
    fault(client.cinder("DELETE", f"/volumes/{creating}"), "badRequest", 400)


@pytest.mark.parametrize("how", ["header", "volume-metadata", "rule"])
def test_attach_fault_returns_the_volume_to_available(cloud, client, how):
    if how == "rule":
        cloud.add_fault("attach", match="^flaky")
    server_id = client.create_server("app")
    volume_id = client.create_volume(
        "flaky", metadata={"lab:fail": "attach"} if how == "volume-metadata" else {})
    settle(cloud)
    resp = client.attach(server_id, volume_id,
                         headers={"X-Lab-Fail": "attach"} if how == "header" else None)
    assert resp.status_code == 200  # the failure shows later, as in real clouds
    settle(cloud)
    assert client.get_volume(volume_id)["status"] == "available"
    assert client.get_volume(volume_id)["attachments"] == []
    assert client.server(server_id)["status"] == "ACTIVE"
    resp = client.nova("GET", f"/servers/{server_id}/os-volume_attachments")
    assert resp.json() == {"volumeAttachments": []}


def test_deleting_a_server_detaches_its_volumes_or_deletes_them(cloud, client):
    server_id = client.create_server()
    keep, drop = client.create_volume("keep"), client.create_volume("drop")
    settle(cloud)
    client.attach(server_id, keep)
    client.attach(server_id, drop, delete_on_termination=True)
    settle(cloud)
    assert client.nova("DELETE", f"/servers/{server_id}").status_code == 204
    settle(cloud)
    assert client.get_volume(keep)["status"] == "available"
    assert client.get_volume(keep)["attachments"] == []
    fault(client.cinder("GET", f"/volumes/{drop}"), "itemNotFound", 404)
    assert [v["name"] for v in cloud.state()["volumes"]] == ["keep"]


# -- quotas -------------------------------------------------------------------------------
def test_quotas_nova_403_and_cinder_413_with_retry_after():
    config = CloudConfig(time_scale=0, quotas={"instances": 1, "volumes": 1, "gigabytes": 5})
    with running(config) as (_, server):
        client = Client(server)
        client.create_server()
        resp = client.nova("POST", "/servers", json={"server": base_server()})
        assert fault(resp, "forbidden", 403) == (
            "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances")
        resp = client.cinder("POST", "/volumes", json={"volume": {"size": 6}})
        assert "Requested 6G, quota is 5G and 0G has been consumed." in fault(
            resp, "overLimit", 413)
        client.create_volume()
        resp = client.cinder("POST", "/volumes", json={"volume": {"size": 1}})
        assert fault(resp, "overLimit", 413) == (
            "VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded for quota "
            "'volumes'.")
        assert resp.headers["Retry-After"] == "0"
        assert resp.json()["overLimit"]["retryAfter"] == "0"
        client.close()


# -- the lab's own API --------------------------------------------------------------------
def test_fault_rules_can_be_added_listed_and_removed(lab, cloud):
    url = f"{lab[1].url}/lab/faults"
    resp = requests.post(url, json={"kind": "attach", "match": "^db-", "times": 0})
    assert resp.status_code == 201 and re.match(UUID, resp.json()["id"])
    rule_id = resp.json()["id"]
    requests.post(url, json={"kind": "agent"})
    listed = requests.get(url).json()["faults"]
    assert [(r["kind"], r["match"], r["times"]) for r in listed] == [
        ("attach", "^db-", 0), ("agent", "", 1)]
    assert requests.delete(f"{url}/{rule_id}").status_code == 204
    assert requests.delete(f"{url}/{rule_id}").status_code == 404
    assert requests.delete(url).status_code == 204
    assert requests.get(url).json() == {"faults": []}
    for bad in ({"kind": "meteor"}, {"kind": "build", "match": "("},
                {"kind": "build", "times": -1}, {}):
        resp = requests.post(url, json=bad)
        assert resp.status_code == 400 and "badRequest" in resp.json(), bad


def test_unknown_fault_kinds_are_refused(client):
    resp = client.nova("POST", "/servers", json={"server": base_server()},
                       headers={"X-Lab-Fail": "meteor"})
    assert "unknown lab fault 'meteor'" in fault(resp, "badRequest", 400)
    resp = client.cinder("POST", "/volumes", json={"volume": {"size": 1}},
                         headers={"X-Lab-Fail": "build"})
    assert "does not apply to a volume" in fault(resp, "badRequest", 400)


def test_lab_state_shows_everything_and_reset_forgets_it(lab, cloud, client):
    server_id = client.create_server("app-1", metadata={"orchestrator-run": "r1"})
    volume_id = client.create_volume("data-1")
    settle(cloud)
    client.attach(server_id, volume_id)
    settle(cloud)
    state = requests.get(f"{lab[1].url}/lab/state").json()
    [s] = state["servers"]
    assert (s["name"], s["status"], s["metadata"]) == ("app-1", "ACTIVE", {"orchestrator-run":
                                                                           "r1"})
    assert [(a["volume_id"], a["device"]) for a in s["attachments"]] == [(volume_id, "/dev/vdb")]
    [v] = state["volumes"]
    assert (v["name"], v["status"]) == ("data-1", "in-use")
    assert v["attachments"][0]["server_id"] == server_id
    assert requests.post(f"{lab[1].url}/lab/reset").status_code == 204
    assert requests.get(f"{lab[1].url}/lab/state").json() == {"servers": [], "volumes": [],
                                                              "faults": []}
