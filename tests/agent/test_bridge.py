"""Salt actions through the engine and the bridge, against a real salt-master and
real minions (the session's lab: vm-1, vm-2, vm-3)."""
from __future__ import annotations

import threading
import time

import pytest

from agent_bridge import config
from agent_bridge.actions import Cmd, Run
from agent_bridge.config import SaltConfig
from agent_bridge.lab import SaltLab
from orchestrator import dsl
from orchestrator.errors import InvalidDefinition, InvalidInput
from tests.agent.helpers import AgentEngine, workflow

THREE = ["vm-1", "vm-2", "vm-3"]


@pytest.fixture
def engine(salt_lab, sqlite_store):
    e = AgentEngine(sqlite_store, salt_lab.master_config)
    yield e
    e.close()


# -- with the lab -----------------------------------------------------------------------
def test_a_command_on_three_minions_succeeds_with_each_minions_retcode_and_return(engine):
    out = engine.run(workflow("salt.run", {"tgt": "vm-[123]", "cmd": "echo hello"}))
    assert out["state"] == "SUCCESS", out["state_info"]
    assert out["tasks"][0]["result"] == {m: {"retcode": 0, "return": "hello"} for m in THREE}


def test_an_argv_command_runs_without_a_shell_and_kwarg_is_passed_as_data(engine):
    out = engine.run(workflow("salt.cmd", {
        "tgt": ["vm-1", "vm-2"], "tgt_type": "list", "fun": "cmd.run",
        "arg": [["printf", "%s|", "$HOME", "a;b"]], "kwarg": {"python_shell": False}}))
    assert out["state"] == "SUCCESS", out["state_info"]
    assert out["tasks"][0]["result"]["vm-1"] == {"retcode": 0, "return": "$HOME|a;b|"}


def test_a_ping_by_grain_and_by_compound_target(engine):
    by_grain = engine.run(workflow("salt.ping", {"tgt": "id:vm-2", "tgt_type": "grain"}))
    assert by_grain["tasks"][0]["result"] == {"vm-2": {"retcode": 0, "return": True}}
    both = engine.run(workflow("salt.ping", {"tgt": "vm-1 or G@id:vm-3",
                                             "tgt_type": "compound"}))
    assert set(both["tasks"][0]["result"]) == {"vm-1", "vm-3"}


def test_a_nonzero_retcode_fails_the_task_naming_the_minion(engine):
    # The minion renders its own id into the command (Salt's template option); the
    # command is workflow input so that the engine does not take {{ }} as its own.
    command = "if [ {{ grains['id'] }} = vm-2 ]; then echo broken; exit 3; fi; echo fine"
    out = engine.run(workflow("salt.cmd", {
        "tgt": THREE, "tgt_type": "list", "fun": "cmd.run", "arg": "<% $.args %>",
        "kwarg": {"template": "jinja"}}), {"args": [command]})
    assert out["state"] == "ERROR"
    task = out["tasks"][0]
    assert task["result"]["vm-2"] == {"retcode": 3, "return": "broken"}
    assert task["result"]["vm-1"] == {"retcode": 0, "return": "fine"}
    assert "failed on 1 of 3 minion(s): vm-2: retcode 3: broken" in task["state_info"]
    assert "vm-1" not in task["state_info"]


def test_a_minion_killed_during_a_job_fails_the_task_at_its_timeout_without_the_grace(
        salt_lab, engine):
    """At the timeout the silent minion is probed; it does not answer, so the task
    fails then, naming it, instead of giving it the running grace. (The message
    tells the two apart; the machine's speed does not enter.)"""
    timeout = 6
    ex = engine.start(workflow("salt.run", {"tgt": THREE, "tgt_type": "list",
                                            "cmd": "sleep 3; echo done", "timeout": timeout}))
    engine.wait_published(ex)
    salt_lab.kill_minion("vm-3")
    try:
        out = engine.wait(ex, timeout=300)
    finally:
        salt_lab.start_minion("vm-3")
    assert out["state"] == "ERROR"
    task = out["tasks"][0]
    assert task["result"]["vm-1"] == {"retcode": 0, "return": "done"}
    assert task["result"]["vm-3"]["retcode"] is None
    assert "failed on 1 of 3 minion(s): vm-3: did not return within 6s and does not answer " \
           "(minion down or not connected)" in task["state_info"]


