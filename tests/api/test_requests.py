"""Mistakes in requests get a 4xx that says what is wrong, never a 500: query
parameters of the lists, values the database cannot hold, NUL characters, and
methods a path does not have (405 with ``Allow``). What the server refuses here
is what the OpenAPI document says it refuses (tests/api/test_openapi.py checks
the document's side; tests/api/test_fuzz.py lets schemathesis look for more)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.api.io import MAX_INT, MAX_JSON_DEPTH, MAX_LIMIT, SORT_KEYS
from orchestrator.api.openapi import DOCUMENT
from tests.api import conformance
from tests.api.test_executions import HELLO, define, error, run

LISTS = ["/v2/workbooks", "/v2/workflows", "/v2/actions", "/v2/executions", "/v2/tasks",
         "/v2/action_executions", "/v2/environments", "/v2/cron_triggers"]
STATE_LISTS = ["/v2/executions", "/v2/tasks", "/v2/action_executions"]


@pytest.fixture
def nested(api) -> list[str]:
    """The lists under one execution and one task (after a finished run)."""
    ex = run(api, HELLO, "hello", {"name": "a"})
    [task] = api.get(f"/v2/executions/{ex['id']}/tasks").get_json()["tasks"]
    return [f"/v2/executions/{ex['id']}/tasks", f"/v2/tasks/{task['id']}/action_executions"]


def raw_json(api, path: str, text: str):
    """POST ``text`` as a JSON body, checked against the document like every call."""
    response = api.client.post(path, data=text, content_type="application/json",
                               headers={"Authorization": f"Bearer {api.token}"})
    conformance.check("POST", path, response)
    return response


def every_list(nested) -> list[str]:
    return LISTS + nested


@pytest.mark.parametrize("query, fragment", [
    ({"sort_keys": ""}, "sort_keys is empty"),
    ({"sort_keys": ","}, "sort_keys has an empty item"),
    ({"sort_keys": "id,,name"}, "sort_keys has an empty item"),
    ({"sort_dirs": ""}, "sort_dirs is empty"),
    ({"sort_keys": "id", "sort_dirs": "asc,"}, "sort_dirs has an empty item"),
])
def test_empty_sort_keys_and_directions_are_400_on_every_list(api, nested, query, fragment):
    for path in every_list(nested):
        error(api.get(path, **query), 400, fragment)


def test_sort_keys_are_the_fields_the_document_lists(api, nested):
    for path in every_list(nested):
        plural = path.rsplit("/", 1)[1]
        for key in SORT_KEYS[plural]:
            response = api.get(path, sort_keys=f" {key} ", sort_dirs="desc")
            assert response.status_code == 200, (path, key, response.get_json())
        response = api.get(path, sort_keys="id, created_at", sort_dirs="desc , asc")
        assert response.status_code == 200, (path, response.get_json())
        # A column that is not a field of the items is not a sort key.
        error(api.get(path, sort_keys="project_secret"), 400, "cannot sort by 'project_secret'",
              ", ".join(SORT_KEYS[plural]))
    error(api.get("/v2/executions", sort_keys="spec_hash"), 400, "cannot sort by 'spec_hash'")
    error(api.get("/v2/tasks", sort_keys="seq"), 400, "cannot sort by 'seq'")


def test_tasks_sort_by_the_execution_id_field_they_show(api):
    first = run(api, HELLO, "hello", {"name": "a"})["id"]
    second = api.post("/v2/executions", {"workflow_name": "hello",
                                         "input": {"name": "b"}}).get_json()["id"]
    api.drive()
    for direction, expected in (("asc", sorted([first, second])),
                                ("desc", sorted([first, second], reverse=True))):
        tasks = api.get("/v2/tasks", sort_keys="workflow_execution_id",
                        sort_dirs=direction).get_json()["tasks"]
        assert [t["workflow_execution_id"] for t in tasks] == expected


def test_a_limit_over_the_maximum_is_400_not_quietly_lowered(api, nested):
    for path in every_list(nested):
        error(api.get(path, limit=MAX_LIMIT + 1), 400, f"limit must be at most {MAX_LIMIT}")
        error(api.get(path, limit=10 ** 30), 400, f"limit must be at most {MAX_LIMIT}")
        assert api.get(path, limit=MAX_LIMIT).status_code == 200
    ex_id = nested[0].split("/")[3]
    error(api.get(f"/v2/executions/{ex_id}/events", limit=1001), 400, "limit must be at most")


def test_a_state_filter_not_in_the_enum_is_400(api, nested):
    for path in STATE_LISTS + nested[:1]:
        error(api.get(path, state="running"), 400, "state 'running' is not one of")
        error(api.get(path, state=""), 400, "state '' is not one of")
        assert api.get(path, state="SUCCESS").status_code == 200


def test_integers_the_database_cannot_hold_are_400(api, nested):
    ex_id = nested[0].split("/")[3]
    events = f"/v2/executions/{ex_id}/events"
    error(api.get(events, after=MAX_INT + 1), 400, "after must be at most")
    assert api.get(events, after=MAX_INT).get_json() == {"events": []}
    trigger = {"name": "t", "pattern": "0 3 * * *", "workflow_name": "hello",
               "workflow_input": {"name": "x"}}
    error(api.post("/v2/cron_triggers", {**trigger, "remaining_executions": MAX_INT + 1}), 400,
          "remaining_executions")
    created = api.post("/v2/cron_triggers", {**trigger, "remaining_executions": MAX_INT})
    assert created.get_json()["remaining_executions"] == MAX_INT


@pytest.mark.parametrize("name", ["endpoint", "_external", "_anchor", "_method", "_scheme",
                                  "values"])
def test_query_names_of_url_building_are_plain_parameters(api, name):
    """A next page is linked by the request's own URL: a parameter named like an
    argument of Flask's url_for is kept as a parameter, not a 500."""
    response = api.get("/v2/actions", limit=1, **{name: "x"})
    assert response.status_code == 200, response.get_json()
    link = urlsplit(response.get_json()["next"])
    assert (link.scheme, link.path) == ("http", "/v2/actions") and not link.fragment
    query = parse_qs(link.query)
    assert query[name] == ["x"] and query["limit"] == ["1"] and query["marker"]


