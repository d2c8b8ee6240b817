"""Secrets through the API, with a real workflow: a mapping secret published,
``toUpper()`` of a secret, std.http with basic auth to a real local HTTP server
that echoes what it got (JSON-escaped, URL-encoded, base64), and errors that
quote a secret. No form of any secret is in a response, an event or a log line;
the environment and the execution's pinned copy are encrypted in the store and
the ciphertext is never shown."""
from __future__ import annotations

import base64
import io
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

from orchestrator import logs, secrets
from tests.test_secrets import assert_hidden, new_key

UID = uuid.uuid4().hex[:8]
USER = f"admin-{UID}"
PASSWORD = f"Pw'{UID}\"\\ñ&"  # quote, backslash and non-ASCII: escaped in repr and JSON
TOKEN = f"Tok-{UID}/+é x"  # URL-encoded differently by each encoder
KEYS = [f"key-one-{UID}", f"key-two-{UID}"]
LEAVES = (USER, PASSWORD, TOKEN, *KEYS)
ENV = {"name": "prod", "variables": {"db": {"user": USER, "password": PASSWORD, "port": 5432},
                                     "token": TOKEN, "keys": KEYS, "region": "eu-west"},
       "secrets": ["db", "token", "keys"]}

WORKFLOWS = """
version: '2.0'
leak:
  input: [url]
  output:
    creds: <% $.creds %>
    upper: <% $.upper %>
    echoed: <% $.echoed %>
  tasks:
    publish:
      action: std.echo
      input:
        output:
          creds: <% env().db %>
          keys: <% env().keys %>
          upper: <% env().token.toUpper() %>
      publish:
        creds: <% task().result.creds %>
        keys: <% task().result.keys %>
        upper: <% task().result.upper %>
        lower: '{{ env().token | lower }}'
      on-success: [call]
    call:
      action: std.http
      input:
        url: <% $.url %>/echo
        method: POST
        params:
          q: <% env().token %>
        auth: [<% env().db.user %>, <% env().db.password %>]
        body:
          token: <% env().token %>
          keys: <% env().keys %>
      publish:
        echoed: <% task().result.content %>
        url: <% task().result.url %>

broken:
  tasks:
    convert:
      action: std.echo output=<% int(env().db.password) %>
      on-error: [fail]
    fail:
      action: std.fail error_data=<% env().db %>
"""


class Echo(BaseHTTPRequestHandler):
    """Answers with what it got: headers, URL, body, and the token in base64."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.got.append({"headers": dict(self.headers), "path": self.path, "body": body})
        token = json.loads(body)["token"]
        data = json.dumps({
            "headers": dict(self.headers), "seen": self.headers.get("Authorization"),
            "path": self.path, "body": body.decode(),
            "token_b64": base64.b64encode(token.encode()).decode(),
            "body_b64": base64.b64encode(body).decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.got = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "secret.key"
    monkeypatch.delenv("ORCH_SECRET_KEY", raising=False)
    monkeypatch.setenv("ORCH_SECRET_KEY_FILE", str(path))
    return path


@pytest.fixture
def log_lines():
    """Every log line of the process (engine lines at INFO), as ``serve`` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(secrets.MaskingFilter())
    root = logging.getLogger()
    engine = logging.getLogger("orchestrator.engine")
    level = engine.level
    root.addHandler(handler)
    engine.setLevel(logging.INFO)
    yield stream
    engine.setLevel(level)
    root.removeHandler(handler)


def everything(api, execution_id: str) -> list:
    """Every response that shows something of the execution."""
    paths = [f"/v2/executions/{execution_id}", "/v2/executions",
             f"/v2/executions/{execution_id}/tasks", "/v2/tasks", "/v2/action_executions",
             f"/v2/executions/{execution_id}/events", f"/v2/executions/{execution_id}/report",
             "/v2/environments", "/v2/environments/prod"]
    responses = [api.get(p) for p in paths]
    for path, r in zip(paths, responses):
        assert r.status_code == 200, (path, r.get_json())
    tasks = responses[2].get_json()["tasks"]
    responses += [api.get(f"/v2/tasks/{t['id']}") for t in tasks]
    responses += [api.get(f"/v2/tasks/{t['id']}/action_executions") for t in tasks]
    return responses


