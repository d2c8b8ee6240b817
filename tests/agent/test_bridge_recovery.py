"""Salt jobs survive crashes: the job id is saved before the publish, a job is
never published twice for one action execution, and returns that arrive while no
bridge listens are read back from the master's job cache."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import update

from agent_bridge.lab import import_salt
from orchestrator import dsl
from orchestrator.engine import control
from orchestrator.engine.worker import Worker
from orchestrator.store import schema
from orchestrator.store.db import Store
from tests.agent.helpers import AgentEngine, workflow

ROOT = Path(__file__).resolve().parents[2]
THREE = ["vm-1", "vm-2", "vm-3"]


def logging_job(log: Path, seconds: float, timeout: float = 30) -> tuple[str, dict]:
    """A salt.cmd workflow whose minions each append their id to ``log``, then
    sleep: the log shows how many times each minion ran the job."""
    command = f"echo {{{{ grains['id'] }}}} >> {log}; sleep {seconds}; echo done"
    text = workflow("salt.cmd", {"tgt": THREE, "tgt_type": "list", "fun": "cmd.run",
                                 "arg": "<% $.args %>", "kwarg": {"template": "jinja"},
                                 "timeout": timeout})
    return text, {"args": [command]}


def runner_client(salt_lab):
    import_salt()
    import salt.config
    import salt.runner

    return salt.runner.RunnerClient(salt.config.master_config(salt_lab.master_config))


def jobs_mentioning(salt_lab, marker: str) -> list[str]:
    """The job ids in the master's job cache whose arguments mention ``marker``."""
    jobs = runner_client(salt_lab).cmd("jobs.list_jobs", kwarg={"search_function": "cmd.run"},
                                       print_event=False)
    return sorted(jid for jid, job in jobs.items() if marker in str(job.get("Arguments")))


def returned(salt_lab, jid: str) -> bool:
    """Whether every one of THREE has its return for ``jid`` in the master's job cache."""
    found = runner_client(salt_lab).cmd("jobs.lookup_jid", [jid], print_event=False)
    return set(THREE) <= set(found or {})


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} after {timeout}s"
        time.sleep(0.05)
    return value


def published_action(store: Store, execution_id: str) -> dict | None:
    for task in control.task_rows(store, execution_id):
        for row in control.action_rows(store, task["id"]):
            ref = row["external_ref"]
            if isinstance(ref, dict) and "minions" in ref:
                return row
    return None


def only_action(store: Store, execution_id: str) -> dict:
    (task,) = control.task_rows(store, execution_id)
    (row,) = control.action_rows(store, task["id"])
    return row


