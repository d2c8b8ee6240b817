"""Several real engine processes on one PostgreSQL share the work correctly:
every execution ends with the right result and every action runs once."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from orchestrator import dsl
from orchestrator.engine import control
from tests.conftest import empty
from tests.httpcount import CountingServer

WF = """
version: '2.0'
fan:
  input:
    - base
    - width: 6
  tasks:
    split:
      action: std.echo
      input:
        output: <% range($.width) %>
      publish:
        parts: <% task().result %>
      on-success: [each, left, right]
    each:
      with-items: i in <% $.parts %>
      concurrency: 3
      action: std.http url=<% $.base %>/item method=POST
      input:
        json: <% $.i %>
      publish:
        items: <% task().result.select($.content.echo) %>
      on-success: join
    left:
      action: std.http url=<% $.base %>/left method=POST json=1
      publish:
        l: <% task().result.content.echo %>
      on-success: join
    right:
      action: std.http url=<% $.base %>/right method=POST json=2
      publish:
        r: <% task().result.content.echo %>
      on-success: join
    join:
      join: all
      action: std.echo
      input:
        output: <% $.items.sum() + $.l + $.r %>
      publish:
        total: <% task().result %>
  output:
    total: <% $.total %>
"""


@pytest.mark.postgres
def test_two_engine_processes_on_postgresql_run_every_execution_once(pg_store, pg_url):
    empty(pg_store)
    doc = dsl.load(WF, "fan.yaml")
    with CountingServer(delay=0.01) as server:
        engines = [
            subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "engine", "--db", pg_url],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        try:
            ids = [control.start(pg_store, doc, None, {"base": server.url, "width": 6})
                   for _ in range(12)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                states = [control.execution(pg_store, i)["state"] for i in ids]
                if all(s in ("SUCCESS", "ERROR") for s in states):
                    break
                time.sleep(0.1)
        finally:
            for p in engines:
                p.terminate()
            errs = [p.communicate(timeout=30)[1] for p in engines]
    assert states == ["SUCCESS"] * 12, errs
    for i in ids:
        assert control.execution(pg_store, i)["output"] == {"total": 15 + 3}
    # 12 executions x (6 items + left + right), each action run exactly once.
    assert sum(server.paths.values()) == 12 * 8
    assert set(server.keys.values()) == {1}
    assert len(server.keys) == 12 * 8
