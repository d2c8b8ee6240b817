"""Prometheus metrics, served at ``GET /metrics`` by the API (text format, or
OpenMetrics when the scraper asks for it).

Two kinds, and the difference matters when the roles run in several processes:

* **From the store, at scrape time** (:class:`StoreCollector`): executions and
  tasks by state, the work queue by kind and status, the age of the oldest due
  work item. A few ``GROUP BY`` queries per scrape on a plain DBAPI connection
  (on SQLite it reads a WAL snapshot and takes no lock the engine waits for).
  They are true for the whole store, whichever processes run the engine.
* **In this process** (``PROCESS``): action durations, executions started and
  finished, Salt job round trips (observed by the engine and the bridge that
  run here, once their transaction committed) and HTTP request latency (by
  the API of this app). A process that serves no API (``--role engine`` or
  ``agent``) has no ``/metrics``, so these cover what the serving process did.

Each app gets its own :class:`CollectorRegistry` (its store, its HTTP
histogram, and the process metrics), never prometheus_client's global one, so
apps and tests in one process do not collide.
"""
from __future__ import annotations

import logging
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from orchestrator.actions import registry
from orchestrator.store import schema

log = logging.getLogger(__name__)

# Actions last from milliseconds (std.echo) to an hour (a Salt state on a fresh VM).
ACTION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                  120.0, 300.0, 600.0, 1800.0, 3600.0)
SALT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                1800.0)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# -- in this process -----------------------------------------------------------------
PROCESS = CollectorRegistry()
ACTION_SECONDS = Histogram(
    "orchestrator_action_duration_seconds",
    "Action executions from their start (the task launched them) to their end, by action "
    "(sub-workflows: 'workflow') and final state; observed by this process's engine",
    ["action", "state"], buckets=ACTION_BUCKETS, registry=PROCESS)
EXECUTIONS_STARTED = Counter(
    "orchestrator_executions_started",
    "Executions (sub-workflows included) started by this process", registry=PROCESS)
EXECUTIONS_FINISHED = Counter(
    "orchestrator_executions_finished",
    "Executions that reached a final state in this process, by that state", ["state"],
    registry=PROCESS)
SALT_JOB_SECONDS = Histogram(
    "orchestrator_salt_job_duration_seconds",
    "Salt jobs published by this process's bridge, from the publish to the last minion's "
    "return (or to the verdict on minions that did not return), by function and outcome",
    ["fun", "state"], buckets=SALT_BUCKETS, registry=PROCESS)


_action_children: dict[tuple[str, str], object] = {}  # (name, state) -> histogram child


def _action_histogram(row: dict, state: str):
    """The histogram child for an action row. Its label is bounded: a registered
    action's name, never a user's ad-hoc name or an expression that failed before
    it resolved to one ("other")."""
    name = "workflow" if row.get("child_execution_id") else row["name"]
    child = _action_children.get((name, state))
    if child is None:
        known = name == "workflow" or registry.find(name) is not None
        child = ACTION_SECONDS.labels(name if known else "other", state)
        if known:
            _action_children[(name, state)] = child
    return child


def observe_transitions(transitions, now: float) -> None:
    """Called by the engine once a transaction with these state changes committed:
    ``(kind, old, new, row)`` tuples (:data:`orchestrator.engine.tx.REPORTED`)."""
    for kind, old, new, row in transitions:
        if kind == "action":
            _action_histogram(row, new).observe(max(0.0, now - row["created_at"]))
        elif kind == "workflow":
            if old == "IDLE":
                EXECUTIONS_STARTED.inc()
            elif new != "RUNNING":
                EXECUTIONS_FINISHED.labels(new).inc()


def observe_salt_job(fun: str, state: str, seconds: float) -> None:
    SALT_JOB_SECONDS.labels(fun, state).observe(max(0.0, seconds))


