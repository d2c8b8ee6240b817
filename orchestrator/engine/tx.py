"""One engine step's transaction: the rows it read or made, and the writes it
will do at commit, batched.

Rows are plain dicts. New rows are inserted at flush with one ``executemany``
per table; changed rows are written with a guarded UPDATE (``WHERE id = :id
AND state = :state_at_load``), so a row that someone else moved in the
meantime aborts the step (``StaleState``) instead of being overwritten.
Every state change goes through :meth:`Tx.set_state` (the transition tables)
and writes an event row in the same transaction.
"""
from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque

from sqlalchemy import bindparam, delete, insert, select, update

from orchestrator import logs, metrics, secrets
from orchestrator.engine import states
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.store import schema
from orchestrator.store.db import after_commit

TABLES = {
    "workflow": schema.executions,
    "task": schema.task_executions,
    "action": schema.action_executions,
}
# One guarded UPDATE per table, built once: the SET clause comes from the
# parameters (SQLAlchemy caches the compiled form), which is several times
# cheaper than building a statement with literal values for every row.
GUARDED_UPDATE = {
    kind: update(table).where(table.c.id == bindparam("_w_id"),
                              table.c.state == bindparam("_w_state"))
    for kind, table in TABLES.items()
}
LOAD = {kind: select(table).where(table.c.id == bindparam("_id"))
        for kind, table in TABLES.items()}
LOAD_LOCKED = {kind: stmt.with_for_update() for kind, stmt in LOAD.items()}
WAKE_CHANNEL = "orchestrator_work"
# Work kinds an engine step may process at once in the same transaction.
LOCAL_KINDS = frozenset({"start_task", "continue"})
# State changes reported (metrics, log lines) once their transaction commits.
REPORTED = {"workflow": frozenset({"RUNNING", "SUCCESS", "ERROR", "CANCELLED"}),
            "task": frozenset({"ERROR"}), "action": frozenset({"SUCCESS", "ERROR", "CANCELLED"})}


def _committed(transitions: list, now: float) -> None:
    metrics.observe_transitions(transitions, now)
    logs.log_transitions(transitions)


class Row(dict):
    """A row of the identity map: any change marks it for writing at the next
    flush, including changes made after an earlier flush of the same step and
    changes to its ``flags`` dictionary."""

    __slots__ = ("_tx", "_kind")

    def __init__(self, tx: Tx, kind: str, data):
        super().__init__(data)
        self._tx, self._kind = tx, kind
        flags = self.get("flags")
        if flags is not None and not isinstance(flags, _Flags):
            dict.__setitem__(self, "flags", _Flags(self, flags))

    def _changed(self) -> None:
        self._tx.touch(self._kind, self)

    def __setitem__(self, key, value):
        if key == "flags" and not isinstance(value, _Flags):
            value = _Flags(self, value or {})
        super().__setitem__(key, value)
        self._changed()

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


class _Flags(dict):
    __slots__ = ("_row",)

    def __init__(self, row: Row, data):
        super().__init__(data)
        self._row = row

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._row._changed()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._row._changed()

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._row._changed()

    def pop(self, *args):
        value = super().pop(*args)
        self._row._changed()
        return value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]


class StaleState(OrchestratorError):
    """A row changed under this step; the step is rolled back and retried."""


def new_id() -> str:
    return str(uuid.uuid4())


