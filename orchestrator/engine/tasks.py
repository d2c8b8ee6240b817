"""Task lifecycle inside a step: schedule (joins), start (policies, with-items),
launch actions, record their results, finish, follow transitions.

Counters on the task row (items started/done/failed, join arrivals) and on
the execution row (active tasks, waiting joins, unhandled errors) make every
completion O(1): nothing rescans siblings.
"""
from __future__ import annotations

from sqlalchemy import select, update

from orchestrator.dsl import bounds
from orchestrator.engine import dataflow, launch, specs, workflows
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.states import TaskState as T
from orchestrator.engine.states import WorkflowState as W
from orchestrator.engine.tx import Tx, new_id
from orchestrator.errors import ExpressionError
from orchestrator.store import schema

RUNNING_STATES = (T.RUNNING.value, T.RUNNING_DELAYED.value)


def spec_of(tx: Tx, ex: dict, task: dict):
    return specs.load(tx.conn, ex["spec_hash"]).workflows[ex["workflow_name"]].tasks[task["name"]]


def _new_task(tx: Tx, ex: dict, name: str, state: str, parent_id, flags: dict) -> dict:
    ex["task_seq"] += 1
    tx.touch("workflow", ex)
    row = tx.add("task", {
        "id": new_id(), "execution_id": ex["id"], "name": name, "seq": ex["task_seq"],
        "state": state, "state_info": None, "parent_id": parent_id, "published": None,
        "result": None, "items": None, "items_total": 1, "items_started": 0, "items_done": 0,
        "items_failed": 0, "join_arrivals": 0, "attempt": 1, "flags": flags, "is_end": False,
        "created_at": tx.now, "started_at": None, "finished_at": None,
    })
    tx.event(ex["id"], f"task.{state}", row["id"], {"name": name, "state": state})
    return row


def _open_join(tx: Tx, ex: dict, name: str, upstream: int) -> dict | None:
    memo = tx.__dict__.setdefault("_joins", {})
    row = memo.get((ex["id"], name))
    if row is None:
        tx.flush()
        t = schema.task_executions
        found = tx.conn.execute(
            select(t).where(t.c.execution_id == ex["id"], t.c.name == name)
            .order_by(t.c.seq.desc()).limit(1)
        ).mappings().first()
        row = tx.adopt("task", [found])[0] if found else None
    if row is None or not row["flags"].get("join") or row["join_arrivals"] >= upstream:
        return None
    return row


def schedule(tx: Tx, ex: dict, name: str, from_task: dict | None) -> None:
    """Create the next task run (or count an arrival at a join) and queue its start."""
    graph = workflows.graph_of(tx, ex)
    required = graph.join_required(name)
    parent_id = from_task["id"] if from_task else None
    if required is None:
        row = _new_task(tx, ex, name, T.IDLE.value, parent_id, {})
        ex["active_tasks"] += 1
        tx.add_work("start_task", ex["id"], task_id=row["id"])
        return
    upstream = graph.upstream_count(name)
    join = _open_join(tx, ex, name, upstream)
    if join is None:
        join = _new_task(tx, ex, name, T.WAITING.value, None, {"join": True})
        ex["waiting_joins"] += 1
    tx.__dict__.setdefault("_joins", {})[(ex["id"], name)] = join
    join["join_arrivals"] += 1
    tx.touch("task", join)
    if parent_id:
        tx.link(join["id"], parent_id, join["join_arrivals"])
    if join["state"] == T.WAITING.value and join["join_arrivals"] >= required:
        tx.set_state("task", join, T.IDLE.value)
        ex["waiting_joins"] -= 1
        ex["active_tasks"] += 1
        tx.add_work("start_task", ex["id"], task_id=join["id"])


