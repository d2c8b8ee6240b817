"""The catalog: definitions pinned as specs, found again to start executions."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from orchestrator import catalog, cron, dsl
from orchestrator.engine import control
from orchestrator.errors import Conflict, InvalidDefinition, InvalidInput, NotFound
from orchestrator.store import db
from orchestrator.store.db import Store

NOW = 1_800_000_000.0

WORKBOOK = """\
version: '2.0'
name: app
actions:
  say:
    base: std.echo
    base-input: {output: "<% $.word %>"}
    input: [word]
workflows:
  main:
    output: {said: "<% $.said %>", sub: "<% $.sub %>"}
    tasks:
      talk:
        action: say word=v1
        publish: {said: "<% task().result %>"}
        on-success: [call]
      call:
        workflow: helper
        publish: {sub: "<% task().result %>"}
"""

HELPER = """\
version: '2.0'
helper:
  output: {value: "<% $.v %>"}
  tasks:
    one:
      action: shout text=h1
      publish: {v: "<% task().result %>"}
"""

ACTIONS = """\
version: '2.0'
shout:
  base: loud
  input: [text]
  base-input: {output: "<% $.text %>"}
loud:
  base: std.echo
  input: [output]
  base-input: {output: "<% $.output %>"}
unused:
  base: std.noop
