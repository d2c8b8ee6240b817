"""Workbooks, workflows and ad-hoc actions through the REST API."""
from __future__ import annotations

import pytest

from orchestrator.api import ApiConfig, create_app
from tests.api.conftest import TOKENS, Api

WORKBOOK = """\
version: '2.0'
name: deploy
tags: [web]
actions:
  greet:
    base: std.echo
    base-input: {output: "hello <% $.who %>"}
    input: [who]
workflows:
  main:
    input: [host, {port: 22}]
    tasks:
      hello:
        action: greet who=<% $.host %>
"""

WORKFLOWS = """\
version: '2.0'
# the first workflow
first:
  tasks:
    a:
      action: std.noop

second:
  input: [x]
  tasks:
    b:
      action: std.echo output=<% $.x %>
"""

ACTIONS = """\
version: '2.0'
shout:
  base: std.echo
  base-input: {output: <% $.text %>}
  input: [text, {times: 1}]
  description: Says it loud
"""


def upload(api, kind: str, text: str, status: int = 201):
    response = api.post(f"/v2/{kind}", yaml=text)
    assert response.status_code == status, response.get_json()
    return response.get_json()


# --- workbooks -----------------------------------------------------------------------------

def test_uploaded_workbook_is_returned_and_split_into_workflows_and_actions(api):
    body = upload(api, "workbooks", WORKBOOK)
    assert body["name"] == "deploy" and body["tags"] == ["web"] and body["project"] == "alpha"
    assert body["definition"] == WORKBOOK
    assert api.get("/v2/workbooks/deploy").get_json() == body
    workflow = api.get("/v2/workflows/deploy.main").get_json()
    assert workflow["workbook_name"] == "deploy"
    assert workflow["input"] == [{"name": "host", "required": True},
                                 {"name": "port", "required": False, "default": 22}]
    action = api.get("/v2/actions/deploy.greet").get_json()
    assert action["is_system"] is False and action["input"] == "who"
    listed = api.get("/v2/workflows", workbook_name="deploy").get_json()["workflows"]
    assert [w["name"] for w in listed] == ["deploy.main"]


def test_updating_a_workbook_replaces_its_workflows(api):
    upload(api, "workbooks", WORKBOOK)
    changed = WORKBOOK.replace("  main:", "  release:")
    response = api.put("/v2/workbooks", yaml=changed)
    assert response.status_code == 200 and response.get_json()["definition"] == changed
    names = [w["name"] for w in api.get("/v2/workflows").get_json()["workflows"]]
    assert names == ["deploy.release"]
    assert api.get("/v2/workflows/deploy.main").status_code == 404


def test_uploading_an_existing_workbook_is_a_conflict_that_points_at_put(api):
    upload(api, "workbooks", WORKBOOK)
    response = api.post("/v2/workbooks", yaml=WORKBOOK)
    assert response.status_code == 409
    assert "use PUT" in response.get_json()["message"]


def test_updating_a_missing_workbook_is_not_found(api):
    assert api.put("/v2/workbooks", yaml=WORKBOOK).status_code == 404


def test_deleting_a_workbook_deletes_its_workflows_and_actions(api):
    upload(api, "workbooks", WORKBOOK)
    admin = api.as_("admin-a")
    assert admin.delete("/v2/workbooks/deploy").status_code == 204
    assert api.get("/v2/workbooks/deploy").status_code == 404
    assert api.get("/v2/workflows").get_json()["workflows"] == []
    assert api.get("/v2/actions/deploy.greet").status_code == 404
    assert admin.delete("/v2/workbooks/deploy").status_code == 404


def test_invalid_workbook_reports_every_problem_with_path_and_line(api):
    bad = WORKBOOK.replace("action: greet", "action: gret").replace("input: [who]",
                                                                     "input: [who]\n    bogus: 1")
    response = api.post("/v2/workbooks", yaml=bad)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "InvalidDefinition"
    paths = {p["path"]: p for p in body["problems"]}
    assert paths["actions.greet.bogus"]["line"] == 9
    assert "did you mean 'greet'" in paths["workflows.main.tasks.hello.action"]["message"]
    assert api.get("/v2/workbooks").get_json()["workbooks"] == []


