"""Servers backed by real Salt minions, volumes by files (labcloud.vms.SaltMachines):
the minion starts with the server and its id is in the server's metadata, an attached
volume is at the attachment's device inside the VM (and not on the host), and deleting
the server stops its minion and forgets its key."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent_bridge.lab import SaltLab, import_salt
from labcloud import CloudConfig
from labcloud.vms import SaltMachines, namespaces_work

from .helpers import Client, eventually, running

pytestmark = [pytest.mark.salt, pytest.mark.slow]


@pytest.fixture(scope="module")
def vms():
    with SaltLab(minions=[]) as salt:
        machines = SaltMachines(salt, Path(salt.root) / "vms-root")
        with running(CloudConfig(time_scale=0), machines) as (cloud, server):
            client = Client(server)
            yield salt, machines, cloud, client
            client.close()


def salt_call(salt, minion: str, fun: str, *args, timeout: float = 30):
    """Ask ``minion`` until it answers (a booting VM), return its answer."""
    lc = import_salt().client.LocalClient(c_path=salt.master_config)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = lc.cmd(minion, fun, list(args), timeout=5)
            if minion in got:
                return got[minion]
        raise AssertionError(f"minion {minion} did not answer {fun} in {timeout} s")
    finally:
        lc.destroy()


def test_a_server_is_a_minion_with_the_attached_volume_at_its_device(vms):
    salt, machines, cloud, client = vms
    server_id = client.create_server("lab-vm-1")  # no minion_id given: the name
    server = eventually(lambda: (s := client.server(server_id))["status"] == "ACTIVE" and s)
    assert server["metadata"]["minion_id"] == "lab-vm-1"
    assert salt_call(salt, "lab-vm-1", "test.ping") is True

    volume_id = client.create_volume("lab-vm-1-data", size=1)
    eventually(lambda: client.get_volume(volume_id)["status"] == "available")
    image = machines.volume_file(volume_id)
    assert image.stat().st_size == 1024 ** 3 and image.stat().st_blocks == 0  # sparse
    resp = client.attach(server_id, volume_id)
    assert resp.status_code == 200, resp.text
    eventually(lambda: client.get_volume(volume_id)["status"] == "in-use")
    device = client.get_volume(volume_id)["attachments"][0]["device"]

    seen = salt_call(salt, "lab-vm-1", "cmd.run", f"readlink -f {device}")
    if machines.isolated:
        assert device == "/dev/vdb"
        assert not os.path.exists("/dev/vdb") or os.path.realpath("/dev/vdb") != str(image)
    assert seen == str(image)
    # a write through the device inside the VM lands in the volume's file
    salt_call(salt, "lab-vm-1", "cmd.run", f"printf lab-data | dd of={device} conv=notrunc")
    assert image.read_bytes()[:8] == b"lab-data"

    resp = client.nova("DELETE", f"/servers/{server_id}")
    assert resp.status_code == 204
    eventually(lambda: client.nova("GET", f"/servers/{server_id}").status_code == 404)
    assert "lab-vm-1" not in salt.minions
    assert not (Path(salt.root) / "master" / "pki" / "minions" / "lab-vm-1").exists()
    assert client.get_volume(volume_id)["status"] == "available"  # detached by the delete


def test_namespaces_are_used_where_they_work(vms):
    _, machines, _, _ = vms
    assert machines.isolated == namespaces_work()
    if os.geteuid() == 0:
        assert machines.isolated, "as root with unshare, VMs get their own /dev"


def test_an_agent_fault_boots_the_server_without_its_minion(vms):
    salt, _, cloud, client = vms
    server_id = client.create_server("lab-vm-2", headers={"X-Lab-Fail": "agent"})
    server = eventually(lambda: (s := client.server(server_id))["status"] == "ACTIVE" and s)
    assert server["metadata"]["minion_id"] == "lab-vm-2"
    assert "lab-vm-2" not in salt.minions
    client.nova("DELETE", f"/servers/{server_id}")
    eventually(lambda: client.nova("GET", f"/servers/{server_id}").status_code == 404)
