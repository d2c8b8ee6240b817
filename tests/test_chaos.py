"""Chaos: one API process and three engine processes on a fresh PostgreSQL
database run 200 mixed executions (fan-outs with a join, with-items with
concurrency, sub-workflows, retries of a flaky endpoint, all through std.http to
a recording server in this process) while a random engine is SIGKILLed every 3
to 5 seconds for a minute and started again at once.

Every execution, sub-executions included, must end SUCCESS with the output its
input determines, nothing may be left RUNNING, every attempt of every task must
have reached the server exactly once as a logical call (no lost, no doubled
action executions), and each action may run again only as the engine documents
it: "an action in flight at a kill may run once more" (the same idempotency
key), never after its result was committed."""
from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from collections import Counter

import psycopg
import pytest
import requests
from sqlalchemy import create_engine, select

from orchestrator.processes import Daemon, free_port, stop_all
from orchestrator.store import schema
from tests.chaoshttp import RecordingServer
from tests.conftest import PG_ADMIN_URL

SEED = 1313
EXECUTIONS = 200
KILL_PHASE = 60.0  # seconds of kills
KILL_EVERY = (3.0, 5.0)
SUBMIT_OVER = 54.0  # executions are started spread over this many seconds of the kill phase
ENGINES, THREADS = 3, 8
DRAIN_DEADLINE = 300.0  # after the kills: every execution must end within this
TOKEN = "chaos-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}

WORKFLOWS = """
version: '2.0'

chaos_fan:
  input: [base, rid, n]
  tasks:
    start:
      on-success: [a1, b1, c1]
    a1:
      action: std.http url=<% $.base %>/a1 method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.n + 1 %>}
      publish:
        a: <% task().result.content.echo.v %>
      on-success: a2
    a2:
      action: std.http url=<% $.base %>/a2 method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.a * 2 %>}
      publish:
        a: <% task().result.content.echo.v %>
      on-success: join
    b1:
      action: std.http url=<% $.base %>/b1 method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.n + 2 %>}
      publish:
        b: <% task().result.content.echo.v %>
      on-success: b2
    b2:
      action: std.http url=<% $.base %>/b2 method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.b * 3 %>}
      publish:
        b: <% task().result.content.echo.v %>
      on-success: join
    c1:
      action: std.http url=<% $.base %>/c1 method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.n * $.n %>}
      publish:
        c: <% task().result.content.echo.v %>
      on-success: join
    join:
      join: all
      action: std.http url=<% $.base %>/join method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.a + $.b + $.c %>}
      publish:
        total: <% task().result.content.echo.v %>
  output:
    total: <% $.total %>

chaos_items:
  input: [base, rid, xs]
  tasks:
    each:
      with-items: x in <% $.xs %>
      concurrency: 3
      action: std.http url=<% $.base %>/item method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.x * 10 %>}
      publish:
        vs: <% task().result.select($.content.echo.v) %>
  output:
    vs: <% $.vs %>

chaos_flaky:
  input: [base, rid, fails]
  tasks:
    call:
      action: std.http url=<% $.base %>/flaky method=POST
      input:
        json: {rid: <% $.rid %>, fails: <% $.fails %>}
      retry:
        count: 3
        delay: 0
      publish:
        attempt: <% task().result.content.attempt %>
      on-success: after
    after:
      action: std.http url=<% $.base %>/after method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.attempt * 100 %>}
      publish:
        v: <% task().result.content.echo.v %>
  output:
    attempt: <% $.attempt %>
    v: <% $.v %>

chaos_child:
  input: [base, rid, k]
  tasks:
    call:
      action: std.http url=<% $.base %>/flaky method=POST
      input:
        json: {rid: <% $.rid + '/' + str($.k) %>, fails: <% $.k mod 3 %>}
      retry:
        count: 3
        delay: 0
      publish:
        attempt: <% task().result.content.attempt %>
      on-success: square
    square:
      action: std.http url=<% $.base %>/square method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.k * $.k %>}
      publish:
        sq: <% task().result.content.echo.v %>
  output:
    sq: <% $.sq %>
    attempt: <% $.attempt %>

chaos_parent:
  input: [base, rid, ks]
  tasks:
    kids:
      with-items: k in <% $.ks %>
      concurrency: 2
      workflow: chaos_child
      input:
        base: <% $.base %>
        rid: <% $.rid %>
        k: <% $.k %>
      publish:
        squares: <% task().result.select($.sq) %>
        attempts: <% task().result.select($.attempt) %>
      on-success: sum
    sum:
      action: std.http url=<% $.base %>/sum method=POST
      input:
        json: {rid: <% $.rid %>, v: <% $.squares.sum() %>}
      publish:
        sum: <% task().result.content.echo.v %>
  output:
    squares: <% $.squares %>
    attempts: <% $.attempts %>
    sum: <% $.sum %>
"""


