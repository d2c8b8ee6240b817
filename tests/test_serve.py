"""The REST API over real HTTP: `orchestrator serve` processes on loopback ports,
with authentication on (two projects, three tokens), on a SQLite file (and
once on PostgreSQL). Every response is checked against the OpenAPI document
(``tests/api/conformance.py``) through an adapter for ``requests`` responses.

Executions are watched the way the CLI watches them: polling
``GET /v2/executions/{id}/events?after=N`` until a ``workflow.<STATE>`` event.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.api import conformance

ROOT = Path(__file__).parent.parent
TOKENS = {"red-op": ("red", "operator"), "red-view": ("red", "viewer"),
          "blue-op": ("blue", "operator")}
ORCH_API_TOKENS = ",".join(f"{t}={p}:{r}" for t, (p, r) in TOKENS.items())
ENDED = ("SUCCESS", "ERROR", "CANCELLED")
TIMEOUT = 20.0  # generous: a loaded CI machine; a green run needs a fraction of it

WORKBOOK = """
version: '2.0'
name: serve
workflows:
  hello:
    input:
      - who: world
    tasks:
      greet:
        action: std.echo output="hello <% $.who %>"
        publish:
          greeting: <% task().result %>
    output:
      greeting: <% $.greeting %>

  waiting:
    tasks:
      wait:
        action: std.async_noop
        publish:
          answer: <% task().result %>
        on-success: after
      after:
        action: std.noop
    output:
      answer: <% $.answer %>

  calling:
    input:
      - url
    tasks:
      call:
        action: std.http url=<% $.url %> method=POST
        publish:
          status: <% task().result.status %>
    output:
      status: <% $.status %>

  counted:
    tasks:
      one:
        action: std.noop
"""


# -- checking `requests` responses against the OpenAPI document ------------------------
class Checked:
    """The part of a Flask test response that ``conformance.check`` reads, over a
    ``requests.Response``."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.status_code = response.status_code
        content_type = response.headers.get("Content-Type", "")
        self.mimetype = content_type.split(";", 1)[0].strip().lower()

    def get_json(self):
        return self.response.json()

    def get_data(self, as_text: bool = False):
        return self.response.text if as_text else self.response.content


