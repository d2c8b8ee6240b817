"""Hostile workflows: expressions see only their own project, runaway or huge
expressions fail their task with a clear message (never freeze the engine or
fill the store), slow expressions run with no store lock held, and failures
that cannot be retried or that crash a sub-workflow's step end properly."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from orchestrator.dsl import bounds
from orchestrator.engine import dataflow, steps
from orchestrator.store import schema
from tests.conftest import holding_write_lock


@pytest.fixture
def limits(monkeypatch):
    """Small limits so that tests stay fast; restored after the test."""
    monkeypatch.setattr(bounds.LIMITS, "cpu_seconds", 0.5)
    return bounds.LIMITS


VICTIM = """
version: '2.0'
victim:
  tasks:
    keep:
      action: std.echo output=s3cr3t-value
      publish:
        token: <% task().result %>
"""


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_tasks_of_another_projects_execution_is_empty(runner, lang):
    victim = runner.start(VICTIM, project="alice")
    runner.drive()
    assert runner.summary(victim)["state"] == "SUCCESS"
    expr = "<% tasks($.victim) %>" if lang == "yaql" else "{{ tasks(_.victim) }}"
    thief = f"""
version: '2.0'
thief:
  input: [victim]
  output:
    stolen: "{expr}"
  tasks:
    t:
      action: std.noop
"""
    other = runner.run(thief, {"victim": victim}, project="mallory")
    assert other["state"] == "SUCCESS"
    assert other["output"] == {"stolen": []}
    # The same project may read it (Mistral's tasks(<id>)).
    same = runner.run(thief, {"victim": victim}, project="alice")
    names = [t["name"] for t in same["output"]["stolen"]]
    assert names == ["keep"]
    assert same["output"]["stolen"][0]["published"] == {"token": "s3cr3t-value"}


RUNAWAY = {
    "yaql": "<% range(0, 1000000000).sum() %>",
    "jinja": "{% for x in range(99999) %}{% for y in range(99999) %}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("lang", sorted(RUNAWAY))
def test_runaway_expression_fails_its_task_at_the_cpu_limit(runner, limits, lang):
    out = runner.run(f"""
version: '2.0'
wf:
  tasks:
    spin:
      action: std.echo
      input:
        output: "{RUNAWAY[lang]}"
      on-error: recover
    recover:
      action: std.echo output=recovered
""")
    assert out["state"] == "SUCCESS"
    spin = runner.task(out, "spin")
    assert spin["state"] == "ERROR"
    assert "CPU time limit of 0.5 s" in spin["state_info"]
    assert runner.task(out, "recover")["state"] == "SUCCESS"


@pytest.mark.parametrize("expr", ["\"{{ 'a' * 50000000 }}\"", "\"<% 'a' * 50000000 %>\"",
                                  "<% range(0, 3000000).toList() %>"])
def test_huge_result_fails_its_task_and_stores_nothing(runner, limits, expr):
    out = runner.run(f"""
version: '2.0'
wf:
  tasks:
    big:
      action: std.noop
      publish:
        blob: {expr}
""")
    assert out["state"] == "ERROR"
    big = runner.task(out, "big")
    assert "limit" in big["state_info"]
    with runner.store.connect() as conn:
        stored = conn.execute(select(schema.executions.c.stored_bytes)).scalar()
        sizes = conn.execute(text(
            "SELECT length(CAST(published AS TEXT)) FROM task_executions")).scalars().all()
    assert stored < 10_000
    assert all((s or 0) < 10_000 for s in sizes)


def test_with_items_over_the_limit_is_refused(runner, monkeypatch):
    monkeypatch.setattr(bounds.LIMITS, "max_with_items", 1000)
    out = runner.run("""
version: '2.0'
wf:
  tasks:
    many:
      with-items: i in <% range(0, 1001).toList() %>
      action: std.noop
""")
    assert out["state"] == "ERROR"
    info = runner.task(out, "many")["state_info"]
    assert "1,001 items, more than the limit of 1,000" in info
    with runner.store.connect() as conn:
        actions = conn.execute(select(schema.action_executions.c.id)).all()
    assert actions == []


def test_execution_storage_limit_fails_the_task_that_passes_it(runner, monkeypatch):
    monkeypatch.setattr(bounds.LIMITS, "max_execution_bytes", 50_000)
    out = runner.run("""
