"""Three real scheduler processes on one PostgreSQL and a per-second trigger:
exactly one execution per fire time, also when one scheduler is SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from orchestrator import catalog, cron
from orchestrator.store import schema
from tests.conftest import empty

WF = """
version: '2.0'
tick:
  input:
    - n: 0
  tasks:
    t:
      action: std.noop
"""


def _scheduler(pg_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "serve", "--role", "scheduler", "--db", pg_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.postgres
@pytest.mark.slow
def test_three_schedulers_fire_each_second_exactly_once_through_a_sigkill(pg_store, pg_url):
    empty(pg_store)
    now = time.time()
    with pg_store.begin() as conn:
        catalog.create_standalone(conn, "default", WF, catalog.WORKFLOWS_FILE, now)
        cron.create(conn, "default", now, name="every-second", pattern="* * * * * *",
                    workflow_name="tick", workflow_input={"n": 1}, workflow_params={})
    procs = [_scheduler(pg_url) for _ in range(3)]
    try:
        time.sleep(12)
        os.kill(procs[0].pid, signal.SIGKILL)
        killed_at = time.time()
        time.sleep(20)
    finally:
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        errors = [p.communicate(timeout=30)[1] for p in procs]
    f, e = schema.cron_fires, schema.executions
    with pg_store.connect() as conn:
        fires = sorted(r[0] for r in conn.execute(select(f.c.fire_time)))
        fire_ids = {r[0] for r in conn.execute(select(f.c.execution_id))}
        executions = [r[0] for r in conn.execute(select(e.c.id))]
    assert len(fires) >= 30, errors
    assert len(fires) == len(set(fires)), "a fire time fired twice"
    # One execution per fire, with the id derived from the fire: no double start.
    assert len(executions) == len(fires) == len(set(executions))
    assert set(executions) == fire_ids
    # No lost fire: every second from the first fire to the last, across the kill.
    assert [b - a for a, b in zip(fires, fires[1:])] == [1.0] * (len(fires) - 1)
    assert fires[0] < killed_at < fires[-1]