class Server:
    """One `orchestrator serve` process: its URL, its stderr (drained by a thread
    so the pipe never fills), and a way to stop it."""

    def __init__(self, db: str, *extra: str, env: dict | None = None):
        self.db = db
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "serve", "--port", "0", "--db", db,
             *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env={**os.environ, "ORCH_API_TOKENS": ORCH_API_TOKENS,
                                      **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(TIMEOUT) or self.url is None:
            self.kill()
            pytest.fail(f"orchestrator serve did not start:\n{self.log()}")

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(r"orchestrator serving (http://\S+)", line)
            if found and self.url is None:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()  # the process ended (before it served, if url is None)

    def log(self) -> str:
        return "".join(self.lines) or "(nothing on stderr)"

    def stop(self, timeout: float = 15.0, signal_it: bool = True) -> int | None:
        """SIGTERM (once), then the exit status (killed and None if it does not exit)."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._reader.join(5)
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        self.proc.stderr.close()

    def client(self, token: str | None) -> Client:
        return Client(self, token)


class Client:
    """``requests`` with a bearer token; every response is checked against the
    document, and a failing check shows the server's log."""

    def __init__(self, server: Server, token: str | None):
        self.server = server
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path_or_url: str, expect: int | None = None,
                **kw) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.server.url + path_or_url
        r = self.session.request(method, url, timeout=TIMEOUT, **kw)
        path = urlsplit(url).path
        try:
            conformance.check(method, path, Checked(r))
            if expect is not None:
                assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- server log ---\n{self.server.log()}") from None
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    # -- what most tests do ---------------------------------------------------------------
    def start(self, workflow: str, input: dict | None = None, **fields) -> dict:
        return self.post("/v2/executions", expect=201,
                         json={"workflow_name": workflow, "input": input or {},
                               **fields}).json()

    def watch(self, execution_id: str, after: int = 0,
              timeout: float = TIMEOUT) -> tuple[dict, list[dict]]:
        """Poll the events (after the last seen id) until the workflow ends, as the
        CLI does; the execution and every event seen."""
        events = []
        deadline = time.monotonic() + timeout
        while True:
            page = self.get(f"/v2/executions/{execution_id}/events", params={"after": after},
                            expect=200).json()["events"]
            events += page
            if page:
                after = page[-1]["id"]
            # An end event sends the CLI to read the execution, which is the authority: a
            # rerun execution has an old workflow.ERROR in its history and is RUNNING again.
            if any(e["kind"].startswith("workflow.") and e["kind"][9:] in ENDED for e in page):
                execution = self.get(f"/v2/executions/{execution_id}", expect=200).json()
                if execution["state"] in ENDED:
                    break
            self.until(time.monotonic() < deadline,
                       f"execution {execution_id} did not end: {[e['kind'] for e in events]}",
                       deadline)
            time.sleep(0.05)
        ids = [e["id"] for e in events]
        assert ids == sorted(set(ids)), f"events repeated or out of order: {ids}"
        return execution, events

    def tasks(self, execution_id: str) -> list[dict]:
        return self.get(f"/v2/executions/{execution_id}/tasks", expect=200).json()["tasks"]

    def running_action(self, execution_id: str, task: str) -> dict:
        """Wait for the RUNNING action execution of ``task``."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            found = [t for t in self.tasks(execution_id) if t["name"] == task]
            if found:
                actions = self.get(f"/v2/tasks/{found[-1]['id']}/action_executions",
                                   expect=200).json()["action_executions"]
                running = [a for a in actions if a["state"] == "RUNNING"]
                if running:
                    return running[0]
            self.until(time.monotonic() < deadline,
                       f"no running action of {task} in {execution_id}", deadline)
            time.sleep(0.05)

    def until(self, ok: bool, message: str, deadline: float) -> None:
        assert ok, f"{message}\n--- server log ---\n{self.server.log()}"


# -- a remote HTTP service for std.http ------------------------------------------------
class Remote:
    """An HTTP server on 127.0.0.1 that counts POSTs by Idempotency-Key and path,
    answers each path with the statuses scripted for it (200 once they run out),
    and can hold the first request of a path until released."""

    def __init__(self):
        self.keys: Counter = Counter()
        self.paths: Counter = Counter()
        self.statuses: dict[str, list[int]] = {}
        self.hold: dict[str, threading.Event] = {}
        self.arrived: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.keys[self.headers.get("Idempotency-Key")] += 1
                    outer.paths[self.path] += 1
                    first = outer.paths[self.path] == 1
                    script = outer.statuses.get(self.path)
                    status = script.pop(0) if script else 200
                    hold = outer.hold.get(self.path) if first else None
                    outer.arrived.setdefault(self.path, threading.Event()).set()
                if hold is not None:
                    hold.wait(60)
                data = json.dumps({"path": self.path, "status": status}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def __enter__(self) -> Remote:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for event in self.hold.values():
            event.set()
        self.server.shutdown()
        self.server.server_close()


# -- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One authenticated server on a SQLite file for the module, the workbook uploaded
    by red's operator."""
    tmp = tmp_path_factory.mktemp("serve")
    s = Server(f"sqlite:///{tmp}/orch.db")
    try:
        wb = s.client("red-op").post("/v2/workbooks", data=WORKBOOK, expect=201,
                                     headers={"Content-Type": "application/x-yaml"}).json()
        assert wb["name"] == "serve" and wb["project"] == "red"
        yield s
    finally:
        code = s.stop()
        print(f"--- server log (exit {code}) ---\n{s.log()}")


@pytest.fixture
def red(server):
    return server.client("red-op")


@pytest.fixture(scope="module")
def remote():
    with Remote() as r:
        yield r


# -- the tests --------------------------------------------------------------------------
def test_upload_start_and_watch_to_the_end(red):
    wb = red.get("/v2/workbooks/serve", expect=200).json()
    assert wb["definition"] == WORKBOOK
    ex = red.start("serve.hello", {"who": "serve"})
    assert ex["state"] in ("RUNNING", "SUCCESS") and ex["project"] == "red"
    done, events = red.watch(ex["id"])
    assert done["state"] == "SUCCESS", done
    assert done["output"] == {"greeting": "hello serve"}
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "workflow.SUCCESS" and "task.SUCCESS" in kinds, kinds
    [task] = red.tasks(ex["id"])
    assert (task["name"], task["state"]) == ("greet", "SUCCESS")


