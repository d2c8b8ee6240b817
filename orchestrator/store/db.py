"""Opening the store: SQLite (embedded default, WAL) or PostgreSQL by URL.

The caller owns transactions: ``with store.begin() as conn:`` is one
transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue up instead of
failing on lock upgrades). The schema is created and upgraded by Alembic
when the store is opened, under an advisory lock on PostgreSQL (processes
starting together take turns).

Opening refuses, with one line that says what to do, a database written by a
newer orchestrator and (SQLite) a damaged file: ``PRAGMA quick_check`` at
start, on files up to ``ORCH_STARTUP_CHECK_MAX_MB``. A new SQLite file is
created 0600, and its WAL and shared-memory files are never more open than it.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import OrchestratorError

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key that serialises schema migrations ("orchmig").
MIGRATION_LOCK = int.from_bytes(b"orchmig", "big")
STARTUP_CHECK_MAX_MB = 256  # default of ORCH_STARTUP_CHECK_MAX_MB: at most ~2-3 s at start
DISK_FULL = "database or disk is full"
log = logging.getLogger(__name__)
_READ_ONLY = "orchestrator_read_only"
_after_commit: ContextVar[list | None] = ContextVar("orchestrator_after_commit", default=None)


class StoreUnusable(OrchestratorError):
    """The database cannot be used as it is; the message says what to do."""

    status_code = 503


def after_commit(fn) -> None:
    """Call ``fn()`` once the innermost ``Store.begin()`` transaction of this
    thread has committed; never if it rolls back (nor outside one)."""
    hooks = _after_commit.get()
    if hooks is not None:
        hooks.append(fn)


def data_dir() -> Path:
    """The user's data directory for the orchestrator (created 0700 if missing)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    path = base / "orchestrator"
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # whatever the umask
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


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None: in memory)."""
    database = make_url(url).database
    return None if not database or database == ":memory:" else database


def _create_private(path: str) -> None:
    """Create a new database file 0600 whatever the umask (SQLite gives its WAL
    and shared-memory files the mode of the database file). An existing file
    keeps the mode its owner gave it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # exists already, or SQLite will say what is wrong with the path
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _companions_like(path: str) -> None:
    """The -wal and -shm files get no permission the database file does not have."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    for companion in (path + "-wal", path + "-shm"):
        try:
            current = stat.S_IMODE(os.stat(companion).st_mode)
            if current & ~mode:
                os.chmod(companion, current & mode)
        except OSError:
            continue


def _causes(exc: BaseException | None):
    """The exception, what it wraps (``.orig``) and what caused it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        orig = getattr(exc, "orig", None)
        if orig is not None and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
        exc = exc.__cause__ or exc.__context__


