"""A damaged SQLite file is refused at start with what to do, not served until a
request reaches the damaged page."""
from __future__ import annotations

import json
import os
import sqlite3

from orchestrator.store.db import Store
from tests.store.conftest import Started, one_line, refused

WF = """
version: '2.0'
wf:
  tasks:
    t:
      action: std.noop
"""


def _store_with_many_events(path) -> None:
    """A real store whose events table fills most of the file (about 400 pages)."""
    Store(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO events (execution_id, task_id, at, kind, data) VALUES (?, ?, ?, ?, ?)",
            [(f"ex-{i:06d}", None, float(i), "task.SUCCESS",
              json.dumps({"info": "y" * 200, "i": i})) for i in range(5000)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _corrupt_a_middle_page(path) -> None:
    """Overwrite 256 bytes in the middle of the page in the middle of the file."""
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    pages = os.path.getsize(path) // page_size
    with open(path, "r+b") as f:
        f.seek((pages // 2) * page_size + page_size // 2 - 128)
        f.write(bytes(range(256)))


def test_a_corrupted_sqlite_file_is_refused_at_start_with_what_to_do(tmp_path):
    path = tmp_path / "orchestrator.db"
    _store_with_many_events(path)
    _corrupt_a_middle_page(path)
    # The damage is real, and the small pages opening the store does not see it.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() != ("ok",)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall()
    conn.close()
    (tmp_path / "wf.yaml").write_text(WF)
    for args in (["serve", "--no-auth", "--port", "0"], ["run", str(tmp_path / "wf.yaml")]):
        run = refused(*args, "--db", f"sqlite:///{path}")
        assert run.code not in (0, None), run.stderr
        message = one_line(run.stderr)
        assert message.startswith("error: ") and str(path) in message, message
        assert "damaged" in message and "backup" in message and ".recover" in message, message


def test_a_file_that_is_not_a_database_is_refused_with_what_it_is(tmp_path):
    path = tmp_path / "orchestrator.db"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    run = refused("serve", "--no-auth", "--port", "0", "--db", f"sqlite:///{path}")
    assert run.code not in (0, None), run.stderr
    message = one_line(run.stderr)
    assert str(path) in message and "not an SQLite database" in message, message


def test_the_start_check_is_skipped_above_its_size_limit(tmp_path):
    """Huge files: the check is bounded by ORCH_STARTUP_CHECK_MAX_MB (0: never)."""
    path = tmp_path / "orchestrator.db"
    _store_with_many_events(path)
    _corrupt_a_middle_page(path)
    server = Started("serve", "--no-auth", "--port", "0", "--db", f"sqlite:///{path}",
                     env={"ORCH_STARTUP_CHECK_MAX_MB": "0"})
    try:
        assert server.started, server.stderr
    finally:
        server.stop()
