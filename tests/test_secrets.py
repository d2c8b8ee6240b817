"""Secrets: every leaf and every derived form masked (text, values, log lines),
and encrypted at rest (raw rows of the real store on SQLite and PostgreSQL),
with the key from a file created 0600 or from ORCH_SECRET_KEY."""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import text

from orchestrator import catalog, secrets
from orchestrator.engine import control
from orchestrator.secrets import MASK
from tests.conftest import Runner

ROOT = Path(__file__).resolve().parents[1]
NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def key_file(tmp_path, monkeypatch) -> Path:
    """A key file of this test's own (never the user's data directory)."""
    path = tmp_path / "keys" / "secret.key"
    monkeypatch.delenv("ORCH_SECRET_KEY", raising=False)
    monkeypatch.setenv("ORCH_SECRET_KEY_FILE", str(path))
    return path


def derived(s: str) -> tuple[list[str], list[str]]:
    """Forms a secret takes on its way to a user, computed here independently:
    (forms in any letter case, base64 forms)."""
    texts = [s, repr(s)[1:-1], ascii(s)[1:-1], json.dumps(s)[1:-1],
             json.dumps(s, ensure_ascii=False)[1:-1], json.dumps(json.dumps(s))[1:-1],
             quote(s, safe=""), quote_plus(s), html.escape(s)]
    b64 = [base64.b64encode(s.encode()).decode().rstrip("="),
           base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")]
    return texts, b64


def assert_hidden(shown: str, *values: str) -> None:
    low = shown.lower()
    for value in values:
        texts, b64 = derived(value)
        for form in texts:
            assert form.lower() not in low, f"{form!r} (a form of {value!r}) is shown: {shown}"
        for form in b64:
            assert form not in shown, f"{form!r} (base64 of {value!r}) is shown: {shown}"


# -- masking ---------------------------------------------------------------------------------
SECRET = "Pw'd\"x\\ñ+/&z-" + uuid.uuid4().hex[:6]


def test_every_leaf_of_a_mapping_or_list_secret_is_hidden():
    env = {"db": {"user": "admin-ops", "password": SECRET, "port": 54321, "tls": True,
                  "hosts": ["db-one.example", "db-two.example"]},
           "region": "eu-west", "pin": "12"}
    hide = secrets.values_of(env, ["db", "pin"])
    assert set(hide) == {"admin-ops", SECRET, "54321", "db-one.example", "db-two.example"}
    shown = secrets.mask({"published": env["db"], "text": f"login admin-ops/{SECRET}:54321",
                          "port": 54321, "region": "eu-west"}, hide)
    assert shown == {"published": {"user": MASK, "password": MASK, "port": MASK, "tls": True,
                                   "hosts": [MASK, MASK]},
                     "text": f"login {MASK}/{MASK}:{MASK}", "port": MASK, "region": "eu-west"}
    assert secrets.masked_env(env, ["db"]) == {"db": MASK, "region": "eu-west", "pin": "12"}


@pytest.mark.parametrize("form", [
    pytest.param(lambda s: s.upper(), id="toUpper"),
    pytest.param(lambda s: s.lower(), id="toLower"),
    pytest.param(lambda s: f"invalid literal for int(): {s!r}", id="repr"),
    pytest.param(lambda s: str({"password": s}), id="repr-in-dict"),
    pytest.param(lambda s: repr(f"""both quotes ' " and {s}"""), id="repr-both-quotes"),
    pytest.param(lambda s: ascii(s), id="ascii"),
    pytest.param(lambda s: json.dumps({"p": s}), id="json"),
    pytest.param(lambda s: json.dumps({"p": s}, ensure_ascii=False), id="json-utf8"),
    pytest.param(lambda s: json.dumps(json.dumps({"p": s})), id="json-twice"),
    pytest.param(lambda s: repr(json.dumps({"p": s})), id="repr-of-json"),
    pytest.param(lambda s: "https://h/x?q=" + quote_plus(s), id="url-plus"),
    pytest.param(lambda s: "https://h/" + quote(s, safe=""), id="url-quote"),
    pytest.param(lambda s: "https://h/" + quote(s, safe="").lower(), id="url-lower-hex"),
    pytest.param(lambda s: f"<b>{html.escape(s)}</b>", id="html"),
    pytest.param(lambda s: base64.b64encode(s.encode()).decode(), id="base64"),
    pytest.param(lambda s: base64.b64encode(b"x" + s.encode()).decode(), id="base64-offset-1"),
    pytest.param(lambda s: base64.b64encode(b"xy" + s.encode() + b"!").decode(),
                 id="base64-offset-2"),
    pytest.param(lambda s: base64.urlsafe_b64encode(b"xyz" + s.encode()).decode(),
                 id="base64-urlsafe"),
    pytest.param(lambda s: "Basic " + base64.b64encode(
        f"some-user:{s}".encode("latin-1")).decode(), id="basic-auth-latin1"),
])
def test_derived_forms_of_a_secret_are_masked(form):
    shown = form(SECRET)
    masked = secrets.mask({"k": shown}, [SECRET])["k"]
    assert MASK in masked
    assert_hidden(masked, SECRET)
    # What is left of a base64 text is only the bits of what surrounds the secret.
    assert len(masked) < len(shown)


def test_credentials_are_masked_whatever_the_secrets():
    value = {"headers": {"Authorization": "Basic dXNlcjpodW50ZXIy", "X-Trace": "abc"},
             "auth": ["user", "hunter2"], "verbose": True,
             "error": "401 for {'authorization': 'Bearer tok-123'} and Authorization: Basic Zm9v",
             "copied": "enc:v1:gAAAAABnAbCdEf0123456789-_=="}
    assert secrets.mask(value, []) == {
        "headers": {"Authorization": "Basic ***", "X-Trace": "abc"}, "auth": MASK,
        "verbose": True,
        "error": "401 for {'authorization': 'Bearer ***'} and Authorization: Basic ***",
        "copied": MASK}


def test_a_secret_used_as_a_key_is_masked_and_text_around_it_is_kept():
    hide = secrets.values_of({"t": "tok-4242"}, ["t"])
    assert secrets.mask({"tok-4242": "ok", "n": [1, 4242, "x tok-4242 y"]}, hide) == \
        {MASK: "ok", "n": [1, 4242, f"x {MASK} y"]}


def test_one_compiled_masker_per_set_of_secrets():
    a = secrets.masker(["alpha-1", "beta-2"])
    assert secrets.masker(["beta-2", "alpha-1"]) is a
    assert secrets.masker(a) is a


def test_a_long_multi_line_secret_and_many_secrets_compile():
    pem = "-----BEGIN KEY-----\n" + "\n".join(uuid.uuid4().hex * 2 for _ in range(60)) + "\n"
    many = [f"secret-{i}-{uuid.uuid4().hex[:8]}" for i in range(2000)]
    m = secrets.masker([pem, *many])
    assert m.text(json.dumps({"key": pem})) == json.dumps({"key": MASK})
    assert m.text(f"a {many[1234]} b {many[7].upper()}") == f"a {MASK} b {MASK}"


# -- log lines ------------------------------------------------------------------------------
def test_log_lines_hide_derived_forms_and_tracebacks():
    secret = f"lg'{uuid.uuid4().hex[:8]}\"é"
    secrets.remember(secrets.leaves({"nested": [secret]}))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(secrets.MaskingFilter())
    logger = logging.getLogger(f"test.secrets.{uuid.uuid4().hex[:6]}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.warning("upper %s repr %r json %s", secret.upper(), secret, json.dumps(secret))
        logger.warning("header Authorization: Basic %s",
                       base64.b64encode(f"u:{secret}".encode()).decode())
        try:
            raise ValueError(f"bad {secret!r}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count(MASK) >= 5, out
    assert "ValueError: bad '***'" in out
    assert_hidden(out, secret)


# -- encryption at rest -----------------------------------------------------------------------
def raw(store, sql: str) -> str:
    """Rows as the database holds them, as text."""
    with store.begin() as conn:
        return json.dumps([list(map(str, r)) for r in conn.execute(text(sql))])


ENV = {"db": {"user": "admin-raw", "password": "pw-raw-" + uuid.uuid4().hex[:8]},
       "token": "tok-raw-" + uuid.uuid4().hex[:8], "region": "eu-west"}
LEAVES = ("admin-raw", ENV["db"]["password"], ENV["token"])


def test_environments_store_secrets_encrypted_and_clear_again_when_no_longer_secret(
        store, key_file):
    with store.begin() as conn:
        row = catalog.create_environment(conn, "p", "prod", ENV, ["db", "token"], "", NOW)
        assert catalog.masked_variables(row) == {"db": MASK, "token": MASK, "region": "eu-west"}
    stored = raw(store, "SELECT CAST(variables AS TEXT) FROM environments")
    for leaf in LEAVES:
        assert leaf not in stored
    assert "enc:v1:" in stored and "eu-west" in stored
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    with store.begin() as conn:  # a PUT that sends *** back keeps the value
        row = catalog.update_environment(conn, "p", "prod", NOW,
                                         variables={**ENV, "db": MASK}, secrets=["db"])
    assert secrets.open_value(row["variables"]["db"]) == ENV["db"]
    assert row["variables"]["token"] == ENV["token"]  # no longer secret: in clear again
    assert catalog.masked_variables(row)["token"] == ENV["token"]


SUB = """
version: '2.0'
main:
  output:
    password: <% $.password %>
    child: <% $.child %>
  tasks:
    read:
      action: std.echo output=<% env().db.password %>
      publish:
        password: <% task().result %>
        params_env: <% execution().params.env.token %>
      on-success: [sub]
    sub:
      workflow: child
      publish:
        child: <% task().result.token %>
child:
  output:
    token: <% env().token %>
  tasks:
    noop:
      action: std.noop
"""


def test_an_executions_pinned_env_is_encrypted_and_env_reads_it_decrypted(store):
    runner = Runner(store)
    s = runner.run(SUB, workflow="main", env=ENV, secrets=["db", "token"])
    assert s["state"] == "SUCCESS", s
    # The engine decrypts for env(), execution() and a sub-workflow's env().
    assert s["output"] == {"password": ENV["db"]["password"], "child": ENV["token"]}
    assert Runner.task(s, "read")["published"]["params_env"] == ENV["token"]
    params = raw(store, "SELECT CAST(params AS TEXT) FROM executions")
    for leaf in LEAVES:
        assert leaf not in params
    assert params.count("enc:v1:") == 4  # db and token, in main and in child
    assert "eu-west" in params


# Its first step waits: what the second reads is decided after the start.
LATER = """
version: '2.0'
later:
  output:
    token: <% $.token %>
  tasks:
    hold:
      action: std.async_noop
      on-success: [use]
    use:
      action: std.echo output=<% env().token %>
      publish:
        token: <% task().result %>
"""


def complete_hold(store) -> None:
    with store.begin() as conn:
        (action_id,) = conn.execute(text("SELECT id FROM action_executions")).one()
    control.complete_action(store, action_id, "SUCCESS")


def test_values_stored_before_encryption_still_work(store):
    """Rows written before encryption hold secrets in clear: read as they are."""
    runner = Runner(store)
    execution_id = runner.run(LATER, env={"token": "x"})["id"]
    legacy = {"env": ENV, "secrets": ["db", "token"]}
    with store.begin() as conn:
        conn.execute(text("UPDATE executions SET params = :p WHERE id = :id"),
                     {"p": json.dumps(legacy), "id": execution_id})
    complete_hold(store)
    runner.drive()
    assert runner.summary(execution_id)["output"] == {"token": ENV["token"]}
    assert secrets.values_of(ENV, ["db"]) == sorted(LEAVES[:2], key=len, reverse=True)
    # A value that only looks like a token is a value.
    assert secrets.open_value("enc:v1:not-a-token") == "enc:v1:not-a-token"


def test_the_key_file_is_created_once_0600_even_by_processes_racing(tmp_path, key_file):
    code = ("import sys; from orchestrator import secrets; "
            "print(secrets.seal(sys.argv[1]), flush=True)")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"value-{i}"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    tokens = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        tokens.append(out.strip())
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key_file.read_text().split()) == 1
    secrets.reset()
    assert [secrets.open_value(t) for t in tokens] == [f"value-{i}" for i in range(6)]


def test_the_key_may_come_from_a_variable_and_a_wrong_key_says_which(monkeypatch, key_file):
    from cryptography.fernet import Fernet

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("ORCH_SECRET_KEY", first)
    sealed = secrets.seal({"a": ["b"]})
    assert not key_file.exists()
    secrets.reset()
    assert secrets.open_value(sealed) == {"a": ["b"]}
    monkeypatch.setenv("ORCH_SECRET_KEY", f"{second},{first}")  # rotation: both decrypt
    secrets.reset()
    assert secrets.open_value(sealed) == {"a": ["b"]}
    monkeypatch.setenv("ORCH_SECRET_KEY", second)
    secrets.reset()
    with pytest.raises(secrets.SecretKeyError, match="ORCH_SECRET_KEY"):
        secrets.open_value(sealed)
    monkeypatch.setenv("ORCH_SECRET_KEY", "not-a-key")
    secrets.reset()
    with pytest.raises(secrets.SecretKeyError, match="not a Fernet key"):
        secrets.seal("x")
    monkeypatch.delenv("ORCH_SECRET_KEY")
    secrets.reset()
    with pytest.raises(secrets.SecretKeyError, match=f"{key_file}.*does not exist"):
        secrets.open_value(sealed)


def test_a_wrong_key_fails_the_task_with_a_message_naming_the_key_file(store, key_file):
    runner = Runner(store)
    execution_id = runner.run(LATER, env=ENV, secrets=["token"])["id"]
    key_file.write_text(new_key() + "\n")  # the key is lost: another one is in its place
    secrets.reset()
    complete_hold(store)
    runner.drive()
    s = runner.summary(execution_id)
    assert s["state"] == "ERROR", s
    info = Runner.task(s, "use")["state_info"]
    assert str(key_file) in info and "another key" in info, info


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# -- std.http: the password of a URL's user info --------------------------------------------
class _Ok(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_std_http_never_shows_the_password_of_a_url(monkeypatch):
    from orchestrator.actions import std
    from orchestrator.actions.base import ActionContext
    from orchestrator.errors import ActionError

    password = f"url-pw-{uuid.uuid4().hex[:6]}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.seen = []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    ctx = ActionContext(execution_id="e", task_execution_id="t", action_execution_id="a",
                        task_name="call", workflow_name="wf")
    try:
        port = server.server_address[1]
        result = std.Http(url=f"http://ops:{password}@127.0.0.1:{port}/x").run(ctx)
    finally:
        server.shutdown()
        server.server_close()
    assert server.seen == ["Basic " + base64.b64encode(f"ops:{password}".encode()).decode()]
    assert result["url"] == f"http://ops:***@127.0.0.1:{port}/x"
    with pytest.raises(ActionError) as caught:  # the server is gone: could not connect
        std.Http(url=f"http://ops:{password}@127.0.0.1:{port}/x", timeout=5).run(ctx)
    assert password not in str(caught.value) and "ops:***@" in str(caught.value)
    # And the process's log lines hide it, with the Basic header made of it.
    hide = secrets.known()
    assert hide.text(f"{password} Authorization: {server.seen[0]}") == \
        "*** Authorization: Basic ***"
    masked = hide.text(f"seen {server.seen[0]}")
    assert server.seen[0] not in masked and "***" in masked