def test_pause_resume_and_complete_an_async_action(red):
    ex = red.start("serve.waiting")
    action = red.running_action(ex["id"], "wait")
    paused = red.put(f"/v2/executions/{ex['id']}", json={"state": "PAUSED"}, expect=200).json()
    assert paused["state"] == "PAUSED"
    assert red.get(f"/v2/executions/{ex['id']}", expect=200).json()["state"] == "PAUSED"
    again = red.put(f"/v2/executions/{ex['id']}", json={"state": "PAUSED"}, expect=200).json()
    assert again["state"] == "PAUSED"  # the same state again changes nothing
    resumed = red.put(f"/v2/executions/{ex['id']}", json={"state": "RUNNING"},
                      expect=200).json()
    assert resumed["state"] == "RUNNING"
    done = red.put(f"/v2/action_executions/{action['id']}", expect=200,
                   json={"state": "SUCCESS", "output": {"approved": True}}).json()
    assert done["state"] == "SUCCESS" and done["id"] == action["id"]
    red.put(f"/v2/action_executions/{action['id']}", expect=409,
            json={"state": "SUCCESS", "output": {"approved": False}})
    final, events = red.watch(ex["id"])
    assert final["state"] == "SUCCESS", final
    assert final["output"] == {"answer": {"approved": True}}
    kinds = [e["kind"] for e in events]
    paused_at = kinds.index("workflow.PAUSED")
    assert "workflow.RUNNING" in kinds[paused_at:], kinds  # paused, then resumed
    assert [t["state"] for t in red.tasks(ex["id"])] == ["SUCCESS", "SUCCESS"]


def test_cancel(red):
    ex = red.start("serve.waiting")
    red.running_action(ex["id"], "wait")
    cancelled = red.put(f"/v2/executions/{ex['id']}", expect=200,
                        json={"state": "CANCELLED", "state_info": "not today"}).json()
    assert cancelled["state"] == "CANCELLED"
    final, events = red.watch(ex["id"])
    assert final["state"] == "CANCELLED" and final["state_info"] == "not today", final
    assert events[-1]["kind"] == "workflow.CANCELLED"
    red.put(f"/v2/executions/{ex['id']}", json={"state": "RUNNING"}, expect=409)


def test_rerun_a_failed_task_after_its_cause_is_gone(red, remote):
    remote.statuses["/flaky"] = [500]  # the first call fails, the next ones succeed
    ex = red.start("serve.calling", {"url": remote.url + "/flaky"})
    failed, before = red.watch(ex["id"])
    assert failed["state"] == "ERROR", failed
    [task] = red.tasks(ex["id"])
    assert task["state"] == "ERROR" and "500" in (task["state_info"] or ""), task
    rerun = red.put(f"/v2/tasks/{task['id']}", json={"state": "RUNNING", "reset": True},
                    expect=200).json()
    assert rerun["id"] == task["id"] and rerun["state"] != "ERROR", rerun
    final, events = red.watch(ex["id"], after=before[-1]["id"])
    assert final["state"] == "SUCCESS", final
    assert final["output"] == {"status": 200}
    assert events[-1]["kind"] == "workflow.SUCCESS", events
    assert remote.paths["/flaky"] == 2
    actions = red.get(f"/v2/tasks/{task['id']}/action_executions",
                      expect=200).json()["action_executions"]
    assert [a["state"] for a in actions] == ["ERROR", "SUCCESS"], actions


def test_start_with_a_client_id_is_idempotent(red):
    body = {"workflow_name": "serve.hello", "id": str(uuid.uuid4())}
    first = red.post("/v2/executions", json=body, expect=201).json()
    second = red.post("/v2/executions", json=body, expect=200).json()
    assert first["id"] == second["id"] == body["id"]
    listed = red.get("/v2/executions", params={"workflow_name": "serve.hello", "limit": 1000},
                     expect=200).json()["executions"]
    assert [e["id"] for e in listed].count(body["id"]) == 1
    red.post("/v2/executions", json={**body, "workflow_name": "serve.counted"}, expect=409)
    assert red.watch(body["id"])[0]["state"] == "SUCCESS"


def test_pagination_follows_next_to_the_end(red):
    started = {red.start("serve.counted")["id"] for _ in range(5)}
    seen, pages = [], 0
    url = "/v2/executions?limit=2&workflow_name=serve.counted"
    while url:
        page = red.get(url, expect=200).json()
        pages += 1
        assert len(page["executions"]) <= 2
        seen += [e["id"] for e in page["executions"]]
        url = page.get("next")
        if url:
            assert url.startswith(red.server.url + "/v2/executions?"), url
        assert pages < 10, seen
    assert len(seen) == len(set(seen)), seen
    assert set(seen) == started and pages == 3


