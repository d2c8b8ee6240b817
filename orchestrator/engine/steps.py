"""Processing claimed work inside one transaction: the work kinds and their
handlers (one line each), and draining the work a step makes for itself."""
from __future__ import annotations

import gc

from orchestrator.engine import tasks, workflows
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.states import WorkflowState as W
from orchestrator.engine.tx import Tx
from orchestrator.errors import NotFound


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