def strings(value) -> str:
    """Every key and string of a JSON value, one per line (as a user reads them)."""
    if isinstance(value, dict):
        return "\n".join(f"{k}\n{strings(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(strings(v) for v in value)
    return str(value)


def run(api, name: str, **input_) -> dict:
    r = api.post("/v2/executions", {"workflow_name": name, "input": input_,
                                    "params": {"env": "prod"}})
    assert r.status_code == 201, r.get_json()
    api.drive()
    return api.get(f"/v2/executions/{r.get_json()['id']}").get_json()


def test_no_form_of_a_secret_is_shown_anywhere(api, echo, log_lines):
    server, url = echo
    assert api.post("/v2/environments", ENV).status_code == 201
    assert api.post("/v2/workflows", yaml=WORKFLOWS).status_code == 201
    ex = run(api, "leak", url=url)
    assert ex["state"] == "SUCCESS", ex
    failed = run(api, "broken")
    assert failed["state"] == "ERROR", failed

    # The workflow ran with the real values: the server got them.
    (got,) = server.got
    assert got["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"{USER}:{PASSWORD}".encode("latin-1")).decode()
    assert json.loads(got["body"]) == {"token": TOKEN, "keys": KEYS}

    # The pinned environment shows each secret variable as *** (a mapping too).
    assert ex["params"]["env"] == {"db": "***", "token": "***", "keys": "***",
                                   "region": "eu-west"}
    assert ex["output"]["creds"] == {"user": "***", "password": "***", "port": "***"}
    assert ex["output"]["upper"] == "***"
    echoed = ex["output"]["echoed"]
    assert echoed["headers"]["Authorization"] == "Basic ***"
    assert "***" in echoed["seen"] and "***" in echoed["token_b64"]

    for execution_id in (ex["id"], failed["id"]):
        for r in everything(api, execution_id):
            raw_text = r.get_data(as_text=True)
            shown = strings(r.get_json())
            assert "enc:v1:" not in raw_text  # ciphertext is never shown
            assert_hidden(raw_text, *LEAVES)
            assert_hidden(shown, *LEAVES)
            assert base64.b64encode(f"{USER}:{PASSWORD}".encode("latin-1")).decode() \
                not in shown
    events = api.get(f"/v2/executions/{failed['id']}/events").get_json()["events"]
    assert any("***" in json.dumps(e["data"]) for e in events)
    lines = log_lines.getvalue()
    assert f"execution {failed['id']} of broken ended ERROR" in lines
    assert_hidden(lines, *LEAVES)


def test_secrets_are_encrypted_in_the_stored_rows(api, store):
    assert api.post("/v2/environments", ENV).status_code == 201
    assert api.post("/v2/workflows", yaml=WORKFLOWS).status_code == 201
    r = api.post("/v2/executions", {"workflow_name": "broken", "params": {
        "env": {"inline": {"secret": "inline-" + UID}}, "secrets": ["inline"]}})
    assert r.status_code == 201
    assert r.get_json()["params"]["env"] == {"inline": "***"}
    run(api, "broken")
    with store.begin() as conn:
        rows = [str(list(row)) for row in conn.execute(text(
            "SELECT CAST(variables AS TEXT) FROM environments UNION ALL "
            "SELECT CAST(params AS TEXT) FROM executions"))]
    assert len(rows) == 3
    for row in rows:
        assert "enc:v1:" in row
        for leaf in (*LEAVES, "inline-" + UID):
            assert leaf not in row


def test_a_wrong_key_is_a_clear_error_not_a_leak(api, key_file):
    assert api.post("/v2/environments", ENV).status_code == 201
    assert api.post("/v2/workflows", yaml=WORKFLOWS).status_code == 201
    ex = run(api, "broken")
    assert ex["state"] == "ERROR"
    good = key_file.read_text()
    key_file.write_text(new_key() + "\n")
    secrets.reset()
    # A misconfigured server is a 5xx, which the conformance check refuses: ask directly.
    r = api.client.get(f"/v2/executions/{ex['id']}", headers={"Authorization": "Bearer op-a"})
    assert r.status_code == 500
    body = r.get_json()
    assert body["error"] == "SecretKeyError" and str(key_file) in body["message"], body
    assert_hidden(r.get_data(as_text=True), *LEAVES)
    # The environment listing needs no key: its secrets are *** anyway.
    assert api.get("/v2/environments/prod").get_json()["variables"]["db"] == "***"
    # The right key restored: served again, without a restart.
    key_file.write_text(good)
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["params"]["env"]["db"] == "***"