def test_a_minion_still_running_at_the_deadline_gets_the_running_grace(salt_lab,
                                                                         sqlite_store):
    engine = AgentEngine(sqlite_store, salt_lab.master_config, running_grace=6)
    try:
        out = engine.run(workflow("salt.run", {"tgt": "vm-1", "cmd": "sleep 4; echo late",
                                               "timeout": 2}))
    finally:
        engine.close()
    assert out["state"] == "SUCCESS", out["state_info"]
    assert out["tasks"][0]["result"] == {"vm-1": {"retcode": 0, "return": "late"}}


def test_a_target_no_minion_matches_fails_without_publishing(engine):
    out = engine.run(workflow("salt.ping", {"tgt": "nosuch-*"}))
    assert out["state"] == "ERROR"
    assert "no minion matched the target 'nosuch-*' (glob)" in out["tasks"][0]["state_info"]


def test_an_unknown_id_in_a_list_target_fails_the_task_naming_it(engine):
    out = engine.run(workflow("salt.ping", {"tgt": ["vm-1", "ghost"], "tgt_type": "list"}))
    assert out["state"] == "ERROR"
    task = out["tasks"][0]
    assert task["result"]["vm-1"] == {"retcode": 0, "return": True}
    assert "ghost: not known to the salt-master (no accepted key)" in task["state_info"]


def test_a_function_outside_the_allowlist_fails_the_task_at_run_time(engine):
    # The function comes from an expression, so validation cannot see it.
    out = engine.run(workflow("salt.cmd", {"tgt": "vm-1", "fun": "<% $.fun %>"}),
                     {"fun": "file.remove"})
    assert out["state"] == "ERROR"
    assert "Salt function 'file.remove' is not in the allowlist" in out["tasks"][0]["state_info"]


def test_a_projects_allowlist_narrows_the_global_one(salt_lab, sqlite_store):
    engine = AgentEngine(sqlite_store, salt_lab.master_config,
                         projects={"readonly": ("test.*",)})
    try:
        refused = engine.run(workflow("salt.run", {"tgt": "vm-1", "cmd": "true"}),
                             project="readonly")
        allowed = engine.run(workflow("salt.ping", {"tgt": "vm-1"}), project="readonly")
    finally:
        engine.close()
    assert "not in project 'readonly''s allowlist (test.*)" in refused["tasks"][0]["state_info"]
    assert allowed["state"] == "SUCCESS"


@pytest.mark.salt
def test_wait_minions_waits_for_a_minion_that_starts_late(sqlite_store):
    # Its own lab: the session's lab keeps exactly vm-1..vm-3.
    with SaltLab(minions=["w-1"]) as lab:
        engine = AgentEngine(sqlite_store, lab.master_config)
        try:
            ex = engine.start(workflow("salt.wait_minions", {"minions": ["w-1", "w-late"],
                                                             "timeout": 90}))
            booting = threading.Thread(target=lab.add_minion, args=("w-late",))
            time.sleep(1)
            booting.start()
            try:
                out = engine.wait(ex, timeout=100)
            finally:
                booting.join()
        finally:
            engine.close()
    assert out["state"] == "SUCCESS", out["state_info"]
    assert out["tasks"][0]["result"] == {"w-1": {"retcode": 0, "return": True},
                                         "w-late": {"retcode": 0, "return": True}}


def test_wait_minions_fails_naming_the_minions_that_never_answered(engine):
    started = time.monotonic()
    out = engine.run(workflow("salt.wait_minions", {"minions": "vm-1,ghost", "timeout": 3}))
    assert out["state"] == "ERROR"
    assert out["tasks"][0]["state_info"] == \
        "minion(s) ghost did not answer within 3s (not connected or down)"
    assert time.monotonic() - started < 50  # generous; the default timeout is 300 s


