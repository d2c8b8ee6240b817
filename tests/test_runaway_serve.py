"""A runaway expression in a real `orchestrator serve` (SQLite and PostgreSQL):
the request that starts it returns at once, other projects' reads and writes go
on, cancel and force-delete take effect while it still runs, and SIGTERM stops
the service within its grace period.

Nothing here times the service: "while it still runs" is checked by the
expression's own progress (the process keeps burning CPU after the answer),
with a CPU limit far longer than any wait in the test."""
from __future__ import annotations

import time
import uuid

import psutil
import pytest
import requests

from tests.test_serve import ORCH_API_TOKENS, Server

RUNAWAY = """
version: '2.0'
spin:
  tasks:
    loop:
      action: std.echo
      input:
        output: <% range(0, 100000000000).sum() %>
"""
QUICK = """
version: '2.0'
quick:
  tasks:
    t:
      action: std.echo output=done
"""
# Needs the engine's own loop (a delayed start), not only the API's first step.
LATER = """
version: '2.0'
later:
  tasks:
    t:
      wait-before: 0.1
      action: std.echo output=done
"""
DEADLINE = 60.0  # generous: a loaded 2-core machine


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _wait(predicate, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _burning(service, seconds: float = 1.0) -> None:
    """Wait until the service has spent ``seconds`` more CPU (the runaway runs)."""
    proc = psutil.Process(service.proc.pid)
    start = sum(proc.cpu_times()[:2])
    _wait(lambda: sum(proc.cpu_times()[:2]) - start >= seconds,
          f"the expression to run; the service's log:\n{service.log()}")


def _create(url: str, token: str, text: str) -> None:
    r = requests.post(f"{url}/v2/workflows", data=text, headers={
        **_h(token), "Content-Type": "text/plain"}, timeout=DEADLINE)
    assert r.status_code == 201, r.text


def _start(url: str, token: str, name: str) -> str:
    r = requests.post(f"{url}/v2/executions", json={"workflow_name": name},
                      headers=_h(token), timeout=DEADLINE)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _state(url: str, token: str, ex_id: str) -> str:
    r = requests.get(f"{url}/v2/executions/{ex_id}", headers=_h(token), timeout=DEADLINE)
    return r.json()["state"] if r.status_code == 200 else f"HTTP {r.status_code}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request, tmp_path):
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    else:
        db = request.getfixturevalue("pg_url")
        from orchestrator.store.db import Store
        from tests.conftest import empty

        s = Store(db)
        empty(s)
        s.dispose()
    server = Server(db, "--grace", "5", env={
        "ORCH_EXPR_CPU_SECONDS": "600", "XDG_DATA_HOME": str(tmp_path),
        "ORCH_API_TOKENS": ORCH_API_TOKENS + ",red-admin=red:admin"})
    yield server
    server.kill()


@pytest.mark.slow
def test_runaway_expression_does_not_hold_up_the_service(service):
    url = service.url
    _create(url, "red-op", RUNAWAY)
    _create(url, "blue-op", QUICK)
    _create(url, "blue-op", LATER)

    spinning = _start(url, "red-op", "spin")  # returns: the expression runs in the engine
    _burning(service)

    # Another project works meanwhile, end to end (a read, a write, the engine).
    quick = _start(url, "blue-op", "quick")
    _wait(lambda: _state(url, "blue-op", quick) == "SUCCESS", "the other project's run")

    # Cancel takes effect while the expression still runs.
    r = requests.put(f"{url}/v2/executions/{spinning}", json={"state": "CANCELLED"},
                     headers=_h("red-op"), timeout=DEADLINE)
    assert r.status_code == 200, r.text
    assert _state(url, "red-op", spinning) == "CANCELLED"
    # ...and the engine drops the expression of the cancelled run: it is free again.
    later = _start(url, "blue-op", "later")
    _wait(lambda: _state(url, "blue-op", later) == "SUCCESS", "the engine to be free")

    # Force-delete too, of a second runaway.
    second = _start(url, "red-op", "spin")
    _burning(service)
    r = requests.delete(f"{url}/v2/executions/{second}?force=true",
                        headers={**_h("red-admin"), "X-Request-Id": str(uuid.uuid4())},
                        timeout=DEADLINE)
    assert r.status_code in (200, 204), r.text
    assert _state(url, "red-op", second) == "HTTP 404"

    # A third runaway is running when SIGTERM comes: the service stops in its grace.
    _start(url, "red-op", "spin")
    _burning(service)
    code = service.stop(timeout=DEADLINE)
    assert code == 0, service.log()
