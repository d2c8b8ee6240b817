"""/v2/tasks: read, rerun, skip, and a task's action executions."""
from __future__ import annotations

import pytest

from tests.api.test_executions import BROKEN, WAIT, define, error, only, run, start

ITEMS = """
version: '2.0'
fan:
  output:
    got: <% $.got %>
  tasks:
    each:
      with-items: host in <% $.hosts %>
      action: std.async_noop
      publish:
        got: <% task().result %>
  input: [hosts]
"""


def actions_of(api, task_id: str) -> list[dict]:
    return api.get(f"/v2/tasks/{task_id}/action_executions").get_json()["action_executions"]


def complete(api, action_id: str, state: str, output=None) -> None:
    r = api.put(f"/v2/action_executions/{action_id}", {"state": state, "output": output})
    assert r.status_code == 200, r.get_json()


def failed_wait(api) -> tuple[dict, dict]:
    """A ``wait`` execution whose only task failed (its async action reported ERROR)."""
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    task = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"][0]
    complete(api, actions_of(api, task["id"])[0]["id"], "ERROR", "remote side said no")
    api.drive()
    return ex, api.get(f"/v2/tasks/{task['id']}").get_json()


def test_a_task_reads_with_its_execution_and_actions(api):
    ex = run(api, BROKEN, "broken")
    tasks = api.get("/v2/tasks", workflow_execution_id=ex["id"]).get_json()["tasks"]
    assert [(t["name"], t["state"]) for t in tasks] == [("first", "SUCCESS"), ("boom", "ERROR")]
    boom = api.get(f"/v2/tasks/{tasks[1]['id']}").get_json()
    assert boom["workflow_execution_id"] == ex["id"] and boom["workflow_name"] == "broken"
    assert "disk full" in boom["state_info"] and boom["attempt"] == 1
    assert boom["items_total"] is None and boom["finished_at"] is not None
    (action,) = actions_of(api, boom["id"])
    assert (action["name"], action["state"], action["runs"]) == ("std.fail", "ERROR", 1)
    assert action["task_execution_id"] == boom["id"]


def test_tasks_filter_by_state_and_name(api):
    ex = run(api, BROKEN, "broken")
    failed = api.get("/v2/tasks", state="ERROR").get_json()["tasks"]
    assert [t["name"] for t in failed] == ["boom"]
    named = api.get("/v2/tasks", name="first").get_json()["tasks"]
    assert [t["state"] for t in named] == ["SUCCESS"]
    in_ex = api.get(f"/v2/executions/{ex['id']}/tasks", state="ERROR").get_json()["tasks"]
    assert [t["name"] for t in in_ex] == ["boom"]
    first = api.get("/v2/tasks", limit=1).get_json()
    assert len(first["tasks"]) == 1 and "next" in first


def test_a_failed_task_reruns_from_scratch(api):
    ex, task = failed_wait(api)
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["state"] == "ERROR"
    r = api.put(f"/v2/tasks/{task['id']}", {"state": "RUNNING", "reset": True})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["state"] == "RUNNING" and r.get_json()["attempt"] == 2
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["state"] == "RUNNING"
    api.drive()
    fresh = only(actions_of(api, task["id"]), state="RUNNING")
    complete(api, fresh["id"], "SUCCESS", "second time lucky")
    api.drive()
    done = api.get(f"/v2/executions/{ex['id']}").get_json()
    assert done["state"] == "SUCCESS" and done["output"] == {"got": "second time lucky"}


def test_a_with_items_rerun_without_reset_runs_only_the_failed_items(api):
    define(api, ITEMS)
    ex = start(api, "fan", {"hosts": ["a", "b", "c"]})
    api.drive()
    task = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"][0]
    assert task["items_total"] == 3 and task["items_done"] == 0
    for action in actions_of(api, task["id"]):
        ok = action["item_index"] != 1
        complete(api, action["id"], "SUCCESS" if ok else "ERROR", action["item_index"])
    api.drive()
    assert api.get(f"/v2/tasks/{task['id']}").get_json()["state"] == "ERROR"
    r = api.put(f"/v2/tasks/{task['id']}", {"state": "RUNNING", "reset": False})
    assert r.status_code == 200, r.get_json()
    api.drive()
    running = [a for a in actions_of(api, task["id"]) if a["state"] == "RUNNING"]
    assert [a["item_index"] for a in running] == [1]
    complete(api, running[0]["id"], "SUCCESS", "b again")
    api.drive()
    done = api.get(f"/v2/executions/{ex['id']}").get_json()
    assert done["state"] == "SUCCESS" and done["output"] == {"got": [0, "b again", 2]}


def test_a_failed_task_can_be_skipped(api):
    ex = run(api, BROKEN, "broken")
    boom = api.get("/v2/tasks", name="boom").get_json()["tasks"][0]
    r = api.put(f"/v2/tasks/{boom['id']}", {"state": "SKIPPED"})
    assert r.status_code == 200 and r.get_json()["state"] == "SKIPPED"
    api.drive()
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["state"] == "SUCCESS"


def test_only_failed_tasks_rerun_or_skip(api):
    ex = run(api, BROKEN, "broken")
    first = api.get("/v2/tasks", name="first").get_json()["tasks"][0]
    error(api.put(f"/v2/tasks/{first['id']}", {"state": "RUNNING", "reset": True}), 409,
          "SUCCESS", "only ERROR")
    error(api.put(f"/v2/tasks/{first['id']}", {"state": "SKIPPED"}), 409, "SUCCESS")
    boom = api.get("/v2/tasks", name="boom").get_json()["tasks"][0]
    error(api.put(f"/v2/tasks/{boom['id']}", {"state": "RUNNING", "reset": False}), 400,
          "with-items")
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["state"] == "ERROR"


@pytest.mark.parametrize("body,fragment", [
    ({}, "'state' is required"),
    ({"state": "RUNNING"}, "needs 'reset'"),
    ({"state": "RUNNING", "reset": "yes"}, "'reset' must be bool"),
    ({"state": "RUNNING", "reset": 1}, "'reset' must be bool"),
    ({"state": "SUCCESS"}, "RUNNING (rerun) or SKIPPED"),
    ({"state": "SKIPPED", "reset": True}, "'reset' goes with state RUNNING"),
    ({"state": ["SKIPPED"]}, "'state' must be str"),
    ({"state": "SKIPPED", "force": True}, "unknown field 'force'"),
])
def test_bad_task_updates_say_what_is_wrong(api, body, fragment):
    run(api, BROKEN, "broken")
    boom = api.get("/v2/tasks", name="boom").get_json()["tasks"][0]
    error(api.put(f"/v2/tasks/{boom['id']}", body), 400, fragment)
    assert api.get(f"/v2/tasks/{boom['id']}").get_json()["state"] == "ERROR"


def test_unknown_tasks_are_404(api):
    error(api.get("/v2/tasks/no-such"), 404, "task no-such")
    error(api.put("/v2/tasks/no-such", {"state": "SKIPPED"}), 404, "no-such")
    error(api.get("/v2/tasks/no-such/action_executions"), 404, "no-such")
    error(api.get("/v2/tasks", sort_keys="flags"), 400, "cannot sort by 'flags'")
