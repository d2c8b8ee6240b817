"""Structured logs: ``orchestrator serve --log-format json`` writes one JSON object
per stderr line, engine lines name their execution, task and action execution,
and a secret of the execution never appears; the formatter and the context
in-process."""
from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from orchestrator import logs, secrets
from tests.test_serve import ROOT, TIMEOUT, Server

SECRET = f"s3cr3t-{uuid.uuid4().hex[:12]}"

WORKBOOK = """
version: '2.0'
name: leaky
workflows:
  login:
    input: [password, url]
    tasks:
      connect:
        action: std.echo output="connecting" delay=0.2
        on-success: call
      call:
        action: std.http url="<% $.url %>?token=<% $.password %>"
        on-error: refuse
      refuse:
        action: std.fail error_data="login refused for <% $.password %>"
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"a stderr line is not JSON: {line!r}")
        assert {"ts", "level", "logger", "message"} <= record.keys(), record
        out.append(record)
    return out


def test_serve_logs_json_lines_with_ids_and_no_secret(tmp_path):
    server = Server(f"sqlite:///{tmp_path}/orch.db", "--no-auth", "--log-format", "json",
                    "--log-level", "info")
    http = requests.Session()
    try:
        url = server.url
        r = http.post(f"{url}/v2/workbooks", data=WORKBOOK, timeout=TIMEOUT,
                          headers={"Content-Type": "text/plain"})
        assert r.status_code == 201, r.text
        r = http.post(f"{url}/v2/executions", timeout=TIMEOUT, json={
            "workflow_name": "leaky.login",
            "input": {"password": SECRET, "url": f"http://127.0.0.1:{closed_port()}/login"},
            "params": {"env": {"db_password": SECRET}, "secrets": ["db_password"]}})
        assert r.status_code == 201, r.text
        execution_id = r.json()["id"]
        deadline = time.monotonic() + TIMEOUT
        while http.get(f"{url}/v2/executions/{execution_id}",
                       timeout=TIMEOUT).json()["state"] == "RUNNING":
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
    finally:
        code = server.stop()
        http.close()
    assert code == 0, server.log()
    text = server.log()
    assert SECRET not in text
    records = parse(server.lines)

    server_lines = [r["message"] for r in records if r["logger"] == "orchestrator.server"]
    assert any(m.startswith("orchestrator serving http://") for m in server_lines)
    assert any(m.startswith("stopping") for m in server_lines)
    assert {r["level"] for r in records if "authentication is off" in r["message"]} == \
        {"WARNING"}

    engine = [r for r in records if r["logger"] == "orchestrator.engine"]
    assert engine, text
    assert all(r["execution_id"] == execution_id for r in engine), engine
    by_message = {r["message"].split(":")[0]: r for r in engine}
    assert f"execution {execution_id} of leaky.login started" in by_message
    assert f"execution {execution_id} of leaky.login ended ERROR" in by_message
    http = by_message["action std.http failed"]
    refused = by_message["task 'refuse' failed"]
    assert http["task_id"] and http["action_execution_id"] and http["task_id"] != \
        refused["task_id"]
    assert "token=***" in http["message"]
    assert "login refused for ***" in refused["message"]
    assert "action_execution_id" not in refused  # a task line, not about one action
    assert by_message["action std.fail failed"]["task_id"] == refused["task_id"]


def test_a_cli_error_is_a_json_line_too():
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--log-format", "json", "serve",
         "--no-auth", "--host", "0.0.0.0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 4
    (record,) = parse(done.stderr.splitlines())
    assert record["level"] == "ERROR" and record["logger"] == "orchestrator.cli"
    assert record["message"].startswith("error: --no-auth serves only on 127.0.0.1")


# -- in-process ------------------------------------------------------------------------
@pytest.fixture
def captured():
    """A JSON handler on a logger of its own (the root logger is left alone)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(secrets.MaskingFilter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex[:6]}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def lines() -> list[dict]:
        return parse(stream.getvalue().splitlines())

    logger.lines = lines
    yield logger
    logger.removeHandler(handler)


def test_the_context_nests_and_an_inner_one_can_unset_an_id(captured):
    with logs.context(execution_id="e1", task_id=None):
        captured.info("one")
        with logs.context(task_id="t1", action_execution_id="a1", salt_jid="2026"):
            captured.info("two")
            with logs.LogContext({"action_execution_id": None, "task_id": "t2"}):
                captured.info("three")  # None: not about any action execution
        captured.info("four")
    captured.info("five")
    ids = [{k: r.get(k) for k in logs.IDS if k in r} for r in captured.lines()]
    assert ids == [
        {"execution_id": "e1"},
        {"execution_id": "e1", "task_id": "t1", "action_execution_id": "a1", "salt_jid": "2026"},
        {"execution_id": "e1", "task_id": "t2", "salt_jid": "2026"},
        {"execution_id": "e1"},
        {},
    ]


def test_each_thread_has_its_own_context(captured):
    ready = threading.Event()

    def other():
        with logs.context(execution_id="theirs"):
            ready.wait(5)
            captured.info("there")

    t = threading.Thread(target=other)
    t.start()
    with logs.context(execution_id="ours"):
        captured.info("here")
        ready.set()
        t.join(5)
    assert {r["message"]: r["execution_id"] for r in captured.lines()} == \
        {"here": "ours", "there": "theirs"}


def test_a_remembered_secret_is_masked_in_messages_and_tracebacks(captured):
    secret = f"pw-{uuid.uuid4().hex[:10]}"
    secrets.remember([secret])
    try:
        raise ValueError(f"bad password {secret}")
    except ValueError:
        captured.exception("login with %s failed", secret)
    (record,) = captured.lines()
    assert record["message"] == "login with *** failed"
    assert "ValueError: bad password ***" in record["exception"]
    assert secret not in json.dumps(record)
    assert record["level"] == "ERROR" and record["ts"].endswith("Z")


def test_printed_status_lines_become_records(captured):
    stream = logs.LogStream(captured.name)
    print("WARNING: careful", file=stream)
    stream.write("half a ")
    stream.write("line\n\n")
    assert [(r["level"], r["message"]) for r in captured.lines()] == \
        [("WARNING", "careful"), ("INFO", "half a line")]
