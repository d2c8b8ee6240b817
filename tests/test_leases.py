"""Leases on running actions: taken over after expiry, fenced afterwards, and
idle engines woken by PostgreSQL notifications rather than polling."""
from __future__ import annotations

import time

import pytest

from orchestrator.engine import control
from orchestrator.engine.worker import Worker
from tests.conftest import Runner, empty
from tests.httpcount import CountingServer

ONE_CALL = """
version: '2.0'
wf:
  input:
    - url
  tasks:
    call:
      action: std.http url=<% $.url %> method=POST json=1
"""


def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_complete(store):
    runner = Runner(store)
    with CountingServer() as server:
        execution_id = runner.start(ONE_CALL, {"url": server.url})
        now = time.time()
        first, second = Worker(store, lease=5), Worker(store, lease=5)
        [claimed] = first.claim_actions(now)
        assert second.claim_actions(now + 1) == []  # leased: nobody else takes it
        [taken] = second.claim_actions(now + 6)  # the lease expired: taken over
        assert taken["action_id"] == claimed["action_id"]
        # The old owner was only slow: it finishes its run, but its lease is gone,
        # so its result is not applied (fencing)...
        first.execute(claimed, now + 7)
        assert control.execution(store, execution_id)["state"] == "RUNNING"
        # ...and the new owner's is.
        second.execute(taken, now + 8)
    assert control.execution(store, execution_id)["state"] == "SUCCESS"
    action = control.action_rows(store, control.task_rows(store, execution_id)[0]["id"])[0]
    assert action["runs"] == 2 and action["state"] == "SUCCESS"
    assert list(server.keys.values()) == [2]  # both attempts: the same idempotency key


@pytest.mark.postgres
def test_an_idle_engine_on_postgresql_wakes_on_notify_not_on_its_poll(pg_store):
    empty(pg_store)
    worker = Worker(pg_store, poll=3600.0).start()  # it would poll only every hour
    try:
        _wait(lambda: _listening(pg_store), "the engine never LISTENed")
        with CountingServer() as server:
            execution_id = Runner(pg_store).start(ONE_CALL, {"url": server.url})
            # Far less than the poll: only the notification can have woken it.
            _wait(lambda: control.execution(pg_store, execution_id)["state"] == "SUCCESS",
                  "the idle engine did not wake on the notification")
    finally:
        worker.stop()


def _wait(condition, message: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{message} within {timeout}s"
        time.sleep(0.02)


def _listening(store) -> bool:
    """Whether a session on this test's database is LISTENing for new work."""
    from sqlalchemy import text

    from orchestrator.engine.tx import WAKE_CHANNEL

    with store.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = :q AND pid <> pg_backend_pid()"), {"q": f"LISTEN {WAKE_CHANNEL}"}
        ).scalar())


def test_secret_values_are_masked_in_the_engines_log_lines(store, caplog):
    import logging

    from orchestrator.secrets import MaskingFilter

    runner = Runner(store)
    wf = """
version: '2.0'
wf:
  tasks:
    leak:
      action: std.fail error_data=<% env().password %>
"""
    caplog.handler.addFilter(MaskingFilter())
    runner.start(wf, env={"password": "hunter22", "user": "ops"},
                 secrets=["password"])
    runner.drive()
    # A log line that carries the secret value (as an action error might).
    logging.getLogger("orchestrator.test").warning("login with %s failed", "hunter22")
    assert "hunter22" not in caplog.text
    assert "***" in caplog.text
