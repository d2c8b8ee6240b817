"""A small OpenStack client for the lab cloud tests (it finds its endpoints in the Keystone
catalog, as a workbook would), and a real lab cloud served on 127.0.0.1."""
from __future__ import annotations

import contextlib
import time

import requests

from labcloud import Cloud, CloudConfig, LabCloudServer
from labcloud.config import CIRROS_ID

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def password_auth(user="admin", password="devstacker", project="admin") -> dict:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}


class Client:
    """Nova and Cinder calls with a token, at one Nova microversion (2.79 unless told)."""

    def __init__(self, server: LabCloudServer, version: str = "2.79"):
        self.lab, self.version = server, version
        self.http = requests.Session()
        resp = self.http.post(f"{server.auth_url}/auth/tokens", json=password_auth())
        assert resp.status_code == 201, resp.text
        self.token = resp.headers["X-Subject-Token"]
        self.catalog = resp.json()["token"]["catalog"]
        self.project_id = resp.json()["token"]["project"]["id"]
        self.compute = self.endpoint("compute")
        self.volume = self.endpoint("block-storage")

    def endpoint(self, kind: str, interface: str = "public") -> str:
        return next(e["url"] for s in self.catalog if s["type"] == kind
                    for e in s["endpoints"] if e["interface"] == interface)

    def nova(self, method: str, path: str, version: str | None = None, headers=None, **kw):
        h = {"X-Auth-Token": self.token,
             "OpenStack-API-Version": f"compute {version or self.version}", **(headers or {})}
        return self.http.request(method, self.compute + path, headers=h, timeout=10, **kw)

    def cinder(self, method: str, path: str, headers=None, **kw):
        h = {"X-Auth-Token": self.token, **(headers or {})}
        return self.http.request(method, self.volume + path, headers=h, timeout=10, **kw)

    def create_server(self, name: str = "vm-1", headers=None, **fields) -> str:
        body = {"name": name, "imageRef": CIRROS_ID, "flavorRef": "1", "networks": "auto",
                **fields}
        resp = self.nova("POST", "/servers", json={"server": body}, headers=headers)
        assert resp.status_code == 202, resp.text
        return resp.json()["server"]["id"]

    def server(self, server_id: str) -> dict:
        resp = self.nova("GET", f"/servers/{server_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["server"]

    def create_volume(self, name: str = "data-1", size: int = 1, headers=None, **fields) -> str:
        resp = self.cinder("POST", "/volumes", headers=headers,
                           json={"volume": {"name": name, "size": size, **fields}})
        assert resp.status_code == 202, resp.text
        return resp.json()["volume"]["id"]

    def get_volume(self, volume_id: str) -> dict:
        resp = self.cinder("GET", f"/volumes/{volume_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["volume"]

    def attach(self, server_id: str, volume_id: str, headers=None, **fields):
        return self.nova("POST", f"/servers/{server_id}/os-volume_attachments", headers=headers,
                         json={"volumeAttachment": {"volumeId": volume_id, **fields}})

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def running(config: CloudConfig | None = None, machines=None):
    """A cloud served on a free port; everything is stopped after."""
    cloud = Cloud(config or CloudConfig(time_scale=0), machines)
    server = LabCloudServer(cloud).start()
    try:
        yield cloud, server
    finally:
        server.stop()
        cloud.close()


def settle(cloud: Cloud) -> None:
    assert cloud.wait_idle(5), "the lab cloud did not settle in 5 s"


def eventually(check, timeout: float = 5.0):
    """Poll ``check`` until it returns something truthy (for states held by a hook)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "condition not reached in time"
            return value
        time.sleep(0.01)