version: '2.0'
wf:
  tasks:
    fill:
      with-items: i in <% range(0, 5).toList() %>
      concurrency: 1
      action: std.echo output=<% 'x' * 20000 %>
""")
    assert out["state"] == "ERROR"
    assert "storage limit of 50,000 bytes" in runner.task(out, "fill")["state_info"]
    with runner.store.connect() as conn:
        stored = conn.execute(select(schema.executions.c.stored_bytes)).scalar()
    assert stored <= 50_000


def _write_lock_free(store) -> bool:
    """Can another connection take the store's write lock right now?"""
    if store.is_sqlite:
        import sqlite3

        conn = sqlite3.connect(store.engine.url.database, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    with store.engine.connect() as conn:  # PostgreSQL: no other transaction is open
        busy = conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE '%in transaction%'")).scalar()
        conn.rollback()
        return busy == 0


def test_slow_expression_runs_with_no_write_lock_held(runner, monkeypatch):
    """An expression that runs past the inline budget is evaluated again after its
    transaction rolled back: what it computes is seen with the lock free, and the
    engine uses that result without evaluating it a third time."""
    seen: list[bool] = []

    def slow_env(self):
        seen.append(_write_lock_free(runner.store))
        end = time.thread_time() + 0.3  # well past the inline budget (20 ms of CPU)
        while time.thread_time() < end:
            pass
        return {"answer": 42}

    monkeypatch.setattr(dataflow.EngineFunctions, "env", slow_env)
    out = runner.run("""
version: '2.0'
wf:
  tasks:
    t:
      action: std.echo output=<% env().answer %>
      publish:
        got: <% task().result %>
""")
    assert out["state"] == "SUCCESS", out
    assert runner.task(out, "t")["published"] == {"got": 42}
    assert seen[-1] is True, seen  # the evaluation whose result counted held no lock
    assert seen.count(True) == 1  # and it ran once: the step's retry took its result
    assert False in seen  # the first try, inside the step, was abandoned


def test_reads_do_not_wait_for_a_writer(sqlite_store):
    """On SQLite a reader never waits for a step's write transaction (WAL)."""
    with holding_write_lock(sqlite_store):
        done = threading.Event()

        def reader():
            with sqlite_store.connect() as conn:
                conn.execute(select(schema.executions.c.id)).all()
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        # The writer still holds its transaction: the read must finish anyway.
        assert done.wait(30), "a read waited for the writer"


@pytest.fixture
def refusing_server():
    """A real HTTP server that answers every request 401, counting them."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append(self.path)
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("case", ["401", "invalid-url"])
def test_not_retryable_action_error_stops_the_retry_policy(runner, refusing_server, case):
    url, calls = refusing_server
    target = f"{url}/secret" if case == "401" else "not-a-url"
    out = runner.run(f"""
version: '2.0'
wf:
  tasks:
    call:
      action: std.http url={target}
      retry:
        count: 3
        delay: 0
""")
    assert out["state"] == "ERROR"
    with runner.store.connect() as conn:
        runs = conn.execute(select(schema.action_executions.c.id)).all()
    assert len(runs) == 1  # not 4
    assert len(calls) == (1 if case == "401" else 0)


def test_crashed_step_of_a_sub_workflow_ends_its_parent(runner, monkeypatch):
    """A sub-workflow whose step our code cannot apply goes to ERROR, and its
    parent hears of it (it used to stay RUNNING forever)."""
    text_ = """
version: '2.0'
parent:
  tasks:
    call:
      workflow: child
child:
  tasks:
    a:
      action: std.sleep seconds=0
      on-success: boom
    boom:
      action: std.noop
"""
    real = steps.HANDLERS["start_task"]

    def crashing(tx, ex, w, local):
        if tx.task(w["task_id"])["name"] == "boom":
            raise RuntimeError("a bug in the engine")
        real(tx, ex, w, local)

    monkeypatch.setitem(steps.HANDLERS, "start_task", crashing)
    execution_id = runner.start(text_, workflow="parent")
    runner.drive()
    out = runner.summary(execution_id)
    assert out["state"] == "ERROR"
    assert "sub-workflow child" in runner.task(out, "call")["state_info"]
    assert "a bug in the engine" in runner.task(out, "call")["state_info"]


@pytest.mark.parametrize("expr", ["<% yaml_parse($.doc) %>", "{{ yaml_parse(_.doc) }}"])
def test_yaml_parse_of_a_billion_laughs_is_refused(expr):
    """A task result (an HTTP body, say) parsed with yaml_parse() is read within
    the document limits, not expanded."""
    from orchestrator.dsl.expressions import evaluate
    from orchestrator.errors import ExpressionError

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(ExpressionError, match="more than 100000 values"):
        evaluate(expr, {"doc": "\n".join(lines)})
    assert evaluate(expr, {"doc": "a: [1, 2]"}) == {"a": [1, 2]}


def test_the_watchdog_survives_its_own_errors(monkeypatch, limits):
    """An error inside the watchdog is logged; the limits still hold after it."""
    from orchestrator.dsl.expressions import evaluate
    from orchestrator.errors import ExpressionError

    real, calls = bounds._cpu, {"n": 0}

    def flaky(clock):
        calls["n"] += 1
        if calls["n"] == 2:  # the watchdog's first reading
            raise RuntimeError("a bug in the watchdog")
        return real(clock)

    monkeypatch.setattr(bounds, "_cpu", flaky)
    with pytest.raises(ExpressionError, match="CPU time limit"):
        evaluate("<% range(0, 100000000).sum() %>", {})  # about 10 s of CPU unbounded


def test_a_busy_store_delays_an_actions_result_but_never_drops_it(runner, monkeypatch, caplog):
    """Recording an action's result that keeps losing races is tried again (with a
    log line), not dropped after a few tries to run the action again later."""
    import types

    from orchestrator.engine import worker as worker_mod
    from orchestrator.engine.tx import StaleState

    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    nap:
      action: std.sleep seconds=0
""")
    real, failures = steps.outside_lock, {"left": 12}

    def losing(store, attempt, hand_off=False):
        if failures["left"] and attempt.__name__ == "attempt" and not hand_off:
            failures["left"] -= 1
            raise StaleState("a task row changed under this step")
        return real(store, attempt, hand_off)

    monkeypatch.setattr(steps, "outside_lock", losing)
    monkeypatch.setattr(worker_mod, "time", types.SimpleNamespace(
        time=time.time, monotonic=time.monotonic, sleep=lambda s: None))
    with caplog.at_level("WARNING", logger="orchestrator.engine.worker"):
        for item in runner.worker.claim_actions():
            runner.worker.execute(item)
    assert failures["left"] == 0
    assert any("could not record its result after 10 tries" in r.getMessage()
               for r in caplog.records)
    runner.drive()
    assert runner.summary(execution_id)["state"] == "SUCCESS"
    with runner.store.connect() as conn:
        runs = conn.execute(select(schema.action_executions.c.runs)).scalars().all()
    assert runs == [1]  # recorded on the first run, not run again after its lease


def test_an_action_result_over_the_limit_fails_its_task_and_is_not_stored(runner, monkeypatch):
    """A real HTTP server answers more than the result limit: the action fails and
    nothing of the answer is stored."""
    from tests.httpcount import CountingServer

    monkeypatch.setattr(bounds.LIMITS, "max_result_bytes", 10_000)
    with CountingServer() as server:
        out = runner.run(f"""
version: '2.0'
wf:
  tasks:
    call:
      action: std.http
      input:
        url: {server.url}/big
        method: POST
        json: [<% 'x' * 6000 %>, <% 'y' * 6000 %>]
""")
    assert out["state"] == "ERROR"
    assert "the action's result is over the limit of 10,000 bytes" in \
        runner.task(out, "call")["state_info"]
    with runner.store.connect() as conn:
        outputs = conn.execute(select(schema.action_executions.c.output)).scalars().all()
        stored = conn.execute(select(schema.executions.c.stored_bytes)).scalar()
    assert outputs == [None]
    assert stored < 10_000
