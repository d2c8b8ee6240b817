"""A real engine process killed with SIGKILL mid-run continues to the same result
when started again, and no completed action runs twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, select, text

from orchestrator.store import schema
from tests.httpcount import CountingServer

BRANCHES, DEPTH = 5, 9  # 1 + 5*9 + 1 join + 3 tail = 50 tasks


def fifty_task_workflow(url: str) -> str:
    lines = [
        "version: '2.0'", "fifty:", "  tasks:",
        "    start:", "      action: std.noop",
        f"      on-success: [{', '.join(f'b{b}_0' for b in range(BRANCHES))}]",
    ]
    for b in range(BRANCHES):
        for d in range(DEPTH):
            nxt = f"b{b}_{d + 1}" if d + 1 < DEPTH else "join"
            lines += [
                f"    b{b}_{d}:",
                f"      action: std.http url={url}/b{b}/{d} method=POST",
                "      input:", "        json:",
                f"          value: <% $.get('v{b}', 0) + {d} %>",
                "      publish:",
                f"        v{b}: <% task().result.content.echo.value + 1 %>",
                f"      on-success: {nxt}",
            ]
    lines += ["    join:", "      join: all", "      action: std.noop", "      on-success: t0"]
    for i in range(3):
        nxt = f"      on-success: t{i + 1}" if i < 2 else None
        lines += [
            f"    t{i}:", f"      action: std.http url={url}/t/{i} method=POST",
            "      input:", "        json:", f"          value: <% $.v0 + $.v4 + {i} %>",
            "      publish:", f"        t{i}: <% task().result.content.echo.value %>",
        ] + ([nxt] if nxt else [])
    lines += ["  output:", "    total: <% $.t2 %>",
              "    branches: <% [$.v0, $.v1, $.v2, $.v3, $.v4] %>"]
    return "\n".join(lines) + "\n"


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _succeeded(db_url: str, execution_id: str) -> set[str]:
    eng = create_engine(db_url)
    a = schema.action_executions
    with eng.connect() as conn:
        ids = {r[0] for r in conn.execute(
            select(a.c.id).where(a.c.execution_id == execution_id, a.c.state == "SUCCESS",
                                 a.c.name == "std.http"))}
    eng.dispose()
    return ids


def _wait_for(db_url: str, execution_id: str, done: int, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_succeeded(db_url, execution_id)) >= done:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    pytest.fail(f"fewer than {done} actions succeeded in {timeout}s")


@pytest.mark.slow
def test_sigkilled_engine_restarts_to_same_result_without_rerunning_completed_actions(tmp_path):
    wf = tmp_path / "fifty.yaml"
    with CountingServer(delay=0.03) as server:
        wf.write_text(fifty_task_workflow(server.url))
        # Reference: the same workflow, uninterrupted.
        ref_db = f"sqlite:///{tmp_path / 'ref.db'}"
        ref = _cli("run", str(wf), "--json", "--db", ref_db)
        out, err = ref.communicate(timeout=120)
        assert ref.returncode == 0, err
        expected = json.loads(out)
        server.keys.clear()

        db = f"sqlite:///{tmp_path / 'crash.db'}"
        proc = _cli("run", str(wf), "--db", db)
        first_line = proc.stderr.readline()
        execution_id = first_line.split()[1]
        # For each kill: the actions completed by then, and how often each had run.
        snapshots: list[tuple[set[str], dict]] = []
        for target in (10, 30):
            _wait_for(db, execution_id, target, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            with server.lock:
                snapshots.append((_succeeded(db, execution_id), dict(server.keys)))
            proc = _cli("engine", "--until", execution_id, "--db", db)
        out, err = proc.communicate(timeout=120)
        proc.wait()

    assert proc.returncode == 0, err
    eng = create_engine(db)
    with eng.connect() as conn:
        final = json.loads(subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "engine", "--until", execution_id,
             "--json", "--db", db], capture_output=True, text=True, check=True).stdout)
        n_tasks = conn.execute(text("select count(*) from task_executions")).scalar()
    eng.dispose()
    assert final["state"] == "SUCCESS"
    assert final["output"] == expected["output"]
    assert n_tasks == 50
    assert sorted((t["name"], t["published"]) for t in final["tasks"]) == \
        sorted((t["name"], t["published"]) for t in expected["tasks"])
    # Every action execution of the run reached the server; one in flight at a
    # kill ran once more after it (same key), so at most once more per kill; and
    # none that had completed before a kill ran again after it.
    assert len(server.keys) == 48
    assert max(server.keys.values()) <= 1 + len(snapshots)
    for completed, counts in snapshots:
        assert [k for k in completed if server.keys[k] != counts[k]] == []
    assert len(snapshots[-1][0]) >= 30
