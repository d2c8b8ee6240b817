"""Stopping a worker hands its running actions back to the queue at once."""
from __future__ import annotations

import time

from sqlalchemy import select

from orchestrator.engine import control
from orchestrator.store import schema
from tests.conftest import Runner

SLOW = """
version: '2.0'
wf:
  tasks:
    slow:
      action: std.sleep seconds=1
"""


def test_stop_hands_back_the_lease_of_an_action_still_running(sqlite_store):
    runner = Runner(sqlite_store)
    execution_id = runner.start(SLOW)
    worker = runner.worker
    worker.start()
    deadline = time.monotonic() + 5
    w = schema.work
    while time.monotonic() < deadline:
        with sqlite_store.connect() as conn:
            owner = conn.execute(select(w.c.lease_owner).where(w.c.kind == "run_action")).scalar()
        if owner:
            break
        time.sleep(0.02)
    assert owner == worker.owner
    worker.stop(grace=0.2)
    with sqlite_store.connect() as conn:
        row = conn.execute(select(w.c.lease_owner, w.c.lease_until)
                           .where(w.c.kind == "run_action")).one()
    assert tuple(row) == (None, None)  # claimable by the next worker right away
    assert control.execution(sqlite_store, execution_id)["state"] == "RUNNING"
    deadline = time.monotonic() + 60  # the old thread finishes: its result is discarded
    while worker._inflight:  # (lease lost); generous for a loaded machine
        assert time.monotonic() < deadline, "the stopped worker's action never finished"
        time.sleep(0.02)
    assert control.action_rows(sqlite_store, control.task_rows(
        sqlite_store, execution_id)[0]["id"])[0]["state"] == "RUNNING"
    Runner(sqlite_store).drive()  # a new worker runs the action again and finishes
    assert control.execution(sqlite_store, execution_id)["state"] == "SUCCESS"
