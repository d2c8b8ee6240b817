"""Three real scheduler processes on one PostgreSQL and a per-second trigger:
exactly one execution per fire time, also when one scheduler is SIGKILLed.

No wall-clock rates: a loaded machine may run the schedulers late, and then the
trigger's ``missed: all`` policy fires every second it missed. So the test waits
(with a generous deadline) for fire times before and after the kill, and checks
that every second from the first fire to the last fired exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

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
DEADLINE = 300.0  # seconds to wait for each batch of fires: generous for a loaded machine
FIRES = 8  # fire times wanted before the kill, and again after it


def _scheduler(pg_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "serve", "--role", "scheduler", "--db", pg_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_fires(store, procs, after: float, count: int) -> None:
    """Until ``count`` fire times later than ``after`` exist (or fail at the deadline)."""
    f = schema.cron_fires
    deadline = time.monotonic() + DEADLINE
    while True:
        with store.connect() as conn:
            n = conn.execute(select(func.count()).select_from(f)
                             .where(f.c.fire_time > after)).scalar()
        if n >= count:
            return
        dead = [p.args for p in procs if p.poll() is not None]
        assert time.monotonic() < deadline and not dead, \
            f"{n} fire(s) after {after} within {DEADLINE}s; exited: {dead}"
        time.sleep(0.2)


@pytest.mark.postgres
@pytest.mark.slow
def test_three_schedulers_fire_each_second_exactly_once_through_a_sigkill(pg_store, pg_url):
    empty(pg_store)
    now = time.time()
    with pg_store.begin() as conn:
        catalog.create_standalone(conn, "default", WF, catalog.WORKFLOWS_FILE, now)
        cron.create(conn, "default", now, name="every-second", pattern="* * * * * *",
                    workflow_name="tick", workflow_input={"n": 1}, workflow_params={},
                    missed="all")
    procs = [_scheduler(pg_url) for _ in range(3)]
    try:
        _wait_for_fires(pg_store, procs, 0.0, FIRES)
        os.kill(procs[0].pid, signal.SIGKILL)
        killed_at = time.time()
        _wait_for_fires(pg_store, procs[1:], killed_at, FIRES)
    finally:
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs[1:]] == [0, 0], errors
    f, e = schema.cron_fires, schema.executions
    with pg_store.connect() as conn:
        fires = sorted(r[0] for r in conn.execute(select(f.c.fire_time)))
        fire_ids = {r[0] for r in conn.execute(select(f.c.execution_id))}
        executions = [r[0] for r in conn.execute(select(e.c.id))]
    assert len(fires) == len(set(fires)), "a fire time fired twice"
    # One execution per fire, with the id derived from the fire: no double start.
    assert len(executions) == len(fires) == len(set(executions))
    assert set(executions) == fire_ids
    # No lost fire: every second from the first fire to the last, across the kill.
    gaps = [(a, b) for a, b in zip(fires, fires[1:]) if b - a != 1.0]
    assert not gaps, f"fire times not one second apart: {gaps}"
    assert fires[0] < killed_at < fires[-1]
