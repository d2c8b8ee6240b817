"""Processing claimed work inside one transaction: the work kinds and their
handlers (one line each), and draining the work a step makes for itself."""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import select

from orchestrator.dsl import bounds
from orchestrator.engine import dataflow, tasks, workflows
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.states import WorkflowState as W
from orchestrator.engine.tx import Tx
from orchestrator.errors import NotFound
from orchestrator.store import schema
from orchestrator.store.db import Store


def _start_task(tx: Tx, ex: dict, w: dict, local: bool) -> None:
    tasks.start(tx, ex, tx.task(w["task_id"]), local)


def _continue(tx: Tx, ex: dict, w: dict, local: bool) -> None:
    # The rest of an on-* list after a `pause` command, once resumed.
    ex["active_tasks"] -= 1
    tx.touch("workflow", ex)
    p = w["payload"]
    tasks.follow(tx, ex, tx.task(w["task_id"]), p["outcome"], p["next"], p["handled"])


def _retry(tx: Tx, ex: dict, w: dict, local: bool) -> None:
    tasks.retry_now(tx, ex, tx.task(w["task_id"]), w["payload"]["attempt"])


def _timeout(tx: Tx, ex: dict, w: dict, local: bool) -> None:
    p = w["payload"]
    tasks.timeout(tx, ex, tx.task(w["task_id"]), p["attempt"], p["seconds"])


def _wait_after(tx: Tx, ex: dict, w: dict, local: bool) -> None:
    task = tx.task(w["task_id"])
    ok, info = task["flags"].pop("outcome", [True, None])
    tx.touch("task", task)
    tasks.finalize(tx, ex, task, ok=ok, result=task["result"], info=info)


def _subworkflow_done(tx: Tx, ex: dict, w: dict, local: bool) -> None:
    child = tx.execution(w["payload"]["child"])
    ok = child["state"] == W.SUCCESS.value
    info = None if ok else (
        f"sub-workflow {child['workflow_name']} [{child['id']}] "
        f"{child['state'].lower()}: {child['state_info']}"
    )
    tasks.action_done(tx, ex, tx.action(w["action_id"]), ok, child["output"], info)


HANDLERS = {
    "start_task": _start_task,
    "continue": _continue,
    "retry": _retry,
    "timeout": _timeout,
    "wait_after": _wait_after,
    "subworkflow_done": _subworkflow_done,
}


def process(tx: Tx, w: dict, local: bool = False) -> None:
    """Apply one work item and settle its execution."""
    try:
        ex = tx.execution(w["execution_id"])
    except NotFound:
        return  # the execution was deleted
    if ex["state"] in (W.SUCCESS.value, W.ERROR.value, W.CANCELLED.value):
        if w["kind"] != "subworkflow_done":
            return
        action = tx.action(w["action_id"])
        if action["state"] != A.RUNNING.value:
            return
    HANDLERS[w["kind"]](tx, ex, w, local)
    workflows.settle(tx, ex)


def finish(tx: Tx, budget: int = 5000) -> int:
    """End a step: process the work it made for itself (up to ``budget`` items;
    the rest is queued for the next step) and write everything. Returns the
    number of items processed."""
    if _queue_only.get():
        budget = 0
    # A long step keeps thousands of rows alive; the cyclic collector would scan
    # them again and again (about 15-25% of a 10,000-item with-items). Rows hold
    # no cycles worth collecting mid-step, so it waits until the step is written.
    collecting = gc.isenabled()
    gc.disable()
    try:
        done = 0
        while tx.local and done < budget:
            process(tx, tx.local.popleft(), local=True)
            done += 1
        tx.spill_local()
        tx.flush()
    finally:
        if collecting:
            gc.enable()
    return done


_queue_only: ContextVar[bool] = ContextVar("orchestrator_steps_queue_only", default=False)


def outside_lock(store: Store, attempt, hand_off: bool = False):
    """Run ``attempt()`` (one or more write transactions that evaluate expressions)
    so that an expression running longer than the inline budget is evaluated with
    no transaction open: the transaction rolls back, the expression runs on its
    own (reading through a read-only connection), and ``attempt()`` runs again
    with its result (see :mod:`orchestrator.dsl.bounds`).

    ``hand_off`` (callers outside the engine: an API request): the first time an
    expression is slow, ``attempt()`` runs again with the work it would have done
    at once (starting tasks) queued for the engine instead, so that a request
    does not wait for user code."""
    state = {"queue_only": False}

    def run():
        token = _queue_only.set(state["queue_only"])
        try:
            return attempt()
        finally:
            _queue_only.reset(token)

    def on_slow() -> bool:
        if not hand_off or state["queue_only"]:
            return False
        state["queue_only"] = True
        return True

    @contextmanager
    def detach(functions):
        if not isinstance(functions, dataflow.EngineFunctions):
            yield None
            return
        stop = threading.Event()
        watcher = threading.Thread(
            target=_abandon_when_ended,
            args=(store, functions.ex["id"], threading.get_ident(), stop),
            name="expression-abandon", daemon=True)
        watcher.start()
        try:
            with store.connect() as conn:
                yield functions.detached(Tx(conn))
        finally:
            stop.set()

    return bounds.outside_lock(run, detach, on_slow)


def _abandon_when_ended(store: Store, execution_id: str, ident: int,
                        stop: threading.Event) -> None:
    """While a slow expression of this execution runs outside the lock: once the
    execution is cancelled, ends or is deleted, the evaluation is abandoned, so
    the engine thread is free again (not busy until the CPU limit)."""
    e = schema.executions
    seen = False
    while not stop.wait(0.25):
        try:
            with store.connect() as conn:
                state = conn.execute(select(e.c.state).where(e.c.id == execution_id)).scalar()
        except Exception:  # the store is busy or gone: try again, or stop with the step
            continue
        if state is None and not seen:
            continue  # not committed yet (an execution being started)
        seen = True
        if state not in (W.RUNNING.value, W.PAUSED.value):
            bounds.interrupt([ident], "abandon")
            return