class Tx:
    def __init__(self, conn, now: float | None = None, lock_rows: bool = False):
        self.conn = conn
        self.now = time.time() if now is None else now
        self.lock_rows = lock_rows  # PostgreSQL: SELECT ... FOR UPDATE on executions
        self.rows: dict[str, dict[str, dict]] = {k: {} for k in TABLES}
        self._loaded_state: dict[tuple[str, str], str] = {}
        self._new: dict[str, list[str]] = {k: [] for k in TABLES}
        self.created: set[str] = set()  # ids of rows this transaction made
        self.fresh_tasks: set[str] = set()  # tasks whose every action run was made here
        self.actions_of: dict[str, list[dict]] = defaultdict(list)  # new actions by task
        self._dirty: set[tuple[str, str]] = set()
        self._links: list[dict] = []
        self._events: list[dict] = []
        self._work: list[dict] = []
        self.local: deque[dict] = deque()
        self.woke = False  # new due work was written: wake the workers
        self.transitions: list[tuple] = []  # (kind, old, new, row) of REPORTED changes

    # -- reading -----------------------------------------------------------------
    def _load(self, kind: str, row_id: str, lock: bool = False) -> dict:
        cached = self.rows[kind].get(row_id)
        if cached is not None:
            return cached
        stmt = LOAD_LOCKED[kind] if lock and self.lock_rows else LOAD[kind]
        found = self.conn.execute(stmt, {"_id": row_id}).mappings().first()
        if found is None:
            raise NotFound(f"{kind} execution {row_id} not found")
        row = Row(self, kind, found)
        self.rows[kind][row_id] = row
        self._loaded_state[(kind, row_id)] = row["state"]
        return row

    def execution(self, execution_id: str) -> dict:
        """The execution row, locked for the rest of the transaction."""
        row = self._load("workflow", execution_id, lock=True)
        secrets.remember_params(row["params"])  # hide them in this process's log lines too
        return row

    def task(self, task_id: str) -> dict:
        return self._load("task", task_id)

    def action(self, action_id: str) -> dict:
        return self._load("action", action_id)

    def adopt(self, kind: str, rows) -> list[dict]:
        """Put rows read by a query into the identity map (cached rows win)."""
        out = []
        for found in rows:
            row_id = found["id"]
            if row_id not in self.rows[kind]:
                self.rows[kind][row_id] = Row(self, kind, found)
                self._loaded_state[(kind, row_id)] = found["state"]
            out.append(self.rows[kind][row_id])
        return out

    # -- writing -----------------------------------------------------------------
    def add(self, kind: str, data: dict) -> Row:
        row = Row(self, kind, data)
        self.rows[kind][row["id"]] = row
        self._new[kind].append(row["id"])
        self.created.add(row["id"])
        if kind == "action":
            self.actions_of[row["task_execution_id"]].append(row)
        return row

    def touch(self, kind: str, row: dict) -> None:
        if (kind, row["id"]) in self._loaded_state:
            self._dirty.add((kind, row["id"]))

    def set_state(self, kind: str, row: dict, new: str, info: str | None = None, **data) -> bool:
        """Apply a state change allowed by the table; False if already in ``new``."""
        old = row["state"]
        if not states.check(kind, old, new):
            return False
        if new in REPORTED[kind]:
            if not self.transitions:
                after_commit(lambda: _committed(self.transitions, self.now))
            self.transitions.append((kind, old, new, row))
        row["state"] = new
        if info is not None or "state_info" in row:
            row["state_info"] = info
        self.touch(kind, row)
        if kind == "workflow":
            execution_id, task_id = row["id"], None
        else:
            execution_id, task_id = row["execution_id"], row.get("task_execution_id", row["id"])
        event = {"state": new}
        if info:
            event["info"] = info
        event.update(data)
        self.event(execution_id, f"{kind}.{new}", task_id, event)
        return True

    def event(self, execution_id: str, kind: str, task_id: str | None = None, data=None) -> None:
        self._events.append(
            {"execution_id": execution_id, "task_id": task_id, "at": self.now, "kind": kind,
             "data": data}
        )

    def link(self, task_id: str, from_task_id: str, seq: int) -> None:
        self._links.append({"task_id": task_id, "from_task_id": from_task_id, "seq": seq})

    def add_work(self, kind: str, execution_id: str, *, task_id=None, action_id=None,
                 payload=None, delay: float = 0.0, held: bool = False) -> None:
        item = {
            "kind": kind, "execution_id": execution_id, "task_id": task_id,
            "action_id": action_id, "payload": payload, "due_at": self.now + (delay or 0),
            "held": held, "lease_owner": None, "lease_until": None,
        }
        if kind in LOCAL_KINDS and not held and not delay:
            self.local.append(item)
        else:
            self._work.append(item)
            self.woke = self.woke or not held

    def spill_local(self) -> None:
        """Persist local work this step did not get to (it runs in a later step)."""
        while self.local:
            self._work.append(self.local.popleft())
            self.woke = True

    def flush(self) -> None:
        conn = self.conn
        for kind, table in TABLES.items():
            ids = self._new[kind]
            if ids:
                rows = [self.rows[kind][i] for i in ids]
                conn.execute(insert(table), rows)
                for i in ids:
                    self._loaded_state[(kind, i)] = self.rows[kind][i]["state"]
                self._new[kind] = []
        by_kind: dict[str, list[dict]] = defaultdict(list)
        for kind, row_id in sorted(self._dirty):
            row = self.rows[kind][row_id]
            values = {k: v for k, v in row.items() if k != "id"}
            if kind in ("workflow", "action"):
                values["updated_at"] = self.now
            values["_w_id"], values["_w_state"] = row_id, self._loaded_state[(kind, row_id)]
            by_kind[kind].append(values)
            self._loaded_state[(kind, row_id)] = row["state"]
        self._dirty.clear()
        batch = conn.dialect.supports_sane_multi_rowcount
        for kind, params in by_kind.items():
            # Each UPDATE must hit its row: zero means someone else moved it.
            chunks = [params] if batch and len(params) > 1 else [[p] for p in params]
            for chunk in chunks:
                result = conn.execute(GUARDED_UPDATE[kind], chunk if len(chunk) > 1 else chunk[0])
                if result.rowcount != len(chunk):
                    raise StaleState(f"a {kind} row changed under this step")
        if self._links:
            conn.execute(insert(schema.task_links), self._links)
            self._links = []
        if self._events:
            conn.execute(insert(schema.events), self._events)
            self._events = []
        if self._work:
            conn.execute(insert(schema.work), self._work)
            if conn.dialect.name == "postgresql" and any(not w["held"] for w in self._work):
                # Wakes idle engines of every process at commit (LISTEN in the worker).
                conn.exec_driver_sql(f"NOTIFY {WAKE_CHANNEL}")
            self._work = []

    def delete_claimed(self, work_ids: list[int]) -> None:
        """Remove work rows this step claimed (their effect commits with it)."""
        w = schema.work
        for at in range(0, len(work_ids), 500):
            self.conn.execute(delete(w).where(w.c.id.in_(work_ids[at:at + 500])))

    def delete_work(self, work_id: int, owner: str | None = None) -> bool:
        """Remove a claimed work row; with ``owner``, only while its lease is ours."""
        w = schema.work
        stmt = delete(w).where(w.c.id == work_id)
        if owner is not None:
            stmt = stmt.where(w.c.lease_owner == owner)
        return self.conn.execute(stmt).rowcount == 1
