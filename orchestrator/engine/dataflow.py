"""Branch contexts and the functions expressions see.

A task's inbound context is the outbound context of the task that led to it
(joins: the merge of all their inbound tasks', in arrival order) over the
execution's own context (input + vars). Its outbound context is the inbound
one plus what it published. Only ``published`` is stored per task; contexts
are rebuilt from the chain of parents and memoised per process, so a step
costs O(1) on the hot path and a cold restart walks each chain once.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import select

from orchestrator import secrets
from orchestrator.dsl import bounds
from orchestrator.dsl.expressions import Functions, evaluate
from orchestrator.store import schema


class _Lru:
    def __init__(self, size: int):
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            if len(self.data) > self.size:
                self.data.popitem(last=False)

    def drop(self, key) -> None:
        with self.lock:
            self.data.pop(key, None)


_outbound = _Lru(200_000)
_join_inbound = _Lru(10_000)  # (join task id, arrivals) -> merged context


def forget(task_id: str) -> None:
    """A task's published data changed (rerun): drop its memoised context."""
    _outbound.drop(task_id)


def merge(base: dict, extra: dict | None) -> dict:
    if not extra:
        return base
    out = dict(base)
    out.update(extra)
    return out


def _links(tx, task_id: str) -> list[str]:
    tx.flush()
    rows = tx.conn.execute(
        select(schema.task_links.c.from_task_id)
        .where(schema.task_links.c.task_id == task_id)
        .order_by(schema.task_links.c.seq)
    )
    return [r[0] for r in rows]


def inbound(tx, execution: dict, task: dict) -> dict:
    if task["flags"].get("join"):
        key = (task["id"], task["join_arrivals"])
        ctx = _join_inbound.get(key)
        if ctx is not None:
            return ctx
        ctx = execution["context"]
        links = _links(tx, task["id"])
        missing = [i for i in links if _outbound.get(i) is None and i not in tx.rows["task"]]
        if missing:  # a cold start: load the inbound tasks in a few queries, not one each
            t = schema.task_executions
            for at in range(0, len(missing), 500):
                tx.adopt("task", tx.conn.execute(
                    select(t).where(t.c.id.in_(missing[at:at + 500]))).mappings())
        for from_id in links:
            found = _outbound.get(from_id)
            if found is None:
                found = outbound(tx, execution, tx.task(from_id))
            ctx = merge(ctx, found)
        _join_inbound.put(key, ctx)
        return ctx
    if task["parent_id"] is None:
        return execution["context"]
    cached = _outbound.get(task["parent_id"])  # the hot path: no need to load the parent
    if cached is not None:
        return cached
    return outbound(tx, execution, tx.task(task["parent_id"]))


def outbound(tx, execution: dict, task: dict) -> dict:
    found = _outbound.get(task["id"])
    if found is not None:
        return found
    # Walk up the parent chain iteratively (chains may be thousands long).
    chain, cur = [], task
    while True:
        cached = _outbound.get(cur["id"])
        if cached is not None:
            ctx = cached
            break
        chain.append(cur)
        if cur["flags"].get("join") or cur["parent_id"] is None:
            ctx = inbound(tx, execution, cur)
            ctx = merge(ctx, cur["published"])
            _outbound.put(cur["id"], ctx)
            chain.pop()
            break
        cur = tx.task(cur["parent_id"])
    for t in reversed(chain):
        ctx = merge(ctx, t["published"])
        _outbound.put(t["id"], ctx)
    return ctx


def remember(task: dict, ctx: dict) -> None:
    _outbound.put(task["id"], ctx)


def task_view(task: dict) -> dict:
    return {
        "id": task["id"], "name": task["name"], "state": task["state"],
        "state_info": task["state_info"], "result": task["result"],
        "published": task["published"] or {}, "workflow_execution_id": task["execution_id"],
    }


class EngineFunctions(Functions):
    """What ``task()``, ``tasks()``, ``execution()`` and ``env()`` return inside a step.

    They see only the caller's project: ``tasks(<id>)`` of another project's
    execution is an empty list, exactly as for an id that does not exist."""

    def __init__(self, tx, execution: dict, task: dict | None = None):
        self.tx, self.ex, self.current = tx, execution, task

    def scope(self):
        return [self.ex["id"], self.current["id"] if self.current is not None else None]

    def detached(self, tx) -> EngineFunctions:
        """The same functions reading through ``tx`` (a read-only transaction)."""
        return EngineFunctions(tx, self.ex, self.current)

    def task(self, name=None):
        if name is None or (self.current is not None and name == self.current["name"]):
            return task_view(self.current) if self.current is not None else None
        with bounds.unguarded():
            self.tx.flush()
            t = schema.task_executions
            row = self.tx.conn.execute(
                select(t).where(t.c.execution_id == self.ex["id"], t.c.name == name)
                .order_by(t.c.seq.desc()).limit(1)
            ).mappings().first()
            if row is None:
                return None
            return task_view(self.tx.adopt("task", [row])[0])

    def tasks(self, workflow_execution_id=None, recursive=False, state=None, flat=False):
        with bounds.unguarded():
            target = workflow_execution_id or self.ex["id"]
            if not isinstance(target, str):
                return []
            self.tx.flush()
            if target != self.ex["id"]:
                e = schema.executions
                owner = self.tx.conn.execute(
                    select(e.c.project).where(e.c.id == target)).scalar()
                if owner != self.ex["project"]:
                    return []  # another project's execution is as absent as a missing one
            t = schema.task_executions
            stmt = select(t).where(t.c.execution_id == target)
            if state:
                stmt = stmt.where(t.c.state == state)
            rows = self.tx.conn.execute(stmt.order_by(t.c.seq)).mappings()
            return [task_view(r) for r in self.tx.adopt("task", rows)]

    def execution(self):
        ex = self.ex
        return {
            "id": ex["id"], "name": ex["workflow_name"], "state": ex["state"],
            "input": ex["input"], "params": secrets.open_params(ex["params"]),
            "created_at": ex["created_at"],
            "root_execution_id": ex["root_execution_id"] or ex["id"],
        }

    def env(self):
        return secrets.open_env(self.ex["params"].get("env")) or {}  # decrypted to run

    def global_(self, name):
        return self.ex["context"].get(name)


def evaluate_in(tx, execution: dict, task: dict | None, value, data: dict):
    """Evaluate ``value`` against ``data`` with the engine's functions."""
    return evaluate(value, data, EngineFunctions(tx, execution, task))
