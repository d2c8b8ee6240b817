"""The API client commands (`orchestrator workbook|execution|task|...`) against a
small fake of the REST API served over real HTTP on 127.0.0.1: the contract's
shapes, a scripted execution whose events and tasks advance one step per poll."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from itertools import count
from pathlib import Path

import pytest
import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from orchestrator import watch
from orchestrator.cli import main

NOW = "2026-11-27T08:00:00.123456+00:00"


class FakeAPI:
    """The endpoints the commands use, with the contract's shapes."""

    def __init__(self):
        self.executions: dict[str, dict] = {}
        self.tasks: dict[str, dict] = {}
        self.actions: dict[str, dict] = {}
        self.events: dict[str, list] = {}
        self.scripts: dict[str, list] = {}
        self.environments: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.ids = count(1)
        self.app = self._app()

    # -- a scripted execution: one step per events poll ----------------------------------
    def add_execution(self, workflow: str, steps: list[tuple], state="RUNNING", **extra) -> dict:
        ex = {"id": str(uuid.uuid4()), "workflow_name": workflow, "description": "",
              "state": state, "state_info": None, "input": {}, "output": None, "params": {},
              "project": "default", "root_execution_id": None,
              "parent_action_execution_id": None, "created_at": NOW, "updated_at": NOW,
              "finished_at": None, **extra}
        self.executions[ex["id"]] = ex
        self.events[ex["id"]], self.scripts[ex["id"]] = [], list(steps)
        return ex

    def _advance(self, ex: dict) -> None:
        script = self.scripts[ex["id"]]
        if not script:
            return
        what, *rest = script.pop(0)
        if what == "task":
            name, state, *info = rest
            task = next((t for t in self.tasks.values() if t["name"] == name
                         and t["workflow_execution_id"] == ex["id"]), None)
            if task is None:
                task = {"id": str(uuid.uuid4()), "name": name, "workflow_execution_id": ex["id"],
                        "workflow_name": ex["workflow_name"], "state": state, "state_info": None,
                        "result": None, "published": {}, "type": "ACTION", "items_total": None,
                        "items_done": None, "attempt": 1, "created_at": NOW,
                        "started_at": NOW, "finished_at": None}
                self.tasks[task["id"]] = task
            task["state"], task["state_info"] = state, (info[0] if info else None)
            if state in ("SUCCESS", "ERROR"):
                task["finished_at"] = "2026-11-27T08:00:00.623456+00:00"
            self._event(ex, f"task.{state}", task["id"])
        else:  # ("end", state, output_or_info)
            state, value = rest
            ex["state"] = state
            if state == "SUCCESS":
                ex["output"] = value
            else:
                ex["state_info"] = value
            self._event(ex, f"workflow.{state}", None)

    def _event(self, ex, kind, task_id):
        self.events[ex["id"]].append({"id": next(self.ids), "at": NOW, "kind": kind,
                                      "task_id": task_id, "data": {}})

    def _app(self) -> Flask:
        app = Flask("fake")

        def error(status, kind, message, **extra):
            return jsonify({"error": kind, "message": message, **extra}), status

        def find(table, key, what):
            if key not in table:
                raise LookupError(f"{what} {key} not found")
            return table[key]

        @app.errorhandler(LookupError)
        def not_found(e):
            return error(404, "NotFound", str(e.args[0]))

        @app.before_request
        def log():
            self.requests.append((request.method, request.full_path))

        @app.post("/v2/workbooks")
        def create_workbook():
            text = request.get_data(as_text=True)
            if "tasks: oops" in text:
                return error(400, "InvalidDefinition", "2 problems", problems=[
                    {"path": "workflows.wf.tasks", "line": 4, "message": "must be a mapping"},
                    {"path": "name", "line": 0, "message": "is required"}])
            return jsonify({"id": "wb-1", "name": "rollout", "definition": text, "tags": [],
                            "project": "default", "created_at": NOW, "updated_at": NOW}), 201

        @app.post("/v2/workbooks/validate")
        def validate_workbook():
            if "tasks: oops" in request.get_data(as_text=True):
                return jsonify({"valid": False, "error": "not valid", "problems": [
                    {"path": "workflows.wf.tasks", "line": 4, "message": "must be a mapping"}]})
            return jsonify({"valid": True})

        @app.post("/v2/executions")
        def start():
            body = request.get_json()
            if body["workflow_name"] == "missing":
                return error(404, "NotFound", "workflow 'missing' not found")
            ex = self.add_execution(body["workflow_name"], [
                ("task", "plan", "RUNNING"), ("task", "plan", "SUCCESS"),
                ("task", "report", "RUNNING"), ("task", "report", "SUCCESS"),
                ("end", "SUCCESS", {"summary": "3 hosts"})], input=body["input"],
                params=body["params"])
            return jsonify(ex), 201

        @app.get("/v2/executions")
        def list_executions():
            rows = sorted(self.executions.values(), key=lambda e: e["id"])
            if request.args.get("state"):
                rows = [r for r in rows if r["state"] == request.args["state"]]
            if request.args.get("marker"):
                rows = [r for r in rows if r["id"] > request.args["marker"]]
            limit = int(request.args.get("limit", 100))
            out = {"executions": rows[:limit]}
            if len(rows) > limit:
                # Another host name than the client's: the client follows it on its own.
                out["next"] = (f"http://orchestrator.invalid/v2/executions?limit={limit}"
                               f"&marker={rows[limit - 1]['id']}")
            return jsonify(out)

        @app.get("/v2/executions/<id>")
        def get_execution(id):
            return jsonify(find(self.executions, id, "execution"))

        @app.put("/v2/executions/<id>")
        def put_execution(id):
            ex = find(self.executions, id, "execution")
            body = request.get_json()
            if ex["state"] != "RUNNING":
                return error(409, "IllegalTransition",
                             f"workflow cannot go from {ex['state']} to {body['state']}")
            ex["state"], ex["state_info"] = body["state"], body.get("state_info")
            return jsonify(ex)

        @app.get("/v2/executions/<id>/events")
        def events(id):
            ex = find(self.executions, id, "execution")
            self._advance(ex)
            after = int(request.args.get("after", 0))
            return jsonify({"events": [e for e in self.events[id] if e["id"] > after]})

        @app.get("/v2/executions/<id>/tasks")
        def execution_tasks(id):
            return jsonify({"tasks": [t for t in self.tasks.values()
                                      if t["workflow_execution_id"] == id]})

        @app.put("/v2/tasks/<id>")
        def put_task(id):
            task = find(self.tasks, id, "task")
            task.update(state=request.get_json()["state"], reset=request.get_json().get("reset"))
            return jsonify(task)

        @app.put("/v2/action_executions/<id>")
        def complete(id):
            action = find(self.actions, id, "action execution")
            body = request.get_json()
            action.update(state=body["state"], output=body["output"])
            return jsonify(action)

        @app.post("/v2/environments")
        def create_env():
            body = request.get_json()
            if body["name"] in self.environments:
                return error(409, "Conflict", f"environment {body['name']!r} exists")
            env = {"id": "env-1", "description": "", "project": "default", "created_at": NOW,
                   "updated_at": NOW, "secrets": [], **body}
            self.environments[env["name"]] = env
            return jsonify(env), 201

        @app.get("/v2/environments/<name>")
        def get_env(name):
            env = dict(find(self.environments, name, "environment"))
            env["variables"] = {k: "***" if k in env["secrets"] else v
                                for k, v in env["variables"].items()}
            return jsonify(env)

        return app