@pytest.mark.parametrize("text, words", [
    ("name: [unclosed", "YAML syntax error"),
    ("- a list\n- not a workbook\n", "mapping"),
    (WORKFLOWS, "upload it to /v2/workflows"),
    (WORKBOOK.replace("tags: [web]", "tags: {web: 1}"), "tags must be a list of strings"),
])
def test_a_body_that_is_no_workbook_is_refused(api, text, words):
    response = api.post("/v2/workbooks", yaml=text)
    assert response.status_code == 400
    assert words in response.get_json()["message"]


def test_an_empty_body_is_refused(api):
    response = api.post("/v2/workbooks", yaml="  \n")
    assert response.status_code == 400 and "YAML definition" in response.get_json()["message"]


def test_validate_needs_only_a_viewer_and_saves_nothing(api):
    viewer = api.as_("view-a")
    assert viewer.post("/v2/workbooks/validate", yaml=WORKBOOK).get_json() == {"valid": True}
    bad = viewer.post("/v2/workbooks/validate", yaml=WORKBOOK.replace("std.echo", "std.ecoh"))
    body = bad.get_json()
    assert bad.status_code == 200 and body["valid"] is False
    assert body["problems"][0]["path"] == "actions.greet.base"
    assert viewer.post("/v2/workbooks/validate", yaml=WORKFLOWS).get_json()["valid"] is False
    assert api.get("/v2/workbooks").get_json()["workbooks"] == []


def test_workbook_list_pages_with_limit_and_marker(api):
    for i in range(5):
        upload(api, "workbooks", WORKBOOK.replace("name: deploy", f"name: wb{i}"))
    first = api.get("/v2/workbooks", limit=2).get_json()
    assert [w["name"] for w in first["workbooks"]] == ["wb0", "wb1"]
    marker = first["workbooks"][-1]["id"]
    assert f"marker={marker}" in first["next"]
    second = api.get("/v2/workbooks", limit=2, marker=marker).get_json()
    assert [w["name"] for w in second["workbooks"]] == ["wb2", "wb3"]
    last = api.get("/v2/workbooks", limit=2, marker=second["workbooks"][-1]["id"]).get_json()
    assert [w["name"] for w in last["workbooks"]] == ["wb4"] and "next" not in last
    desc = api.get("/v2/workbooks", sort_keys="name", sort_dirs="desc", limit=1).get_json()
    assert desc["workbooks"][0]["name"] == "wb4"


@pytest.mark.parametrize("query", [
    {"limit": "many"}, {"limit": "0"}, {"sort_keys": "definition"}, {"sort_keys": "tags"},
    {"sort_keys": "nope"}, {"sort_dirs": "up"},
])
def test_bad_list_arguments_are_refused(api, query):
    assert api.get("/v2/workbooks", **query).status_code == 400


def test_an_unknown_marker_is_not_found(api):
    assert api.get("/v2/workbooks", marker="no-such-id").status_code == 404


def test_another_project_cannot_see_update_or_delete_a_workbook(api):
    upload(api, "workbooks", WORKBOOK)
    other = api.as_("op-b")
    assert other.get("/v2/workbooks/deploy").status_code == 404
    assert other.get("/v2/workbooks").get_json()["workbooks"] == []
    assert other.put("/v2/workbooks", yaml=WORKBOOK).status_code == 404
    assert api.as_("admin-b").delete("/v2/workbooks/deploy").status_code == 404
    assert other.get("/v2/workflows/deploy.main").status_code == 404
    # The same name is free in the other project.
    assert other.post("/v2/workbooks", yaml=WORKBOOK).status_code == 201


def test_roles_decide_who_writes_and_who_deletes(api):
    assert api.as_("view-a").post("/v2/workbooks", yaml=WORKBOOK).status_code == 403
    upload(api, "workbooks", WORKBOOK)
    assert api.delete("/v2/workbooks/deploy").status_code == 403
    assert api.get("/v2/workbooks/deploy").status_code == 200
    assert api.as_("admin-a").delete("/v2/workbooks/deploy").status_code == 204


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_without_a_valid_token_nothing_is_shown(api, token):
    response = api.as_(token).get("/v2/workbooks")
    assert response.status_code == 401 and response.get_json()["error"] == "Unauthorized"