"""


def define(store, *uploads):
    with store.begin() as conn:
        for kind, body in uploads:
            if kind == catalog.WORKBOOK_FILE:
                catalog.create_workbook(conn, "p", body, NOW)
            else:
                catalog.create_standalone(conn, "p", body, kind, NOW)


def everything(store):
    define(store, (catalog.ACTIONS_FILE, ACTIONS), (catalog.WORKFLOWS_FILE, HELPER),
           (catalog.WORKBOOK_FILE, WORKBOOK.replace("workflow: helper", "workflow: helper")))


def test_the_workflow_document_carries_what_the_workflow_calls(store):
    everything(store)
    with store.begin() as conn:
        doc, name = catalog.workflow_document(conn, "p", "app.main")
    assert name == "app.main" and doc.name == "app"
    assert set(doc.workflows) == {"app.main", "helper"}
    # The workbook's action, the standalone chain shout -> loud, and every standalone action.
    assert set(doc.actions) == {"app.say", "shout", "loud", "unused"}


def test_an_execution_started_from_the_catalog_runs_stored_actions_and_workflows(runner):
    everything(runner.store)
    with runner.store.begin() as conn:
        doc, name = catalog.workflow_document(conn, "p", "app.main")
    execution_id = control.start(runner.store, doc, name, {}, project="p")
    runner.drive()
    result = runner.summary(execution_id)
    assert result["state"] == "SUCCESS", result
    assert result["output"] == {"said": "v1", "sub": {"value": "h1"}}


def test_updating_a_workbook_leaves_a_running_execution_on_its_spec(runner):
    everything(runner.store)
    with runner.store.begin() as conn:
        doc, name = catalog.workflow_document(conn, "p", "app.main")
    execution_id = control.start(runner.store, doc, name, {}, project="p")
    with runner.store.begin() as conn:
        catalog.update_workbook(conn, "p", WORKBOOK.replace("word=v1", "word=v2"), NOW + 1)
        updated, _ = catalog.workflow_document(conn, "p", "app.main")
    assert updated.workflows["app.main"].tasks["talk"].input == {"word": "v2"}
    runner.drive()
    assert runner.summary(execution_id)["output"]["said"] == "v1"


def test_an_update_replaces_the_workbooks_rows(store):
    everything(store)
    smaller = WORKBOOK.replace("  main:", "  other:")
    with store.begin() as conn:
        catalog.update_workbook(conn, "p", smaller, NOW + 5)
        assert catalog.get_workflow(conn, "p", "app.other")["created_at"] == NOW + 5
        with pytest.raises(NotFound):
            catalog.get_workflow(conn, "p", "app.main")
        assert catalog.get_workbook(conn, "p", "app")["updated_at"] == NOW + 5
        catalog.delete_workbook(conn, "p", "app")
        with pytest.raises(NotFound):
            catalog.get_action(conn, "p", "app.say")


def test_a_workflow_calling_a_missing_workflow_is_invalid(store):
    with store.begin() as conn, pytest.raises(InvalidDefinition) as caught:
        catalog.create_workbook(conn, "p", WORKBOOK, NOW)
    messages = [p.message for p in caught.value.problems]
    assert "unknown workflow 'helper'" in messages
    assert any("unknown action 'shout'" in m for m in messages) is False


def test_workflows_of_another_project_are_not_found(store):
    everything(store)
    with store.begin() as conn, pytest.raises(NotFound, match="did you mean 'helper'"):
        catalog.workflow_document(conn, "p", "helpr")
    with store.begin() as conn, pytest.raises(NotFound):
        catalog.workflow_document(conn, "q", "helper")


def test_a_standalone_name_cannot_take_a_workbook_name(store):
    everything(store)
    clash = "version: '2.0'\napp.say:\n  base: std.noop\n"
    with store.begin() as conn, pytest.raises(Conflict, match="workbook 'app'"):
        catalog.create_standalone(conn, "p", clash, catalog.ACTIONS_FILE, NOW)


def test_environment_secrets_must_name_variables_and_are_masked(store):
    with store.begin() as conn:
        with pytest.raises(InvalidInput, match="'tokn'"):
            catalog.create_environment(conn, "p", "e", {"token": "abcdef"}, ["tokn"], "", NOW)
        row = catalog.create_environment(conn, "p", "e", {"token": "abcdef", "x": 1},
                                         ["token"], "", NOW)
        assert catalog.masked_variables(row) == {"token": "***", "x": 1}
        row = catalog.update_environment(conn, "p", "e", NOW, secrets=[])
        assert catalog.masked_variables(row) == {"token": "abcdef", "x": 1}


def test_load_actions_reads_a_standalone_action_document():
    doc = dsl.load_actions(ACTIONS, "acts.yaml")
    assert doc.actions["shout"].base == "loud" and doc.workflows == {}
    with pytest.raises(InvalidDefinition) as caught:
        dsl.load_actions("version: '2.0'\nx:\n  base: nothing.here\n", "acts.yaml")
    (problem,) = caught.value.problems
    assert (problem.path, problem.line, problem.file) == ("x.base", 3, "acts.yaml")


def test_cron_patterns_follow_the_zones_daylight_saving():
    paris = ZoneInfo("Europe/Paris")
    before = datetime(2026, 3, 27, 12, 0, tzinfo=paris).timestamp()  # DST starts on the 29th
    first = cron.next_time("0 3 * * *", "Europe/Paris", before)
    second = cron.next_time("0 3 * * *", "Europe/Paris", first)
    assert datetime.fromtimestamp(first, paris).hour == 3
    assert datetime.fromtimestamp(second, paris).hour == 3
    assert second - first == 23 * 3600


def test_cron_accepts_aliases_and_seconds_first():
    assert cron.next_time("@hourly", "UTC", 3600 * 10 + 1) == 3600 * 11
    assert cron.next_time("30 * * * * *", "UTC", 60.0) == 90.0
    with pytest.raises(InvalidInput, match="6 \\(seconds first\\)"):
        cron.check_pattern("* *")


def test_the_migration_adds_secrets_to_existing_environments(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO environments VALUES "
                          "('1', 'p', 'old', '', '{\"a\": 1}', 1.0, 1.0)"))
    engine.dispose()
    store = Store(url)
    try:
        with store.begin() as conn:
            row = catalog.get_environment(conn, "p", "old")
            assert row["secrets"] == [] and row["variables"] == {"a": 1}
            assert "cron_triggers" in inspect(conn).get_table_names()
    finally:
        store.dispose()
