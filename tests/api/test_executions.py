"""/v2/executions: start, list, read, change state, delete, events and report."""
from __future__ import annotations

import uuid

import pytest

from orchestrator import secrets
from orchestrator.engine import control
from orchestrator.store import schema

HELLO = """
version: '2.0'
hello:
  input: [name]
  output:
    greeting: <% $.greeting %>
  tasks:
    greet:
      action: std.echo output="hi <% $.name %>"
      publish:
        greeting: <% task().result %>
"""

# Stays RUNNING until its action is completed from outside.
WAIT = """
version: '2.0'
wait:
  output:
    got: <% $.got %>
  tasks:
    hold:
      action: std.async_noop
      publish:
        got: <% task().result %>
"""

BROKEN = """
version: '2.0'
broken:
  tasks:
    first:
      action: std.noop
      on-success: [boom]
    boom:
      action: std.fail error_data="disk full"
"""

# top -> middle -> leaf, and the leaf fails.
NESTED = """
version: '2.0'
top:
  tasks:
    prepare:
      action: std.noop
      on-success: [deploy]
    deploy:
      workflow: middle
middle:
  tasks:
    install:
      workflow: leaf
leaf:
  tasks:
    ok:
      action: std.noop
      on-success: [attach]
    attach:
      action: std.fail error_data="volume vol-9 is busy"
"""

SECRET = """
version: '2.0'
login:
  output:
    said: <% $.said %>
  tasks:
    connect:
      action: std.echo output="user=<% env().user %> pw=<% env().password %>"
      publish:
        said: <% task().result %>
"""

REVERSE = """
version: '2.0'
build:
  type: reverse
  tasks:
    fetch:
      action: std.noop
    compile:
      action: std.noop
      requires: [fetch]
"""


def define(api, text: str) -> None:
    r = api.post("/v2/workflows", yaml=text)
    assert r.status_code == 201, r.get_json()


def start(api, name: str, input: dict | None = None, status: int = 201, **body) -> dict:
    r = api.post("/v2/executions", {"workflow_name": name, "input": input or {}, **body})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def run(api, text: str, name: str, input: dict | None = None, **body) -> dict:
    """Define, start and drive to the end; the execution as GET shows it."""
    define(api, text)
    ex = start(api, name, input, **body)
    api.drive()
    return api.get(f"/v2/executions/{ex['id']}").get_json()


