"""What callers outside the engine do to executions (CLI, API, tests): start,
pause, resume, cancel, force an end, rerun or skip a task, complete an async
action, and read the results. Each call is one transaction."""
from __future__ import annotations

import functools
import time
from collections import Counter, defaultdict
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from orchestrator.dsl.spec import Document
from orchestrator.engine import dataflow, specs, steps, tasks, workflows
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.states import TaskState as T
from orchestrator.engine.states import WorkflowState as W
from orchestrator.engine.tx import StaleState, Tx
from orchestrator.errors import Conflict, ExpressionError, InvalidInput, NotFound
from orchestrator.secrets import seal_env
from orchestrator.store import schema
from orchestrator.store.db import Store


@contextmanager
def _tx(store: Store, now: float | None = None):
    with store.begin() as conn:
        tx = Tx(conn, now, lock_rows=not store.is_sqlite)
        yield tx
        steps.finish(tx)


def _retrying(fn):
    """Run again when the transaction lost a race (a row moved, a deadlock victim)."""

    @functools.wraps(fn)
    def wrapper(store, *args, **kwargs):
        for attempt in range(8):
            try:
                return steps.outside_lock(store, lambda: fn(store, *args, **kwargs),
                                          hand_off=True)
            except (StaleState, OperationalError):
                if attempt == 7:
                    raise
                time.sleep(0.02 * (attempt + 1))

    return wrapper


def resolve_workflow(doc: Document, name: str | None) -> str:
    """A workflow's name as the user wrote it (``wf``, ``wb.wf``), or None if only one."""
    if name is None:
        if len(doc.workflows) == 1:
            return next(iter(doc.workflows))
        raise InvalidInput(
            "this definition has several workflows; choose one with --workflow: "
            + ", ".join(doc.workflows)
        )
    for candidate in (name, f"{doc.name}.{name}" if doc.name else None):
        if candidate in doc.workflows:
            return candidate
    raise InvalidInput(f"no workflow {name!r}; this definition has: {', '.join(doc.workflows)}")


@_retrying
def start(store: Store, doc: Document, workflow_name: str | None = None, input: dict | None = None,
          *, env: dict | None = None, task_name: str | None = None,
          execution_id: str | None = None, project: str = "default", description: str = "",
          now: float | None = None, secrets: list | None = None) -> str:
    """Start an execution; its first tasks run in the same transaction when they can.
    ``secrets`` names the ``env`` variables to show as ``***``."""
    with store.begin() as conn:
        return start_in(conn, doc, workflow_name, input, env=env, task_name=task_name,
                        execution_id=execution_id, project=project, description=description,
                        now=now, secrets=secrets)


def start_in(conn, doc: Document, workflow_name: str | None = None, input: dict | None = None,
             *, env: dict | None = None, task_name: str | None = None,
             execution_id: str | None = None, project: str = "default", description: str = "",
             now: float | None = None, secrets: list | None = None) -> str:
    """``start`` inside the caller's transaction (the scheduler records its fire in it)."""
    name = resolve_workflow(doc, workflow_name)
    params: dict = {"env": seal_env(env or {}, secrets)}  # secrets encrypted at rest
    if task_name:
        params["task_name"] = task_name
    if secrets:
        params["secrets"] = list(secrets)
    tx = Tx(conn, now, lock_rows=conn.dialect.name != "sqlite")
    digest = specs.pin(tx.conn, doc, tx.now)
    ex = workflows.start(tx, digest, name, input or {}, params, execution_id=execution_id,
                         project=project, description=description)
    steps.finish(tx)
    return ex["id"]


@_retrying
def create(store: Store, doc: Document, workflow_name: str | None, input: dict | None,
           params: dict, *, execution_id: str | None = None, project: str = "default",
           description: str = "", now: float | None = None) -> tuple[dict, bool]:
    """Start an execution with ``params`` as given (``env``, ``task_name``,
    ``secrets``) and return ``(row, True)``. When ``execution_id`` is already
    used, start nothing and return ``(that row, False)``: whether it is the same
    request (project, workflow) is for the caller to judge."""
    e = schema.executions
    for attempt in range(2):
        try:
            with store.begin() as conn:
                if execution_id is not None:
                    found = conn.execute(select(e).where(e.c.id == execution_id)).mappings().first()
                    if found is not None:
                        return dict(found), False
                new = start_in(conn, doc, workflow_name, input, env=params.get("env"),
                               task_name=params.get("task_name"), execution_id=execution_id,
                               project=project, description=description, now=now,
                               secrets=params.get("secrets"))
                return dict(conn.execute(select(e).where(e.c.id == new)).mappings().one()), True
        except IntegrityError:
            # Two requests with the same id raced (PostgreSQL); the loser returns the winner's.
            if execution_id is None or attempt:
                raise
    raise AssertionError("unreachable")


