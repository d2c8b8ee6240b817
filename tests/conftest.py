"""Shared fixtures: a store on SQLite (a temporary file per test) and on the
PostgreSQL server of this machine (one database per test session, emptied
between tests), and a helper that runs a workflow to its end."""
from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from orchestrator import dsl
from orchestrator.engine import control
from orchestrator.engine.worker import Worker
from orchestrator.store.db import Store
from orchestrator.store.schema import metadata

PG_ADMIN_URL = os.environ.get("ORCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session", autouse=True)
def _secret_key_file(tmp_path_factory):
    """Tests (and the services they start) keep their secrets' key in a temporary
    directory, never in the user's data directory."""
    if "ORCH_SECRET_KEY_FILE" in os.environ or "ORCH_SECRET_KEY" in os.environ:
        yield
        return
    os.environ["ORCH_SECRET_KEY_FILE"] = str(tmp_path_factory.mktemp("keys") / "secret.key")
    yield
    os.environ.pop("ORCH_SECRET_KEY_FILE", None)


@pytest.fixture(scope="session")
def pg_url():
    import psycopg

    name = f"orch_test_{uuid.uuid4().hex[:8]}"
    admin = PG_ADMIN_URL.replace("postgresql://", "postgresql://", 1)
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:  # pragma: no cover - CI always has it
        pytest.fail(f"PostgreSQL is needed for the store tests: {e}")
    conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    yield url
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def pg_store(pg_url):
    s = Store(pg_url)
    yield s
    s.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'orchestrator.db'}")
        yield s
        s.dispose()
        return
    s = request.getfixturevalue("pg_store")
    empty(s)
    yield s


def empty(store: Store) -> None:
    """Delete every row of every table (PostgreSQL tests share one database)."""
    with store.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@contextmanager
def holding_write_lock(store: Store):
    """A thread holds a write transaction on ``store`` (as an engine step does)
    until the block ends."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        with store.begin() as conn:
            conn.execute(text("UPDATE work SET held = held"))
            holding.set()
            release.wait(120)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    try:
        assert holding.wait(30), "the writer did not start"
        yield
    finally:
        release.set()
        t.join(30)


@pytest.fixture
def sqlite_store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield s
    s.dispose()


class Runner:
    """Runs workflow text on a store with a steppable worker (no threads)."""

    def __init__(self, store: Store):
        self.store = store
        self.worker = Worker(store)

    def start(self, text_: str, input: dict | None = None, workflow: str | None = None, **kw):
        doc = dsl.load(text_, "test.yaml")
        return control.start(self.store, doc, workflow, input or {}, **kw)

    def drive(self, now: float | None = None) -> None:
        self.worker.run_until_idle(now)

    def run(self, text_: str, input: dict | None = None, workflow: str | None = None, **kw):
        """Start and drive until nothing is due; return the run summary."""
        execution_id = self.start(text_, input, workflow, **kw)
        self.drive()
        return self.summary(execution_id)

    def summary(self, execution_id: str) -> dict:
        return control.summary(self.store, execution_id)

    @staticmethod
    def task(summary: dict, name: str) -> dict:
        found = [t for t in summary["tasks"] if t["name"] == name]
        assert found, f"no task {name!r} in {[t['name'] for t in summary['tasks']]}"
        return found[-1]


@pytest.fixture
def runner(store):
    return Runner(store)
