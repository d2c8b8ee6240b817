"""A workbook's `triggers:` section: cron triggers created, updated and removed
with the workbook, and fired by the scheduler."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from orchestrator import catalog, dsl, scheduler
from orchestrator.errors import InvalidDefinition
from orchestrator.store import schema

WB = """
version: '2.0'
name: backups
workflows:
  nightly:
    input:
      - target: db
    tasks:
      dump:
        action: std.echo output="dump <% $.target %>"
triggers:
  - name: every-night
    pattern: "0 2 * * *"
    workflow: nightly
    input:
      target: main-db
    missed: once
"""


def _triggers(store):
    t = schema.cron_triggers
    with store.connect() as conn:
        return {r["name"]: dict(r) for r in conn.execute(select(t)).mappings()}


def test_uploading_a_workbook_creates_its_triggers_and_they_fire(store):
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    with store.begin() as conn:
        catalog.create_workbook(conn, "default", WB, now)
    trig = _triggers(store)["backups.every-night"]
    assert trig["workflow_name"] == "backups.nightly"
    assert trig["workflow_input"] == {"target": "main-db"}
    assert trig["missed"] == "once"
    fire = trig["next_execution_time"]
    assert scheduler.due(store, fire + 1) == 1
    with store.connect() as conn:
        ex = conn.execute(select(schema.executions)).mappings().one()
    assert ex["workflow_name"] == "backups.nightly" and ex["input"] == {"target": "main-db"}


def test_updating_the_workbook_updates_triggers_and_keeps_an_unchanged_schedule(store):
    now = 1_800_000_000.0
    with store.begin() as conn:
        catalog.create_workbook(conn, "default", WB, now)
    first = _triggers(store)["backups.every-night"]["next_execution_time"]
    changed = WB.replace("target: main-db", "target: replica") + """  - name: hourly
    pattern: "0 * * * *"
    workflow: nightly
"""
    with store.begin() as conn:
        catalog.update_workbook(conn, "default", changed, now + 3600)
    trig = _triggers(store)
    assert set(trig) == {"backups.every-night", "backups.hourly"}
    assert trig["backups.every-night"]["workflow_input"] == {"target": "replica"}
    assert trig["backups.every-night"]["next_execution_time"] == first  # not moved
    with store.begin() as conn:
        catalog.update_workbook(conn, "default", WB.split("triggers:")[0], now + 7200)
    assert _triggers(store) == {}


def test_deleting_the_workbook_removes_its_triggers(store):
    with store.begin() as conn:
        catalog.create_workbook(conn, "default", WB, 1_800_000_000.0)
        catalog.delete_workbook(conn, "default", "backups")
    assert _triggers(store) == {}


@pytest.mark.parametrize("entry, message", [
    ('  - name: x\n    pattern: "61 * * * *"\n    workflow: nightly\n', "not valid"),
    ('  - name: x\n    pattern: "0 * * * *"\n    workflow: nighty\n',
     "unknown workflow 'nighty' (did you mean 'nightly'?)"),
    ('  - pattern: "0 * * * *"\n    workflow: nightly\n', "a trigger needs a 'name'"),
    ('  - name: x\n    pattern: "0 * * * *"\n    workflow: nightly\n    missed: never\n',
     "missed must be one of skip, once, all"),
    ('  - name: x\n    pattern: "0 * * * *"\n    workflow: nightly\n    patern: 1\n',
     "unknown trigger key 'patern'"),
])
def test_bad_triggers_are_reported_with_their_line(entry, message):
    text = WB.split("triggers:")[0] + "triggers:\n" + entry
    with pytest.raises(InvalidDefinition) as info:
        dsl.load(text, "backups.yaml")
    [problem] = info.value.problems
    assert message in str(problem)
    # The entry starts on line 12 of the file; each problem points into it.
    assert problem.line >= 12 and problem.path.startswith("triggers[0]"), str(problem)