def test_a_body_larger_than_max_body_is_refused(store):
    small = Api(create_app(ApiConfig(store=store, tokens=dict(TOKENS), max_body=200)), store,
                "op-a")
    response = small.post("/v2/workbooks", yaml=WORKBOOK + "#" * 300)
    assert response.status_code == 413
    assert small.get("/v2/workbooks").get_json()["workbooks"] == []


# --- standalone workflows ------------------------------------------------------------------

def test_a_workflow_document_makes_one_workflow_each(api):
    body = upload(api, "workflows", WORKFLOWS)
    assert [w["name"] for w in body["workflows"]] == ["first", "second"]
    second = api.get("/v2/workflows/second").get_json()
    assert second["workbook_name"] is None
    assert second["input"] == [{"name": "x", "required": True}]
    # Each workflow's definition is a document of its own, comments kept.
    assert second["definition"].startswith("---\nversion: '2.0'\n")
    assert "second:" in second["definition"] and "first:" not in second["definition"]
    assert "# the first workflow" in api.get("/v2/workflows/first").get_json()["definition"]


def test_updating_workflows_changes_what_get_returns(api):
    upload(api, "workflows", WORKFLOWS)
    changed = "version: '2.0'\nfirst:\n  input: [y]\n  tasks:\n    a: {action: std.noop}\n"
    response = api.put("/v2/workflows", yaml=changed)
    assert response.status_code == 200
    assert api.get("/v2/workflows/first").get_json()["input"] == [{"name": "y",
                                                                   "required": True}]
    assert api.put("/v2/workflows", yaml=changed.replace("first:", "third:")).status_code == 404


def test_a_workflow_can_call_a_stored_workflow_by_name(api):
    upload(api, "workflows", WORKFLOWS)
    caller = "version: '2.0'\ncaller:\n  tasks:\n    c:\n      workflow: second x=1\n"
    assert api.post("/v2/workflows", yaml=caller).status_code == 201
    wrong = caller.replace("caller", "caller2").replace("x=1", "z=1")
    response = api.post("/v2/workflows", yaml=wrong)
    assert response.status_code == 400
    messages = [p["message"] for p in response.get_json()["problems"]]
    assert any("unknown input 'z'" in m for m in messages), messages


def test_existing_workflow_names_are_a_conflict(api):
    upload(api, "workflows", WORKFLOWS)
    assert api.post("/v2/workflows", yaml=WORKFLOWS).status_code == 409
    assert api.post("/v2/workflows", yaml=WORKBOOK).status_code == 400  # a workbook


def test_a_workbook_workflow_is_changed_only_through_its_workbook(api):
    upload(api, "workbooks", WORKBOOK)
    admin = api.as_("admin-a")
    response = admin.delete("/v2/workflows/deploy.main")
    assert response.status_code == 409 and "workbook 'deploy'" in response.get_json()["message"]
    standalone = "version: '2.0'\ndeploy.main:\n  tasks:\n    a: {action: std.noop}\n"
    assert api.put("/v2/workflows", yaml=standalone).status_code == 409
    assert api.post("/v2/workflows", yaml=standalone).status_code == 409


def test_deleting_a_workflow_needs_an_admin_and_removes_it(api):
    upload(api, "workflows", WORKFLOWS)
    assert api.delete("/v2/workflows/first").status_code == 403
    assert api.as_("admin-a").delete("/v2/workflows/first").status_code == 204
    response = api.get("/v2/workflows/first")
    assert response.status_code == 404
    assert [w["name"] for w in api.get("/v2/workflows").get_json()["workflows"]] == ["second"]


def test_a_missing_workflow_suggests_a_close_name(api):
    upload(api, "workflows", WORKFLOWS)
    response = api.get("/v2/workflows/secnod")
    assert response.status_code == 404 and "did you mean 'second'" in response.get_json()[
        "message"]


