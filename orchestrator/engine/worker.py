"""The engine process loop: claim due work, run actions under leases.

``Worker.run_once(now)`` is one steppable round (tests drive time with it);
``start()`` runs rounds in a thread and actions on a thread pool, with a
heartbeat that renews the leases of running actions. A lease that expires
(its process died) makes the action claimable again: the action runs again
with the same idempotency key, at most once more per dead process.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import OperationalError

from orchestrator import logs
from orchestrator.actions import registry
from orchestrator.dsl import bounds
from orchestrator.engine import launch, steps, tasks, workflows
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.tx import LOAD, StaleState, Tx
from orchestrator.errors import OrchestratorError
from orchestrator.store import schema
from orchestrator.store.db import Store

log = logging.getLogger(__name__)
w = schema.work
ACTION_KINDS = ("run_action", "run_agent")  # leased: they run outside any transaction
RECORD_TRIES = 200  # about three minutes of a store too busy to record a result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    def __init__(self, store: Store, *, threads: int = 8, lease: float = 15.0,
                 poll: float = 0.5, batch: int = 100, agent: bool = False,
                 only_agent: bool = False):
        self.store = store
        # Agent actions (Salt) are claimed only by a process that has the bridge;
        # ``only_agent`` (``--role agent``): nothing else, and no engine steps.
        self.action_kinds = ("run_agent",) if only_agent else \
            ACTION_KINDS if agent else ("run_action",)
        self.steps = not only_agent
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.threads, self.lease, self.poll, self.batch = threads, lease, poll, batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: set[int] = set()
        self._inflight_lock = threading.Lock()
        # Claimed actions wait here for an executor thread. The threads are daemons:
        # at shutdown an action still running past the grace period is handed back,
        # and must not keep the process alive.
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._executors: list[threading.Thread] = []

    # -- one round -----------------------------------------------------------------
    def _tx(self, conn, now):
        return Tx(conn, now, lock_rows=not self.store.is_sqlite)

    def _claim_stmt(self, now: float, kinds_action: bool, limit: int):
        cond = [w.c.held.is_(False), w.c.due_at <= now]
        if kinds_action:
            cond += [w.c.kind.in_(self.action_kinds),
                     (w.c.lease_until.is_(None)) | (w.c.lease_until < now)]
        else:
            cond.append(w.c.kind.not_in(ACTION_KINDS))
        stmt = select(w).where(*cond).order_by(w.c.due_at, w.c.id).limit(limit)
        if not self.store.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        return stmt

    def step(self, now: float | None = None) -> int:
        """Claim and apply due engine work in one transaction; the number applied."""
        if not self.steps:
            return 0
        return steps.outside_lock(self.store, lambda: self._step(now))

    def _step(self, now: float | None) -> int:
        claimed: list[dict] = []
        try:
            with self.store.begin() as conn:
                tx = self._tx(conn, now)
                claimed = [dict(r) for r in conn.execute(
                    self._claim_stmt(tx.now, False, self.batch)).mappings()]
                claimed.sort(key=lambda r: r["execution_id"])  # one lock order: no deadlock
                if self.store.is_sqlite:  # one writer: rows read before the lock stay true
                    self._prefetch(tx, claimed)
                tx.delete_claimed([item["id"] for item in claimed])
                for item in claimed:
                    with logs.context(execution_id=item["execution_id"], task_id=item["task_id"]):
                        steps.process(tx, item)
                steps.finish(tx)
        except (StaleState, OperationalError) as e:
            # Someone moved a row, a deadlock victim, or the database is busy:
            # nothing was committed, the same work is claimed again next round.
            log.debug("step rolled back, will retry: %s", e)
            return 0
        except Exception:
            if len(claimed) > 1:  # find the bad item: apply one at a time
                for item in claimed:
                    self._step_one(item, now)
                return len(claimed)
            if claimed:
                self._quarantine(claimed[0], traceback.format_exc())
            return len(claimed)
        if tx.woke:
            self._wake.set()
        return len(claimed)

    @staticmethod
    def _prefetch(tx: Tx, claimed: list[dict]) -> None:
        """Load the task rows of a batch in one query rather than one each."""
        ids = list({c["task_id"] for c in claimed if c["task_id"]})
        t = schema.task_executions
        for chunk in range(0, len(ids), 500):
            tx.adopt("task", tx.conn.execute(
                select(t).where(t.c.id.in_(ids[chunk:chunk + 500]))).mappings())

    def _step_one(self, item: dict, now) -> None:
        def attempt() -> None:
            with self.store.begin() as conn:
                tx = self._tx(conn, now)
                if not tx.delete_work(item["id"]):
                    return
                steps.process(tx, item)
                steps.finish(tx)

        try:
            steps.outside_lock(self.store, attempt)
        except (StaleState, OperationalError):
            return
        except Exception:
            self._quarantine(item, traceback.format_exc())

    def _quarantine(self, item: dict, trace: str) -> None:
        """A work item our code cannot apply: fail its execution rather than leave
        it stuck in RUNNING, and keep the traceback in the log and the event."""
        with logs.context(execution_id=item["execution_id"], task_id=item.get("task_id")):
            log.error("internal error applying %s for execution %s:\n%s",
                      item["kind"], item["execution_id"], trace)
        with self.store.begin() as conn:
            tx = self._tx(conn, None)
            tx.delete_work(item["id"])
            ex = tx.execution(item["execution_id"])
            tx.event(ex["id"], "internal_error", item.get("task_id"), {"traceback": trace})
            last = trace.strip().splitlines()[-1]
            workflows.fail_internal(tx, ex, f"internal error while applying {item['kind']}: "
                                            f"{last}")
            tx.flush()

    def claim_actions(self, now: float | None = None, limit: int | None = None) -> list[dict]:
        limit = self.threads if limit is None else limit
        if limit <= 0:
            return []
        with self.store.begin() as conn:
            now = time.time() if now is None else now
            rows = [dict(r) for r in conn.execute(self._claim_stmt(now, True, limit)).mappings()]
            if not rows:
                return []
            ids = [r["id"] for r in rows]
            conn.execute(update(w).where(w.c.id.in_(ids))
                         .values(lease_owner=self.owner, lease_until=now + self.lease))
            a = schema.action_executions
            conn.execute(update(a).where(a.c.id.in_([r["action_id"] for r in rows]))
                         .values(runs=a.c.runs + 1))
        return rows

    def execute(self, item: dict, now: float | None = None) -> None:
        """Run a claimed action outside any transaction, then apply its result."""
        with logs.context(execution_id=item["execution_id"], task_id=item["task_id"],
                          action_execution_id=item["action_id"]):
            self._execute(item, now)

    def _execute(self, item: dict, now: float | None) -> None:
        with self.store.connect() as conn:
            def load(kind, row_id):
                return conn.execute(LOAD[kind], {"_id": row_id}).mappings().first()

            action = load("action", item["action_id"])
            ex_row = load("workflow", item["execution_id"])
            task_row = load("task", item["task_id"])
        if action is None or action["state"] != A.RUNNING.value or ex_row is None \
                or task_row is None:
            with self.store.begin() as conn:
                self._tx(conn, now).delete_work(item["id"], self.owner)
            return
        instance = None
        try:
            instance = registry.get(action["name"])(**(action["input"] or {}))
        except (OrchestratorError, TypeError, ValueError) as e:
            ok, output, info, retryable = (False, None, f"task {task_row['name']!r}: action: {e}",
                                           False)
        else:
            context = launch.context_for(ex_row, task_row, action,
                                         save_ref=lambda ref: self._save_ref(item, ref))
            ok, output, info, retryable = launch.run(instance, context)

        def attempt() -> Tx | None:
            with self.store.begin() as conn:
                tx = self._tx(conn, now)
                ex = tx.execution(item["execution_id"])
                if not tx.delete_work(item["id"], self.owner):
                    return None  # our lease was taken over: the new owner decides
                row = tx.action(item["action_id"])
                if instance is not None and not instance.sync and ok:
                    row["external_ref"] = output
                    tx.touch("action", row)
                    tx.event(ex["id"], "action.started", row["task_execution_id"],
                             {"action_id": row["id"], "external_ref": output})
                else:
                    tasks.action_done(tx, ex, row, ok, output, info, retryable=retryable)
                    workflows.settle(tx, ex)
                steps.finish(tx)
            return tx

        # The result must not be lost: while our lease holds (the heartbeat renews
        # it), keep trying; a busy store or a race with another step only delays it.
        delay, tries = 0.02, 0
        while True:
            try:
                tx = steps.outside_lock(self.store, attempt)
            except bounds.ShuttingDown:
                raise
            except (StaleState, OperationalError) as e:
                tries += 1
                if tries % 10 == 0:
                    log.warning("action %s: could not record its result after %d tries "
                                "(%s); trying again", item["action_id"], tries, e)
                if tries >= RECORD_TRIES:
                    log.error("action %s: giving up recording its result after %d tries; "
                              "its lease is released so that it runs again",
                              item["action_id"], tries)
                    self._release([item["id"]])
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except Exception:  # our own bug: the execution fails, it is not retried forever
                self._quarantine(item, traceback.format_exc())
                return
            if tx is not None and tx.woke:
                self._wake.set()
            return

    def _save_ref(self, item: dict, ref) -> None:
        """Commit an action's external reference while it runs (fenced by our lease)."""
        a = schema.action_executions
        with self.store.begin() as conn:
            owned = conn.execute(select(w.c.id).where(
                w.c.id == item["id"], w.c.lease_owner == self.owner)).first()
            if owned is None:
                raise OrchestratorError("lost the lease on this action: another process runs it")
            conn.execute(update(a).where(a.c.id == item["action_id"], a.c.state == "RUNNING")
                         .values(external_ref=ref))

    def run_once(self, now: float | None = None) -> int:
        """One synchronous round: engine work, then due actions. Work done."""
        done = self.step(now)
        for item in self.claim_actions(now):
            self.execute(item, now)
            done += 1
        return done

    def run_until_idle(self, now: float | None = None, rounds: int = 100000) -> None:
        for _ in range(rounds):
            if not self.run_once(now):
                return

    def next_due(self) -> float | None:
        """When the next work this worker may claim is due (not agent work queued
        for a bridge elsewhere: waiting for it would spin)."""
        mine = w.c.kind.in_(self.action_kinds)
        if self.steps:
            mine = or_(mine, w.c.kind.not_in(ACTION_KINDS))  # type: ignore[assignment]
        with self.store.connect() as conn:
            return conn.execute(select(func.min(w.c.due_at)).where(
                w.c.held.is_(False), mine,
                (w.c.lease_owner.is_(None)) | (w.c.lease_until < time.time()))).scalar()

    def release_dead_leases(self) -> int:
        """Leases held by processes of this host that no longer exist."""
        host = socket.gethostname()
        with self.store.begin() as conn:
            owners = [r[0] for r in conn.execute(
                select(w.c.lease_owner).where(w.c.lease_owner.is_not(None)).distinct())]
            dead = [o for o in owners
                    if o.split(":")[0] == host and not _alive(int(o.split(":")[1]))]
            if not dead:
                return 0
            return conn.execute(update(w).where(w.c.lease_owner.in_(dead))
                                .values(lease_owner=None, lease_until=None)).rowcount

    # -- threads -------------------------------------------------------------------
    def start(self) -> Worker:
        self.release_dead_leases()
        for i in range(self.threads):
            t = threading.Thread(target=self._execute_loop, name=f"action-{i}", daemon=True)
            t.start()
            self._executors.append(t)
        targets = [self._loop, self._heartbeat]
        if not self.store.is_sqlite:
            targets.append(self._listen)
        for target in targets:
            t = threading.Thread(target=target, name=f"worker-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give running actions ``grace`` seconds, then hand the
        leases of those still running back to the queue, so another process (or
        this one, restarted) runs them at once instead of after the lease expires."""
        self._stop.set()
        self._wake.set()
        # An expression being evaluated (up to its CPU limit) must not hold up the
        # stop: it is abandoned, its step rolled back, to run again after restart.
        bounds.interrupt(t.ident for t in self._threads + self._executors if t.ident)
        for t in self._threads:
            t.join(grace)
        self._threads = []
        while True:  # claimed but not started: back to the queue at once
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._release([item["id"]])
                with self._inflight_lock:
                    self._inflight.discard(item["id"])
        for _ in range(self.threads):
            self._queue.put(None)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._inflight_lock:
                if not self._inflight:
                    return
            time.sleep(0.05)
        with self._inflight_lock:
            ids = list(self._inflight)
        self._release(ids)
        log.warning("handed back %d running action(s) at shutdown", len(ids))

    def _release(self, work_ids: list[int]) -> None:
        """Give up our leases on these work rows: claimable by anyone at once."""
        with self.store.begin() as conn:
            conn.execute(update(w).where(w.c.id.in_(work_ids), w.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def _execute_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run_claimed(item)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.step()
                with self._inflight_lock:
                    free = self.threads - len(self._inflight)
                for item in self.claim_actions(limit=free):
                    with self._inflight_lock:
                        self._inflight.add(item["id"])
                    self._queue.put(item)
                    busy += 1
            except bounds.ShuttingDown:
                return
            except Exception:
                log.exception("worker round failed")
                busy = 0
            if busy:
                continue
            try:
                due = self.next_due()
            except Exception:  # the store is unreachable for a moment: poll again
                log.exception("reading when work is next due failed")
                due = None
            wait = self.poll if due is None else max(0.0, min(self.poll, due - time.time()))
            self._wake.wait(wait)

    def _run_claimed(self, item: dict) -> None:
        try:
            self.execute(item)
        except bounds.ShuttingDown:
            self._release([item["id"]])  # runs again after restart, or elsewhere now
        except Exception:
            log.exception("action %s failed to complete", item["action_id"])
        finally:
            with self._inflight_lock:
                self._inflight.discard(item["id"])
            self._wake.set()

    def _listen(self) -> None:
        """PostgreSQL: wake at once when any process commits new work, so latency
        does not depend on the polling interval."""
        import psycopg

        from orchestrator.engine.tx import WAKE_CHANNEL

        url = self.store.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
            except psycopg.Error as e:
                log.warning("LISTEN connection lost (%s); polling meanwhile", e)
                self._stop.wait(1.0)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._inflight_lock:
                ids = list(self._inflight)
            if not ids:
                continue
            try:
                with self.store.begin() as conn:
                    conn.execute(update(w).where(w.c.id.in_(ids), w.c.lease_owner == self.owner)
                                 .values(lease_until=time.time() + self.lease))
            except Exception:
                log.exception("lease heartbeat failed")