def test_projects_are_isolated(server, red):
    blue = server.client("blue-op")
    ex = red.start("serve.hello")
    blue.get(f"/v2/executions/{ex['id']}", expect=404)
    blue.get(f"/v2/executions/{ex['id']}/events", expect=404)
    blue.put(f"/v2/executions/{ex['id']}", json={"state": "PAUSED"}, expect=404)
    assert ex["id"] not in {e["id"] for e in blue.get(
        "/v2/executions", params={"limit": 1000}, expect=200).json()["executions"]}
    blue.get("/v2/workbooks/serve", expect=404)
    blue.post("/v2/executions", json={"workflow_name": "serve.hello"}, expect=404)
    assert blue.get("/v2/workbooks", expect=200).json()["workbooks"] == []
    red.watch(ex["id"])


def test_roles_and_tokens(server, red):
    ex = red.start("serve.hello")
    viewer = server.client("red-view")
    assert viewer.get(f"/v2/executions/{ex['id']}", expect=200).json()["id"] == ex["id"]
    viewer.post("/v2/executions", json={"workflow_name": "serve.hello"}, expect=403)
    viewer.put(f"/v2/executions/{ex['id']}", json={"state": "PAUSED"}, expect=403)
    server.client(None).get("/v2/executions", expect=401)
    server.client(None).post("/v2/executions", json={"workflow_name": "serve.hello"},
                             expect=401)
    server.client("not-a-token").get(f"/v2/executions/{ex['id']}", expect=401)
    anonymous = server.client(None)
    anonymous.session.headers["Authorization"] = "Basic cmVkOnJlZA=="
    anonymous.get("/v2/executions", expect=401)
    assert server.client(None).get("/health", expect=200).json() == {"status": "ok"}
    red.watch(ex["id"])


