"""The machine hooks: the cloud calls them with copies of its records, in order per
resource, outside its lock, and turns their failures into OpenStack failures."""
from __future__ import annotations

import threading

import pytest

from labcloud import CloudConfig, MachineError, Machines
from labcloud.model import NO_VALID_HOST

from .helpers import Client, eventually, running, settle


class RecordingMachines(Machines):
    """Records every call. ``hold["boot"]`` (or ``hold["boot:<name>"]``) blocks that hook
    until the event is set; ``errors["attach"]`` makes it raise MachineError."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.hold: dict[str, threading.Event] = {}
        self.errors: dict[str, str] = {}
        self.device: str | None = None
        self.closed = False
        self._lock = threading.Lock()

    def _hook(self, name: str, record: dict, *args) -> None:
        with self._lock:
            self.calls.append((name, record, *args))
        for key in (name, f"{name}:{record.get('name')}"):
            if key in self.hold:
                assert self.hold[key].wait(10), f"{key} was never released"
        if name in self.errors:
            raise MachineError(self.errors[name])

    def boot(self, server, faults):
        self._hook("boot", server, faults)

    def destroy(self, server):
        self._hook("destroy", server)

    def create_volume(self, volume):
        self._hook("create_volume", volume)

    def delete_volume(self, volume):
        self._hook("delete_volume", volume)

    def attach(self, server, volume, device):
        self._hook("attach", server, volume, device)
        return self.device

    def detach(self, server, volume, device):
        self._hook("detach", server, volume, device)

    def close(self):
        self.closed = True


@pytest.fixture
def machines():
    return RecordingMachines()


@pytest.fixture
def lab(machines):
    with running(CloudConfig(time_scale=0), machines) as (cloud, server):
        client = Client(server)
        yield cloud, client
        client.close()
        for event in machines.hold.values():
            event.set()
    assert machines.closed


def test_hooks_get_copies_of_the_records_with_the_right_arguments(lab, machines):
    cloud, client = lab
    server_id = client.create_server("app-1", metadata={"minion_id": "m-1"})
    volume_id = client.create_volume("data-1", size=3)
    settle(cloud)
    [(name, server, faults)] = [c for c in machines.calls if c[0] == "boot"]
    assert (server["id"], server["name"], server["metadata"]) == (server_id, "app-1",
                                                                  {"minion_id": "m-1"})
    assert faults == set()
    [(name, volume)] = [c for c in machines.calls if c[0] == "create_volume"]
    assert (volume["id"], volume["name"], volume["size"]) == (volume_id, "data-1", 3)
    server["metadata"]["minion_id"] = "changed"  # a copy: the cloud keeps its own
    assert client.server(server_id)["metadata"] == {"minion_id": "m-1"}

    client.attach(server_id, volume_id)
    settle(cloud)
    name, server, volume, device = machines.calls[-1]
    assert (name, server["id"], volume["id"], device) == ("attach", server_id, volume_id,
                                                          "/dev/vdb")
    client.nova("DELETE", f"/servers/{server_id}/os-volume_attachments/{volume_id}")
    settle(cloud)
    name, server, volume, device = machines.calls[-1]
    assert (name, server["id"], volume["id"], device) == ("detach", server_id, volume_id,
                                                          "/dev/vdb")
    client.attach(server_id, volume_id)
    settle(cloud)
    client.nova("DELETE", f"/servers/{server_id}")
    settle(cloud)
    assert [c[0] for c in machines.calls[-2:]] == ["detach", "destroy"]  # volumes first
    assert machines.calls[-1][1]["id"] == server_id
    client.cinder("DELETE", f"/volumes/{volume_id}")
    settle(cloud)
    assert machines.calls[-1][0] == "delete_volume" and machines.calls[-1][1]["id"] == volume_id
    names = [c[0] for c in machines.calls]
    assert sorted(names[:2]) == ["boot", "create_volume"]  # two resources: in parallel
    assert names[2:] == ["attach", "detach", "attach", "detach", "destroy", "delete_volume"]


def test_agent_fault_is_passed_to_boot_and_the_server_still_goes_active(lab, machines):
    cloud, client = lab
    server_id = client.create_server("quiet", headers={"X-Lab-Fail": "agent"})
    settle(cloud)
    assert machines.calls[0][2] == {"agent"}
    assert client.server(server_id)["status"] == "ACTIVE"


def test_boot_error_makes_the_server_go_error_with_its_message(lab, machines):
    cloud, client = lab
    machines.errors["boot"] = "Build of instance x aborted: minion id is invalid"
    server_id = client.create_server()
    settle(cloud)
    s = client.server(server_id)
    assert s["status"] == "ERROR"
    assert s["fault"]["message"] == "Build of instance x aborted: minion id is invalid"
    client.nova("DELETE", f"/servers/{server_id}")
    settle(cloud)
    assert [c[0] for c in machines.calls] == ["boot", "destroy"]  # boot was called: destroy


def test_build_fault_neither_boots_nor_destroys(lab, machines):
    cloud, client = lab
    server_id = client.create_server(headers={"X-Lab-Fail": "build"})
    settle(cloud)
    assert client.server(server_id)["fault"]["message"] == NO_VALID_HOST
    client.nova("DELETE", f"/servers/{server_id}")
    settle(cloud)
    assert machines.calls == []


def test_attach_error_is_an_attach_failure(lab, machines):
    cloud, client = lab
    machines.errors["attach"] = "no such device"
    server_id, volume_id = client.create_server(), client.create_volume()
    settle(cloud)
    assert client.attach(server_id, volume_id).status_code == 200
    settle(cloud)
    assert client.get_volume(volume_id)["status"] == "available"
    assert client.get_volume(volume_id)["attachments"] == []
    assert client.server(server_id)["status"] == "ACTIVE"
    del machines.errors["attach"]
    client.nova("DELETE", f"/servers/{server_id}")
    settle(cloud)
    assert [c[0] for c in machines.calls if c[0] in ("detach", "destroy")] == ["destroy"]


def test_attach_may_report_another_device_path(lab, machines):
    cloud, client = lab
    machines.device = "/tmp/lab/vms/app/dev/vdb"
    server_id, volume_id = client.create_server(), client.create_volume()
    settle(cloud)
    client.attach(server_id, volume_id)
    settle(cloud)
    assert client.get_volume(volume_id)["attachments"][0]["device"] == machines.device
    shown = client.nova("GET", f"/servers/{server_id}/os-volume_attachments/{volume_id}")
    assert shown.json()["volumeAttachment"]["device"] == machines.device
    client.nova("DELETE", f"/servers/{server_id}/os-volume_attachments/{volume_id}")
    settle(cloud)
    assert machines.calls[-1][0] == "detach" and machines.calls[-1][3] == "/dev/vdb"


def test_volume_hook_errors_give_error_and_error_deleting(lab, machines):
    cloud, client = lab
    machines.errors["create_volume"] = "disk full"
    broken = client.create_volume("broken")
    settle(cloud)
    assert client.get_volume(broken)["status"] == "error"
    del machines.errors["create_volume"]
    machines.errors["delete_volume"] = "busy"
    stuck = client.create_volume("stuck")
    settle(cloud)
    assert client.cinder("DELETE", f"/volumes/{stuck}").status_code == 202
    settle(cloud)
    assert client.get_volume(stuck)["status"] == "error_deleting"
    assert client.cinder("DELETE", f"/volumes/{broken}").status_code == 202
    settle(cloud)  # never created on a machine: nothing to delete there
    assert [c[1]["name"] for c in machines.calls if c[0] == "delete_volume"] == ["stuck"]


def test_detach_error_puts_the_volume_back_in_use(lab, machines):
    cloud, client = lab
    machines.errors["detach"] = "device busy"
    server_id, volume_id = client.create_server(), client.create_volume()
    settle(cloud)
    client.attach(server_id, volume_id)
    settle(cloud)
    client.nova("DELETE", f"/servers/{server_id}/os-volume_attachments/{volume_id}")
    settle(cloud)
    assert client.get_volume(volume_id)["status"] == "in-use"


def test_states_while_hooks_run(lab, machines):
    cloud, client = lab
    for hook in ("boot", "create_volume", "attach", "detach", "destroy"):
        machines.hold[hook] = threading.Event()

    server_id, volume_id = client.create_server("app"), client.create_volume("data")
    s = eventually(lambda: (s := client.server(server_id))["OS-EXT-STS:task_state"]
                   == "spawning" and s)
    assert (s["status"], s["addresses"]) == ("BUILD", {})
    assert client.get_volume(volume_id)["status"] == "creating"
    machines.hold["boot"].set()
    eventually(lambda: client.server(server_id)["status"] == "ACTIVE")
    resp = client.attach(server_id, volume_id)
    assert "but the current status is creating." in resp.json()["badRequest"]["message"]
    machines.hold["create_volume"].set()
    eventually(lambda: client.get_volume(volume_id)["status"] == "available")

    assert client.attach(server_id, volume_id).status_code == 200
    v = eventually(lambda: (v := client.get_volume(volume_id))["status"] == "reserved" and v)
    assert v["attachments"] == []  # Cinder lists attachments once attached
    shown = client.nova("GET", f"/servers/{server_id}/os-volume_attachments/{volume_id}")
    assert shown.status_code == 200  # Nova's block device mapping exists from the request
    assert "already attached" in client.attach(server_id, volume_id).json()["badRequest"][
        "message"]
    machines.hold["attach"].set()
    eventually(lambda: client.get_volume(volume_id)["status"] == "in-use")

    client.nova("DELETE", f"/servers/{server_id}/os-volume_attachments/{volume_id}")
    v = eventually(lambda: (v := client.get_volume(volume_id))["status"] == "detaching" and v)
    assert v["attachments"][0]["server_id"] == server_id
    machines.hold["detach"].set()
    eventually(lambda: client.get_volume(volume_id)["status"] == "available")

    client.attach(server_id, volume_id)
    eventually(lambda: client.get_volume(volume_id)["status"] == "in-use")
    client.nova("DELETE", f"/servers/{server_id}")
    s = eventually(lambda: (s := client.server(server_id))["OS-EXT-STS:task_state"]
                   == "deleting" and s)
    assert (s["status"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:power_state"]) == (
        "ACTIVE", "active", 1)
    assert s["addresses"]["private"]
    assert client.get_volume(volume_id)["status"] == "detaching"
    resp = client.attach(server_id, client.create_volume("late"))
    assert resp.json()["conflictingRequest"]["message"].endswith("in task_state deleting")
    machines.hold["destroy"].set()
    eventually(lambda: client.nova("GET", f"/servers/{server_id}").status_code == 404)
    assert client.get_volume(volume_id)["status"] == "available"


def test_a_slow_hook_does_not_hold_up_other_servers(lab, machines):
    cloud, client = lab
    machines.hold["boot:slow"] = threading.Event()
    slow_id = client.create_server("slow")
    fast_id = client.create_server("fast")
    eventually(lambda: client.server(fast_id)["status"] == "ACTIVE")
    assert client.server(slow_id)["status"] == "BUILD"
    machines.hold["boot:slow"].set()
    eventually(lambda: client.server(slow_id)["status"] == "ACTIVE")


def test_a_server_deleted_while_booting_is_destroyed_after_its_boot(lab, machines):
    cloud, client = lab
    machines.hold["boot"] = threading.Event()
    server_id = client.create_server()
    eventually(lambda: machines.calls)
    client.nova("DELETE", f"/servers/{server_id}")
    machines.hold["boot"].set()
    settle(cloud)
    assert [c[0] for c in machines.calls] == ["boot", "destroy"]
    assert client.nova("GET", f"/servers/{server_id}").status_code == 404


def test_reset_destroys_every_machine(lab, machines):
    cloud, client = lab
    client.create_server("a")
    client.create_volume("d")
    client.create_volume("broken", headers={"X-Lab-Fail": "volume"})
    settle(cloud)
    cloud.reset()
    assert sorted((c[0], c[1]["name"]) for c in machines.calls) == [
        ("boot", "a"), ("create_volume", "d"), ("delete_volume", "d"), ("destroy", "a")]
    assert cloud.state() == {"servers": [], "volumes": [], "faults": []}