def test_workflow_validate_reports_problems(api):
    body = api.as_("view-a").post("/v2/workflows/validate",
                                  yaml=WORKFLOWS.replace("std.noop", "std.nop")).get_json()
    assert body["valid"] is False
    assert body["problems"][0]["path"] == "first.tasks.a.action"


# --- ad-hoc actions ------------------------------------------------------------------------

def test_an_action_document_makes_ad_hoc_actions(api):
    body = upload(api, "actions", ACTIONS)
    action = body["actions"][0]
    assert action["name"] == "shout" and action["is_system"] is False
    assert action["input"] == "text, times=1" and action["description"] == "Says it loud"
    assert api.get("/v2/actions/shout").get_json() == action
    # A workflow can then use it.
    use = "version: '2.0'\nloud:\n  tasks:\n    a:\n      action: shout text=hi\n"
    assert api.post("/v2/workflows", yaml=use).status_code == 201


def test_the_action_list_holds_system_actions_too(api):
    upload(api, "actions", ACTIONS)
    items = api.get("/v2/actions", limit=1000).get_json()["actions"]
    by_name = {a["name"]: a for a in items}
    assert by_name["shout"]["is_system"] is False
    echo = by_name["std.echo"]
    assert echo["is_system"] is True and echo["input"] == "output, delay=0"
    assert api.get("/v2/actions/std.echo").get_json() == echo


def test_the_action_list_pages_with_marker(api):
    upload(api, "actions", ACTIONS)
    everything = [a["name"] for a in api.get("/v2/actions").get_json()["actions"]]
    seen, marker = [], None
    while True:
        query = {"limit": 3, **({"marker": marker} if marker else {})}
        body = api.get("/v2/actions", **query).get_json()
        seen += [a["name"] for a in body["actions"]]
        if "next" not in body:
            break
        marker = body["actions"][-1]["id"]
    assert seen == everything and "shout" in seen
    assert api.get("/v2/actions", marker="nope").status_code == 404
    assert api.get("/v2/actions", sort_keys="input").status_code == 400


def test_system_actions_cannot_be_replaced_or_deleted(api):
    clash = "version: '2.0'\nstd.echo:\n  base: std.noop\n"
    assert api.post("/v2/actions", yaml=clash).status_code == 409
    assert api.as_("admin-a").delete("/v2/actions/std.echo").status_code == 409


def test_updating_and_deleting_an_ad_hoc_action(api):
    upload(api, "actions", ACTIONS)
    changed = ACTIONS.replace("Says it loud", "Says it louder")
    assert api.put("/v2/actions", yaml=changed).status_code == 200
    assert api.get("/v2/actions/shout").get_json()["description"] == "Says it louder"
    admin = api.as_("admin-a")
    assert admin.delete("/v2/actions/shout").status_code == 204
    assert api.get("/v2/actions/shout").status_code == 404
    assert admin.delete("/v2/actions/shout").status_code == 404


@pytest.mark.parametrize("text, path", [
    ("version: '2.0'\nbad:\n  base: std.ecoh\n", "bad.base"),
    ("version: '2.0'\nbad:\n  input: [x]\n", "bad"),
    ("version: '2.0'\nbad:\n  base: std.echo\n  base-input: {outptu: 1}\n", "bad.base-input"),
    ("version: '3.0'\nbad:\n  base: std.echo\n  base-input: {output: 1}\n", "version"),
])
def test_invalid_action_documents_are_refused_with_the_path(api, text, path):
    response = api.post("/v2/actions", yaml=text)
    assert response.status_code == 400
    assert path in [p["path"] for p in response.get_json()["problems"]]


def test_action_validate_says_valid(api):
    assert api.as_("view-a").post("/v2/actions/validate",
                                  yaml=ACTIONS).get_json() == {"valid": True}


def test_unknown_routes_and_methods_answer_json(api):
    assert api.get("/v2/nothing").status_code == 404
    assert api.call("PATCH", "/v2/workbooks").status_code == 405