def test_the_next_link_of_a_nested_list_keeps_its_path(api):
    ex = run(api, HELLO + "\nother:\n  tasks:\n    a:\n      action: std.noop\n"
             "      on-success: [b]\n    b:\n      action: std.noop\n", "other")
    page = api.get(f"/v2/executions/{ex['id']}/tasks", limit=1, id="ignored").get_json()
    link = urlsplit(page["next"])
    assert link.path == f"/v2/executions/{ex['id']}/tasks"
    second = api.get(f"{link.path}?{link.query}").get_json()
    assert [t["name"] for t in second["tasks"]] == ["b"]


@pytest.mark.parametrize("path", ["/v2/executions/a%00b", "/v2/workbooks/%00",
                                  "/v2/environments/x%00", "/v2/executions/a%00/tasks"])
def test_a_nul_character_in_a_path_names_nothing(api, path):
    error(api.get(path), 404, "NUL")


@pytest.mark.parametrize("path", [
    "/v2/executions?workflow_name=%00", "/v2/executions?marker=a%00", "/v2/tasks?name=%00",
    "/v2/cron_triggers?workflow_name=%00",
    "/v2/workflows?workbook_name=x%00"])
def test_a_nul_character_in_a_query_is_400(api, path):
    error(api.get(path), 400, "NUL")


@pytest.mark.parametrize("path, body", [
    ("/v2/environments", {"name": "a\u0000"}),
    ("/v2/environments", {"name": "ok", "variables": {"k": ["\u0000"]}}),
    ("/v2/environments", {"name": "ok", "variables": {"k\u0000": 1}}),
    ("/v2/executions", {"workflow_name": "\u0000"}),
    ("/v2/cron_triggers", {"name": "\u0000", "pattern": "* * * * *", "workflow_name": "x"}),
])
def test_a_nul_character_in_a_json_body_is_400(api, path, body):
    error(api.post(path, body), 400, "NUL")


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 100_000])
def test_json_nested_too_deeply_is_400(api, levels):
    body = '{"name": "deep", "variables": {"v": ' + "[" * levels + "]" * levels + "}}"
    response = raw_json(api, "/v2/environments", body)
    error(response, 400, f"nested more than {MAX_JSON_DEPTH} levels")
    assert api.get("/v2/environments/deep").status_code == 404


def test_json_nested_as_deep_as_allowed_is_kept(api):
    levels = MAX_JSON_DEPTH - 2  # the body and "variables" are two levels
    value = "[" * levels + "]" * levels
    body = '{"name": "deep", "variables": {"v": ' + value + "}}"
    response = raw_json(api, "/v2/environments", body)
    assert response.status_code == 201, response.get_json()