def plan(rng: random.Random, n: int) -> list[dict]:
    """``n`` executions: their id and rid, workflow, input (without ``base``), expected
    output and the number of distinct logical HTTP calls (action executions)."""
    kinds = ["chaos_fan", "chaos_items", "chaos_flaky", "chaos_parent"] * (n // 4)
    kinds += kinds[:n % 4]
    rng.shuffle(kinds)
    out = []
    for i, kind in enumerate(kinds):
        rid = f"chaos-{i:03d}"
        if kind == "chaos_fan":
            x = rng.randint(0, 50)
            inp = {"n": x}
            expected = {"total": 2 * (x + 1) + 3 * (x + 2) + x * x}
            calls = 6
        elif kind == "chaos_items":
            xs = [rng.randint(-20, 20) for _ in range(rng.randint(3, 8))]
            inp = {"xs": xs}
            expected = {"vs": [x * 10 for x in xs]}
            calls = len(xs)
        elif kind == "chaos_flaky":
            fails = rng.randint(0, 2)
            inp = {"fails": fails}
            expected = {"attempt": fails + 1, "v": (fails + 1) * 100}
            calls = fails + 2
        else:
            ks = rng.sample(range(1, 10), rng.randint(2, 4))
            inp = {"ks": ks}
            expected = {"squares": [k * k for k in ks],
                        "attempts": [k % 3 + 1 for k in ks],
                        "sum": sum(k * k for k in ks)}
            calls = sum(k % 3 + 1 + 1 for k in ks) + 1
        # The execution id is a fresh UUID; the rid names the execution in requests.
        out.append({"id": str(uuid.uuid4()), "rid": rid, "workflow": kind,
                    "input": {"rid": rid, **inp},
                    "expected": expected, "calls": calls})
    return out


def attribute(deliveries: dict, kills: list) -> tuple[Counter, list]:
    """Explain every repeated delivery of a key by the kill of the process that
    sent the delivery before it: that process was killed, before the repeat
    arrived, with the action not yet finished. Returns the repeats per killed
    process and those that no kill explains."""
    killed = {sender: (sent, done) for sender, sent, _, _, done in kills}
    per_kill, unexplained = Counter(), []
    for key, ds in deliveries.items():
        for prev, nxt in zip(ds, ds[1:]):
            sent, done = killed.get(prev.sender, (None, ()))
            if sent is not None and sent < nxt.at and key not in done:
                per_kill[prev.sender] += 1
            else:
                unexplained.append((key, [(d.sender, d.at) for d in ds]))
    return per_kill, unexplained


@pytest.fixture
def fresh_pg_url():
    """A database of its own, dropped afterwards."""
    name = f"orch_chaos_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _serve_argv(db: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", "serve", "--db", db, *args]


