"""Execution lifecycle: start, finish, pause, resume, cancel (inside a step)."""
from __future__ import annotations

import difflib

from sqlalchemy import select, update

from orchestrator.engine import dataflow, specs, tasks
from orchestrator.engine.graph import Graph
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.states import TaskState as T
from orchestrator.engine.states import WorkflowState as W
from orchestrator.engine.tx import Tx, new_id
from orchestrator.errors import ExpressionError, InvalidInput
from orchestrator.store import schema


def graph_of(tx: Tx, ex: dict) -> Graph:
    doc = specs.load(tx.conn, ex["spec_hash"])
    key = (ex["spec_hash"], ex["workflow_name"], ex["params"].get("task_name"))
    cache = _graphs
    g = cache.get(key)
    if g is None:
        g = cache[key] = Graph.of(doc.workflows[ex["workflow_name"]], ex["params"].get("task_name"))
    return g


_graphs: dict = {}


def check_input(spec, given: dict) -> dict:
    """Apply defaults; refuse unknown and missing parameters (a user's mistake: 400)."""
    declared = {p.name: p for p in spec.input}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(declared), n=1)
        raise InvalidInput(
            f"workflow {spec.name!r} has no input {', '.join(map(repr, unknown))}"
            + (f" (did you mean {close[0]!r}?)" if close else
               f"; it takes: {', '.join(declared) or 'no input'}")
        )
    missing = [n for n, p in declared.items() if p.required and n not in given]
    if missing:
        raise InvalidInput(
            f"workflow {spec.name!r} needs input {', '.join(map(repr, missing))}"
        )
    out = {n: p.default for n, p in declared.items() if not p.required}
    out.update(given)
    return out


def start(tx: Tx, spec_hash: str, workflow_name: str, input: dict, params: dict, *,
          execution_id: str | None = None, project: str = "default", description: str = "",
          parent_action: dict | None = None, root_id: str | None = None) -> dict:
    doc = specs.load(tx.conn, spec_hash)
    if workflow_name not in doc.workflows:
        raise InvalidInput(
            f"no workflow {workflow_name!r}; this definition has: {', '.join(doc.workflows)}"
        )
    spec = doc.workflows[workflow_name]
    Graph.of(spec, params.get("task_name"))  # refuses a reverse workflow without a target
    values = check_input(spec, input or {})
    ex = tx.add("workflow", {
        "id": execution_id or new_id(), "project": project, "workflow_name": workflow_name,
        "spec_hash": spec_hash, "description": description, "state": W.IDLE.value,
        "state_info": None, "input": values, "params": params, "context": dict(values),
        "output": None, "parent_action_id": parent_action["id"] if parent_action else None,
        "root_execution_id": root_id, "active_tasks": 0, "waiting_joins": 0, "stored_bytes": 0,
        "unhandled_errors": 0, "task_seq": 0, "created_at": tx.now, "updated_at": tx.now,
        "finished_at": None,
    })
    tx.set_state("workflow", ex, W.RUNNING.value)
    if spec.vars:
        try:
            ex["context"] = {**values, **dataflow.evaluate_in(tx, ex, None, spec.vars, values)}
        except ExpressionError as e:
            finish(tx, ex, W.ERROR.value, f"workflow {spec.name}: vars: {e}")
            return ex
    for name in graph_of(tx, ex).start_tasks():
        tasks.schedule(tx, ex, name, None)
    settle(tx, ex)
    return ex


def settle(tx: Tx, ex: dict) -> None:
    """Finish the execution when nothing is left to run; fail joins that can
    never be satisfied first (Mistral: an unsatisfiable join is an error)."""
    while ex["state"] == W.RUNNING.value and ex["active_tasks"] == 0:
        if ex["waiting_joins"] == 0:
            finish(tx, ex, W.ERROR.value if ex["unhandled_errors"] else W.SUCCESS.value)
            return
        graph = graph_of(tx, ex)
        for join in _rows(tx, ex, state=T.WAITING.value):
            if graph.target is not None:
                # Reverse workflows: a task whose requirement failed is simply not run.
                ex["waiting_joins"] -= 1
                tx.set_state("task", join, T.CANCELLED.value, "not run: a required task failed")
                continue
            info = (
                f"join of task {join['name']!r} can never be satisfied: "
                f"{join['join_arrivals']} of {graph.join_required(join['name'])} "
                f"inbound tasks reached it"
            )
            ex["waiting_joins"] -= 1
            tx.touch("workflow", ex)
            join["flags"]["unsatisfied"] = True
            tasks.finalize(tx, ex, join, ok=False, result=None, info=info, from_waiting=True)


def reopen_joins(tx: Tx, ex: dict) -> None:
    """Joins that failed only because they could never be satisfied, with nothing
    run after them, wait again: a rerun task may bring what they missed (if it
    does not, the next settle fails them again)."""
    for join in _rows(tx, ex, state=T.ERROR.value):
        flags = join["flags"]
        if not flags.get("unsatisfied") or flags.get("handled") or not join["is_end"]:
            continue
        if flags.pop("counted", False):
            ex["unhandled_errors"] -= 1
        flags.pop("unsatisfied")
        join.update(finished_at=None, published=None, is_end=False)
        tx.set_state("task", join, T.WAITING.value, None)
        ex["waiting_joins"] += 1
        tx.touch("workflow", ex)


