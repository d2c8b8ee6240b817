"""deploy_stack end to end: the lab cloud (real HTTP, each server a real Salt
minion, each volume a file), the orchestrator service as a real process, the
workbook uploaded and run through the REST API, exactly as ``orchestrator
demo`` does. Success is checked on disk: each volume file holds an ext4
filesystem whose UUID is the one in the execution's output. Each failure
ends ERROR with a report naming the cause, and the cloud keeps nothing of that
execution."""
from __future__ import annotations

import subprocess
import time

import pytest

from orchestrator.demo import (
    ENVIRONMENT,
    WORKFLOW,
    LabStack,
    output_of,
    put_environment,
    upload,
)

pytestmark = [pytest.mark.salt, pytest.mark.slow]

FAST = {"poll_delay": 0.5, "agent_timeout": 60, "attach_timeout": 20, "cleanup_rounds": 60}


@pytest.fixture(scope="module")
def stack():
    with LabStack(time_scale=0.3) as s:
        client = s.client()
        upload(client, "deploy_stack")
        put_environment(client, ENVIRONMENT, s.environment(), ["password"])
        yield s


def run(stack, prefix: str, vms: int, **extra) -> dict:
    client = stack.client()
    ex = client.start_execution(WORKFLOW, {"vm_count": vms, "name_prefix": prefix,
                                                 **FAST, **extra}, env=ENVIRONMENT)
    return ex


def wait(stack, execution_id: str, timeout: float = 150) -> dict:
    client = stack.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex = client.get("executions", execution_id)
        if ex["state"] in ("SUCCESS", "ERROR", "CANCELLED"):
            return ex
        time.sleep(0.5)
    tasks = [(t["name"], t["state"]) for t in client.execution_tasks(execution_id)]
    raise AssertionError(f"execution {execution_id} still {ex['state']} after {timeout} s: "
                         f"{tasks}")


def left_over(stack, execution_id: str) -> list:
    state = stack.lab("GET", "/lab/state")
    return [(kind, r["id"], r.get("status")) for kind in ("servers", "volumes")
            for r in state[kind] if (r.get("metadata") or {}).get("orchestrator-run")
            == execution_id]


def blkid(path, tag: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, str(path)],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_three_vms_get_a_formatted_volume_each(stack):
    ex = wait(stack, run(stack, "ok", 3)["id"])
    assert ex["state"] == "SUCCESS", stack.client().report(ex["id"])["root_cause"]
    rows = output_of(ex)["stack"]
    assert [r["vm"].rsplit("-", 1)[1] for r in rows] == ["1", "2", "3"]
    state = stack.lab("GET", "/lab/state")
    servers = {s["id"]: s for s in state["servers"]}
    volumes = {v["id"]: v for v in state["volumes"]}
    for row in rows:
        assert row["fs_type"] == "ext4"
        server, volume = servers[row["server_id"]], volumes[row["volume_id"]]
        assert server["name"] == row["vm"] and server["status"] == "ACTIVE"
        assert volume["status"] == "in-use"
        assert [a["server_id"] for a in volume["attachments"]] == [row["server_id"]]
        assert volume["attachments"][0]["device"] == row["device"]
        # the filesystem is really in the volume's file, with the UUID the output reports
        image = stack.root / "cloud" / "volumes" / f"{row['volume_id']}.img"
        assert blkid(image, "TYPE") == "ext4"
        assert blkid(image, "UUID") == row["fs_uuid"]
    assert len({r["fs_uuid"] for r in rows}) == 3
    assert len({r["server_id"] for r in rows}) == 3


FAILURES = [
    # (name prefix, fault, task that fails first, words in its error)
    ("bf", {"kind": "build", "match": "^bf-.*-2$"}, "servers_failed",
     "No valid host was found"),
    ("vf", {"kind": "volume", "match": "^vf-.*-1-data$"}, "volumes_failed", "is error"),
    ("af", {"kind": "attach", "match": "^af-.*-2"}, "attach_failed", "not attached"),
    ("mf", {"kind": "agent", "match": "^mf-.*-1$"}, "wait_agents", "mf-"),
]


def test_each_failure_ends_error_with_its_cause_and_nothing_left(stack):
    stack.lab("DELETE", "/lab/faults")
    for _, fault, _, _ in FAILURES:
        stack.lab("POST", "/lab/faults", json={**fault, "times": 0})
    started = {prefix: run(stack, prefix, 2, agent_timeout=15)["id"]
               for prefix, _, _, _ in FAILURES}
    try:
        for prefix, _fault, task, words in FAILURES:
            ex = wait(stack, started[prefix])
            assert ex["state"] == "ERROR", (prefix, ex)
            report = stack.client().report(ex["id"])
            cause = report["root_cause"]
            assert cause["task"] == task, (prefix, cause)
            assert words in cause["state_info"], (prefix, cause["state_info"])
            assert output_of(ex).get("cleaned_up") is True, (prefix, ex["output"])
            assert left_over(stack, ex["id"]) == [], prefix
    finally:
        stack.lab("DELETE", "/lab/faults")


def test_without_namespaces_the_attachment_reports_the_host_path(tmp_path):
    """Where a VM cannot have its own /dev (no root), the device the attachment
    reports is the host path of the volume's link: the workbook runs unchanged."""
    with LabStack(time_scale=0.3, devices="host") as s:
        client = s.client()
        upload(client, "deploy_stack")
        put_environment(client, ENVIRONMENT, s.environment(), ["password"])
        ex = wait(s, run(s, "hp", 1)["id"])
        assert ex["state"] == "SUCCESS", client.report(ex["id"])["root_cause"]
        row, = output_of(ex)["stack"]
        assert row["device"] == str(s.root / "cloud" / "vms" / row["vm"] / "dev" / "vdb")
        image = s.root / "cloud" / "volumes" / f"{row['volume_id']}.img"
        assert blkid(image, "UUID") == row["fs_uuid"]