# -- from the store, at scrape time --------------------------------------------------
class StoreCollector(Collector):
    """Gauges read from the store at each scrape."""

    def __init__(self, store):
        self.store = store

    def describe(self):
        return []  # nothing to check at registration: do not query the store then

    def _queries(self, now: float):
        e, t, w = schema.executions, schema.task_executions, schema.work
        status = case((w.c.held.is_(True), "held"), (w.c.lease_until >= now, "leased"),
                      (w.c.due_at > now, "scheduled"), else_="due")
        return [
            select(e.c.state, func.count()).group_by(e.c.state),
            select(t.c.state, func.count()).group_by(t.c.state),
            select(w.c.kind, status, func.count(), func.min(w.c.due_at))
            .group_by(w.c.kind, status),
        ]

    def _read(self, now: float) -> list[list[tuple]]:
        # A DBAPI connection, not Store.connect(): on SQLite every SQLAlchemy
        # transaction starts with BEGIN IMMEDIATE, which would make the engine's
        # writers wait for the scrape.
        dialect = self.store.engine.dialect
        raw = self.store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            out = []
            for stmt in self._queries(now):
                sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                cursor.execute(sql)
                out.append([tuple(r) for r in cursor.fetchall()])
            cursor.close()
            return out
        finally:
            raw.close()  # back to the pool, rolled back

    def collect(self):
        from orchestrator.engine import states, steps, worker

        now = time.time()
        started = time.perf_counter()
        try:
            executions, tasks, work = self._read(now)
            up = 1
        except Exception as e:
            log.warning("metrics: cannot read the store: %s", e)
            executions, tasks, work, up = [], [], [], 0
        took = time.perf_counter() - started

        yield GaugeMetricFamily("orchestrator_store_up",
                                "1 when the last scrape could read the store", value=up)
        yield GaugeMetricFamily("orchestrator_store_scrape_duration_seconds",
                                "Time the store queries of this scrape took", value=took)
        if not up:
            return
        for name, what, enum, rows in (
                ("orchestrator_executions", "Executions in the store by state",
                 states.WorkflowState, executions),
                ("orchestrator_tasks", "Task executions in the store by state",
                 states.TaskState, tasks)):
            counts = {s.value: 0 for s in enum}
            counts.update({state: n for state, n in rows})
            family = GaugeMetricFamily(name, what, labels=["state"])
            for state, n in counts.items():
                family.add_metric([state], n)
            yield family

        kinds = list(steps.HANDLERS) + list(worker.ACTION_KINDS)
        depth = {(k, s): 0 for k in kinds for s in ("due", "leased", "scheduled", "held")}
        oldest = dict.fromkeys(kinds, 0.0)
        for kind, status, n, first_due in work:
            depth[(kind, status)] = n
            if status == "due":
                oldest[kind] = max(0.0, now - first_due)
        family = GaugeMetricFamily(
            "orchestrator_work_queue_depth",
            "Work items by kind and status: due (waiting for an engine or executor), leased "
            "(an action running under a lease), scheduled (a timer not due yet), held "
            "(its execution is paused)", labels=["kind", "status"])
        for (kind, status), n in depth.items():
            family.add_metric([kind, status], n)
        yield family
        family = GaugeMetricFamily(
            "orchestrator_work_oldest_due_age_seconds",
            "Seconds since the oldest due, unclaimed work item of each kind was due "
            "(0: none waiting)", labels=["kind"])
        for kind, age in oldest.items():
            family.add_metric([kind], age)
        yield family


class _Forward(Collector):
    """Serves another registry's metrics as part of this one."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def describe(self):
        return []

    def collect(self):
        return self.registry.collect()


# -- the app's side --------------------------------------------------------------------
def init_app(app, store) -> CollectorRegistry:
    """Give the Flask ``app`` its registry, the HTTP latency histogram and the
    ``/metrics`` route (endpoint ``metrics``; public like ``/health``)."""
    from flask import Response, g, request  # here: the engine imports this module

    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    registry.register(_Forward(PROCESS))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    http = Histogram(
        "orchestrator_http_request_duration_seconds",
        "API requests served by this process, by route template, method and status class",
        ["route", "method", "status"], registry=registry)

    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    # First of the before-request functions: the time of a request refused by the
    # authentication check counts too.
    app.before_request_funcs.setdefault(None, []).insert(0, start_timer)

    @app.after_request
    def observe_request(response):
        started = g.pop("metrics_started", None)
        if started is not None:
            rule = request.url_rule
            method = request.method if request.method in HTTP_METHODS else "other"
            http.labels(rule.rule if rule is not None else "unmatched", method,
                        f"{response.status_code // 100}xx").observe(
                time.perf_counter() - started)
        return response

    def metrics():
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    app.extensions["metrics"] = registry
    return registry