def start(tx: Tx, ex: dict, task: dict, local: bool) -> None:
    """Work ``start_task``: pause-before, wait-before, then run the task."""
    if task["state"] not in (T.IDLE.value, T.RUNNING_DELAYED.value):
        return
    if ex["state"] != W.RUNNING.value and not (local and ex["state"] == W.PAUSED.value):
        if ex["state"] == W.PAUSED.value:
            tx.add_work("start_task", ex["id"], task_id=task["id"], held=True)
        return
    spec, flags = spec_of(tx, ex, task), task["flags"]
    ctx = dataflow.inbound(tx, ex, task)
    field = "pause-before"
    try:
        if spec.pause_before and not flags.get("paused_before"):
            if dataflow.evaluate_in(tx, ex, task, spec.pause_before, ctx):
                flags["paused_before"] = True
                tx.touch("task", task)
                tx.add_work("start_task", ex["id"], task_id=task["id"], held=True)
                workflows.pause(tx, ex, f"pause-before task {task['name']!r}")
                return
        field = "wait-before"
        if spec.wait_before and not flags.get("waited_before"):
            delay = float(dataflow.evaluate_in(tx, ex, task, spec.wait_before, ctx) or 0)
            flags["waited_before"] = True
            tx.touch("task", task)
            if delay > 0:
                tx.set_state("task", task, T.RUNNING_DELAYED.value, f"wait-before {delay}s")
                tx.add_work("start_task", ex["id"], task_id=task["id"], delay=delay)
                return
        field = "with-items"
        items = _items(tx, ex, task, spec, ctx)
        field = "timeout"
        timeout = spec.timeout and float(dataflow.evaluate_in(tx, ex, task, spec.timeout, ctx))
    except (ExpressionError, ValueError, TypeError) as e:
        _fail_at_start(tx, ex, task, f"{field}: {e}")
        return
    tx.set_state("task", task, T.RUNNING.value)
    tx.fresh_tasks.add(task["id"])  # it has no action runs yet: all will be made here
    task["started_at"] = tx.now
    if items is not None:
        task["items"], task["items_total"] = items, len(items)
    if timeout:
        tx.add_work("timeout", ex["id"], task_id=task["id"], delay=timeout,
                    payload={"attempt": task["attempt"], "seconds": timeout})
    pump(tx, ex, task)


def _fail_at_start(tx: Tx, ex: dict, task: dict, info: str) -> None:
    if task["state"] == T.RUNNING_DELAYED.value:
        tx.set_state("task", task, T.RUNNING.value)
    finalize(tx, ex, task, ok=False, result=None, info=f"task {task['name']!r}: {info}")


def _keep(ex: dict, value, what: str, single: int | None = None) -> str | None:
    """Count ``value`` against what the execution may store (and, with ``single``,
    against a limit of its own, in the same walk). The reason it cannot be kept,
    or None once it is counted."""
    limit = bounds.LIMITS.max_execution_bytes
    used = ex.get("stored_bytes") or 0
    room = limit - used
    size = bounds.size_of(value, room if single is None else min(room, single))
    if single is not None and size > single:
        return f"{what} is over the limit of {single:,} bytes (ORCH_EXPR_MAX_RESULT_BYTES)"
    if size > room:
        return (f"{what} would take the execution past its storage limit of {limit:,} "
                f"bytes (ORCH_MAX_EXECUTION_BYTES)")
    ex["stored_bytes"] = used + size
    return None


def _items(tx: Tx, ex: dict, task: dict, spec, ctx: dict) -> list | None:
    wi = spec.with_items
    if wi is None:
        return None
    lists = []
    for var, source in zip(wi.vars, wi.sources):
        value = dataflow.evaluate_in(tx, ex, task, source, ctx)
        if not isinstance(value, list):
            raise ValueError(f"{var!r} must be a list, got {type(value).__name__}")
        lists.append(value)
    limit = bounds.LIMITS.max_with_items
    if any(len(v) > limit for v in lists):
        raise ValueError(f"{max(len(v) for v in lists):,} items, more than the limit of "
                         f"{limit:,} for one with-items (ORCH_MAX_WITH_ITEMS)")
    if len({len(v) for v in lists}) > 1:
        raise ValueError(
            "lists of different lengths: "
            + ", ".join(f"{v}={len(lst)}" for v, lst in zip(wi.vars, lists))
        )
    return [dict(zip(wi.vars, values)) for values in zip(*lists)]


