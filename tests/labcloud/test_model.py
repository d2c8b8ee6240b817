"""The cloud's state tables, its timer, its timing and its Python API."""
from __future__ import annotations

import threading
import time

import pytest

from labcloud import Account, Cloud, CloudConfig
from labcloud.config import CIRROS_ID
from labcloud.errors import IllegalTransition, NotFound
from labcloud.states import GONE, SERVER_PHASES, SERVER_TRANSITIONS, VOLUME_TRANSITIONS, next_state
from labcloud.timer import Timer
from orchestrator.errors import InvalidInput


def test_every_server_phase_has_a_way_in_and_a_way_out():
    sources = {state for state, _ in SERVER_TRANSITIONS}
    targets = set(SERVER_TRANSITIONS.values())
    assert set(SERVER_PHASES) | {"deleting"} == sources
    assert set(SERVER_PHASES) - {"scheduling"} <= targets  # scheduling: where a server begins
    assert GONE in targets


def test_every_volume_status_leads_somewhere_but_error_deleting():
    sources = {state for state, _ in VOLUME_TRANSITIONS}
    targets = set(VOLUME_TRANSITIONS.values())
    assert targets - sources == {GONE, "error_deleting"}  # error_deleting needs an admin
    assert sources - targets == {"creating"}  # where a volume begins


def test_an_edge_missing_from_a_table_is_refused():
    assert next_state(VOLUME_TRANSITIONS, "volume", "in-use", "begin_detach") == "detaching"
    with pytest.raises(IllegalTransition, match="no transition from 'in-use' on 'delete'"):
        next_state(VOLUME_TRANSITIONS, "volume", "in-use", "delete")


@pytest.mark.parametrize("kwargs", [{"durations": {"boot": 1}}, {"quotas": {"cores": 4}},
                                    {"time_scale": -1}, {"jitter": 1.5}])
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(InvalidInput):
        CloudConfig(**kwargs)


def test_configuration_overrides_defaults_key_by_key():
    config = CloudConfig(durations={"spawning": 9}, quotas={"volumes": 2})
    assert config.durations["spawning"] == 9 and config.durations["scheduling"] == 0.5
    assert config.quotas == {"instances": 20, "volumes": 2, "gigabytes": 1000}


def test_timer_calls_in_due_order_and_runs_one_keys_hooks_in_order():
    timer = Timer(hook_threads=4)
    calls, now = [], time.monotonic()
    for delay in (0.06, 0.02, 0.04):
        timer.at(now + delay, lambda d=delay: calls.append(d))
    release = threading.Event()
    timer.hook("a", lambda: (release.wait(5), calls.append("a1")))
    timer.hook("a", lambda: calls.append("a2"))
    timer.hook("b", lambda: calls.append("b1"))  # not held up by "a"
    assert timer.wait_idle(0.2) is False
    release.set()
    assert timer.wait_idle(5)
    assert [c for c in calls if isinstance(c, float)] == [0.02, 0.04, 0.06]
    assert calls.index("b1") < calls.index("a1") < calls.index("a2")
    timer.at(time.monotonic() + 60, lambda: calls.append("never"))
    timer.cancel_due()
    assert timer.wait_idle(1)
    timer.close()
    assert "never" not in calls


def test_a_build_takes_the_lab_duration_times_the_time_scale():
    # A 30 s build at time_scale 0.01 takes 0.3 s (+-30 %): never less than 0.21 s,
    # and on the busiest machine far less than the unscaled 21 s or more.
    cloud = Cloud(CloudConfig(time_scale=0.01, durations={"spawning": 29.0}))
    token = cloud.identity.issue(user_name="admin", user_domain={"id": "default"},
                                 password="devstacker", project_name="admin",
                                 project_domain={"name": "Default"})
    start = time.monotonic()
    server = cloud.create_server(token, name="timed", image_ref=CIRROS_ID, flavor_ref="1")
    while cloud.server(token, server["id"])["status"] == "BUILD":
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    cloud.close()
    assert 0.3 * 0.7 <= elapsed < 30 * 0.7, elapsed


def test_projects_do_not_see_each_others_resources():
    cloud = Cloud(CloudConfig(time_scale=0, accounts=(
        Account(), Account(user="alice", password="pw", project="demo", role="member"))))
    domain = {"id": "default"}
    admin = cloud.identity.issue(user_name="admin", user_domain=domain, password="devstacker",
                                 project_name="admin", project_domain=domain)
    alice = cloud.identity.issue(user_name="alice", user_domain=domain, password="pw",
                                 project_name="demo", project_domain=domain)
    server = cloud.create_server(admin, name="mine", image_ref=CIRROS_ID, flavor_ref="1")
    volume = cloud.create_volume(admin, size=1, name="mine")
    assert cloud.servers(alice) == [] and cloud.volumes(alice) == []
    with pytest.raises(NotFound):
        cloud.server(alice, server["id"])
    with pytest.raises(NotFound):
        cloud.delete_volume(alice, volume["id"])
    assert alice.roles[0][1] == "member"
    cloud.close()