def only(items: list[dict], **match) -> dict:
    found = [i for i in items if all(i[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, items)
    return found[0]


def error(response, status: int, *fragments: str) -> None:
    body = response.get_json()
    assert response.status_code == status, body
    for fragment in fragments:
        assert fragment in body["message"], (fragment, body)


def count(store, table) -> int:
    with store.connect() as conn:
        return len(conn.execute(table.select()).all())


# -- start and read ---------------------------------------------------------------------
def test_started_execution_runs_to_success_with_its_output(api):
    define(api, HELLO)
    ex = start(api, "hello", {"name": "ops"}, description="first try")
    assert ex["workflow_name"] == "hello" and ex["project"] == "alpha"
    assert ex["description"] == "first try" and ex["input"] == {"name": "ops"}
    api.drive()
    got = api.get(f"/v2/executions/{ex['id']}").get_json()
    assert got["state"] == "SUCCESS"
    assert got["output"] == {"greeting": "hi ops"}
    assert got["finished_at"] is not None and got["root_execution_id"] is None
    tasks = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"]
    assert [(t["name"], t["state"], t["type"]) for t in tasks] == [("greet", "SUCCESS", "ACTION")]


def test_list_filters_by_state_and_workflow_name(api):
    define(api, HELLO)
    define(api, WAIT)
    done = start(api, "hello", {"name": "a"})
    waiting = start(api, "wait")
    api.drive()
    by_state = api.get("/v2/executions", state="RUNNING").get_json()["executions"]
    assert [e["id"] for e in by_state] == [waiting["id"]]
    by_name = api.get("/v2/executions", workflow_name="hello").get_json()["executions"]
    assert [e["id"] for e in by_name] == [done["id"]]
    assert api.get("/v2/executions", state="ERROR").get_json() == {"executions": []}


def test_list_pages_follow_next_in_the_requested_order(api):
    define(api, HELLO)
    ex = [f"0000000{i}-0000-4000-8000-000000000000" for i in range(5)]
    ids = [start(api, "hello", {"name": str(i)}, id=ex[i])["id"] for i in range(5)]
    first = api.get("/v2/executions", limit=2, sort_keys="id", sort_dirs="desc").get_json()
    assert [e["id"] for e in first["executions"]] == [ex[4], ex[3]]
    seen, url = [], "/v2/executions?limit=2&sort_keys=id&sort_dirs=desc"
    while url:
        page = api.get(url.replace("http://localhost", "")).get_json()
        seen += [e["id"] for e in page["executions"]]
        url = page.get("next")
    assert seen == sorted(ids, reverse=True)
    marker = api.get("/v2/executions", marker=ex[1], sort_keys="id").get_json()
    assert [e["id"] for e in marker["executions"]] == ex[2:]
    assert "next" not in marker


def test_post_with_a_client_id_is_idempotent(api, store):
    define(api, HELLO)
    client_id = str(uuid.uuid4())
    first = start(api, "hello", {"name": "a"}, id=client_id)
    again = start(api, "hello", {"name": "a"}, status=200, id=client_id)
    assert first["id"] == again["id"] == client_id
    assert count(store, schema.executions) == 1
    listed = api.get("/v2/executions").get_json()["executions"]
    assert [e["id"] for e in listed] == [client_id]


def test_an_id_used_for_another_workflow_or_project_is_a_conflict(api):
    define(api, HELLO)
    define(api, WAIT)
    shared = str(uuid.uuid4())
    start(api, "hello", {"name": "a"}, id=shared)
    r = api.post("/v2/executions", {"workflow_name": "wait", "id": shared})
    error(r, 409, "'hello'", "'wait'")
    beta = api.as_("op-b")
    define(beta, HELLO)
    r = beta.post("/v2/executions", {"workflow_name": "hello", "input": {"name": "b"},
                                     "id": shared})
    error(r, 409, "already used")
    assert "alpha" not in r.get_json()["message"]


def test_reverse_workflow_runs_up_to_the_named_task(api):
    define(api, REVERSE)
    r = api.post("/v2/executions", {"workflow_name": "build"})
    error(r, 400, "task_name")
    ex = start(api, "build", params={"task_name": "compile"})
    api.drive()
    tasks = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"]
    assert [t["name"] for t in tasks] == ["fetch", "compile"]
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["params"]["task_name"] == "compile"


# -- secrets ----------------------------------------------------------------------------
def test_a_named_environment_is_pinned_and_its_secrets_are_masked(api):
    r = api.post("/v2/environments", {"name": "prod", "variables": {
        "user": "deployer", "password": "hunter22"}, "secrets": ["password"]})
    assert r.status_code == 201, r.get_json()
    ex = run(api, SECRET, "login", params={"env": "prod"})
    assert ex["state"] == "SUCCESS"
    assert ex["output"] == {"said": "user=deployer pw=***"}
    assert ex["params"]["env"] == {"user": "deployer", "password": "***"}
    assert ex["params"]["secrets"] == ["password"]
    # Changing the environment later does not change the pinned copy.
    api.put("/v2/environments", {"name": "prod", "variables": {"user": "other"}})
    with api.store.connect() as conn:
        row = conn.execute(schema.executions.select()).mappings().one()
    assert secrets.open_env(row["params"]["env"]) == {"user": "deployer", "password": "hunter22"}


def test_secret_values_are_masked_everywhere_they_appear(api):
    ex = run(api, SECRET, "login", params={"env": {"user": "deployer", "password": "hunter22"},
                                            "secrets": ["password"]})
    eid = ex["id"]
    bodies = [
        api.get(f"/v2/executions/{eid}").get_json(),
        api.get("/v2/executions").get_json(),
        api.get(f"/v2/executions/{eid}/tasks").get_json(),
        api.get("/v2/tasks").get_json(),
        api.get("/v2/action_executions").get_json(),
        api.get(f"/v2/executions/{eid}/events").get_json(),
        api.get(f"/v2/executions/{eid}/report").get_json(),
    ]
    for body in bodies:
        assert "hunter22" not in str(body)
    task = bodies[2]["tasks"][0]
    assert task["result"] == "user=deployer pw=***"
    assert task["published"] == {"said": "user=deployer pw=***"}
    action = bodies[4]["action_executions"][0]
    assert action["input"] == {"output": "user=deployer pw=***"}


def test_a_secret_name_missing_from_the_environment_is_refused(api):
    define(api, SECRET)
    r = api.post("/v2/executions", {"workflow_name": "login", "params": {
        "env": {"user": "x"}, "secrets": ["password"]}})
    error(r, 400, "'password'")


# -- state changes ----------------------------------------------------------------------
def test_pause_and_resume_through_put(api):
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    paused = api.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"})
    assert paused.status_code == 200 and paused.get_json()["state"] == "PAUSED"
    again = api.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"})
    assert again.status_code == 200 and again.get_json()["state"] == "PAUSED"
    resumed = api.put(f"/v2/executions/{ex['id']}", {"state": "RUNNING"})
    assert resumed.get_json()["state"] == "RUNNING"


def test_cancel_through_put_keeps_the_reason(api):
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    r = api.put(f"/v2/executions/{ex['id']}", {"state": "CANCELLED",
                                                "state_info": "wrong window"})
    assert r.status_code == 200
    assert (r.get_json()["state"], r.get_json()["state_info"]) == ("CANCELLED", "wrong window")
    tasks = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"]
    assert tasks[0]["state"] == "CANCELLED"


@pytest.mark.parametrize("state", ["SUCCESS", "ERROR"])
def test_an_execution_can_be_forced_to_end(api, state):
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    r = api.put(f"/v2/executions/{ex['id']}", {"state": state, "state_info": "by hand"})
    assert r.status_code == 200
    assert (r.get_json()["state"], r.get_json()["state_info"]) == (state, "by hand")


def test_a_change_the_state_does_not_allow_is_409_naming_both_states(api):
    ex = run(api, HELLO, "hello", {"name": "a"})
    r = api.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"})
    error(r, 409, "SUCCESS", "PAUSED")
    failed = run(api, BROKEN, "broken")
    r = api.put(f"/v2/executions/{failed['id']}", {"state": "RUNNING"})
    error(r, 409, "ERROR", "RUNNING", "rerun")
    define(api, WAIT)
    waiting = start(api, "wait")
    r = api.put(f"/v2/executions/{waiting['id']}", {"state": "RUNNING"})
    assert r.status_code == 200  # already RUNNING: nothing to do


def test_description_can_be_changed(api):
    ex = run(api, HELLO, "hello", {"name": "a"})
    r = api.put(f"/v2/executions/{ex['id']}", {"description": "release 4.2"})
    assert r.status_code == 200 and r.get_json()["description"] == "release 4.2"
    assert r.get_json()["state"] == "SUCCESS"


# -- events and report -------------------------------------------------------------------
def test_events_come_incrementally_after_the_last_seen(api):
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    first = api.get(f"/v2/executions/{ex['id']}/events").get_json()["events"]
    assert first[0]["kind"] == "workflow.RUNNING"
    assert [e["id"] for e in first] == sorted(e["id"] for e in first)
    last = first[-1]["id"]
    assert api.get(f"/v2/executions/{ex['id']}/events", after=last).get_json() == {"events": []}
    define(api, HELLO)
    other = start(api, "hello", {"name": "b"})  # another execution's events stay its own
    assert api.get(f"/v2/executions/{ex['id']}/events", after=last).get_json() == {"events": []}
    assert api.get(f"/v2/executions/{other['id']}/events").get_json()["events"]
    action = api.get("/v2/action_executions").get_json()["action_executions"][0]
    api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": 1})
    api.drive()
    later = api.get(f"/v2/executions/{ex['id']}/events", after=last).get_json()["events"]
    assert later and all(e["id"] > last for e in later)
    assert later[-1]["kind"] == "workflow.SUCCESS" and later[-1]["task_id"] is None
    assert {e["kind"] for e in later} >= {"action.SUCCESS", "task.SUCCESS"}


def test_report_finds_the_root_cause_two_sub_workflows_down(api):
    ex = run(api, NESTED, "top")
    assert ex["state"] == "ERROR"
    report = api.get(f"/v2/executions/{ex['id']}/report").get_json()
    cause = report["root_cause"]
    assert cause["task"] == "attach"
    assert "volume vol-9 is busy" in cause["state_info"]
    deploy = only(report["execution"]["tasks"], name="deploy")
    assert deploy["type"] == "WORKFLOW" and deploy["state"] == "ERROR"
    (middle,) = deploy["sub_executions"]
    (install,) = middle["tasks"]
    (leaf,) = install["sub_executions"]
    assert leaf["workflow_name"] == "leaf" and leaf["id"] == cause["execution_id"]
    assert leaf["root_execution_id"] == ex["id"]
    attach = only(leaf["tasks"], name="attach")
    assert attach["action_executions"][0]["name"] == "std.fail"
    assert report["statistics"] == {"total_tasks": 5, "ERROR": 3, "SUCCESS": 2}


def test_report_can_keep_errors_only_and_limit_depth(api):
    ex = run(api, NESTED, "top")
    report = api.get(f"/v2/executions/{ex['id']}/report", errors_only="true").get_json()
    assert [t["name"] for t in report["execution"]["tasks"]] == ["deploy"]
    shallow = api.get(f"/v2/executions/{ex['id']}/report", max_depth=1).get_json()
    (middle,) = only(shallow["execution"]["tasks"], name="deploy")["sub_executions"]
    assert middle["tasks"][0]["sub_executions"] == []
    assert shallow["root_cause"]["task"] == "attach"  # found whatever is shown
    none = api.get(f"/v2/executions/{ex['id']}/report", max_depth=0).get_json()
    assert only(none["execution"]["tasks"], name="deploy")["sub_executions"] == []


def test_report_of_a_success_has_no_root_cause(api):
    ex = run(api, HELLO, "hello", {"name": "a"})
    report = api.get(f"/v2/executions/{ex['id']}/report").get_json()
    assert report["root_cause"] is None
    assert report["statistics"] == {"total_tasks": 1, "SUCCESS": 1}


# -- delete ------------------------------------------------------------------------------
def test_delete_removes_the_execution_and_everything_it_owns(api, store):
    ex = run(api, NESTED, "top")
    assert count(store, schema.executions) == 3
    admin = api.as_("admin-a")
    r = admin.delete(f"/v2/executions/{ex['id']}")
    assert r.status_code == 204 and not r.get_data()
    assert api.get(f"/v2/executions/{ex['id']}").status_code == 404
    for table in (schema.executions, schema.task_executions, schema.action_executions,
                  schema.events, schema.work):
        assert count(store, table) == 0, table.name


def test_delete_needs_the_admin_role(api):
    ex = run(api, HELLO, "hello", {"name": "a"})
    error(api.delete(f"/v2/executions/{ex['id']}"), 403, "admin")


def test_a_running_execution_is_deleted_only_with_force(api, store):
    define(api, WAIT)
    ex = start(api, "wait")
    api.drive()
    admin = api.as_("admin-a")
    error(admin.delete(f"/v2/executions/{ex['id']}"), 409, "RUNNING", "force=true")
    api.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"})
    error(admin.delete(f"/v2/executions/{ex['id']}"), 409, "PAUSED")
    error(admin.delete(f"/v2/executions/{ex['id']}", force="maybe"), 400, "force")
    assert admin.delete(f"/v2/executions/{ex['id']}", force="true").status_code == 204
    assert count(store, schema.executions) == 0 and count(store, schema.work) == 0
    api.drive()  # nothing left for the engine to trip on


def test_a_sub_execution_of_a_running_root_cannot_be_deleted(api, store):
    define(api, """
version: '2.0'
outer:
  tasks:
    call:
      workflow: inner
inner:
  tasks:
    hold:
      action: std.async_noop
""")
    ex = start(api, "outer")
    api.drive()
    sub = api.get("/v2/executions", workflow_name="inner").get_json()["executions"][0]
    assert sub["root_execution_id"] == ex["id"]
    r = api.as_("admin-a").delete(f"/v2/executions/{sub['id']}", force="true")
    error(r, 409, ex["id"])


# -- access ------------------------------------------------------------------------------
def test_another_project_sees_none_of_it(api):
    ex = run(api, BROKEN, "broken")
    task = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"][0]
    action = api.get(f"/v2/tasks/{task['id']}/action_executions").get_json()
    action_id = action["action_executions"][0]["id"]
    beta, beta_admin = api.as_("op-b"), api.as_("admin-b")
    for path in (f"/v2/executions/{ex['id']}", f"/v2/executions/{ex['id']}/tasks",
                 f"/v2/executions/{ex['id']}/events", f"/v2/executions/{ex['id']}/report",
                 f"/v2/tasks/{task['id']}", f"/v2/tasks/{task['id']}/action_executions",
                 f"/v2/action_executions/{action_id}"):
        error(beta.get(path), 404, "not found")
    error(beta.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"}), 404)
    error(beta.put(f"/v2/tasks/{task['id']}", {"state": "SKIPPED"}), 404)
    error(beta.put(f"/v2/action_executions/{action_id}", {"state": "SUCCESS"}), 404)
    error(beta_admin.delete(f"/v2/executions/{ex['id']}"), 404)
    for plural in ("executions", "tasks", "action_executions"):
        assert beta.get(f"/v2/{plural}").get_json() == {plural: []}
    error(beta.get("/v2/tasks", marker=task["id"]), 404)
    error(beta.post("/v2/executions", {"workflow_name": "broken"}), 404, "broken")


def test_a_viewer_reads_but_cannot_start(api):
    define(api, HELLO)
    viewer = api.as_("view-a")
    r = viewer.post("/v2/executions", {"workflow_name": "hello", "input": {"name": "a"}})
    error(r, 403, "viewer")
    ex = start(api, "hello", {"name": "a"})
    assert viewer.get(f"/v2/executions/{ex['id']}").status_code == 200
    error(viewer.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"}), 403)


def test_no_token_is_401(api):
    error(api.as_(None).get("/v2/executions"), 401)
    error(api.as_("nonsense").post("/v2/executions", {"workflow_name": "x"}), 401)


# -- bad requests ------------------------------------------------------------------------
BAD_STARTS = [
    (None, 400, "JSON object body"),
    ([], 400, "JSON object"),
    ({}, 400, "'workflow_name' is required"),
    ({"workflow_name": 7}, 400, "'workflow_name' must be str"),
    ({"workflow_name": "hello", "input": []}, 400, "'input' must be dict"),
    ({"workflow_name": "hello", "input": {"name": "a", "colour": "red"}}, 400, "colour"),
    ({"workflow_name": "hello", "input": {}}, 400, "name"),
    ({"workflow_name": "hello", "params": "prod"}, 400, "'params' must be dict"),
    ({"workflow_name": "hello", "params": {"env": 3}}, 400, "'env' must be dict or str"),
    ({"workflow_name": "hello", "params": {"task_name": ["a"]}}, 400, "'task_name'"),
    ({"workflow_name": "hello", "params": {"secrets": "password"}}, 400, "'secrets'"),
    ({"workflow_name": "hello", "params": {"secrets": [1]}}, 400, "names (strings)"),
    ({"workflow_name": "hello", "params": {"notify": True}}, 400, "'notify'"),
    ({"workflow_name": "hello", "workflow": "x"}, 400, "unknown field 'workflow'"),
    ({"workflow_name": "hello", "description": 5}, 400, "'description' must be str"),
    ({"workflow_name": "hello", "input": {"name": "a"}, "id": "a/b"}, 400, "'id'"),
    ({"workflow_name": "hello", "input": {"name": "a"}, "id": "x" * 37}, 400, "'id'"),
    ({"workflow_name": "hello", "input": {"name": "a"}, "id": "deploy-1"}, 400, "UUID"),
    ({"workflow_name": "nope"}, 404, "nope"),
    ({"workflow_name": "hello", "input": {"name": "a"}, "params": {"env": "missing"}}, 404,
     "missing"),
]


@pytest.mark.parametrize("body,status,fragment", BAD_STARTS)
def test_bad_starts_say_what_is_wrong(api, store, body, status, fragment):
    define(api, HELLO)
    error(api.post("/v2/executions", body), status, fragment)
    assert count(store, schema.executions) == 0


def test_a_body_that_is_not_json_is_400(api):
    r = api.call("POST", "/v2/executions", headers={"Content-Type": "application/json"})
    error(r, 400, "JSON object body")
    r = api.client.post("/v2/executions", data="{nope", content_type="application/json",
                        headers={"Authorization": "Bearer op-a"})
    error(r, 400, "not valid JSON")


BAD_UPDATES = [
    ({}, 400, "'state'"),
    ({"state": "DONE"}, 400, "'DONE' is not one of"),
    ({"state": 3}, 400, "'state' must be str"),
    ({"state": "PAUSED", "state_info": "why"}, 400, "state_info goes with"),
    ({"state": "CANCELLED", "state_info": 5}, 400, "'state_info' must be str"),
    ({"state": "CANCELLED", "color": "red"}, 400, "unknown field 'color'"),
]


@pytest.mark.parametrize("body,status,fragment", BAD_UPDATES)
def test_bad_state_changes_say_what_is_wrong(api, body, status, fragment):
    define(api, WAIT)
    ex = start(api, "wait")
    error(api.put(f"/v2/executions/{ex['id']}", body), status, fragment)
    assert api.get(f"/v2/executions/{ex['id']}").get_json()["state"] == "RUNNING"


@pytest.mark.parametrize("query,fragment", [
    ({"limit": "ten"}, "limit must be an integer"),
    ({"limit": "0"}, "limit must be at least 1"),
    ({"sort_keys": "input"}, "cannot sort by 'input'"),
    ({"sort_keys": "colour"}, "cannot sort by 'colour'"),
    ({"sort_dirs": "up"}, "asc or desc"),
    ({"sort_keys": "id", "sort_dirs": "asc,desc"}, "2 sort directions for 1 sort keys"),
])
def test_bad_list_queries_are_400(api, query, fragment):
    error(api.get("/v2/executions", **query), 400, fragment)


def test_unknown_ids_and_bad_query_values_on_one_execution(api):
    error(api.get("/v2/executions/no-such"), 404, "no-such")
    error(api.put("/v2/executions/no-such", {"state": "PAUSED"}), 404, "no-such")
    error(api.as_("admin-a").delete("/v2/executions/no-such"), 404, "no-such")
    error(api.get("/v2/executions", marker="no-such"), 404, "marker")
    ex = run(api, HELLO, "hello", {"name": "a"})
    error(api.get(f"/v2/executions/{ex['id']}/events", after="last"), 400, "after")
    error(api.get(f"/v2/executions/{ex['id']}/events", after="-1"), 400, "after")
    error(api.get(f"/v2/executions/{ex['id']}/report", max_depth="deep"), 400, "max_depth")
    error(api.get(f"/v2/executions/{ex['id']}/report", errors_only="perhaps"), 400,
          "errors_only")


def test_control_delete_reports_every_execution_removed(store):
    from orchestrator import dsl
    from orchestrator.engine.worker import Worker

    doc = dsl.load(NESTED, "nested.yaml")
    eid = control.start(store, doc, "top", {})
    Worker(store).run_until_idle()
    removed = control.delete(store, eid)
    assert removed[0] == eid and len(removed) == 3
