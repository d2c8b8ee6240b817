"""Cron triggers fire on a driven clock: patterns, time zones, missed-run
policies, remaining executions, and exactly-once under racing schedulers."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from orchestrator import catalog, cron, scheduler
from orchestrator.engine import control
from orchestrator.scheduler import MAX_CATCH_UP, execution_id, fire_times
from orchestrator.store import schema


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def trigger(pattern="*/10 * * * *", due="2026-01-01T00:10:00", missed="skip", remaining=None,
            tz="UTC"):
    return {"pattern": pattern, "timezone": tz, "next_execution_time": ts(due) if due else None,
            "missed": missed, "remaining_executions": remaining}


def test_nothing_fires_before_the_next_fire_time():
    assert fire_times(trigger(), ts("2026-01-01T00:09:59")) == ([], ts("2026-01-01T00:10:00"))


def test_an_on_time_fire_fires_once_and_moves_to_the_next_time():
    times, following = fire_times(trigger(), ts("2026-01-01T00:10:01"))
    assert times == [ts("2026-01-01T00:10:00")]
    assert following == ts("2026-01-01T00:20:00")


@pytest.mark.parametrize("policy, expected", [
    ("skip", []),
    ("once", ["2026-01-01T00:50:00"]),
    ("all", ["2026-01-01T00:10:00", "2026-01-01T00:20:00", "2026-01-01T00:30:00",
             "2026-01-01T00:40:00", "2026-01-01T00:50:00"]),
])
def test_missed_runs_after_downtime_follow_the_policy(policy, expected):
    now = ts("2026-01-01T00:55:00")  # down from 00:05 to 00:55
    times, following = fire_times(trigger(missed=policy), now)
    assert times == [ts(t) for t in expected]
    assert following == ts("2026-01-01T01:00:00")


def test_catch_up_is_bounded():
    times, _ = fire_times(trigger(pattern="* * * * *", missed="all"), ts("2026-01-02T00:00:00"))
    assert len(times) == MAX_CATCH_UP


def test_remaining_executions_bound_the_fires():
    times, _ = fire_times(trigger(missed="all", remaining=2), ts("2026-01-01T00:55:00"))
    assert times == [ts("2026-01-01T00:10:00"), ts("2026-01-01T00:20:00")]


def test_a_seconds_field_fires_every_n_seconds():
    t = trigger(pattern="*/5 * * * * *", due="2026-01-01T00:00:05")
    times, following = fire_times(t, ts("2026-01-01T00:00:05"))
    assert times == [ts("2026-01-01T00:00:05")]
    assert following == ts("2026-01-01T00:00:10")


def test_time_zones_shift_the_fire_time():
    # 02:00 in Paris on 1 January is 01:00 UTC.
    t = trigger(pattern="0 2 * * *", due="2026-01-01T01:00:00", tz="Europe/Paris")
    assert fire_times(t, ts("2026-01-01T01:00:00"))[1] == ts("2026-01-02T01:00:00")


def test_a_one_off_trigger_fires_once_then_stops():
    t = trigger(pattern="", due="2026-01-01T00:10:00")
    assert fire_times(t, ts("2026-01-01T00:10:01")) == ([ts("2026-01-01T00:10:00")], None)


def test_execution_ids_are_derived_from_trigger_and_fire_time():
    assert execution_id("t1", 100.0) == execution_id("t1", 100.0)
    assert execution_id("t1", 100.0) != execution_id("t1", 101.0)
    assert execution_id("t1", 100.0) != execution_id("t2", 100.0)


# -- the scheduler step on a real store, time driven ---------------------------------

WF = """
version: '2.0'
tick:
  input:
    - n: 0
  tasks:
    t:
      action: std.echo output=<% $.n %>
"""


def _setup(store, now, **trigger):
    with store.begin() as conn:
        catalog.create_standalone(conn, "default", WF, catalog.WORKFLOWS_FILE, now)
        cron.create(conn, "default", now, name="t", workflow_name="tick",
                    workflow_input={"n": 7}, workflow_params={}, **trigger)
        return conn.execute(select(schema.cron_triggers.c.id)).scalar()


def _executions(store):
    e = schema.executions
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(select(e).order_by(e.c.created_at)).mappings()]


def test_due_starts_one_execution_per_fire_with_the_trigger_input(store):
    now = 1_800_000_000.0  # on a minute boundary
    trigger_id = _setup(store, now, pattern="* * * * *")
    assert scheduler.due(store, now + 30) == 0
    assert scheduler.due(store, now + 60.5) == 1
    assert scheduler.due(store, now + 61) == 0  # the same fire never starts twice
    [ex] = _executions(store)
    assert ex["id"] == scheduler.execution_id(trigger_id, now + 60)
    assert ex["input"] == {"n": 7}
    assert ex["description"].startswith("cron trigger t at ")


def test_remaining_executions_count_down_and_the_used_up_trigger_goes(store):
    now = 1_800_000_000.0
    _setup(store, now, pattern="* * * * *", remaining_executions=2)
    for minute in (1, 2, 3):
        scheduler.due(store, now + 60 * minute + 0.5)
    assert len(_executions(store)) == 2
    with store.connect() as conn:
        assert conn.execute(select(schema.cron_triggers)).first() is None


@pytest.mark.parametrize("policy, expected", [("skip", 0), ("once", 1), ("all", 10)])
def test_downtime_is_caught_up_by_the_missed_run_policy(store, policy, expected):
    now = 1_800_000_000.0
    _setup(store, now, pattern="* * * * *", missed=policy)
    # The service was down for ten minutes and a half.
    assert scheduler.due(store, now + 630) == expected
    assert len(_executions(store)) == expected
    assert scheduler.due(store, now + 660.5) == 1  # back on schedule afterwards


def test_started_executions_run_on_the_engine(store):
    from tests.conftest import Runner

    now = 1_800_000_000.0
    _setup(store, now, pattern="* * * * *")
    scheduler.due(store, now + 60.5)
    Runner(store).drive()
    [ex] = _executions(store)
    assert control.summary(store, ex["id"])["tasks"][0]["result"] == 7
