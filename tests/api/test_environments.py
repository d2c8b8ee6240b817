"""Environments through the REST API: variables, secrets shown as ***."""
from __future__ import annotations

import pytest

from orchestrator import catalog, secrets
from tests.api import conformance

PROD = {"name": "prod", "description": "production",
        "variables": {"host": "db1", "password": "s3cret!", "port": 5432},
        "secrets": ["password"]}


def create(api, body=PROD):
    response = api.post("/v2/environments", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_environment_shows_secret_values_as_stars_but_keeps_them(api):
    body = create(api)
    assert body["variables"] == {"host": "db1", "password": "***", "port": 5432}
    assert body["secrets"] == ["password"] and body["project"] == "alpha"
    assert api.get("/v2/environments/prod").get_json() == body
    with api.store.begin() as conn:
        row = catalog.get_environment(conn, "alpha", "prod")
    assert secrets.open_value(row["variables"]["password"]) == "s3cret!"  # stored encrypted


def test_put_replaces_variables_and_keeps_a_secret_sent_back_as_stars(api):
    shown = create(api)
    variables = {**shown["variables"], "host": "db2"}
    response = api.put("/v2/environments", {"name": "prod", "variables": variables})
    assert response.status_code == 200
    assert response.get_json()["variables"]["host"] == "db2"
    assert response.get_json()["description"] == "production"
    with api.store.begin() as conn:
        stored = catalog.get_environment(conn, "alpha", "prod")["variables"]["password"]
    assert secrets.open_value(stored) == "s3cret!"


def test_put_of_a_missing_environment_is_not_found(api):
    assert api.put("/v2/environments", {"name": "nope", "variables": {}}).status_code == 404


def test_an_existing_name_is_a_conflict(api):
    create(api)
    assert api.post("/v2/environments", PROD).status_code == 409


@pytest.mark.parametrize("body, words", [
    ({"variables": {}}, "'name' is required"),
    ({"name": 5}, "'name' must be str"),
    ({"name": "x", "variables": [1, 2]}, "'variables' must be dict"),
    ({"name": "x", "secrets": "password"}, "'secrets' must be list"),
    ({"name": "x", "variables": {"a": 1}, "secrets": [3]}, "list of variable names"),
    ({"name": "x", "variables": {"password": 1}, "secrets": ["pasword"]},
     "did you mean 'password'"),
    ({"name": " "}, "must not be empty"),
    ({"name": "x", "description": ["no"]}, "'description' must be str"),
])
def test_bad_environments_are_refused_with_the_field_named(api, body, words):
    response = api.post("/v2/environments", body)
    assert response.status_code == 400
    assert words in response.get_json()["message"]


def post_raw(api, path: str, data: str):
    response = api.client.post(path, data=data, content_type="application/json",
                               headers={"Authorization": f"Bearer {api.token}"})
    conformance.check("POST", path, response)
    return response


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", ""])
def test_a_body_that_is_no_json_object_is_refused(api, raw):
    response = post_raw(api, "/v2/environments", raw)
    assert response.status_code == 400 and response.get_json()["error"] == "InvalidInput"


def test_environments_are_listed_by_page(api):
    for i in range(3):
        create(api, {"name": f"env{i}", "variables": {"i": i}})
    first = api.get("/v2/environments", limit=2).get_json()
    assert [e["name"] for e in first["environments"]] == ["env0", "env1"] and first["next"]
    rest = api.get("/v2/environments", limit=2,
                   marker=first["environments"][-1]["id"]).get_json()
    assert [e["name"] for e in rest["environments"]] == ["env2"] and "next" not in rest
    assert api.get("/v2/environments", sort_keys="variables").status_code == 400
    assert api.get("/v2/environments", sort_keys="secrets").status_code == 400


def test_another_project_cannot_see_change_or_delete_an_environment(api):
    create(api)
    other = api.as_("op-b")
    assert other.get("/v2/environments/prod").status_code == 404
    assert other.get("/v2/environments").get_json()["environments"] == []
    assert other.put("/v2/environments", {"name": "prod", "variables": {}}).status_code == 404
    assert api.as_("admin-b").delete("/v2/environments/prod").status_code == 404
    assert api.get("/v2/environments/prod").status_code == 200


def test_deleting_needs_an_admin(api):
    create(api)
    assert api.as_("view-a").post("/v2/environments", {"name": "v"}).status_code == 403
    assert api.delete("/v2/environments/prod").status_code == 403
    assert api.as_("admin-a").delete("/v2/environments/prod").status_code == 204
    assert api.get("/v2/environments/prod").status_code == 404
    assert api.as_(None).get("/v2/environments").status_code == 401