@pytest.fixture
def api(monkeypatch):
    fake = FakeAPI()
    server = make_server("127.0.0.1", 0, fake.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("ORCH_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("ORCH_TOKEN", raising=False)
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.01)
    yield fake
    server.shutdown()
    thread.join()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- definitions ------------------------------------------------------------------------
def test_workbook_create_uploads_the_yaml_and_names_the_workbook(api, capsys, tmp_path):
    path = tmp_path / "rollout.yaml"
    path.write_text("version: '2.0'\nname: rollout\n")
    code, out, err = run(capsys, "workbook", "create", str(path))
    assert (code, out, err) == (0, "workbook rollout created\n", "")


def test_workbook_create_of_a_bad_file_lists_every_problem_with_file_and_line(
        api, capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: '2.0'\nworkflows:\n  wf:\n    tasks: oops\n")
    code, out, err = run(capsys, "workbook", "create", str(path))
    assert code == 3
    assert err.splitlines() == [f"{path}:4 workflows.wf.tasks: must be a mapping",
                                f"{path} name: is required"]


def test_workbook_validate_exits_3_with_file_line_path_messages(api, capsys, tmp_path):
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text("tasks: oops\n")
    good.write_text("version: '2.0'\n")
    assert run(capsys, "workbook", "validate", str(good)) == (0, f"{good}: valid\n", "")
    code, out, err = run(capsys, "workbook", "validate", str(bad))
    assert (code, err) == (3, f"{bad}:4 workflows.wf.tasks: must be a mapping\n")
    code, out, err = run(capsys, "workbook", "validate", "--json", str(bad))
    assert code == 3 and json.loads(out)["valid"] is False


# -- executions ---------------------------------------------------------------------------
def test_execution_start_watch_prints_each_task_change_and_exits_0_on_success(api, capsys):
    code, out, err = run(capsys, "execution", "start", "rollout.rollout", "--watch",
                         "--input", '{"release": "2.0"}', "--env", "staging")
    assert code == 0
    lines = err.splitlines()
    assert lines[0].startswith("execution ") and lines[0].endswith("started (rollout.rollout)")
    assert [x.split() for x in lines[1:5]] == [
        ["..", "plan", "RUNNING"], ["ok", "plan", "SUCCESS", "(0.50s)"],
        ["..", "report", "RUNNING"], ["ok", "report", "SUCCESS", "(0.50s)"]]
    assert lines[5:] == ["  execution SUCCESS", "2/2 known tasks finished"]
    assert out.splitlines()[0].endswith("(rollout.rollout): SUCCESS")
    assert json.loads(out.split("output: ", 1)[1]) == {"summary": "3 hosts"}
    ex = next(iter(api.executions.values()))
    assert ex["input"] == {"release": "2.0"} and ex["params"] == {"env": "staging"}
    # Incremental: each events poll asks only for what came after the last event seen.
    afters = [p.split("after=")[1] for m, p in api.requests if "/events" in p]
    assert afters[:3] == ["0", "1", "2"]


@pytest.mark.parametrize("end, code", [(("end", "ERROR", "task boom failed"), 1),
                                       (("end", "CANCELLED", "cancelled by user"), 1),
                                       (("end", "PAUSED", None), 2)])
def test_execution_watch_exits_with_the_executions_result(api, capsys, end, code):
    ex = api.add_execution("wf", [("task", "boom", "RUNNING"),
                                  ("task", "boom", "ERROR", "Fail action\nmore"), end])
    got, out, err = run(capsys, "execution", "watch", ex["id"])
    assert got == code
    assert "  FAIL boom ERROR (0.50s): Fail action" in err.splitlines()
    assert out.splitlines()[0] == f"execution {ex['id']} (wf): {end[1]}"


def test_a_polling_task_shows_one_line_per_retry_not_its_waits(api, capsys):
    ex = api.add_execution("wf", [("task", "poll", "RUNNING"), ("task", "poll", "retry"),
                                  ("task", "poll", "RUNNING_DELAYED"), ("task", "poll", "RUNNING"),
                                  ("task", "poll", "retry"),
                                  ("task", "poll", "RUNNING_DELAYED"), ("task", "poll", "RUNNING"),
                                  ("task", "poll", "SUCCESS"), ("end", "SUCCESS", {})])
    code, _, err = run(capsys, "execution", "watch", ex["id"])
    assert code == 0
    assert [x.split() for x in err.splitlines()[:4]] == [
        ["..", "poll", "RUNNING"], ["poll", "retry", "?"], ["poll", "retry", "?"],
        ["ok", "poll", "SUCCESS", "(0.50s)"]]


def test_execution_watch_json_prints_only_the_final_execution(api, capsys):
    ex = api.add_execution("wf", [("task", "a", "SUCCESS"), ("end", "SUCCESS", {"x": 1})])
    code, out, err = run(capsys, "execution", "watch", "--json", ex["id"])
    assert code == 0 and err == ""
    assert json.loads(out)["output"] == {"x": 1}


def test_live_view_redraws_the_task_list_and_progress_in_place(api):
    import io

    from orchestrator.client import Client

    ex = api.add_execution("wf", [("task", "a", "SUCCESS"), ("task", "b", "RUNNING"),
                                  ("end", "PAUSED", None)])
    stream = io.StringIO()
    final = watch.Watcher(Client(), ex["id"], stream, live=True, interval=0).run()
    assert final["state"] == "PAUSED"
    frames = stream.getvalue().split("\x1b[J")
    assert len(frames) == 3 and frames[1].startswith("wf  ")  # first frame after one redraw
    assert "[" + "#" * 24 + "] 1/1 known tasks finished" in frames[0]
    assert "1/2 known tasks finished" in frames[2] and "b RUNNING" in frames[2]


def test_execution_list_all_follows_next_on_the_clients_own_host(api, capsys):
    for i in range(5):
        api.add_execution(f"wf{i}", [], state="SUCCESS")
    code, out, err = run(capsys, "execution", "list", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 3 and "--all" in err
    code, out, err = run(capsys, "execution", "list", "--limit", "2", "--all", "--json")
    assert len(json.loads(out)["executions"]) == 5
    code, out, err = run(capsys, "execution", "list", "--limit", "2", "--all")
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "WORKFLOW_NAME", "STATE", "CREATED_AT", "FINISHED_AT",
                              "STATE_INFO"]
    assert len(rows) == 5 and all("2026-11-27 08:00:00" in r for r in rows)


def test_execution_pause_of_an_ended_execution_keeps_the_servers_message(api, capsys):
    ex = api.add_execution("wf", [], state="SUCCESS")
    code, out, err = run(capsys, "execution", "pause", ex["id"])
    assert (code, err) == (4, "error: workflow cannot go from SUCCESS to PAUSED\n")
    code, out, err = run(capsys, "execution", "get", "nope")
    assert (code, err) == (4, "error: execution nope not found\n")


def test_execution_fail_sends_the_message_as_state_info(api, capsys):
    ex = api.add_execution("wf", [])
    code, out, err = run(capsys, "execution", "fail", ex["id"], "--message", "operator gave up")
    assert (code, out) == (0, f"execution {ex['id']}: ERROR\n")
    assert api.executions[ex["id"]]["state_info"] == "operator gave up"


# -- tasks and action executions -------------------------------------------------------
def test_task_rerun_failed_items_only_sends_reset_false(api, capsys):
    ex = api.add_execution("wf", [("task", "configure", "ERROR")])
    api._advance(ex)
    task_id = next(iter(api.tasks))
    code, out, err = run(capsys, "task", "rerun", task_id, "--failed-items-only", "--json")
    assert code == 0 and json.loads(out)["state"] == "RUNNING"
    assert api.tasks[task_id]["reset"] is False


def test_action_execution_complete_sends_the_state_and_json_output(api, capsys):
    api.actions["a-1"] = {"id": "a-1", "name": "std.async_noop", "state": "RUNNING"}
    code, out, err = run(capsys, "action-execution", "complete", "a-1", "--state", "SUCCESS",
                         "--output", '{"done": true}')
    assert (code, out) == (0, "action execution a-1 (std.async_noop): SUCCESS\n")
    assert api.actions["a-1"]["output"] == {"done": True}


# -- environments -----------------------------------------------------------------------
def test_env_create_from_vars_and_get_masks_secrets(api, capsys):
    code, out, err = run(capsys, "env", "create", "--name", "staging", "--var", "port=8080",
                         "--var", "host=web-1", "--secret", "password=hunter2")
    assert (code, out) == (0, "environment staging created\n")
    assert api.environments["staging"]["variables"] == {"port": 8080, "host": "web-1",
                                                        "password": "hunter2"}
    code, out, err = run(capsys, "env", "get", "staging", "--json")
    assert json.loads(out)["variables"]["password"] == "***"
    code, out, err = run(capsys, "env", "create", "--name", "staging")
    assert (code, err) == (4, "error: environment 'staging' exists\n")


def test_env_create_needs_a_file_or_a_name(api, capsys):
    code, out, err = run(capsys, "env", "create")
    assert code == 4 and "needs FILE.json or --name" in err


# -- reaching the server ----------------------------------------------------------------
def test_an_unreachable_api_is_a_clear_message_not_a_traceback(capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run(capsys, "workbook", "list", "--url", f"http://127.0.0.1:{port}")
    assert code == 4
    assert err == (f"error: cannot reach the orchestrator API at http://127.0.0.1:{port}: "
                   "is `orchestrator serve` running?\n")


def test_a_token_is_sent_as_a_bearer_header(api, capsys, monkeypatch):
    seen = []
    api.app.before_request(lambda: seen.append(request.headers.get("Authorization")))
    monkeypatch.setenv("ORCH_TOKEN", "from-env")
    run(capsys, "execution", "list")
    run(capsys, "execution", "list", "--token", "from-flag")
    assert seen == ["Bearer from-env", "Bearer from-flag"]


# -- the real thing: `orchestrator` processes against `orchestrator serve` -----------------
ROOT = Path(__file__).parent.parent

FAILING = """
version: '2.0'
greet:
  input:
    - fail: false
  tasks:
    hello:
      action: std.echo output="hello"
      on-success:
        - boom: <% $.fail %>
    boom:
      action: std.fail
"""

PAUSING = """
version: '2.0'
pausing:
  tasks:
    a:
      on-success: [pause, b]
    b:
      action: std.noop
"""

ASYNC = """
version: '2.0'
waiting:
  tasks:
    wait:
      action: std.async_noop
      publish:
        answer: <% task().result %>
  output:
    answer: <% $.answer %>
"""


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """A real `orchestrator serve` on a free port with its own SQLite file."""
    tmp = tmp_path_factory.mktemp("serve")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "serve", "--no-auth", "--port", str(port),
         "--db", f"sqlite:///{tmp}/orch.db"],
        stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(url + "/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail("orchestrator serve did not start:\n" + (tmp / "serve.log").read_text())
        time.sleep(0.1)
    yield url, tmp
    proc.terminate()
    proc.wait(timeout=15)
    log.close()


def orch(serve, *args, check: int | None = 0):
    url, _ = serve
    env = {**os.environ, "ORCH_URL": url}
    env.pop("ORCH_TOKEN", None)
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True,
                       text=True, env=env, timeout=60, cwd=ROOT)
    assert "Traceback" not in r.stderr, r.stderr
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module")
def loaded(serve):
    """The server with the rollout workbook and the test workflows uploaded."""
    orch(serve, "workbook", "create", str(ROOT / "workbooks" / "rollout.yaml"))
    _, tmp = serve
    for name, text in (("failing", FAILING), ("pausing", PAUSING), ("async", ASYNC)):
        (tmp / f"{name}.yaml").write_text(text)
        orch(serve, "workflow", "create", str(tmp / f"{name}.yaml"))
    return serve


def test_real_rollout_watch_prints_every_task_and_the_output(loaded):
    r = orch(loaded, "execution", "start", "rollout.rollout", "--watch",
             "--input", '{"hosts": ["a", "b", "c"]}')
    changes = [line.split()[:3] for line in r.stderr.splitlines() if line.startswith("  ")]
    for task in ("plan", "fetch_release", "check_capacity", "ready", "configure", "report"):
        assert ["ok", task, "SUCCESS"] in changes, r.stderr
    assert "6/6 known tasks finished" in r.stderr
    assert r.stdout.splitlines()[0].endswith("(rollout.rollout): SUCCESS")
    output = json.loads(r.stdout.split("output: ", 1)[1])
    assert output["configured"] == ["a @ 1.4.2", "b @ 1.4.2", "c @ 1.4.2"]
    assert output["summary"] == "3 hosts on 1.4.2, capacity 6"


def test_real_failing_execution_exits_1_and_rerun_runs_the_task_again(loaded):
    r = orch(loaded, "execution", "start", "greet", "--input", '{"fail": true}', "--watch",
             "--json", check=1)
    ex = json.loads(r.stdout)
    assert ex["state"] == "ERROR"
    tasks = json.loads(orch(loaded, "task", "list", "--execution", ex["id"], "--json").stdout)
    boom = next(t for t in tasks["tasks"] if t["name"] == "boom")
    assert boom["state"] == "ERROR"
    r = orch(loaded, "task", "rerun", boom["id"])
    assert r.stdout.startswith(f"task {boom['id']} (boom) rerun: now ")
    r = orch(loaded, "execution", "watch", ex["id"], check=1)
    assert "FAIL boom ERROR" in r.stderr
    actions = orch(loaded, "action-execution", "list", "--task", boom["id"], "--json").stdout
    assert len(json.loads(actions)["action_executions"]) == 2  # the first run and the rerun


def test_real_paused_execution_exits_2(loaded):
    r = orch(loaded, "execution", "start", "pausing", "--watch", check=2)
    assert r.stdout.splitlines()[0].endswith("(pausing): PAUSED")


def test_real_async_action_completes_from_the_command_line(loaded):
    ex = json.loads(orch(loaded, "execution", "start", "waiting", "--json").stdout)
    deadline = time.monotonic() + 10
    while True:
        page = json.loads(orch(loaded, "task", "list", "--execution", ex["id"], "--json").stdout)
        running = [t for t in page["tasks"] if t["state"] == "RUNNING"]
        if running:
            actions = json.loads(orch(loaded, "action-execution", "list", "--task",
                                      running[0]["id"], "--json").stdout)["action_executions"]
            if actions and actions[0]["state"] == "RUNNING":
                break
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    r = orch(loaded, "action-execution", "complete", actions[0]["id"], "--state", "SUCCESS",
             "--output", '{"approved": true}')
    assert r.stdout.endswith("(std.async_noop): SUCCESS\n")
    r = orch(loaded, "execution", "watch", ex["id"], "--json")
    assert json.loads(r.stdout)["output"] == {"answer": {"approved": True}}


def test_real_execution_list_follows_the_pages(loaded):
    ids = [f"0000000{i}-0000-4000-8000-00000000fade" for i in range(3)]
    for i in range(3):
        orch(loaded, "execution", "start", "greet", "--id", ids[i])
    first = orch(loaded, "execution", "list", "--limit", "2", "--json")
    assert len(json.loads(first.stdout)["executions"]) == 2 and json.loads(first.stdout)["next"]
    every = json.loads(orch(loaded, "execution", "list", "--limit", "2", "--all",
                            "--json").stdout)["executions"]
    assert set(ids) <= {e["id"] for e in every}
    assert len({e["id"] for e in every}) == len(every)
    table = orch(loaded, "execution", "list", "--limit", "2", "--all").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "WORKFLOW_NAME", "STATE"]
    assert len(table) == len(every) + 1


def test_real_env_create_and_get(loaded):
    orch(loaded, "env", "create", "--name", "staging", "--var", "port=8080",
         "--secret", "password=hunter2")
    env = json.loads(orch(loaded, "env", "get", "staging", "--json").stdout)
    assert env["variables"]["port"] == 8080 and env["variables"]["password"] != "hunter2"
    r = orch(loaded, "env", "create", "--name", "staging", check=4)
    assert r.stderr.startswith("error: ")


def test_real_validate_of_a_broken_workbook_exits_3_with_file_line_and_path(loaded, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text((ROOT / "workbooks" / "rollout.yaml").read_text()
                      .replace("on-success: report\n", "on-success: reprot\n"))
    r = orch(loaded, "workbook", "validate", str(broken), check=3)
    assert (f"{broken}:51 workflows.rollout.tasks.configure.on-success: "
            "unknown task 'reprot' (did you mean 'report'?)") in r.stderr.splitlines()[0], r.stderr
    r = orch(loaded, "workbook", "create", str(broken), check=3)
    assert r.stderr.startswith(f"{broken}:51 ")
    assert json.loads(orch(loaded, "workbook", "list", "--json").stdout)["workbooks"][0][
        "name"] == "rollout"
    assert orch(loaded, "workbook", "get", "rollout", "--definition").stdout.startswith("# A ")
