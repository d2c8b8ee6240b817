"""The Salt lab: a real salt-master and real salt-minions, started and stopped by SaltLab."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_bridge.lab import ENV_MASTER_CONFIG, LabError, SaltLab, import_salt
from orchestrator.processes import group_members

pytestmark = pytest.mark.salt


def ping(lab, ids, timeout=3):
    salt = import_salt()
    client = salt.client.LocalClient(c_path=lab.master_config)
    try:
        return client.cmd(ids, "test.ping", tgt_type="list", timeout=timeout,
                          gather_job_timeout=2)
    finally:
        client.destroy()


def test_every_minion_answers_test_ping_through_local_client(salt_lab, local_client):
    result = local_client.cmd(salt_lab.minions, "test.ping", tgt_type="list", timeout=10)
    assert result == {"vm-1": True, "vm-2": True, "vm-3": True}


def test_each_minion_runs_commands_as_itself(local_client):
    result = local_client.cmd(["vm-1", "vm-2"], "config.get", ["id"], tgt_type="list")
    assert result == {"vm-1": "vm-1", "vm-2": "vm-2"}


def test_env_points_the_orchestrator_at_the_master_config(salt_lab):
    assert salt_lab.env() == {ENV_MASTER_CONFIG: salt_lab.master_config}
    text = Path(salt_lab.master_config).read_text()
    assert "auto_accept: True" in text and "skip_grains: True" in text
    assert len(str(salt_lab.root)) <= 50


def test_killed_minion_stops_answering_and_starts_again(salt_lab):
    pgid = salt_lab.pgids()["vm-3"]
    salt_lab.kill_minion("vm-3")
    try:
        assert group_members(pgid) == []
        result = ping(salt_lab, ["vm-1", "vm-3"])
        assert result["vm-1"] is True
        assert result.get("vm-3") is not True  # cmd() reports a missing return as False
    finally:
        salt_lab.start_minion("vm-3")
    assert ping(salt_lab, ["vm-3"]) == {"vm-3": True}


def test_unknown_minion_is_refused_with_the_known_ones(salt_lab):
    with pytest.raises(LabError, match="no minion 'vm-9'.*vm-1"):
        salt_lab.kill_minion("vm-9")


def test_added_minion_answers_then_stop_leaves_no_process_and_no_directory():
    lab = SaltLab(minions=["vm-a"])
    with lab:
        lab.add_minion("vm-b")
        assert lab.minions == ["vm-a", "vm-b"]
        assert ping(lab, lab.minions) == {"vm-a": True, "vm-b": True}
        groups = lab.pgids()
        root = lab.root
        assert set(groups) == {"master", "vm-a", "vm-b"}
    assert {name: group_members(pgid) for name, pgid in groups.items()} == {
        name: [] for name in groups}
    assert not os.path.exists(root)


def test_lab_directory_longer_than_socket_paths_allow_is_refused(tmp_path):
    lab = SaltLab(minions=["vm-1"], root=tmp_path / ("x" * 60))
    with pytest.raises(LabError, match="longer than 50"):
        lab.start()