def test_a_method_a_path_does_not_have_is_405_with_allow(api):
    response = api.call("PATCH", "/v2/executions/some-id")
    assert response.status_code == 405
    assert response.get_json()["error"] == "MethodNotAllowed"
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PUT", "DELETE"} <= allowed and "PATCH" not in allowed
    response = api.as_("view-a").call("DELETE", "/v2/workbooks")  # 405 before any 403
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "POST", "PUT"}


# -- the document states what the server refuses ---------------------------------------
def _operations():
    for template, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield template, method, operation


def _param(operation, name):
    return next((p for p in operation.get("parameters", []) if p["name"] == name), None)


def test_the_document_states_the_list_constraints_the_server_enforces():
    lists = [(t, op) for t, m, op in _operations() if _param(op, "sort_keys")]
    assert len(lists) == 10, [t for t, _ in lists]
    for template, operation in lists:
        plural = template.rsplit("/", 1)[1]
        limit = _param(operation, "limit")["schema"]
        assert (limit["minimum"], limit["maximum"]) == (1, MAX_LIMIT)
        pattern = re.compile(_param(operation, "sort_keys")["schema"]["pattern"])
        for key in SORT_KEYS[plural]:
            assert pattern.search(key) and pattern.search(f"id , {key}"), (template, key)
        for bad in ("", ",", "id,,name", "nope", "id;drop"):
            assert not pattern.search(bad), (template, bad)
        dirs = re.compile(_param(operation, "sort_dirs")["schema"]["pattern"])
        assert dirs.search("asc") and dirs.search("desc, asc")
        for bad in ("", "up", "asc,", "ASC"):
            assert not dirs.search(bad), (template, bad)
        assert "400" in operation["responses"] and "404" in operation["responses"]


def test_the_document_refuses_empty_yaml_and_says_why_a_cron_pattern_may_be_400():
    saved = 0
    for template, method, operation in _operations():
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            if media == "application/json":
                continue
            if template.endswith("/validate"):  # any text: {"valid": false, ...}
                assert "minLength" not in content["schema"], (method, template)
                continue
            saved += 1
            assert content["schema"]["minLength"] == 1, (method, template)
            assert not re.search(content["schema"]["pattern"], " \n\t"), (method, template)
            assert re.search(content["schema"]["pattern"], " x "), (method, template)
    assert saved == 6 * 2  # POST and PUT of workbooks, workflows, actions; two media types
    schemas = DOCUMENT["components"]["schemas"]
    assert "400" in schemas["CronTriggerCreate"]["properties"]["pattern"]["description"]
    for name in ("CronTriggerCreate", "EnvironmentWrite"):
        assert schemas[name]["properties"]["name"]["minLength"] == 1


@pytest.mark.parametrize("path", ["/v2/workbooks", "/v2/workflows", "/v2/actions"])
@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_an_empty_or_blank_yaml_body_is_400_and_validate_says_not_valid(api, path, text):
    error(api.post(path, yaml=text), 400, "needs a YAML definition")
    error(api.put(path, yaml=text), 400, "needs a YAML definition")
    answer = api.as_("view-a").post(f"{path}/validate", yaml=text).get_json()
    assert answer["valid"] is False and "needs a YAML definition" in answer["error"]


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_is_400(api, name):
    define(api, HELLO)
    error(api.post("/v2/environments", {"name": name}), 400, "'name' must not be empty")
    error(api.post("/v2/cron_triggers", {"name": name, "pattern": "0 3 * * *",
                                         "workflow_name": "hello"}), 400,
          "'name' must not be empty")


def test_the_document_s_request_examples_work_as_written(api):
    from orchestrator.api.openapi import EXAMPLES

    for plural in ("workbooks", "workflows", "actions"):
        assert api.post(f"/v2/{plural}", yaml=EXAMPLES[plural]).status_code == 201, plural
        assert api.post(f"/v2/{plural}/validate",
                        yaml=EXAMPLES[plural]).get_json() == {"valid": True}
    assert api.post("/v2/environments", EXAMPLES["EnvironmentWrite"]).status_code == 201
    assert api.post("/v2/cron_triggers", EXAMPLES["CronTriggerCreate"]).status_code == 201
    ex = api.post("/v2/executions", EXAMPLES["ExecutionCreate"]).get_json()
    api.drive()
    done = api.get(f"/v2/executions/{ex['id']}").get_json()
    assert (done["state"], done["output"]) == ("SUCCESS", {"greeting": "hello team in eu-1"})