@_retrying
def describe(store: Store, execution_id: str, description: str) -> None:
    with _tx(store) as tx:
        tx.execution(execution_id)["description"] = description


@_retrying
def pause(store: Store, execution_id: str) -> None:
    with _tx(store) as tx:
        ex = tx.execution(execution_id)
        if ex["state"] != W.RUNNING.value:
            raise Conflict(f"execution {execution_id} is {ex['state']}: only RUNNING can pause")
        workflows.pause(tx, ex, "paused by user")


@_retrying
def resume(store: Store, execution_id: str) -> None:
    with _tx(store) as tx:
        ex = tx.execution(execution_id)
        if ex["state"] != W.PAUSED.value:
            raise Conflict(f"execution {execution_id} is {ex['state']}: only PAUSED can resume")
        workflows.resume(tx, ex)


@_retrying
def cancel(store: Store, execution_id: str, info: str = "cancelled by user") -> None:
    with _tx(store) as tx:
        ex = tx.execution(execution_id)
        if ex["state"] not in (W.RUNNING.value, W.PAUSED.value):
            raise Conflict(f"execution {execution_id} is {ex['state']}: it cannot be cancelled")
        workflows.cancel(tx, ex, info)


@_retrying
def force_end(store: Store, execution_id: str, state: str, info: str | None = None) -> None:
    """End an execution now with SUCCESS or ERROR (Mistral's stop_workflow)."""
    if state not in (W.SUCCESS.value, W.ERROR.value):
        raise InvalidInput("state must be SUCCESS or ERROR")
    with _tx(store) as tx:
        ex = tx.execution(execution_id)
        if ex["state"] not in (W.RUNNING.value, W.PAUSED.value):
            raise Conflict(f"execution {execution_id} is {ex['state']}: it has already ended")
        workflows.finish(tx, ex, state, info or f"set to {state} by user")


def _reopen(tx: Tx, ex: dict, task: dict) -> None:
    if ex["state"] == W.ERROR.value:
        tx.set_state("workflow", ex, W.RUNNING.value, None)
        ex["output"] = ex["finished_at"] = None
    if not task["flags"].get("handled") and task["flags"].pop("counted", False):
        ex["unhandled_errors"] -= 1
    tx.touch("workflow", ex)


@_retrying
def rerun_task(store: Store, task_id: str, reset: bool = True) -> None:
    """Run a failed task again: all of it, or (``reset=False``, with-items) only the
    items that failed."""
    with _tx(store) as tx:
        task = tx.task(task_id)
        ex = tx.execution(task["execution_id"])
        if task["state"] != T.ERROR.value:
            raise Conflict(f"task {task['name']!r} is {task['state']}: only ERROR tasks rerun")
        if ex["state"] not in (W.ERROR.value, W.RUNNING.value, W.PAUSED.value):
            raise Conflict(f"execution {ex['id']} is {ex['state']}: its tasks cannot rerun")
        spec = tasks.spec_of(tx, ex, task)
        if not reset and spec.with_items is None:
            raise InvalidInput("reset=false reruns failed items and needs a with-items task")
        if task["flags"].get("join") or task["started_at"] is None:
            raise Conflict(f"task {task['name']!r} never started: it cannot rerun")
        _reopen(tx, ex, task)
        workflows.reopen_joins(tx, ex)
        failed = tasks.supersede(tx, task, only_failed=not reset)
        if reset:
            task.update(items_started=0, items_done=0, items_failed=0)
        else:
            task["items_done"] -= len(failed)
            task["items_failed"] = 0
            task["items_started"] -= len(failed)
            task["flags"]["relaunch"] = failed
        task["attempt"] += 1
        task["is_end"] = False
        task["flags"].pop("waited_after", None)
        task["flags"]["handled"] = False
        dataflow.forget(task["id"])
        tx.set_state("task", task, T.RUNNING.value, None, rerun=True, reset=reset)
        ex["active_tasks"] += 1
        tasks.pump(tx, ex, task)
        workflows.settle(tx, ex)


