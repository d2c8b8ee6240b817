"""Prometheus metrics at GET /metrics: scraped from a real ``orchestrator serve``
process while an execution runs and after it ended, and the store-backed gauges
in-process on SQLite and PostgreSQL."""
from __future__ import annotations

import time

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import dsl, metrics
from orchestrator.api import ApiConfig, create_app
from orchestrator.api.auth import Principal
from orchestrator.engine import control
from orchestrator.engine.worker import Worker
from tests.test_serve import TIMEOUT, Server

WORKBOOK = """
version: '2.0'
name: metered
workflows:
  slow:
    tasks:
      first:
        action: std.echo output=1
        on-success: nap
      nap:
        action: std.sleep seconds=1.5
        on-success: later
      later:
        action: std.echo output=2 delay=0.5
        on-success: last
      last:
        action: std.noop
"""


class Samples(dict):
    """Every sample of a scrape: ``(name, {label: value}) -> value``."""

    def __init__(self, text: str):
        super().__init__()
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        for family in self.families.values():
            for s in family.samples:
                self[(s.name, frozenset(s.labels.items()))] = s.value

    def get_value(self, name: str, **labels) -> float | None:
        return self.get((name, frozenset(labels.items())))


# One kept-alive connection: a connection closing just as SIGTERM arrives can make
# waitress swallow the stop (orchestrator.server._Stop is an Exception).
http = requests.Session()