def test_an_agent_role_runs_the_salt_actions_while_the_engine_runs_apart(salt_lab,
                                                                          sqlite_store):
    from agent_bridge.bridge import Bridge
    from orchestrator.engine import control
    from orchestrator.engine.worker import Worker

    engine = Worker(sqlite_store, poll=0.05).start()  # no bridge: never claims agent work
    bridge = Bridge(sqlite_store, SaltConfig(master_config=salt_lab.master_config)).start()
    agent = Worker(sqlite_store, only_agent=True, poll=0.05).start()
    try:
        text = workflow("std.noop", on_success=["ping"]).replace(
            "tasks:\n", "tasks:\n    ping:\n      action: salt.ping tgt=vm-1\n", 1)
        ex = control.start(sqlite_store, dsl.load(text), None, {})
        deadline = time.monotonic() + 30
        while control.execution(sqlite_store, ex)["state"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        agent.stop(grace=2)
        bridge.stop()
        engine.stop(grace=2)
    out = control.summary(sqlite_store, ex)
    assert out["state"] == "SUCCESS", out["state_info"]
    assert [t["name"] for t in out["tasks"]] == ["job", "ping"]
    assert out["tasks"][1]["result"] == {"vm-1": {"retcode": 0, "return": True}}
    assert agent.step() == 0  # the agent role applies no engine steps


# -- without the lab --------------------------------------------------------------------
@pytest.fixture
def allowlist(monkeypatch):
    def set_(value):
        monkeypatch.setenv("ORCH_SALT_ALLOWLIST", value)
        config.reset()
    yield set_
    config.reset()


def test_validation_refuses_a_literal_function_outside_the_allowlist():
    text = workflow("salt.cmd", {"tgt": "vm-1", "fun": "file.remove", "arg": ["/etc"]})
    with pytest.raises(InvalidDefinition) as e:
        dsl.load(text, "deploy.yaml")
    assert "deploy.yaml:" in str(e.value)
    assert "wf.tasks.job.input.fun: action 'salt.cmd': Salt function 'file.remove' is not " \
           "in the allowlist (test.*, cmd.run" in str(e.value)


def test_validation_refuses_salt_run_when_cmd_run_is_not_allowed(allowlist):
    allowlist("test.*")
    with pytest.raises(InvalidDefinition, match="Salt function 'cmd.run' is not in the "
                                                "allowlist \\(test.\\*\\)"):
        dsl.load(workflow("salt.run", {"tgt": "vm-1", "cmd": "true"}))
    dsl.load(workflow("salt.ping", {"tgt": "vm-1"}))


def test_validation_leaves_a_function_from_an_expression_to_run_time():
    dsl.load(workflow("salt.cmd", {"tgt": "vm-1", "fun": "<% $.fun %>"}))


def test_the_action_refuses_bad_input_before_anything_is_published():
    with pytest.raises(InvalidInput, match="not in the allowlist"):
        Cmd(tgt="*", fun="file.remove")
    with pytest.raises(InvalidInput, match="tgt_type 'pcre' is not one of"):
        Cmd(tgt="*", fun="test.ping", tgt_type="pcre")
    with pytest.raises(InvalidInput, match="must be minion ids"):
        Cmd(tgt=[], fun="test.ping", tgt_type="list")
    with pytest.raises(InvalidInput, match="argv of strings"):
        Run(tgt="*", cmd=["ls", 3])
    assert Run(tgt="*", cmd=["ls", "-l"]).kwarg == {"python_shell": False}


def test_allowlist_from_the_environment_and_a_config_file(tmp_path):
    assert SaltConfig.from_env({}).allowed("disk.usage")
    assert not SaltConfig.from_env({}).allowed("cmd.script")
    env = SaltConfig.from_env({"ORCH_SALT_ALLOWLIST": "test.*, pkg.version"})
    assert env.allowed("pkg.version") and not env.allowed("cmd.run")
    path = tmp_path / "salt.yaml"
    path.write_text("allowlist: [test.*, cmd.run]\nprojects:\n  ro: {allowlist: [test.*]}\n")
    from_file = SaltConfig.from_env({"ORCH_SALT_CONFIG": str(path)})
    assert from_file.allowed("cmd.run") and not from_file.allowed("cmd.run", "ro")
    assert from_file.allowed("cmd.run", "other")


# -- a fan-out to 20 minions (its own lab: about 10-30 s to start) -----------------------
@pytest.mark.slow
@pytest.mark.salt
def test_a_fan_out_to_20_minions_returns_each_minions_result(sqlite_store):
    ids = [f"vm-{i}" for i in range(1, 21)]
    with SaltLab(minions=ids) as lab:
        engine = AgentEngine(sqlite_store, lab.master_config)
        try:
            out = engine.run(workflow("salt.run", {"tgt": "vm-*", "cmd": "echo ok"}))
        finally:
            engine.close()
    assert out["state"] == "SUCCESS", out["state_info"]
    assert out["tasks"][0]["result"] == {m: {"retcode": 0, "return": "ok"} for m in ids}
