"""Cron triggers through the REST API: created, listed, read, deleted."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

WORKFLOW = """\
version: '2.0'
nightly:
  input: [target, {dry_run: false}]
  tasks:
    backup:
      action: std.echo output=<% $.target %>
"""


@pytest.fixture
def api(api):
    assert api.post("/v2/workflows", yaml=WORKFLOW).status_code == 201
    return api


def trigger(**changes) -> dict:
    body = {"name": "every5", "pattern": "*/5 * * * *", "workflow_name": "nightly",
            "workflow_input": {"target": "db"}, "workflow_params": {}}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def create(api, **changes):
    response = api.post("/v2/cron_triggers", trigger(**changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_trigger_is_stored_with_its_next_execution_time(api):
    body = create(api)
    assert body["workflow_name"] == "nightly" and body["timezone"] == "UTC"
    assert body["missed"] == "skip" and body["remaining_executions"] is None
    following = at(body["next_execution_time"])
    assert following.minute % 5 == 0 and following.second == 0
    assert timedelta(0) < following - datetime.now(UTC) <= timedelta(minutes=5)
    assert api.get("/v2/cron_triggers/every5").get_json() == body


def test_the_pattern_is_read_in_the_triggers_time_zone(api):
    body = create(api, pattern="0 3 * * *", timezone="Asia/Kolkata")
    local = at(body["next_execution_time"]).astimezone(__import__("zoneinfo").ZoneInfo(
        "Asia/Kolkata"))
    assert (local.hour, local.minute) == (3, 0)


def test_a_six_field_pattern_has_seconds_first(api):
    body = create(api, pattern="*/20 * * * * *")
    assert at(body["next_execution_time"]).second in (0, 20, 40)
    assert at(body["next_execution_time"]) - datetime.now(UTC) <= timedelta(seconds=20)


def test_the_first_execution_time_is_the_first_run(api):
    first = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    body = create(api, first_execution_time=first.isoformat(), remaining_executions=3,
                  missed="once")
    assert at(body["first_execution_time"]) == first == at(body["next_execution_time"])
    assert body["remaining_executions"] == 3 and body["missed"] == "once"


def test_an_existing_trigger_name_is_a_conflict(api):
    create(api)
    assert api.post("/v2/cron_triggers", trigger()).status_code == 409


@pytest.mark.parametrize("changes, words", [
    ({"pattern": "*/5 * * *"}, "has 4 fields"),
    ({"pattern": "61 * * * *"}, "not valid"),
    ({"pattern": "* * * * * * *"}, "has 7 fields"),
    ({"pattern": "every day"}, "has 2 fields"),
    ({"pattern": 5}, "'pattern' must be str"),
    ({"pattern": "0 0 31 2 *"}, "never matches"),
    ({"timezone": "Mars/Olympus"}, "not a known IANA time zone"),
    ({"timezone": "../etc"}, "not a known IANA time zone"),
    ({"workflow_input": {}}, "needs input 'target'"),
    ({"workflow_input": {"target": "db", "taget": 1}}, "has no input 'taget'"),
    ({"workflow_input": ["db"]}, "'workflow_input' must be dict"),
    ({"workflow_params": {"envv": {}}}, "workflow_params has no 'envv'"),
    ({"workflow_params": {"env": 3}}, "environment name or an object"),
    ({"workflow_params": {"task_name": "bakup"}}, "did you mean 'backup'"),
    ({"first_execution_time": "tomorrow"}, "ISO 8601"),
    ({"first_execution_time": "2001-01-01T00:00:00Z"}, "in the past"),
    ({"remaining_executions": 0}, "positive integer"),
    ({"remaining_executions": "3"}, "must be int"),
    ({"remaining_executions": True}, "must be int"),
    ({"missed": "sometimes"}, "skip, once, all"),
    ({"name": ""}, "must not be empty"),
    ({"name": None}, "'name' is required"),
    ({"schedule": "daily"}, "no field 'schedule'"),
])
def test_bad_triggers_are_refused_with_a_clear_message(api, changes, words):
    response = api.post("/v2/cron_triggers", trigger(**changes))
    assert response.status_code == 400, response.get_json()
    assert words in response.get_json()["message"]
    assert api.get("/v2/cron_triggers").get_json()["cron_triggers"] == []


def test_an_unknown_workflow_or_environment_is_not_found(api):
    response = api.post("/v2/cron_triggers", trigger(workflow_name="nigthly"))
    assert response.status_code == 404
    assert "did you mean 'nightly'" in response.get_json()["message"]
    response = api.post("/v2/cron_triggers", trigger(workflow_params={"env": "prod"}))
    assert response.status_code == 404


def test_a_trigger_may_name_an_environment(api):
    assert api.post("/v2/environments", {"name": "prod"}).status_code == 201
    body = create(api, workflow_params={"env": "prod"})
    assert body["workflow_params"] == {"env": "prod"}


def test_a_trigger_of_a_workbook_workflow_uses_its_full_name(api):
    workbook = WORKFLOW.replace("nightly:", "name: ops\nworkflows:\n nightly:").replace(
        "\n  ", "\n   ")
    assert api.post("/v2/workbooks", yaml=workbook).status_code == 201
    assert create(api, workflow_name="ops.nightly")["workflow_name"] == "ops.nightly"


def test_triggers_are_listed_by_page_and_filtered_by_workflow(api):
    for i in range(3):
        create(api, name=f"t{i}")
    first = api.get("/v2/cron_triggers", limit=2).get_json()
    assert [t["name"] for t in first["cron_triggers"]] == ["t0", "t1"] and first["next"]
    rest = api.get("/v2/cron_triggers", limit=2,
                   marker=first["cron_triggers"][-1]["id"]).get_json()
    assert [t["name"] for t in rest["cron_triggers"]] == ["t2"]
    assert api.get("/v2/cron_triggers", workflow_name="other").get_json()[
        "cron_triggers"] == []
    assert api.get("/v2/cron_triggers", sort_keys="workflow_input").status_code == 400


def test_another_project_cannot_see_or_delete_a_trigger(api):
    create(api)
    assert api.as_("op-b").get("/v2/cron_triggers/every5").status_code == 404
    assert api.as_("op-b").get("/v2/cron_triggers").get_json()["cron_triggers"] == []
    assert api.as_("admin-b").delete("/v2/cron_triggers/every5").status_code == 404
    # Nor start the other project's workflow from a trigger of its own.
    assert api.as_("op-b").post("/v2/cron_triggers", trigger()).status_code == 404


def test_deleting_a_trigger_needs_an_admin(api):
    create(api)
    assert api.as_("view-a").post("/v2/cron_triggers", trigger(name="v")).status_code == 403
    assert api.delete("/v2/cron_triggers/every5").status_code == 403
    assert api.as_("admin-a").delete("/v2/cron_triggers/every5").status_code == 204
    assert api.get("/v2/cron_triggers/every5").status_code == 404
    assert api.as_(None).post("/v2/cron_triggers", trigger()).status_code == 401


def test_triggers_have_no_put(api):
    assert api.put("/v2/cron_triggers", trigger()).status_code == 405
