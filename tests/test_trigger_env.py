"""A cron trigger whose ``workflow_params.env`` names a stored environment: at
each fire the environment's variables are what ``env()`` sees (as
``POST /v2/executions`` does with ``params.env`` as a name), its secret names
go with them, and a deleted environment makes the fire fail with a reason."""
from __future__ import annotations

from sqlalchemy import select

from orchestrator import catalog, cron, scheduler
from orchestrator.engine import control
from orchestrator.store import schema
from tests.conftest import Runner

WF = """
version: '2.0'
greet:
  tasks:
    hello:
      action: std.echo output="<% env().greeting %> from <% env().region %>"
      publish:
        token: <% env().token %>
"""
NOW = 1_800_000_000.0  # on a minute boundary


def _setup(store, env) -> None:
    with store.begin() as conn:
        catalog.create_standalone(conn, "default", WF, catalog.WORKFLOWS_FILE, NOW)
        catalog.create_environment(conn, "default", "staging",
                                   {"greeting": "hi", "region": "eu-1", "token": "s3cret"},
                                   ["token"], "", NOW)
        cron.create(conn, "default", NOW, name="t", pattern="* * * * *", workflow_name="greet",
                    workflow_input={}, workflow_params={"env": env})


def _only_execution(store) -> dict:
    e = schema.executions
    with store.connect() as conn:
        [row] = [dict(r) for r in conn.execute(select(e)).mappings()]
    return row


def test_a_trigger_env_given_by_name_is_the_environment_s_variables(store):
    _setup(store, "staging")
    with store.begin() as conn:  # changed after the trigger was made: the fire reads it then
        catalog.update_environment(conn, "default", "staging", NOW + 1,
                                   variables={"greeting": "hello", "region": "eu-1",
                                              "token": "s3cret"})
    assert scheduler.due(store, NOW + 60.5) == 1
    runner = Runner(store)
    runner.drive()
    ex = _only_execution(store)
    summary = control.summary(store, ex["id"])
    assert summary["state"] == "SUCCESS", summary
    [task] = summary["tasks"]
    assert task["result"] == "hello from eu-1"
    env = ex["params"]["env"]  # pinned: the variables at the fire (secret values as stored)
    assert (sorted(env), env["greeting"], env["region"]) == (
        ["greeting", "region", "token"], "hello", "eu-1")
    assert ex["params"]["secrets"] == ["token"]  # shown as *** by the API
    assert task["published"]["token"] == "s3cret"  # env() sees the secret's value


def test_a_trigger_env_given_as_variables_is_kept_as_is(store):
    _setup(store, {"greeting": "yo", "region": "us-2", "token": "t"})
    assert scheduler.due(store, NOW + 60.5) == 1
    Runner(store).drive()
    ex = _only_execution(store)
    assert control.summary(store, ex["id"])["tasks"][0]["result"] == "yo from us-2"
    assert "secrets" not in ex["params"]


def test_a_trigger_whose_environment_was_deleted_records_why_it_did_not_start(store):
    _setup(store, "staging")
    with store.begin() as conn:
        catalog.delete_environment(conn, "default", "staging")
    assert scheduler.due(store, NOW + 60.5) == 0
    with store.connect() as conn:
        [fire] = conn.execute(select(schema.cron_fires)).mappings().all()
        executions = conn.execute(select(schema.executions)).all()
    assert executions == []
    assert "staging" in fire["error"], fire