def _tail(path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _api(session: requests.Session, method: str, url: str, **kw) -> requests.Response:
    """An API call that tries again on a connection error or a 5xx (the API is
    not killed, but the machine may be very busy)."""
    kw["headers"] = {**HEADERS, **kw.get("headers", {})}
    for attempt in range(10):
        try:
            r = session.request(method, url, timeout=30, **kw)
            if r.status_code < 500:
                return r
        except requests.RequestException:
            if attempt == 9:
                raise
        time.sleep(0.5)
    return r


def _all_executions(session: requests.Session, base_url: str) -> list[dict]:
    items, url = [], f"{base_url}/v2/executions?limit=1000"
    while url:
        r = _api(session, "GET", url)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["executions"]
        url = page.get("next")
        if url and url.startswith("/"):
            url = base_url + url
    return items


@pytest.mark.postgres
@pytest.mark.slow
def test_chaos_engines_sigkilled_every_few_seconds_lose_and_double_nothing(
        fresh_pg_url, tmp_path):
    db = fresh_pg_url
    runs = plan(random.Random(SEED), EXECUTIONS)
    kill_rng = random.Random(SEED + 1)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    session = requests.Session()

    api = Daemon("api", _serve_argv(db, "--role", "api", "--port", str(port)), tmp_path,
                 log=tmp_path / "api.log", env={"ORCH_API_TOKENS": f"{TOKEN}=chaos:operator"})
    engines = [Daemon(f"engine{i}", _serve_argv(db, "--role", "engine", "--threads",
                                                  str(THREADS)),
                      tmp_path, log=tmp_path / f"engine{i}.log") for i in range(ENGINES)]
    # (engine process, signal sent at, group gone at, and the std.http actions
    # finished when it was gone, read by this time)
    kills: list[tuple[str, float, float, float, set[str]]] = []
    processes = Counter()

    def start_engine(d: Daemon) -> None:
        """Start an engine as a process named like engine1.3 (its 3rd start),
        which names itself in its HTTP requests through the server as its proxy."""
        processes[d.name] += 1
        proxy = server.proxy_url(f"{d.name}.{processes[d.name]}")
        d.env = {"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}
        d.start()

    def process(d: Daemon) -> str:
        return f"{d.name}.{processes[d.name]}"
    sql = create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1))
    A, T = schema.action_executions, schema.task_executions

    def finished_actions() -> set[str]:
        with sql.connect() as conn:
            return {r[0] for r in conn.execute(select(A.c.id).where(
                A.c.name == "std.http", A.c.state.in_(("SUCCESS", "ERROR"))))}

    def logs() -> str:
        return "\n".join(f"--- {d.name}\n{_tail(d.log)}" for d in [api, *engines])

    def all_alive() -> None:
        """No process ended by itself (only our kills end engines)."""
        ended = [(d.name, d.exited()) for d in [api, *engines] if d.exited() is not None]
        assert ended == [], f"ended (name, exit code): {ended}\n{logs()}"

    stop_submitting = threading.Event()
    # Each call takes 0.2 s, so that most kills find actions in flight.
    with RecordingServer(delay=0.2) as server:
        try:
            # The API first: it creates the schema before the engines connect.
            api.start()
            deadline = time.monotonic() + 60
            while True:
                try:
                    if session.get(f"{base_url}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert api.exited() is None and time.monotonic() < deadline, logs()
                time.sleep(0.2)
            for e in engines:
                start_engine(e)
            r = _api(session, "POST", f"{base_url}/v2/workflows", data=WORKFLOWS,
                     headers={"Content-Type": "text/plain"})
            assert r.status_code == 201, r.text

            submit_errors: list[str] = []

            def submit() -> None:
                t0 = time.monotonic()
                for i, run in enumerate(runs):
                    if stop_submitting.wait(t0 + SUBMIT_OVER * i / len(runs) - time.monotonic()):
                        return
                    try:
                        # A client-chosen id: starting again after a lost answer is safe.
                        r = _api(session, "POST", f"{base_url}/v2/executions", json={
                            "id": run["id"], "workflow_name": run["workflow"],
                            "input": {"base": server.url, **run["input"]}})
                        if r.status_code not in (200, 201):
                            submit_errors.append(f"{run['rid']}: {r.status_code} {r.text}")
                    except requests.RequestException as e:
                        submit_errors.append(f"{run['rid']}: {e}")

            submitter = threading.Thread(target=submit, daemon=True)
            submitter.start()

            started = time.monotonic()
            end = started + KILL_PHASE
            while True:
                time.sleep(kill_rng.uniform(*KILL_EVERY))
                if time.monotonic() >= end:
                    break
                all_alive()
                victim = kill_rng.choice(engines)
                sent = time.monotonic()
                victim.kill()  # SIGKILL the group, wait until it is gone
                gone = time.monotonic()
                done = finished_actions()
                kills.append((process(victim), sent, gone, time.monotonic(), done))
                start_engine(victim)
            submitter.join(timeout=120)
            assert not submitter.is_alive(), "starting the executions did not finish"
            assert submit_errors == []

            deadline = time.monotonic() + DRAIN_DEADLINE
            while True:
                executions = _all_executions(session, base_url)
                roots = [x for x in executions if x["parent_action_execution_id"] is None]
                open_ = [x for x in executions if x["state"] in ("RUNNING", "PAUSED")]
                if len(roots) == len(runs) and not open_:
                    break
                if time.monotonic() >= deadline:
                    stuck = open_[:10]
                    details = {x["id"]: _api(session, "GET", f"{base_url}/v2/executions/"
                                             f"{x['id']}/events").json() for x in stuck[:3]}
                    pytest.fail(f"{len(open_)} execution(s) still open after the kills "
                                f"(roots {len(roots)}/{len(runs)}): "
                                f"{[(x['id'], x['workflow_name'], x['state']) for x in stuck]}"
                                f"\nevents: {details}\n{logs()}")
                all_alive()
                time.sleep(1.0)
            drained = time.monotonic()

            with sql.connect() as conn:
                open_tasks = conn.execute(select(T.c.id, T.c.name, T.c.state).where(
                    T.c.state.not_in(("SUCCESS", "ERROR", "CANCELLED", "SKIPPED")))).all()
                actions = {r.id: r for r in conn.execute(
                    select(A.c.id, A.c.state, A.c.name, A.c.task_execution_id))}
        finally:
            stop_submitting.set()
            stop_all([api, *engines], grace=15)
            sql.dispose()
        deliveries = server.snapshot()
        attempts = {rid: list(keys) for rid, keys in server.attempts.items()}

    by_id = {x["id"]: x for x in executions}
    # Every execution ended SUCCESS (sub-executions too), with the expected output.
    assert [(x["id"], x["workflow_name"], x["state"], x["state_info"]) for x in executions
            if x["state"] != "SUCCESS"] == []
    assert {r["rid"]: by_id[r["id"]]["output"] for r in runs} == \
        {r["rid"]: r["expected"] for r in runs}
    assert open_tasks == []
    assert [a for a in actions.values() if a.state not in ("SUCCESS", "ERROR")] == []

    # Every std.http action execution reached the server, and nothing else did.
    http = {i for i, a in actions.items() if a.name == "std.http"}
    assert set(deliveries) == http
    # Each execution made exactly the logical calls its input asks for: no task
    # or retry attempt was lost or started twice (with a new key).
    # (A delivery cut short by a kill may lack its body: the rid is that of the others.)
    rids = {k: next((d.rid for d in ds if d.rid), None) for k, ds in deliveries.items()}
    assert [k for k, rid in rids.items() if rid is None] == []
    per_execution = Counter(rid.split("/")[0] for rid in rids.values())
    assert per_execution == Counter({r["rid"]: r["calls"] for r in runs})
    for run in runs:
        if run["workflow"] == "chaos_flaky":
            assert len(attempts[run["rid"]]) == run["input"]["fails"] + 1
        elif run["workflow"] == "chaos_parent":
            for k in run["input"]["ks"]:
                assert len(attempts[f"{run['rid']}/{k}"]) == k % 3 + 1

    # "An action in flight at a kill may run once more": every delivery of a key
    # after its first follows the kill of the process that sent the one before,
    # at which the action had not finished. So a key runs at most once more per
    # kill, and a kill adds at most one run per executor thread of the victim.
    assert [k for k, ds in deliveries.items() if any(d.sender is None for d in ds)] == []
    assert len(kills) >= int(KILL_PHASE / KILL_EVERY[1]) - 1
    extra_per_kill, unexplained = attribute(deliveries, kills)
    assert unexplained == [], f"{len(unexplained)} repeated deliveries that no kill " \
        f"explains (key, [(sender, time)]), e.g. {unexplained[:5]}"
    assert max(extra_per_kill.values(), default=0) <= THREADS, extra_per_kill
    # An action whose result was committed before a kill never ran again after it.
    rerun_after_done = [(key, name) for name, _, _, checked, done in kills for key in done
                        if any(d.at > checked for d in deliveries.get(key, ()))]
    assert rerun_after_done == []
    assert max((len(ds) for ds in deliveries.values()), default=0) <= 1 + len(kills)
    redelivered = {k: len(ds) - 1 for k, ds in deliveries.items() if len(ds) > 1}
    print(f"\nchaos: {len(kills)} kills, {len(deliveries)} logical calls, "
          f"{sum(redelivered.values())} re-deliveries over {len(redelivered)} calls, "
          f"max deliveries of one call {max(len(ds) for ds in deliveries.values())}, "
          f"per killed process {dict(sorted(extra_per_kill.items()))}; kills and starts "
          f"{end - started:.0f}s, then all ended after {drained - end:.0f}s")
