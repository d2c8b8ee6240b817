"""On SQLite every read of the API answers while a writer (an engine step, an
upload) holds the store's write lock: reads are deferred WAL transactions."""
from __future__ import annotations

import threading

import pytest

from tests.conftest import holding_write_lock

READS = ["/v2/workbooks", "/v2/workflows", "/v2/workflows/hello", "/v2/actions",
         "/v2/actions/std.noop", "/v2/environments", "/v2/environments/staging",
         "/v2/cron_triggers", "/v2/executions", "/v2/tasks", "/v2/action_executions"]
HELLO = """
version: '2.0'
hello:
  tasks:
    t:
      action: std.noop
"""


def test_every_read_answers_while_a_writer_holds_the_lock(api, store):
    if not store.is_sqlite:
        pytest.skip("on PostgreSQL a reader never waits for a writer's row locks")
    api.call("POST", "/v2/workflows", yaml=HELLO)
    api.post("/v2/environments", {"name": "staging", "variables": {"a": 1}})
    ready = threading.Event()
    answers: dict = {}

    def read_all():
        for path in READS:
            answers[path] = api.get(path).status_code
        r = api.call("POST", "/v2/workflows/validate", yaml=HELLO)
        answers["validate"] = r.status_code
        ready.set()

    with holding_write_lock(store):
        threading.Thread(target=read_all, daemon=True).start()
        # The writer still holds its transaction: every read must answer anyway.
        assert ready.wait(60), f"reads waited for the writer; answered so far: {answers}"
    assert set(answers.values()) == {200}, answers