# -- a real engine process killed with SIGKILL ------------------------------------------
def serve(db: str, salt_lab, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with out.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "serve", "--role", "engine", "--role",
             "agent", "--db", db, "--salt-master-config", salt_lab.master_config,
             "--lease", "3"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def test_engine_killed_while_a_job_runs_finishes_from_the_recovered_returns_published_once(
        salt_lab, tmp_path):
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    store = Store(db)
    log = tmp_path / "ran.log"
    text, input = logging_job(log, 5)
    first = serve(db, salt_lab, tmp_path / "serve.log")
    try:
        execution_id = control.start(store, dsl.load(text), None, input)
        action = wait_for(lambda: published_action(store, execution_id), 30,
                          "the job was not published")
        wait_for(lambda: log.exists() and len(log.read_text().split()) == 3, 10,
                 "the minions did not start the job")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    jid = action["external_ref"]["jid"]
    wait_for(lambda: returned(salt_lab, jid), 120,  # while no engine runs
             "the minions did not return")
    assert only_action(store, execution_id)["state"] == "RUNNING"

    second = serve(db, salt_lab, tmp_path / "serve.log")
    try:
        wait_for(lambda: control.execution(store, execution_id)["state"] != "RUNNING", 30,
                 "the execution did not finish after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    summary = control.summary(store, execution_id)
    assert summary["state"] == "SUCCESS", (summary["state_info"],
                                           (tmp_path / "serve.log").read_text()[-3000:])
    assert summary["tasks"][0]["result"] == {m: {"retcode": 0, "return": "done"}
                                             for m in THREE}
    row = only_action(store, execution_id)
    assert row["external_ref"]["jid"] == jid and row["runs"] == 1
    assert sorted(log.read_text().split()) == THREE  # each minion ran it once
    assert jobs_mentioning(salt_lab, str(log)) == [jid]  # published once
    store.dispose()


# -- in this process ------------------------------------------------------------------------
def crashed_after_saving_the_jid(store: Store, text: str, input: dict) -> tuple[str, str]:
    """Start the workflow and leave its Salt action as a process that died right
    after ``context.remember(ref)`` would: the jid saved, the lease expired."""
    execution_id = control.start(store, dsl.load(text), None, input)
    dead = Worker(store, agent=True)
    dead.step()
    (item,) = dead.claim_actions()
    import_salt()
    import salt.utils.jid

    jid = salt.utils.jid.gen_jid({})
    dead._save_ref(item, {"jid": jid, "fun": "cmd.run", "tgt": THREE, "tgt_type": "list",
                          "timeout": 30})
    with store.begin() as conn:
        conn.execute(update(schema.work).where(schema.work.c.id == item["id"])
                     .values(lease_until=0))
    return execution_id, jid


def test_a_run_after_a_crash_before_the_publish_publishes_with_the_saved_jid(
        salt_lab, sqlite_store, tmp_path):
    log = tmp_path / "ran.log"
    text, input = logging_job(log, 0)
    execution_id, jid = crashed_after_saving_the_jid(sqlite_store, text, input)
    engine = AgentEngine(sqlite_store, salt_lab.master_config)
    try:
        summary = engine.wait(execution_id, 30)
    finally:
        engine.close()
    assert summary["state"] == "SUCCESS", summary["state_info"]
    assert only_action(sqlite_store, execution_id)["external_ref"]["jid"] == jid
    assert sorted(log.read_text().split()) == THREE
    assert jobs_mentioning(salt_lab, str(log)) == [jid]


def test_a_run_after_a_crash_after_the_publish_does_not_publish_again(
        salt_lab, sqlite_store, local_client, tmp_path):
    log = tmp_path / "ran.log"
    text, input = logging_job(log, 1)
    execution_id, jid = crashed_after_saving_the_jid(sqlite_store, text, input)
    # What the dead process had published before it died:
    local_client.run_job(THREE, "cmd.run", input["args"], tgt_type="list",
                         kwarg={"template": "jinja"}, jid=jid, listen=False)
    engine = AgentEngine(sqlite_store, salt_lab.master_config)
    try:
        summary = engine.wait(execution_id, 30)
    finally:
        engine.close()
    assert summary["state"] == "SUCCESS", summary["state_info"]
    assert summary["tasks"][0]["result"] == {m: {"retcode": 0, "return": "done"}
                                             for m in THREE}
    assert sorted(log.read_text().split()) == THREE  # ran once on each minion
    assert jobs_mentioning(salt_lab, str(log)) == [jid]


def test_a_bridge_restarted_after_the_returns_arrived_completes_from_the_job_cache(
        salt_lab, sqlite_store, tmp_path):
    log = tmp_path / "ran.log"
    text, input = logging_job(log, 1, timeout=600)
    engine = AgentEngine(sqlite_store, salt_lab.master_config)
    try:
        execution_id = engine.start(text, input)
        jid = engine.wait_published(execution_id)["external_ref"]["jid"]
    finally:
        engine.close()
    wait_for(lambda: returned(salt_lab, jid), 120,  # while no bridge listened
             "the minions did not return")
    assert only_action(sqlite_store, execution_id)["state"] == "RUNNING"
    engine = AgentEngine(sqlite_store, salt_lab.master_config)
    try:
        # Long before the job's 600 s timeout: the returns came from the job cache.
        summary = engine.wait(execution_id, 300)
    finally:
        engine.close()
    assert summary["state"] == "SUCCESS", summary["state_info"]
    assert summary["tasks"][0]["result"]["vm-2"] == {"retcode": 0, "return": "done"}
    assert sorted(log.read_text().split()) == THREE
