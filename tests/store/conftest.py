"""Helpers of the store tests: a fresh PostgreSQL database per test, and the
command line run as a real process until it serves or exits."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).parent.parent.parent
STARTED = re.compile(r"orchestrator (serving (http://\S+)|running)")
DEADLINE = 60.0  # generous: a loaded machine; a green run needs a fraction of it


@pytest.fixture
def fresh_pg_url():
    """A new, empty PostgreSQL database of its own (dropped afterwards)."""
    import psycopg

    name = f"orch_store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Started:
    """``orchestrator ARGS`` as a process: either it starts serving (``url`` is set
    and it keeps running until ``stop()``), or it exits (``code``, ``stderr``)."""

    def __init__(self, *args: str, env: dict | None = None, umask: int = -1):
        self.lines: list[str] = []
        self.url: str | None = None
        self.started = False
        self._event = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args], cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **(env or {})}, umask=umask)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._event.wait(DEADLINE):
            self.stop()
            pytest.fail(f"orchestrator {' '.join(args)} neither started nor exited "
                        f"within {DEADLINE}s:\n{self.stderr}")
        if not self.started:
            self.proc.wait(DEADLINE)
            self._reader.join(5)
            self.proc.stderr.close()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            found = STARTED.search(line)
            if found and not self.started:
                self.started, self.url = True, found.group(2)
                self._event.set()
        self._event.set()  # it ended

    @property
    def code(self) -> int | None:
        return self.proc.poll()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        self.proc.stderr.close()


def refused(*args: str, **kw) -> Started:
    """Start ``orchestrator ARGS``; fail the test if it starts serving instead of
    exiting. The finished process, to check its exit code and message."""
    run = Started(*args, **kw)
    if run.started:
        run.stop()
        pytest.fail(f"orchestrator {' '.join(args)} started instead of refusing:\n{run.stderr}")
    return run


def one_line(text: str) -> str:
    """The message of a refusal: exactly one line, no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert len(lines) == 1, text
    return lines[0]
