"""The SQLite store holds every project's credentials: its file, WAL and shared
memory file are 0600 and its directory 0700, whatever the umask."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.store.conftest import DEADLINE, ROOT

# Opens the store, writes (so the WAL has frames), and reports the modes while
# the connection is still open (the WAL and shared memory go when it closes).
OPEN_AND_REPORT = """
import json, os, stat, sys
from sqlalchemy import text
from orchestrator.store.db import Store
store = Store(sys.argv[1] if len(sys.argv) > 1 else None)
with store.begin() as conn:
    conn.execute(text("INSERT INTO specs (hash, body, created_at) VALUES (:h, '{}', 0)"),
                 {"h": os.urandom(8).hex()})
path = store.url.split("///", 1)[1]
modes = {}
for p in (os.path.dirname(path), path, path + "-wal", path + "-shm"):
    modes[p] = stat.S_IMODE(os.stat(p).st_mode) if os.path.exists(p) else None
print(json.dumps(modes))
store.dispose()
"""


def _modes(*args: str, umask: int, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", OPEN_AND_REPORT, *args], cwd=ROOT,
                         capture_output=True, text=True, umask=umask, timeout=DEADLINE,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr
    return {path: mode for path, mode in json.loads(out.stdout).items()}


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000], ids=lambda m: f"umask-{m:03o}")
def test_a_new_sqlite_store_and_its_wal_are_0600(tmp_path, umask):
    path = tmp_path / "orchestrator.db"
    modes = _modes(f"sqlite:///{path}", umask=umask)
    files = {p: m for p, m in modes.items() if p != str(tmp_path)}
    assert files == {str(path): 0o600, f"{path}-wal": 0o600, f"{path}-shm": 0o600}, \
        {p: m and oct(m) for p, m in files.items()}


def test_the_default_store_directory_is_0700(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    env_without_url = {k: v for k, v in os.environ.items() if k != "ORCH_DATABASE_URL"}
    out = subprocess.run([sys.executable, "-c", OPEN_AND_REPORT], cwd=ROOT, capture_output=True,
                         text=True, umask=0o022, timeout=DEADLINE,
                         env={**env_without_url, **env})
    assert out.returncode == 0, out.stderr
    modes = json.loads(out.stdout)
    home = tmp_path / "data" / "orchestrator"
    assert modes == {str(home): 0o700, str(home / "orchestrator.db"): 0o600,
                     str(home / "orchestrator.db-wal"): 0o600,
                     str(home / "orchestrator.db-shm"): 0o600}, \
        {p: m and oct(m) for p, m in modes.items()}


def test_an_existing_store_keeps_the_mode_its_owner_gave_it(tmp_path):
    """Only new files are made private: a file deliberately shared stays as it is,
    and its WAL follows it."""
    path = tmp_path / "orchestrator.db"
    _modes(f"sqlite:///{path}", umask=0o022)
    os.chmod(path, 0o640)
    modes = _modes(f"sqlite:///{path}", umask=0o022)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert modes[f"{path}-wal"] == modes[f"{path}-shm"] == 0o640