@_retrying
def skip_task(store: Store, task_id: str) -> None:
    """Mark a failed task SKIPPED and go on as if it had succeeded."""
    with _tx(store) as tx:
        task = tx.task(task_id)
        ex = tx.execution(task["execution_id"])
        if task["state"] != T.ERROR.value:
            raise Conflict(f"task {task['name']!r} is {task['state']}: only ERROR tasks skip")
        _reopen(tx, ex, task)
        spec = tasks.spec_of(tx, ex, task)
        ctx = dataflow.inbound(tx, ex, task)
        try:
            published = dataflow.evaluate_in(tx, ex, task, spec.publish_on_skip, ctx)
        except ExpressionError as e:
            raise InvalidInput(f"task {task['name']!r}: publish-on-skip: {e}") from None
        task["published"] = published or None
        dataflow.remember(task, dataflow.merge(ctx, task["published"]))
        tx.set_state("task", task, T.SKIPPED.value, "skipped by user")
        tasks.follow(tx, ex, task, "SKIPPED", 0, handled=True)
        workflows.settle(tx, ex)


@_retrying
def complete_action(store: Store, action_id: str, state: str, output=None,
                    info: str | None = None) -> None:
    """Complete an asynchronous action from outside (SUCCESS, ERROR or CANCELLED).
    An ERROR's message is ``info``, or else the output as text."""
    if state not in (A.SUCCESS.value, A.ERROR.value, A.CANCELLED.value):
        raise InvalidInput("state must be SUCCESS, ERROR or CANCELLED")
    with _tx(store) as tx:
        action = tx.action(action_id)
        ex = tx.execution(action["execution_id"])
        if action["state"] != A.RUNNING.value:
            raise Conflict(f"action execution {action_id} is {action['state']}, not RUNNING")
        tx.flush()
        tx.conn.execute(schema.work.delete().where(schema.work.c.action_id == action_id))
        ok = state == A.SUCCESS.value
        if ok:
            info = None
        elif info is None:
            info = str(output) if output is not None else "Unknown error"
        if state == A.CANCELLED.value:
            info = "action cancelled"
        tasks.action_done(tx, ex, action, ok, output, info,
                          cancelled=state == A.CANCELLED.value)
        workflows.settle(tx, ex)


ACTIVE = (W.RUNNING.value, W.PAUSED.value)


@_retrying
def delete(store: Store, execution_id: str, force: bool = False) -> list[str]:
    """Remove an execution and everything it owns (tasks, action executions,
    join links, events, queued work and its sub-executions, recursively);
    return the ids of the executions removed. A RUNNING or PAUSED execution is
    a Conflict unless ``force``: then it is cancelled first. A sub-execution
    of a root still RUNNING or PAUSED is a Conflict: its parent task waits for it."""
    with _tx(store) as tx:
        ex = tx.execution(execution_id)
        root_id = ex["root_execution_id"]
        if ex["parent_action_id"] and root_id:
            try:
                root = tx.execution(root_id)
            except NotFound:
                root = None
            if root is not None and root["state"] in ACTIVE:
                raise Conflict(
                    f"execution {execution_id} is a sub-execution of {root_id}, which is "
                    f"{root['state']}: cancel or delete that one instead")
        if ex["state"] in ACTIVE:
            if not force:
                raise Conflict(f"execution {execution_id} is {ex['state']}: cancel it first, "
                               "or delete it with force=true")
            workflows.cancel(tx, ex, "cancelled: deleted by user")
        tx.flush()  # the cancellation's rows exist before they are deleted
        ids = _descendants(tx.conn, execution_id)
        t, a = schema.task_executions, schema.action_executions
        for chunk in _chunks(ids):
            task_ids = select(t.c.id).where(t.c.execution_id.in_(chunk))
            tx.conn.execute(schema.task_links.delete().where(
                schema.task_links.c.task_id.in_(task_ids)))
            for table in (a, t, schema.events, schema.work):
                tx.conn.execute(table.delete().where(table.c.execution_id.in_(chunk)))
            tx.conn.execute(schema.executions.delete().where(schema.executions.c.id.in_(chunk)))
    return ids


def _chunks(ids: list[str], size: int = 500):
    for at in range(0, len(ids), size):
        yield ids[at:at + size]


def _descendants(conn, execution_id: str) -> list[str]:
    """``execution_id`` and its sub-executions at every depth, parents first."""
    a = schema.action_executions
    out, seen, frontier = [], {execution_id}, [execution_id]
    while frontier:
        out += frontier
        found = []
        for chunk in _chunks(frontier):
            found += conn.execute(select(a.c.child_execution_id).where(
                a.c.execution_id.in_(chunk), a.c.child_execution_id.is_not(None))).scalars()
        frontier = [c for c in dict.fromkeys(found) if c not in seen]
        seen.update(frontier)
    return out