def pump(tx: Tx, ex: dict, task: dict) -> None:
    """Launch as many items as concurrency allows; finish the task when all are done."""
    spec = spec_of(tx, ex, task)
    total = task["items_total"]
    limit = total
    if spec.concurrency:
        try:
            limit = int(dataflow.evaluate_in(tx, ex, task, spec.concurrency,
                                             dataflow.inbound(tx, ex, task))) or total
        except (ExpressionError, ValueError, TypeError) as e:
            finalize(tx, ex, task, ok=False, result=None,
                     info=f"task {task['name']!r}: concurrency: {e}")
            return
    while task["state"] == T.RUNNING.value:
        relaunch = task["flags"].get("relaunch") or []
        pending = len(relaunch) if relaunch else total - task["items_started"]
        room = limit - (task["items_started"] - task["items_done"])
        count = min(room, pending)
        if count <= 0:
            break
        if relaunch:
            indexes = relaunch[:count]
            task["flags"]["relaunch"] = relaunch[count:]
        else:
            indexes = list(range(task["items_started"], task["items_started"] + count))
        task["items_started"] += count
        tx.touch("task", task)
        finished = launch.items(tx, ex, task, spec, indexes)
        for _action, ok in finished:
            _count(task, ok)
        if not finished:
            break
    if task["state"] == T.RUNNING.value and task["items_done"] >= total:
        _all_items_done(tx, ex, task, spec)


def _count(task: dict, ok: bool) -> None:
    task["items_done"] += 1
    if not ok:
        task["items_failed"] += 1


def action_done(tx: Tx, ex: dict, action: dict, ok: bool, output, info: str | None,
                cancelled: bool = False, retryable: bool = True) -> None:
    """An action (or sub-workflow) of a task finished: record it, move the task on
    (a cancelled action counts as failed for its task). A failure that is not
    ``retryable`` stops the task's retry policy."""
    if action["state"] != A.RUNNING.value:
        return
    task = tx.task(action["task_execution_id"])
    if not ok and not retryable and not action["superseded"]:
        task["flags"]["no_retry"] = True
    refused = output is not None and _keep(ex, output, "the action's result",
                                           bounds.LIMITS.max_result_bytes)
    if refused:
        ok, output, info = False, None, refused
    ok, output, info = launch.transform_output(tx, ex, task, action, ok, output, info)
    final = A.CANCELLED if cancelled else A.SUCCESS if ok else A.ERROR
    tx.set_state("action", action, final.value, info)
    action["output"] = output
    if task["state"] != T.RUNNING.value or action["superseded"]:
        return
    _count(task, ok)
    tx.touch("task", task)
    pump(tx, ex, task)


def _current_actions(tx: Tx, task: dict) -> list:
    """The task's action runs that count (not superseded), in item order."""
    if task["id"] in tx.fresh_tasks:
        # Every action of a task made in this step is in memory: no need to read back.
        rows = [r for r in tx.actions_of[task["id"]] if not r["superseded"]]
        return sorted(rows, key=lambda r: r["item_index"])
    tx.flush()
    a = schema.action_executions
    rows = tx.conn.execute(
        select(a.c.id, a.c.item_index, a.c.output, a.c.state, a.c.state_info)
        .where(a.c.task_execution_id == task["id"], a.c.superseded.is_(False))
        .order_by(a.c.item_index)
    ).mappings()
    # Rows changed in this step are newer than what the query returned.
    return [tx.rows["action"].get(r["id"], r) for r in rows]


def _all_items_done(tx: Tx, ex: dict, task: dict, spec) -> None:
    fresh = _current_actions(tx, task)
    outputs = [r["output"] for r in fresh]
    failed = [r for r in fresh if r["state"] != A.SUCCESS.value]
    if spec.with_items is None:
        result = outputs[0] if outputs else None
        info = (failed[0]["state_info"] or "action failed") if failed else None
    else:
        result = outputs
        info = "One or more actions had failed." if failed else None
        if failed and failed[0]["state_info"]:
            info += f" First: item {failed[0]['item_index']}: {failed[0]['state_info']}"
    complete(tx, ex, task, ok=not failed, result=result, info=info)


def complete(tx: Tx, ex: dict, task: dict, ok: bool, result, info: str | None,
             timed_out: bool = False) -> None:
    """The task's work is over: apply fail-on, retry and wait-after, then finalize."""
    spec = spec_of(tx, ex, task)
    task["result"] = result
    ctx = dataflow.inbound(tx, ex, task)
    field = "fail-on"
    try:
        if ok and spec.fail_on and dataflow.evaluate_in(tx, ex, task, spec.fail_on, ctx):
            ok, info = False, f"fail-on condition is true: {spec.fail_on}"
        field = "retry"
        if spec.retry and not timed_out and _should_retry(tx, ex, task, spec.retry, ok, ctx):
            return
    except (ExpressionError, ValueError, TypeError) as e:
        ok, info = False, f"task {task['name']!r}: {field}: {e}"
    if spec.wait_after and not task["flags"].get("waited_after"):
        try:
            delay = float(dataflow.evaluate_in(tx, ex, task, spec.wait_after, ctx) or 0)
        except (ExpressionError, ValueError, TypeError) as e:
            delay, ok, info = 0, False, f"task {task['name']!r}: wait-after: {e}"
        if delay > 0:
            task["flags"].update(waited_after=True, outcome=[ok, info])
            tx.set_state("task", task, T.RUNNING_DELAYED.value, f"wait-after {delay}s")
            tx.add_work("wait_after", ex["id"], task_id=task["id"], delay=delay)
            return
    finalize(tx, ex, task, ok=ok, result=result, info=info)