def scrape(url: str, **headers) -> Samples:
    r = http.get(f"{url}/metrics", timeout=TIMEOUT, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return Samples(r.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(f"sqlite:///{tmp_path_factory.mktemp('metrics')}/orch.db", "--no-auth")
    try:
        yield s
    finally:
        code = s.stop()
        http.close()
        print(f"--- server log (exit {code}) ---\n{s.log()}")


def test_metrics_follow_an_execution_from_running_to_success(server):
    url = server.url
    r = http.post(f"{url}/v2/workbooks", data=WORKBOOK, timeout=TIMEOUT,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    before = scrape(url)
    assert before.get_value("orchestrator_store_up") == 1
    assert before.get_value("orchestrator_executions", state="RUNNING") == 0
    assert before.get_value("orchestrator_tasks", state="SUCCESS") == 0

    started = http.post(f"{url}/v2/executions", json={"workflow_name": "metered.slow"},
                            timeout=TIMEOUT)
    assert started.status_code == 201, started.text
    execution_id = started.json()["id"]

    # While std.sleep runs: the execution is RUNNING, 'first' is done, the sleep's
    # work item is leased to an executor.
    deadline = time.monotonic() + TIMEOUT
    while True:
        during = scrape(url)
        if during.get_value("orchestrator_tasks", state="SUCCESS") >= 1 and \
                during.get_value("orchestrator_work_queue_depth", kind="run_action",
                                 status="leased") == 1:
            break
        assert time.monotonic() < deadline, f"never saw the sleep running:\n{server.log()}"
        time.sleep(0.05)
    assert during.get_value("orchestrator_executions", state="RUNNING") == 1
    assert during.get_value("orchestrator_executions", state="SUCCESS") == 0
    assert during.get_value("orchestrator_tasks", state="RUNNING") == 1
    assert during.get_value("orchestrator_executions_started_total") == 1
    assert during.get_value("orchestrator_work_oldest_due_age_seconds", kind="run_action") == 0

    while http.get(f"{url}/v2/executions/{execution_id}",
                       timeout=TIMEOUT).json()["state"] == "RUNNING":
        assert time.monotonic() < deadline, f"the execution did not end:\n{server.log()}"
        time.sleep(0.1)
    after = scrape(url)

    assert after.get_value("orchestrator_executions", state="RUNNING") == 0
    assert after.get_value("orchestrator_executions", state="SUCCESS") == 1
    assert after.get_value("orchestrator_tasks", state="SUCCESS") == 4
    assert after.get_value("orchestrator_tasks", state="RUNNING") == 0
    assert after.get_value("orchestrator_executions_finished_total", state="SUCCESS") == 1
    assert sum(v for (name, labels), v in after.items()
               if name == "orchestrator_work_queue_depth") == 0
    sleep = dict(action="std.sleep", state="SUCCESS")
    assert after.get_value("orchestrator_action_duration_seconds_count", **sleep) == 1
    assert after.get_value("orchestrator_action_duration_seconds_sum", **sleep) >= 1.5
    assert after.get_value("orchestrator_action_duration_seconds_bucket", le="1.0", **sleep) == 0
    assert after.get_value("orchestrator_action_duration_seconds_count",
                           action="std.echo", state="SUCCESS") == 2
    assert after.get_value("orchestrator_action_duration_seconds_count",
                           action="std.noop", state="SUCCESS") == 1

    # HTTP latency by route template, never by raw path (no execution id in a label).
    latency = "orchestrator_http_request_duration_seconds_count"
    assert after.get_value(latency, route="/v2/executions", method="POST", status="2xx") == 1
    assert after.get_value(latency, route="/v2/executions/<id>", method="GET",
                           status="2xx") >= 1
    # the scrapes before this one (this one is observed once it is answered)
    assert after.get_value(latency, route="/metrics", method="GET", status="2xx") >= 2
    assert not [key for key in after if execution_id in str(key)]
    assert after.families["process_resident_memory_bytes"].samples


def test_openmetrics_when_the_scraper_asks_for_it(server):
    r = http.get(f"{server.url}/metrics", timeout=TIMEOUT,
                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    assert "orchestrator_executions" in r.text


def test_an_unmatched_path_is_one_route_label(server):
    for path in ("/no/such/a", "/no/such/b"):
        assert http.get(server.url + path, timeout=TIMEOUT).status_code == 404
    after = scrape(server.url)
    assert after.get_value("orchestrator_http_request_duration_seconds_count",
                           route="unmatched", method="GET", status="4xx") == 2


def test_metrics_need_no_token_but_the_api_still_does(sqlite_store):
    app = create_app(ApiConfig(store=sqlite_store,
                               tokens={"t": Principal("p", "viewer", "v")}))
    client = app.test_client()
    assert client.get("/v2/executions").status_code == 401
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = Samples(response.get_data(as_text=True))
    assert samples.get_value("orchestrator_http_request_duration_seconds_count",
                             route="/v2/executions", method="GET", status="4xx") == 1


def test_each_app_has_its_own_registry(sqlite_store):
    one = create_app(ApiConfig(store=sqlite_store)).extensions["metrics"]
    two = create_app(ApiConfig(store=sqlite_store)).extensions["metrics"]
    assert isinstance(one, CollectorRegistry) and one is not two


# -- the store-backed gauges, in-process on each backend ---------------------------------
def gauges(store) -> Samples:
    registry = CollectorRegistry()
    registry.register(metrics.StoreCollector(store))
    from prometheus_client import generate_latest

    return Samples(generate_latest(registry).decode())


QUEUED = """
version: '2.0'
wf:
  tasks:
    run:
      action: std.sleep seconds=0
    later:
      action: std.noop
      wait-before: 3600
"""


def test_store_gauges_count_states_and_the_work_queue(store):
    doc = dsl.load(QUEUED, "queued.yaml")
    old = time.time() - 30
    first = control.start(store, doc, None, {}, now=old)  # its std.sleep due 30 s ago
    s = gauges(store)
    assert s.get_value("orchestrator_store_up") == 1
    assert s.get_value("orchestrator_executions", state="RUNNING") == 1
    assert s.get_value("orchestrator_tasks", state="RUNNING") == 1
    assert s.get_value("orchestrator_tasks", state="RUNNING_DELAYED") == 1
    assert s.get_value("orchestrator_work_queue_depth", kind="run_action", status="due") == 1
    assert s.get_value("orchestrator_work_queue_depth", kind="start_task",
                       status="scheduled") == 1
    # Due 30 s before the start: at least that old, however slow the machine.
    assert 29 < s.get_value("orchestrator_work_oldest_due_age_seconds", kind="run_action") < 600
    assert s.get_value("orchestrator_work_oldest_due_age_seconds", kind="start_task") == 0

    worker = Worker(store)
    claimed = worker.claim_actions()
    assert len(claimed) == 1
    s = gauges(store)
    assert s.get_value("orchestrator_work_queue_depth", kind="run_action", status="leased") == 1
    assert s.get_value("orchestrator_work_queue_depth", kind="run_action", status="due") == 0
    assert s.get_value("orchestrator_work_oldest_due_age_seconds", kind="run_action") == 0

    worker.execute(claimed[0])
    control.pause(store, first)
    s = gauges(store)
    assert s.get_value("orchestrator_tasks", state="SUCCESS") == 1
    assert s.get_value("orchestrator_executions", state="PAUSED") == 1
    assert s.get_value("orchestrator_work_queue_depth", kind="start_task", status="held") == 1
    control.cancel(store, first)
    s = gauges(store)
    assert s.get_value("orchestrator_executions", state="CANCELLED") == 1
    assert s.get_value("orchestrator_executions", state="RUNNING") == 0


def test_a_store_that_cannot_be_read_is_reported_not_raised(sqlite_store):
    with sqlite_store.begin() as conn:
        conn.exec_driver_sql("DROP TABLE task_executions")
    s = gauges(sqlite_store)
    assert s.get_value("orchestrator_store_up") == 0
    assert s.get_value("orchestrator_executions", state="RUNNING") is None


def test_the_engine_observes_after_commit_only(sqlite_store):
    """A transaction that rolls back reports nothing; the retry reports once."""
    def started() -> float:
        return metrics.PROCESS.get_sample_value("orchestrator_executions_started_total")

    before = started()
    doc = dsl.load(QUEUED, "queued.yaml")
    with pytest.raises(RuntimeError):
        with sqlite_store.begin() as conn:
            control.start_in(conn, doc)
            raise RuntimeError("rolled back")
    assert started() == before
    control.start(sqlite_store, doc)
    assert started() == before + 1
