"""Creating and upgrading the schema: several processes at once on an empty
PostgreSQL database, and a database written by a newer orchestrator."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from orchestrator.store import db
from orchestrator.store.db import Store
from tests.store.conftest import DEADLINE, ROOT, one_line, refused

HEAD = ScriptDirectory(str(db.MIGRATIONS)).get_current_head()

# Each process imports everything first, says it is ready, then waits for the go
# file, so that all of them open the store at the same moment.
OPEN_AT_GO = """
import os, sys, time
from orchestrator.store.db import Store
ready, go = sys.argv[2], sys.argv[3]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
Store(sys.argv[1]).dispose()
"""

WF = """
version: '2.0'
wf:
  tasks:
    t:
      action: std.noop
"""


@pytest.mark.postgres
@pytest.mark.parametrize("attempt", range(3))
def test_four_processes_create_the_schema_of_an_empty_postgresql_database_at_once(
        fresh_pg_url, tmp_path, attempt):
    go, ready = tmp_path / "go", [tmp_path / f"ready-{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_GO, fresh_pg_url, str(r), str(go)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for r in ready]
    deadline = time.monotonic() + DEADLINE
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outcomes = [(p.wait(DEADLINE), p.stdout.read()) for p in procs]
    for p in procs:
        p.stdout.close()
    assert [code for code, _ in outcomes] == [0] * 4, "\n".join(out for _, out in outcomes)
    engine = create_engine(db._normalise(fresh_pg_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars() \
                .all() == [HEAD]
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"executions", "task_executions", "work", "events", "cron_fires"} <= tables


def _newer(url_or_path: str) -> None:
    """Mark the database as written by a version with a revision we do not know."""
    if url_or_path.startswith("postgresql"):
        engine = create_engine(db._normalise(url_or_path))
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        engine.dispose()
        return
    with sqlite3.connect(url_or_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    conn.close()


def _assert_says_newer(message: str, where: str) -> None:
    assert message.startswith("error: "), message
    assert where in message, message
    assert "newer orchestrator" in message and "0099" in message and HEAD in message, message
    assert "upgrade orchestrator" in message and "ORCH_DATABASE_URL" in message, message


def test_a_sqlite_database_of_a_newer_version_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "orchestrator.db"
    Store(f"sqlite:///{path}").dispose()
    _newer(str(path))
    (tmp_path / "wf.yaml").write_text(WF)
    for args in (["serve", "--no-auth", "--port", "0"], ["run", str(tmp_path / "wf.yaml")],
                 ["engine"]):
        run = refused(*args, "--db", f"sqlite:///{path}")
        assert run.code not in (0, None), run.stderr
        _assert_says_newer(one_line(run.stderr), str(path))
    # Nothing was changed: the newer version still finds its own revision.
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0099",)]
    conn.close()


@pytest.mark.postgres
def test_a_postgresql_database_of_a_newer_version_is_refused_with_what_to_do(fresh_pg_url):
    Store(fresh_pg_url).dispose()
    _newer(fresh_pg_url)
    run = refused("serve", "--role", "engine", "--db", fresh_pg_url)
    assert run.code not in (0, None), run.stderr
    _assert_says_newer(one_line(run.stderr), fresh_pg_url.rsplit("/", 1)[1])