def report(store: Store, execution_id: str, errors_only: bool = False,
           max_depth: int | None = None) -> dict:
    """The execution as a tree of rows, for a person looking for what went wrong:
    ``{"execution": node, "root_cause", "statistics"}``. A node is
    ``{"execution": row, "tasks": [{"task", "actions", "sub_executions": [node]}]}``;
    ``errors_only`` keeps ERROR tasks only, ``max_depth`` limits how many levels
    of sub-executions are expanded (0: none). ``root_cause`` (None unless
    something failed) is the first failing task, followed down failed
    sub-workflows to the deepest one: ``{"task": row | None, "execution": row,
    "state_info"}``. ``statistics`` counts the tasks of the whole tree by state."""
    e, t, a = schema.executions, schema.task_executions, schema.action_executions
    executions: dict[str, dict] = {}
    tasks_of: dict[str, list[dict]] = defaultdict(list)
    actions_of: dict[str, list[dict]] = defaultdict(list)
    with store.connect() as conn:
        frontier = [execution_id]
        while frontier:
            for chunk in _chunks(frontier):
                for row in conn.execute(select(e).where(e.c.id.in_(chunk))).mappings():
                    executions[row["id"]] = dict(row)
                for row in conn.execute(select(t).where(t.c.execution_id.in_(chunk))
                                        .order_by(t.c.seq)).mappings():
                    tasks_of[row["execution_id"]].append(dict(row))
                for row in conn.execute(select(a).where(a.c.execution_id.in_(chunk))
                                        .order_by(a.c.item_index, a.c.created_at)).mappings():
                    actions_of[row["task_execution_id"]].append(dict(row))
            children = [x["child_execution_id"] for x in
                        (r for i in frontier for tk in tasks_of[i] for r in actions_of[tk["id"]])
                        if x["child_execution_id"]]
            frontier = [c for c in dict.fromkeys(children) if c not in executions]
    if execution_id not in executions:
        raise NotFound(f"execution {execution_id} not found")

    def node(ex_id: str, depth: int) -> dict:
        rows = []
        for task in tasks_of[ex_id]:
            if errors_only and task["state"] != T.ERROR.value:
                continue
            expand = max_depth is None or depth < max_depth
            subs = [node(x["child_execution_id"], depth + 1) for x in actions_of[task["id"]]
                    if expand and x["child_execution_id"] in executions]
            rows.append({"task": task, "actions": actions_of[task["id"]], "sub_executions": subs})
        return {"execution": executions[ex_id], "tasks": rows}

    def cause(ex_id: str) -> dict | None:
        failed = [x for x in tasks_of[ex_id] if x["state"] == T.ERROR.value]
        candidates = [x for x in failed if not x["flags"].get("handled")] or failed
        if not candidates:
            return None
        first = min(candidates, key=lambda x: (x["finished_at"] or float("inf"), x["seq"]))
        for action in actions_of[first["id"]]:
            child = executions.get(action["child_execution_id"] or "")
            if child and not action["superseded"] and child["state"] == W.ERROR.value:
                deeper = cause(child["id"])
                if deeper:
                    return deeper
        return {"task": first, "execution": executions[ex_id], "state_info": first["state_info"]}

    top = executions[execution_id]
    root_cause = None
    if top["state"] == W.ERROR.value or any(
            x["state"] == T.ERROR.value and not x["flags"].get("handled")
            for x in tasks_of[execution_id]):
        root_cause = cause(execution_id) or {"task": None, "execution": top,
                                             "state_info": top["state_info"]}
    states = Counter(x["state"] for rows in tasks_of.values() for x in rows)
    return {"execution": node(execution_id, 0), "root_cause": root_cause,
            "statistics": {"total_tasks": sum(states.values()), **dict(sorted(states.items()))}}


# -- reading ------------------------------------------------------------------------
def execution(store: Store, execution_id: str) -> dict:
    with store.connect() as conn:
        row = conn.execute(select(schema.executions).where(
            schema.executions.c.id == execution_id)).mappings().first()
    if row is None:
        raise NotFound(f"execution {execution_id} not found")
    return dict(row)


def task_rows(store: Store, execution_id: str) -> list[dict]:
    t = schema.task_executions
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(t).where(t.c.execution_id == execution_id).order_by(t.c.seq)).mappings()]


def action_rows(store: Store, task_id: str) -> list[dict]:
    a = schema.action_executions
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(a).where(a.c.task_execution_id == task_id)
            .order_by(a.c.item_index, a.c.created_at)).mappings()]


def summary(store: Store, execution_id: str) -> dict:
    """The execution as ``orchestrator run --json`` prints it."""
    ex = execution(store, execution_id)
    return {
        "id": ex["id"], "workflow_name": ex["workflow_name"], "state": ex["state"],
        "state_info": ex["state_info"], "output": ex["output"],
        "tasks": [
            {"id": t["id"], "name": t["name"], "state": t["state"],
             "state_info": t["state_info"], "published": t["published"] or {},
             "result": t["result"]}
            for t in task_rows(store, execution_id)
        ],
    }