def _sqlite_code(exc: BaseException | None) -> int | None:
    for e in _causes(exc):
        code = getattr(e, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF  # primary code of an extended one
    return None


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether a database error (or what caused it) is a full disk or database:
    SQLITE_FULL, or PostgreSQL's disk_full (53100)."""
    return _sqlite_code(exc) == sqlite3.SQLITE_FULL or any(
        getattr(e, "sqlstate", None) == "53100" for e in _causes(exc))


def lock_for_migrations(conn: Connection) -> None:
    """PostgreSQL: hold the migration lock until this transaction ends, so that
    processes starting at once on an empty database migrate one after another
    (the later ones then find the schema up to date)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def _check_limit_mb() -> float:
    value = os.environ.get("ORCH_STARTUP_CHECK_MAX_MB", "")
    try:
        return float(value) if value.strip() else STARTUP_CHECK_MAX_MB
    except ValueError:
        raise StoreUnusable(f"ORCH_STARTUP_CHECK_MAX_MB must be a number of megabytes, "
                            f"not {value!r}") from None


class Store:
    """A database: its SQLAlchemy engine and how to open transactions on it."""

    def __init__(self, url: str | None = None, migrate: bool = True,
                 check: bool | None = None):
        self.url = _normalise(url or default_url())
        self.is_sqlite = self.url.startswith("sqlite")
        self.path = _sqlite_path(self.url) if self.is_sqlite else None
        if self.path:
            _create_private(self.path)
        self.engine: Engine = self._create_engine()
        self._lock = threading.Lock()
        with self._opening():
            if migrate if check is None else check:
                self.check()
            if migrate:
                self.migrate()

    @property
    def where(self) -> str:
        """The database for messages: the SQLite file, or the URL without password."""
        if self.path:
            return self.path
        return make_url(self.url).set(drivername=make_url(self.url).get_backend_name()) \
            .render_as_string(hide_password=True)

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})
        path = self.path

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Autocommit at the driver level; we issue BEGIN ourselves (SQLAlchemy recipe).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()
            if path:
                _companions_like(path)

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Writers take the write lock up front (they queue instead of failing
            # on a lock upgrade); readers (store.connect()) read a WAL snapshot
            # and never wait for a writer.
            conn.exec_driver_sql("BEGIN" if conn.info.get(_READ_ONLY) else "BEGIN IMMEDIATE")

        return engine

    @contextmanager
    def _opening(self):
        """Errors of opening the store as one line that says what to do."""
        try:
            yield
        except StoreUnusable:
            raise
        except Exception as e:
            from sqlalchemy.exc import DBAPIError

            code = _sqlite_code(e)
            if code == sqlite3.SQLITE_CORRUPT:
                raise self._damaged("database disk image is malformed") from e
            if code == sqlite3.SQLITE_NOTADB:
                raise StoreUnusable(
                    f"the file {self.where} is not an SQLite database (or its header is "
                    "damaged): restore it from a backup, or point ORCH_DATABASE_URL (or "
                    "--db) at the orchestrator's database") from e
            if code == sqlite3.SQLITE_CANTOPEN:
                raise StoreUnusable(
                    f"cannot open the database file {self.where}: does its directory exist, "
                    "and may this user write there?") from e
            if is_disk_full(e):
                raise StoreUnusable(f"the database at {self.where} cannot be written: "
                                    f"{DISK_FULL}; free some space and start again") from e
            if isinstance(e, DBAPIError) or isinstance(e, sqlite3.Error):
                first = str(getattr(e, "orig", None) or e).strip().splitlines()
                raise StoreUnusable(f"cannot open the database at {self.where}: "
                                    f"{first[0] if first else type(e).__name__}") from e
            raise

    def _damaged(self, problem: str) -> StoreUnusable:
        problem = "; ".join(line.strip() for line in problem.splitlines()
                            if line.strip() and not line.startswith("***"))
        if len(problem) > 200:
            problem = problem[:200] + "..."
        return StoreUnusable(
            f"the database at {self.where} is damaged ({problem}): restore it from a backup, "
            f"or save what is readable with `sqlite3 {self.where} .recover | sqlite3 "
            f"{self.where}.recovered` and use that file (ORCH_DATABASE_URL or --db)")

    def check(self) -> None:
        """SQLite: ``PRAGMA quick_check`` (page structure, not index contents), so a
        damaged file is refused at start rather than served until a request reaches
        the damaged page. Files over ORCH_STARTUP_CHECK_MAX_MB (default 256; 0: never)
        are not checked, and that is logged."""
        if not self.path or not os.path.exists(self.path):
            return
        size = sum(os.path.getsize(p) for p in (self.path, self.path + "-wal")
                   if os.path.exists(p))
        limit = _check_limit_mb()
        if size > limit * 1024 * 1024:
            if limit > 0:
                log.warning("%s is %d MB, over ORCH_STARTUP_CHECK_MAX_MB=%g: not checked at "
                            "start (check it with: sqlite3 %s 'PRAGMA quick_check')",
                            self.path, size // (1024 * 1024), limit, self.path)
            return
        with self.connect() as conn:  # a reader: writers of other processes go on
            problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(20)")]
        if problems != ["ok"]:
            raise self._damaged("quick_check: " + "; ".join(problems))

    @contextmanager
    def begin(self):
        """One transaction; commits on success, rolls back on any exception."""
        hooks: list = []
        token = _after_commit.set(hooks)
        try:
            with self.engine.connect() as conn:
                conn.info[_READ_ONLY] = False
                with conn.begin():
                    yield conn
        finally:
            _after_commit.reset(token)
        for fn in hooks:  # metrics and log lines of what was committed
            try:
                fn()
            except Exception:
                log.exception("after-commit hook %r failed", fn)

    def connect(self) -> Connection:
        """A connection for reading: on SQLite its transactions are deferred, so a
        reader never waits for a writer (WAL). Write with :meth:`begin`."""
        conn = self.engine.connect()
        conn.info[_READ_ONLY] = True
        return conn

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision; refuse a
        database whose revision this version does not know (a newer one wrote it)."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        script = ScriptDirectory.from_config(cfg)
        with self._lock, self.begin() as conn:
            lock_for_migrations(conn)
            known = {rev.revision for rev in script.walk_revisions()}
            unknown = [r for r in MigrationContext.configure(conn).get_current_heads()
                       if r not in known]
            if unknown:
                raise StoreUnusable(
                    f"the database at {self.where} was written by a newer orchestrator "
                    f"(schema revision {', '.join(unknown)}; this one knows up to "
                    f"{script.get_current_head()}): upgrade orchestrator, or point "
                    "ORCH_DATABASE_URL (or --db) at another database")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()