def _rows(tx: Tx, ex: dict, **where) -> list[dict]:
    tx.flush()
    t = schema.task_executions
    stmt = select(t).where(t.c.execution_id == ex["id"])
    for key, value in where.items():
        stmt = stmt.where(getattr(t.c, key) == value)
    return tx.adopt("task", tx.conn.execute(stmt.order_by(t.c.seq)).mappings())


def _final_context(tx: Tx, ex: dict) -> dict:
    ctx = ex["context"]
    for task in _rows(tx, ex, is_end=True):
        ctx = dataflow.merge(ctx, dataflow.outbound(tx, ex, task))
    return ctx


def failure_summary(tx: Tx, ex: dict) -> str:
    failed = [t for t in _rows(tx, ex, state=T.ERROR.value) if not t["flags"].get("handled")]
    if not failed:
        return "Failure caused by an error in the workflow"
    lines = [f"Failure caused by error in tasks: {', '.join(t['name'] for t in failed)}"]
    lines += [f"  {t['name']} [task_ex_id={t['id']}]: {t['state_info']}" for t in failed]
    return "\n".join(lines)


def finish(tx: Tx, ex: dict, state: str, info: str | None = None) -> None:
    spec = specs.load(tx.conn, ex["spec_hash"]).workflows[ex["workflow_name"]]
    ctx = _final_context(tx, ex)
    if state == W.SUCCESS.value and spec.output is not None:
        try:
            ex["output"] = dataflow.evaluate_in(tx, ex, None, spec.output, ctx)
        except ExpressionError as e:
            state, info = W.ERROR.value, f"workflow {spec.name}: output: {e}"
    if state == W.ERROR.value:
        info = info or failure_summary(tx, ex)
        ex["output"] = {"result": info}
        if spec.output_on_error is not None:
            try:
                out = dataflow.evaluate_in(tx, ex, None, spec.output_on_error, ctx)
                ex["output"] = {**out, "result": info} if isinstance(out, dict) else out
            except ExpressionError as e:
                info += f"\nworkflow {spec.name}: output-on-error: {e}"
                ex["output"] = {"result": info}
    ex["finished_at"] = tx.now
    tx.set_state("workflow", ex, state, info)
    _tell_parent(tx, ex)


def fail_internal(tx: Tx, ex: dict, info: str) -> None:
    """End an execution our own code could not move (no expression is evaluated:
    one may be the cause). Its parent hears of it like of any other end."""
    if ex["state"] not in (W.RUNNING.value, W.PAUSED.value):
        return
    ex["output"] = {"result": info}
    ex["finished_at"] = tx.now
    tx.set_state("workflow", ex, W.ERROR.value, info)
    _tell_parent(tx, ex)


def _tell_parent(tx: Tx, ex: dict) -> None:
    if ex["parent_action_id"]:
        parent = tx.action(ex["parent_action_id"])
        tx.add_work("subworkflow_done", parent["execution_id"], task_id=parent["task_execution_id"],
                    action_id=parent["id"], payload={"child": ex["id"]})


def _children(tx: Tx, ex: dict, states: tuple[str, ...]) -> list[str]:
    tx.flush()
    a, e = schema.action_executions, schema.executions
    rows = tx.conn.execute(
        select(e.c.id).join(a, a.c.child_execution_id == e.c.id)
        .where(a.c.execution_id == ex["id"], e.c.state.in_(states))
    )
    return [r[0] for r in rows]


def pause(tx: Tx, ex: dict, info: str | None = None) -> None:
    if not tx.set_state("workflow", ex, W.PAUSED.value, info):
        return
    w = schema.work
    tx.flush()
    tx.conn.execute(
        update(w).where(w.c.execution_id == ex["id"],
                        w.c.kind.not_in(("run_action", "run_agent"))).values(held=True)
    )
    for child in _children(tx, ex, (W.RUNNING.value,)):
        pause(tx, tx.execution(child), f"parent {ex['id']} paused")


def resume(tx: Tx, ex: dict) -> None:
    if not tx.set_state("workflow", ex, W.RUNNING.value):
        return
    w = schema.work
    tx.flush()
    n = tx.conn.execute(update(w).where(w.c.execution_id == ex["id"]).values(held=False)).rowcount
    tx.woke = tx.woke or n > 0
    for child in _children(tx, ex, (W.PAUSED.value,)):
        resume(tx, tx.execution(child))
    settle(tx, ex)


def cancel(tx: Tx, ex: dict, info: str | None = None) -> None:
    for child in _children(tx, ex, (W.RUNNING.value, W.PAUSED.value)):
        cancel(tx, tx.execution(child), f"parent {ex['id']} cancelled")
    for task in _rows(tx, ex):
        if task["state"] in (T.IDLE.value, T.WAITING.value, T.RUNNING.value,
                             T.RUNNING_DELAYED.value):
            tx.set_state("task", task, T.CANCELLED.value, info)
    a = schema.action_executions
    rows = tx.conn.execute(
        select(a).where(a.c.execution_id == ex["id"], a.c.state == A.RUNNING.value)
    ).mappings()
    for action in tx.adopt("action", rows):
        tx.set_state("action", action, A.CANCELLED.value)
    tx.flush()
    tx.conn.execute(schema.work.delete().where(schema.work.c.execution_id == ex["id"]))
    ex["active_tasks"] = ex["waiting_joins"] = 0
    ex["finished_at"] = tx.now
    tx.set_state("workflow", ex, W.CANCELLED.value, info)
    _tell_parent(tx, ex)