def _should_retry(tx: Tx, ex: dict, task: dict, retry, ok: bool, ctx: dict) -> bool:
    if task["flags"].pop("no_retry", False) and not ok:
        tx.event(ex["id"], "task.retry_stopped", task["id"],
                 {"reason": "the action's error says trying again cannot help"})
        return False
    count = int(dataflow.evaluate_in(tx, ex, task, retry.count, ctx))
    if task["attempt"] > count:
        return False
    if ok:
        if not (retry.continue_on and dataflow.evaluate_in(tx, ex, task, retry.continue_on, ctx)):
            return False
    elif retry.break_on and dataflow.evaluate_in(tx, ex, task, retry.break_on, ctx):
        return False
    delay = float(dataflow.evaluate_in(tx, ex, task, retry.delay, ctx) or 0)
    task["attempt"] += 1
    tx.touch("task", task)
    tx.event(ex["id"], "task.retry", task["id"], {"attempt": task["attempt"], "delay": delay})
    if delay > 0:
        tx.set_state("task", task, T.RUNNING_DELAYED.value, f"retry in {delay}s")
    tx.add_work("retry", ex["id"], task_id=task["id"], delay=delay,
                payload={"attempt": task["attempt"]})
    return True


def retry_now(tx: Tx, ex: dict, task: dict, attempt: int) -> None:
    """Work ``retry``: run every item of the task again (Mistral semantics)."""
    if task["attempt"] != attempt or task["state"] not in RUNNING_STATES:
        return
    supersede(tx, task, only_failed=False)
    tx.set_state("task", task, T.RUNNING.value)
    task.update(items_started=0, items_done=0, items_failed=0)
    pump(tx, ex, task)


def supersede(tx: Tx, task: dict, only_failed: bool) -> list[int]:
    """Mark earlier action runs of the task as replaced; return their item indexes."""
    tx.flush()
    a = schema.action_executions
    cond = [a.c.task_execution_id == task["id"], a.c.superseded.is_(False)]
    if only_failed:
        cond.append(a.c.state != A.SUCCESS.value)
    indexes = [r[0] for r in tx.conn.execute(select(a.c.item_index).where(*cond))]
    tx.conn.execute(update(a).where(*cond).values(superseded=True))
    for row in tx.rows["action"].values():
        if row["task_execution_id"] == task["id"] and row["item_index"] in indexes:
            row["superseded"] = True
    return sorted(indexes)


def timeout(tx: Tx, ex: dict, task: dict, attempt: int, seconds: float) -> None:
    if task["attempt"] != attempt or task["state"] not in RUNNING_STATES:
        return
    tx.flush()
    a = schema.action_executions
    rows = tx.conn.execute(
        select(a).where(a.c.task_execution_id == task["id"], a.c.state == A.RUNNING.value)
    ).mappings()
    for action in tx.adopt("action", rows):
        tx.set_state("action", action, A.CANCELLED.value, "task timed out")
        if action["child_execution_id"]:
            workflows.cancel(tx, tx.execution(action["child_execution_id"]), "task timed out")
    if task["state"] == T.RUNNING_DELAYED.value:
        tx.set_state("task", task, T.RUNNING.value)
    complete(tx, ex, task, ok=False, result=task["result"],
             info=f"task {task['name']!r} timed out after {seconds:g}s", timed_out=True)


