"""Opening the store: SQLite (embedded default, WAL) or PostgreSQL by URL.

The caller owns transactions: ``with store.begin() as conn:`` is one
transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue up instead of
failing on lock upgrades). The schema is created and upgraded by Alembic
when the store is opened.
"""
from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
_after_commit: ContextVar[list | None] = ContextVar("orchestrator_after_commit", default=None)


def after_commit(fn) -> None:
    """Call ``fn()`` once the innermost ``Store.begin()`` transaction of this
    thread has committed; never if it rolls back (nor outside one)."""
    hooks = _after_commit.get()
    if hooks is not None:
        hooks.append(fn)


def data_dir() -> Path:
    """The user's data directory for the orchestrator (created if missing)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    path = base / "orchestrator"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_url() -> str:
    """``ORCH_DATABASE_URL``, else a SQLite file in the user's data directory."""
    url = os.environ.get("ORCH_DATABASE_URL")
    if url:
        return url
    path = data_dir() / "orchestrator.db"
    return f"sqlite:///{path}"


def _normalise(url: str) -> str:
    # Users write the plain URL; psycopg 3 is the driver we ship.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Store:
    """A database: its SQLAlchemy engine and how to open transactions on it."""

    def __init__(self, url: str | None = None, migrate: bool = True):
        self.url = _normalise(url or default_url())
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine: Engine = self._create_engine()
        self._lock = threading.Lock()
        if migrate:
            self.migrate()

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Autocommit at the driver level; we issue BEGIN ourselves (SQLAlchemy recipe).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def begin(self):
        """One transaction; commits on success, rolls back on any exception."""
        hooks: list = []
        token = _after_commit.set(hooks)
        try:
            with self.engine.begin() as conn:
                yield conn
        finally:
            _after_commit.reset(token)
        for fn in hooks:  # metrics and log lines of what was committed
            try:
                fn()
            except Exception:
                log.exception("after-commit hook %r failed", fn)

    def connect(self) -> Connection:
        return self.engine.connect()

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._lock, self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()
