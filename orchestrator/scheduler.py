"""Cron triggers: when they fire, and firing each (trigger, fire time) exactly
once however many scheduler processes run.

``due(store, now)`` is the whole scheduler step, time being a parameter: it
finds the triggers whose next fire time has come, and for each fire time it
inserts a ``cron_fires`` row (``UNIQUE(trigger_id, fire_time)``) and starts the
execution, whose id is derived from the trigger and the fire time, in the same
transaction. A second scheduler racing for the same fire hits the unique
constraint and starts nothing; a scheduler that dies before committing leaves
the fire to the others.

Missed runs (the service was down) follow the trigger's policy: ``skip`` fires
nothing that is more than ``LATE_TOLERANCE`` late, ``once`` fires the latest
missed time once, ``all`` fires every missed time, at most ``MAX_CATCH_UP``.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from orchestrator.cron import next_time
from orchestrator.errors import OrchestratorError
from orchestrator.store import schema

log = logging.getLogger(__name__)
LATE_TOLERANCE = 5.0  # seconds: a fire this late still counts as on time under `skip`
MAX_CATCH_UP = 100  # `all`: at most this many missed fires at once
POLICIES = ("skip", "once", "all")
FIRE_NAMESPACE = uuid.UUID("5d1c1f43-9f0e-4a55-8f1e-c3d2f0b7a001")


def fire_times(trigger: dict, now: float) -> tuple[list[float], float | None]:
    """(fire times due at ``now`` under the trigger's policy, the next fire time after)."""
    due = trigger["next_execution_time"]
    if due is None or due > now:
        return [], due
    pattern, tz = trigger["pattern"], trigger["timezone"]
    if not pattern:  # a one-off trigger (first_execution_time only)
        late = now - due
        fire = trigger["missed"] != "skip" or late <= LATE_TOLERANCE
        return ([due] if fire else []), None
    missed = [due]
    while len(missed) <= MAX_CATCH_UP:
        nxt = next_time(pattern, tz, missed[-1])
        if nxt > now:
            break
        missed.append(nxt)
    following = next_time(pattern, tz, max(missed[-1], now))
    policy = trigger["missed"] or "skip"
    if policy == "all":
        chosen = missed[:MAX_CATCH_UP]
    elif policy == "once":
        chosen = missed[-1:]
    else:
        chosen = [t for t in missed[-1:] if now - t <= LATE_TOLERANCE]
    remaining = trigger["remaining_executions"]
    if remaining is not None:
        chosen = chosen[:remaining]
    return chosen, following


def execution_id(trigger_id: str, fire_time: float) -> str:
    """The same trigger and fire time always give the same execution id."""
    return str(uuid.uuid5(FIRE_NAMESPACE, f"{trigger_id}@{fire_time:.3f}"))


def _claim_fire(conn, trigger_id: str, fire_time: float, now: float) -> bool:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    result = conn.execute(
        dialect.insert(schema.cron_fires)
        .values(trigger_id=trigger_id, fire_time=fire_time, fired_at=now,
                execution_id=execution_id(trigger_id, fire_time))
        .on_conflict_do_nothing()
        .returning(schema.cron_fires.c.trigger_id)  # rowcount is not reliable here
    )
    return result.first() is not None


def _environment(conn, project: str, env) -> tuple[dict | None, list[str]]:
    """``workflow_params.env`` as the execution gets it: variables as given, or the
    name of a stored environment read now (its variables, pinned to the execution,
    and its secret names), as ``POST /v2/executions`` does with ``params.env``."""
    if not isinstance(env, str):
        return env, []
    from orchestrator import catalog

    stored = catalog.get_environment(conn, project, env)  # NotFound: the fire records why
    return dict(stored["variables"] or {}), list(stored["secrets"] or [])


def fire_one(store, trigger_id: str, now: float) -> int:
    """Fire what is due of one trigger, in one transaction; the number started."""
    from orchestrator.engine import steps

    return steps.outside_lock(store, lambda: _fire_one(store, trigger_id, now))


def _fire_one(store, trigger_id: str, now: float) -> int:
    from orchestrator import catalog
    from orchestrator.engine import control

    t = schema.cron_triggers
    started = 0
    with store.begin() as conn:
        stmt = select(t).where(t.c.id == trigger_id, t.c.next_execution_time <= now)
        if not store.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        trigger = conn.execute(stmt).mappings().first()
        if trigger is None:
            return 0  # another scheduler has it, or it moved on
        times, following = fire_times(dict(trigger), now)
        for fire_time in times:
            if not _claim_fire(conn, trigger["id"], fire_time, now):
                continue  # fired already (by another scheduler)
            params = dict(trigger["workflow_params"] or {})
            when = datetime.fromtimestamp(fire_time, UTC).isoformat()
            try:
                doc, name = catalog.workflow_document(conn, trigger["project"],
                                                      trigger["workflow_name"])
                env, secret_names = _environment(conn, trigger["project"], params.get("env"))
                with conn.begin_nested():
                    control.start_in(conn, doc, name, trigger["workflow_input"] or {},
                                     env=env, secrets=secret_names,
                                     task_name=params.get("task_name"),
                                     execution_id=execution_id(trigger["id"], fire_time),
                                     project=trigger["project"],
                                     description=f"cron trigger {trigger['name']} at {when}",
                                     now=now)
                started += 1
            except OrchestratorError as e:
                # The workflow was deleted or its input no longer fits: the fire is
                # recorded (not retried forever) and the reason is kept.
                conn.execute(update(schema.cron_fires).where(
                    schema.cron_fires.c.trigger_id == trigger["id"],
                    schema.cron_fires.c.fire_time == fire_time).values(error=str(e)))
                log.warning("cron trigger %s could not start %s: %s", trigger["name"],
                            trigger["workflow_name"], e)
        remaining = trigger["remaining_executions"]
        if remaining is not None:
            remaining -= len(times)
        if following is None or (remaining is not None and remaining <= 0):
            conn.execute(delete(t).where(t.c.id == trigger["id"]))  # used up (Mistral)
        else:
            conn.execute(update(t).where(t.c.id == trigger["id"]).values(
                next_execution_time=following, remaining_executions=remaining,
                updated_at=now))
    return started


def due(store, now: float | None = None) -> int:
    """One scheduler step: fire every due trigger. The number of executions started."""
    now = time.time() if now is None else now
    t = schema.cron_triggers
    with store.connect() as conn:
        ids = [r[0] for r in conn.execute(
            select(t.c.id).where(t.c.next_execution_time <= now)
            .order_by(t.c.next_execution_time).limit(1000))]
    started = 0
    for trigger_id in ids:
        try:
            started += fire_one(store, trigger_id, now)
        except OperationalError as e:  # lost a race or the database is busy: next step
            log.debug("trigger %s: %s", trigger_id, e)
    return started


def next_due(store) -> float | None:
    t = schema.cron_triggers
    with store.connect() as conn:
        return conn.execute(select(func.min(t.c.next_execution_time))).scalar()


class Scheduler:
    """Runs ``due()`` in a thread, waking at the next fire time (at most ``poll`` apart)."""

    def __init__(self, store, poll: float = 1.0, on_start=None):
        self.store, self.poll, self.on_start = store, poll, on_start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if due(self.store) and self.on_start:
                    self.on_start()
                nxt = next_due(self.store)
            except Exception:
                log.exception("scheduler step failed")
                nxt = None
            wait = self.poll if nxt is None else min(self.poll, max(0.0, nxt - time.time()))
            self._stop.wait(wait)
