"""Two real engine processes and one API process on one PostgreSQL: one engine
is SIGKILLed mid-run; every execution still ends with the right result, and
each action ran once, except those in flight at the kill (at most once more,
with the same idempotency key)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import select

from orchestrator.processes import free_port
from orchestrator.store import schema
from tests.conftest import empty
from tests.httpcount import CountingServer

DEADLINE = 300.0  # seconds for each wait: generous for a loaded machine, a green run needs few

BRANCHES, DEPTH, ITEMS = 4, 5, 5


def thirty_task_workflow() -> str:
    """31 tasks: a fan-out of 4 chains of 5, a join, a with-items over 5 items, a
    second fan-out of 3 into a join, and a tail of 3: 31 HTTP calls per run."""
    y = ["version: '2.0'", "thirty:", "  input:", "    - base", "  tasks:",
         "    start:",
         f"      on-success: [{', '.join(f'b{b}_0' for b in range(BRANCHES))}]"]
    for b in range(BRANCHES):
        for d in range(DEPTH):
            nxt = f"b{b}_{d + 1}" if d + 1 < DEPTH else "join1"
            y += [f"    b{b}_{d}:",
                  f"      action: std.http url=<% $.base %>/b{b}/{d} method=POST",
                  "      input:", "        json:", f"          v: <% $.get('v{b}', 0) + 1 %>",
                  "      publish:", f"        v{b}: <% task().result.content.echo.v %>",
                  f"      on-success: {nxt}"]
    y += ["    join1:", "      join: all", "      on-success: items",
          "    items:", f"      with-items: i in <% range({ITEMS}) %>", "      concurrency: 3",
          "      action: std.http url=<% $.base %>/item method=POST",
          "      input:", "        json:", "          v: <% $.i %>",
          "      publish:", "        items: <% task().result.select($.content.echo.v).sum() %>",
          "      on-success: [x, y, z]"]
    for name in ("x", "y", "z"):
        y += [f"    {name}:", f"      action: std.http url=<% $.base %>/{name} method=POST",
              "      input:", "        json:", "          v: 1", "      on-success: join2"]
    y += ["    join2:", "      join: all", "      on-success: end",
          "    end:", "      action: std.http url=<% $.base %>/end method=POST",
          "      input:", "        json:", "          v: <% $.v0 + $.v1 + $.v2 + $.v3 + $.items %>",
          "      publish:", "        total: <% task().result.content.echo.v %>",
          "      on-success: t1",
          "    t1:", "      action: std.http url=<% $.base %>/t1 method=POST json=1",
          "      on-success: t2",
          "    t2:", "      action: std.http url=<% $.base %>/t2 method=POST json=2",
          "  output:", "    total: <% $.total %>"]
    return "\n".join(y) + "\n"


def _serve(pg_url: str, *args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "serve", "--db", pg_url,
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)


def _succeeded(store) -> set[str]:
    a = schema.action_executions
    with store.connect() as conn:
        return {r[0] for r in conn.execute(select(a.c.id).where(
            a.c.state == "SUCCESS", a.c.name == "std.http"))}


@pytest.mark.postgres
@pytest.mark.slow
def test_engines_survive_a_sigkill_with_every_action_counted_once(pg_store, pg_url):
    empty(pg_store)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ORCH_API_TOKENS": "ha-token=ops:operator"}
    headers = {"Authorization": "Bearer ha-token"}
    with CountingServer(delay=0.01) as server:
        api = _serve(pg_url, "--role", "api", "--port", str(port), env=env)
        engines = [_serve(pg_url, "--role", "engine", "--lease", "3") for _ in range(2)]
        try:
            deadline = time.monotonic() + DEADLINE
            while True:
                try:
                    requests.get(f"{base_url}/health", timeout=10)
                    break
                except requests.RequestException:
                    assert time.monotonic() < deadline, api.stderr.read()
                    time.sleep(0.1)
            r = requests.post(f"{base_url}/v2/workflows", data=thirty_task_workflow(),
                              headers={**headers, "Content-Type": "text/plain"}, timeout=10)
            assert r.status_code == 201, r.text
            ids = []
            for _ in range(20):
                r = requests.post(f"{base_url}/v2/executions", headers=headers, timeout=10,
                                  json={"workflow_name": "thirty", "input": {"base": server.url}})
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            deadline = time.monotonic() + DEADLINE
            while len(server.keys) < 150:
                assert time.monotonic() < deadline, "the engines made no progress"
                time.sleep(0.02)
            os.kill(engines[0].pid, signal.SIGKILL)
            with server.lock:
                completed, counts = _succeeded(pg_store), dict(server.keys)
            deadline = time.monotonic() + DEADLINE
            while True:
                states = [requests.get(f"{base_url}/v2/executions/{i}", headers=headers,
                                       timeout=10).json()["state"] for i in ids]
                if all(s in ("SUCCESS", "ERROR") for s in states) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            outputs = [requests.get(f"{base_url}/v2/executions/{i}", headers=headers,
                                    timeout=10).json()["output"] for i in ids]
        finally:
            for p in [api, *engines[1:]]:
                p.send_signal(signal.SIGTERM)
            errs = [p.communicate(timeout=60)[1] for p in [api, *engines]]
    assert states == ["SUCCESS"] * 20, errs
    # 4 branches of 5 increments, items 0..4, so the total is 4 * 5 + 10 = 30.
    assert outputs == [{"total": 30}] * 20
    assert len(server.keys) == 20 * 31  # every HTTP action ran, each with its own key
    assert max(server.keys.values()) <= 2  # in flight at the kill: at most once more
    assert sum(1 for c in server.keys.values() if c == 2) <= 8  # one engine's executor threads
    assert [k for k in completed if server.keys[k] != counts[k]] == []  # done: never again