def test_bodies_too_large_or_not_json(red):
    huge = "# padding\n" * (2 * 1024 * 1024 // 10)
    r = red.post("/v2/workbooks", data=WORKBOOK + huge, expect=413,
                 headers={"Content-Type": "application/x-yaml"})
    assert r.json()["error"] == "RequestEntityTooLarge"
    red.post("/v2/executions", expect=413,
             json={"workflow_name": "serve.hello", "input": {"x": "y" * (2 * 1024 * 1024)}})
    r = red.post("/v2/executions", data='{"workflow_name": "serve.hello",', expect=400,
                 headers={"Content-Type": "application/json"})
    assert "not valid JSON" in r.json()["message"]
    red.post("/v2/executions", data="[1, 2]", expect=400,
             headers={"Content-Type": "application/json"})
    ex = red.start("serve.hello")
    red.get(f"/v2/executions/{ex['id']}/events", params={"after": "x"}, expect=400)
    red.watch(ex["id"])


def test_sigterm_hands_a_running_action_to_the_next_server(tmp_path):
    """SIGTERM while std.http waits on a slow remote: after its grace period the
    server hands the action back and exits 0; a new server on the same database
    runs the action again with the same idempotency key and finishes the execution."""
    db = f"sqlite:///{tmp_path}/orch.db"
    with Remote() as remote:
        remote.hold["/slow"] = threading.Event()  # the first call hangs until released
        first = Server(db, "--grace", "0.5")
        try:
            red = first.client("red-op")
            red.post("/v2/workbooks", data=WORKBOOK, expect=201)
            ex = red.start("serve.calling", {"url": remote.url + "/slow"})
            assert remote.arrived.setdefault("/slow", threading.Event()).wait(TIMEOUT), \
                first.log()
            first.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while "handed back 1 running action" not in first.log():
                assert time.monotonic() < deadline, f"not handed back:\n{first.log()}"
                time.sleep(0.05)
            # The held request is let go only now: the process waits for its action
            # thread before exiting (see test_sigterm_exits_within_the_grace_period).
            remote.hold["/slow"].set()
            code = first.stop(timeout=10, signal_it=False)
        finally:
            first.kill()
        assert code == 0, f"exit {code}\n{first.log()}"

        second = Server(db)
        try:
            red = second.client("red-op")
            final, events = red.watch(ex["id"])
            assert final["state"] == "SUCCESS", (final, second.log())
            assert final["output"] == {"status": 200}
            assert remote.paths["/slow"] == 2
            [(key, count)] = remote.keys.items()
            assert count == 2 and key, remote.keys  # the same idempotency key both times
            [task] = red.tasks(ex["id"])
            actions = red.get(f"/v2/tasks/{task['id']}/action_executions",
                              expect=200).json()["action_executions"]
            assert len(actions) == 1 and actions[0]["state"] == "SUCCESS", actions
        finally:
            assert second.stop() == 0, second.log()


def _wait_for(check, message: str, server: Server, timeout: float = TIMEOUT):
    """Poll ``check()`` until it returns something true; fail with the server's log."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{message}\n--- server log ---\n{server.log()}"
        time.sleep(0.05)


def test_sighup_reloads_the_tokens_file(tmp_path):
    """A token removed from the file stops working after SIGHUP, without a restart; a
    file that cannot be read then keeps the tokens in use and says why in the log."""
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n"
                    "  - {token: keep, project: red, role: admin, name: kept}\n"
                    "  - {token: gone, project: red, role: operator, name: revoked}\n")
    s = Server(f"sqlite:///{tmp_path}/orch.db", "--tokens", str(path),
               env={"ORCH_API_TOKENS": ""})
    try:
        keep, gone, new = s.client("keep"), s.client("gone"), s.client("new")
        assert gone.get("/v2/whoami", expect=200).json()["name"] == "revoked"
        new.get("/v2/whoami", expect=401)

        path.write_text("tokens:\n"
                        "  - {token: keep, project: red, role: admin, name: kept}\n"
                        "  - {token: new, project: red, role: viewer, name: added}\n")
        s.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: gone.get("/v2/whoami").status_code == 401,
                  "the revoked token still works after SIGHUP", s)
        assert new.get("/v2/whoami", expect=200).json()["name"] == "added"
        assert keep.get("/v2/whoami", expect=200).json()["name"] == "kept"
        assert s.proc.poll() is None

        path.write_text("tokens: [{token: broken, project: red")  # not YAML
        errors = s.log().count("tokens not reloaded")
        s.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: s.log().count("tokens not reloaded") > errors,
                  "no error logged for a tokens file that cannot be read", s)
        line = [x for x in s.lines if "tokens not reloaded" in x][-1]
        assert str(path) in line and "ERROR" in line.upper(), line
        assert keep.get("/v2/whoami", expect=200).json()["name"] == "kept"
        assert new.get("/v2/whoami", expect=200).json()["name"] == "added"
        s.client("broken").get("/v2/whoami", expect=401)
        gone.get("/v2/whoami", expect=401)
        assert "Traceback" not in s.log(), s.log()
    finally:
        code = s.stop()
    assert code == 0, s.log()


SLEEPY = """
version: '2.0'
sleepy:
  tasks:
    nap:
      action: std.sleep seconds=300
"""


def test_sigterm_exits_within_the_grace_period(tmp_path):
    s = Server(f"sqlite:///{tmp_path}/orch.db", "--grace", "0.5")
    try:
        red = s.client("red-op")
        red.post("/v2/workflows", data=SLEEPY, expect=201)
        ex = red.start("sleepy")
        red.running_action(ex["id"], "nap")
        # Generous for a loaded machine, and far less than the 300 s action.
        code = s.stop(timeout=60)
    finally:
        s.kill()
    assert code == 0, f"no exit within 60 s of SIGTERM (--grace 0.5)\n{s.log()}"
    assert "handed back 1 running action" in s.log(), s.log()


@pytest.mark.postgres
def test_upload_start_and_watch_on_postgresql(pg_url):
    s = Server(pg_url)
    try:
        red = s.client("red-op")
        name = f"pg_{uuid.uuid4().hex[:8]}"
        red.post("/v2/workbooks", data=WORKBOOK.replace("name: serve", f"name: {name}"),
                 expect=201)
        ex = red.start(f"{name}.hello", {"who": "postgres"})
        final, events = red.watch(ex["id"])
        assert final["state"] == "SUCCESS" and final["output"] == {"greeting": "hello postgres"}
        assert events[-1]["kind"] == "workflow.SUCCESS"
        server_client = s.client("blue-op")
        server_client.get(f"/v2/executions/{ex['id']}", expect=404)
    finally:
        assert s.stop() == 0, s.log()
