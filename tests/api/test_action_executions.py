"""/v2/action_executions: read, and complete an asynchronous action from outside."""
from __future__ import annotations

import pytest

from tests.api.test_executions import WAIT, define, error, start


def waiting(api) -> tuple[dict, dict]:
    """A ``wait`` execution and its RUNNING std.async_noop action."""
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    (action,) = api.get("/v2/action_executions").get_json()["action_executions"]
    return ex, action


def test_an_async_action_is_running_until_completed_from_outside(api):
    ex, action = waiting(api)
    assert (action["name"], action["state"]) == ("std.async_noop", "RUNNING")
    assert action["workflow_execution_id"] == ex["id"]
    r = api.put(f"/v2/action_executions/{action['id']}",
                {"state": "SUCCESS", "output": {"volume": "vol-1"}})
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["state"], r.get_json()["output"]) == ("SUCCESS", {"volume": "vol-1"})
    api.drive()
    done = api.get(f"/v2/executions/{ex['id']}").get_json()
    assert done["state"] == "SUCCESS" and done["output"] == {"got": {"volume": "vol-1"}}


def test_an_async_action_reported_failed_fails_its_task(api):
    ex, action = waiting(api)
    r = api.put(f"/v2/action_executions/{action['id']}", {"state": "ERROR",
                                                           "output": "quota exceeded"})
    assert r.get_json()["state"] == "ERROR"
    api.drive()
    task = api.get(f"/v2/tasks/{action['task_execution_id']}").get_json()
    assert task["state"] == "ERROR" and "quota exceeded" in task["state_info"]
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["state"] == "ERROR"


def test_an_action_completes_only_once(api):
    _, action = waiting(api)
    api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": 1})
    r = api.put(f"/v2/action_executions/{action['id']}", {"state": "ERROR", "output": 2})
    error(r, 409, "SUCCESS", "not RUNNING")
    got = api.get(f"/v2/action_executions/{action['id']}").get_json()
    assert (got["state"], got["output"]) == ("SUCCESS", 1)


def test_a_cancelled_async_action_fails_its_task(api):
    ex, action = waiting(api)
    r = api.put(f"/v2/action_executions/{action['id']}", {"state": "CANCELLED"})
    assert r.status_code == 200, r.get_json()
    api.drive()
    task = api.get(f"/v2/tasks/{action['task_execution_id']}").get_json()
    assert task["state"] == "ERROR" and "cancelled" in task["state_info"]
    assert api.get(f"/v2/action_executions/{action['id']}").get_json()["state"] == "CANCELLED"


def test_action_executions_filter_by_task(api):
    ex, action = waiting(api)
    by_task = api.get("/v2/action_executions", task_execution_id=action["task_execution_id"])
    assert [a["id"] for a in by_task.get_json()["action_executions"]] == [action["id"]]
    assert api.get("/v2/action_executions", task_execution_id="other").get_json() == {
        "action_executions": []}
    by_state = api.get("/v2/action_executions", state="SUCCESS").get_json()
    assert by_state == {"action_executions": []}


@pytest.mark.parametrize("body,fragment", [
    ({}, "'state' is required"),
    ({"state": "RUNNING"}, "'RUNNING' is not one of SUCCESS, ERROR, CANCELLED"),
    ({"state": "success"}, "'success' is not one of"),
    ({"state": True}, "'state' must be str"),
    ({"state": "SUCCESS", "result": 1}, "unknown field 'result'"),
])
def test_bad_completions_say_what_is_wrong(api, body, fragment):
    _, action = waiting(api)
    error(api.put(f"/v2/action_executions/{action['id']}", body), 400, fragment)
    assert api.get(f"/v2/action_executions/{action['id']}").get_json()["state"] == "RUNNING"


def test_unknown_action_executions_are_404(api):
    error(api.get("/v2/action_executions/no-such"), 404, "action execution no-such")
    error(api.put("/v2/action_executions/no-such", {"state": "SUCCESS"}), 404, "no-such")
    error(api.get("/v2/action_executions", marker="no-such"), 404, "marker")


def test_a_viewer_cannot_complete_an_action(api):
    _, action = waiting(api)
    error(api.as_("view-a").put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS"}),
          403, "viewer")
