"""A full disk (or a database at its size limit) answers 503 "database or disk is
full" in the API's error shape, and the service recovers by itself, without a
restart, once space returns."""
from __future__ import annotations

import errno
import os
import pwd
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import event

from orchestrator.api import ApiConfig, create_app
from orchestrator.store.db import Store
from tests.conftest import PG_ADMIN_URL
from tests.store.conftest import Started

PADDING = "x" * 60_000  # per environment: a few of them fill any WAL's spare room
ATTEMPTS = 200  # writes tried before the disk must have answered "full"
FULL = {"error": "ServiceUnavailable", "message": "database or disk is full"}


def _environment(i: int) -> dict:
    return {"name": f"env-{i}-{uuid.uuid4().hex[:6]}", "variables": {"padding": PADDING}}


def _write_until_full(post) -> tuple[int, object]:
    """POST environments until one is refused; (its status, its response)."""
    for i in range(ATTEMPTS):
        response = post(_environment(i))
        if response.status_code != 201:
            return response.status_code, response
    pytest.fail(f"{ATTEMPTS} writes of {len(PADDING)} bytes all succeeded: the disk never filled")


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem has no space left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 16 or 1]
    finally:
        os.close(fd)
    return filler


@contextmanager
def _tmpfs(size: str):
    """A small tmpfs (needs root, as in CI): a real filesystem that fills up."""
    mnt = Path(tempfile.mkdtemp(prefix="orch-disk-"))
    os.chmod(mnt, 0o755)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here (root needed): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
        mnt.rmdir()


@pytest.fixture
def small_disk():
    with _tmpfs("4m") as mnt:
        yield mnt


def _full_then_space_returns(url: str, disk: Path) -> None:
    """A real server on ``url``: fill ``disk``, writes get 503 and reads still work;
    free it, the next write succeeds, same process."""
    server = Started("serve", "--no-auth", "--port", "0", "--db", url)
    assert server.started, server.stderr
    try:
        def post(body):
            return requests.post(f"{server.url}/v2/environments", json=body, timeout=60)

        assert post(_environment(-1)).status_code == 201
        filler = _fill(disk)
        status, response = _write_until_full(post)
        assert (status, response.json()) == (503, FULL), (status, response.text)
        assert response.headers.get("Retry-After")
        assert requests.get(f"{server.url}/v2/environments", timeout=60).status_code == 200
        filler.unlink()  # space returns
        again = post(_environment(9999))
        assert again.status_code == 201, again.text
        assert server.code is None, "the server must not have stopped"
    finally:
        server.stop()
    assert "Traceback" not in server.stderr, server.stderr


def test_a_full_disk_gives_503_and_the_server_recovers_when_space_returns(small_disk):
    _full_then_space_returns(f"sqlite:///{small_disk / 'orchestrator.db'}", small_disk)


def test_a_database_at_its_size_limit_gives_503_and_recovers_when_it_is_raised(tmp_path):
    """Without root: SQLite's max_page_count is a full disk as the store sees it
    (the same SQLITE_FULL). The real app, on a real file."""
    store = Store(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    limit = {"pages": 0}

    @event.listens_for(store.engine, "checkout")
    def _limit(dbapi_conn, _record, _proxy):
        if limit["pages"]:
            dbapi_conn.execute(f"PRAGMA max_page_count = {limit['pages']}")

    client = create_app(ApiConfig(store=store, no_auth=True)).test_client()
    try:
        assert client.post("/v2/environments", json=_environment(-1)).status_code == 201
        with store.connect() as conn:
            limit["pages"] = conn.exec_driver_sql("PRAGMA page_count").scalar()
        status, response = _write_until_full(lambda b: client.post("/v2/environments", json=b))
        assert (status, response.get_json()) == (503, FULL), (status, response.get_data())
        assert client.get("/v2/environments").status_code == 200
        limit["pages"] = 1 << 30  # space returns
        assert client.post("/v2/environments", json=_environment(9999)).status_code == 201
    finally:
        store.dispose()


@pytest.mark.postgres
def test_a_full_postgresql_tablespace_gives_503_and_the_server_recovers():
    """PostgreSQL's disk_full: the database in a tablespace on a small tmpfs (the
    server runs on this machine)."""
    import psycopg

    with _tmpfs("32m") as disk:
        postgres = pwd.getpwnam("postgres")
        space = disk / "pg"
        space.mkdir()
        os.chown(space, postgres.pw_uid, postgres.pw_gid)
        name = f"orch_full_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"CREATE TABLESPACE {name} LOCATION '{space}'")
            admin.execute(f'CREATE DATABASE "{name}" TABLESPACE {name}')
        try:
            _full_then_space_returns(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", disk)
        finally:
            for leftover in disk.glob("filler*"):
                leftover.unlink()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f"DROP TABLESPACE IF EXISTS {name}")