def finalize(tx: Tx, ex: dict, task: dict, ok: bool, result, info: str | None,
             from_waiting: bool = False) -> None:
    """Publish, record the final state, follow the transitions."""
    spec = spec_of(tx, ex, task)
    task["result"] = result
    ctx = dataflow.inbound(tx, ex, task)
    try:
        keep = dataflow.evaluate_in(tx, ex, task, spec.keep_result, ctx)
    except ExpressionError as e:
        msg = f"task {task['name']!r}: keep-result: {e}"
        keep, ok, info = True, False, f"{info}\n{msg}" if info and not ok else msg
    published = None
    for attempt_ok in ((True, False) if ok else (False,)):
        field = "publish" if attempt_ok else "publish-on-error"
        source = spec.publish if attempt_ok else spec.publish_on_error
        try:
            published = dataflow.evaluate_in(tx, ex, task, source, ctx) if source else None
            break
        except ExpressionError as e:
            ok, published = False, None
            msg = f"task {task['name']!r}: {field}: {e}"
            info = f"{info}\n{msg}" if info and not attempt_ok else msg
    if published is not None and not isinstance(published, dict):
        published = None
    if not keep:
        task["result"] = None
    refused = (task["result"] is not None or published) and _keep(
        ex, (task["result"], published), "its result and published values")
    if refused:
        msg = f"task {task['name']!r}: {refused}"
        task["result"], published, ok = None, None, False
        info = f"{info}\n{msg}" if info else msg
    task["published"] = published or None
    task["finished_at"] = tx.now
    if task["state"] == T.RUNNING_DELAYED.value:
        tx.set_state("task", task, T.RUNNING.value)
    tx.set_state("task", task, T.SUCCESS.value if ok else T.ERROR.value, info)
    if not from_waiting:
        ex["active_tasks"] -= 1
        tx.touch("workflow", ex)
    dataflow.remember(task, dataflow.merge(ctx, task["published"]))
    follow(tx, ex, task, "SUCCESS" if ok else "ERROR", 0, handled=False)


def follow(tx: Tx, ex: dict, task: dict, outcome: str, start_at: int, handled: bool) -> None:
    """Process the task's clauses in order until the workflow stops running."""
    graph = workflows.graph_of(tx, ex)
    clauses = graph.clauses(task["name"], outcome)
    n_error = len(graph.spec.tasks[task["name"]].on_error) if graph.target is None else 0
    ctx = dataflow.outbound(tx, ex, task)
    took_task = start_at > 0
    for i in range(start_at, len(clauses)):
        tr = clauses[i]
        if ex["state"] == W.PAUSED.value:
            # Paused meanwhile (by a user, another task): the rest runs on resume.
            _defer(tx, ex, task, outcome, i, handled)
            return
        if ex["state"] != W.RUNNING.value:
            break
        try:
            if tr.guard is not None and not dataflow.evaluate_in(tx, ex, task, tr.guard, ctx):
                continue
            msg = dataflow.evaluate_in(tx, ex, task, tr.msg, ctx) if tr.msg else None
        except ExpressionError as e:
            workflows.finish(tx, ex, W.ERROR.value,
                             f"task {task['name']!r}: transition to {tr.target!r}: {e}")
            return
        if outcome == "ERROR" and i < n_error:
            handled = True
        if tr.command in ("succeed", "fail"):
            # it ends the workflow here: its publish is part of the final context
            task["is_end"] = not took_task
            tx.touch("task", task)
        if tr.command == "succeed":
            workflows.finish(tx, ex, W.SUCCESS.value, msg)
        elif tr.command == "fail":
            task["flags"]["handled"] = handled
            _mark_unhandled(ex, task, outcome, handled)
            workflows.finish(tx, ex, W.ERROR.value, msg or f"failed by task {task['name']!r}")
            return
        elif tr.command == "pause":
            _defer(tx, ex, task, outcome, i + 1, handled)
            workflows.pause(tx, ex, msg)
            return
        elif tr.command is None:
            schedule(tx, ex, tr.target, task)
            took_task = True
    task["is_end"] = not took_task
    task["flags"]["handled"] = handled
    tx.touch("task", task)
    _mark_unhandled(ex, task, outcome, handled)


def _defer(tx: Tx, ex: dict, task: dict, outcome: str, next_clause: int,
           handled: bool) -> None:
    """Hold the rest of the task's clauses until the execution is resumed."""
    ex["active_tasks"] += 1  # the rest of the list is still to do
    tx.add_work("continue", ex["id"], task_id=task["id"], held=True,
                payload={"outcome": outcome, "next": next_clause, "handled": handled})


def _mark_unhandled(ex: dict, task: dict, outcome: str, handled: bool) -> None:
    if outcome == "ERROR" and not handled and not task["flags"].get("counted"):
        task["flags"]["counted"] = True
        ex["unhandled_errors"] += 1
