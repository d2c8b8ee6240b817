"""Tokens: the ``Bearer`` scheme in any case, ``X-Auth-Token`` as Mistral clients
send it, and expiry from the tokens file. (Reloading the file on SIGHUP needs a
real ``orchestrator serve``: tests/test_serve.py.)"""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from orchestrator.api import ApiConfig, create_app
from orchestrator.api.auth import Principal, load_tokens, parse_file
from orchestrator.errors import InvalidInput
from tests.api.conftest import TOKENS, Api


def whoami(api: Api, headers: dict):
    return api.as_(None).call("GET", "/v2/whoami", headers=headers)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(api, scheme):
    response = whoami(api, {"Authorization": f"{scheme} op-a"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "alice"


def test_spaces_around_the_token_do_not_matter(api):
    response = whoami(api, {"Authorization": "bearer   op-a  "})
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("header", ["Basic b3AtYQ==", "Bearer", "Bearer ", "op-a", "Bearerop-a",
                                    "Token op-a"])
def test_other_schemes_and_malformed_headers_are_401(api, header):
    response = whoami(api, {"Authorization": header})
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "Unauthorized",
        "message": "A token is needed: send 'Authorization: Bearer <token>' or "
                   "'X-Auth-Token: <token>'."}


def test_x_auth_token_is_accepted_as_mistral_clients_send_it(api):
    response = whoami(api, {"X-Auth-Token": "admin-a"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"project": "alpha", "role": "admin", "name": "ada",
                                   "auth": True}
    assert whoami(api, {"X-Auth-Token": "nope"}).status_code == 401
    # The role of that token applies as with Authorization.
    response = api.as_(None).call("POST", "/v2/workbooks", yaml="x: 1",
                                  headers={"X-Auth-Token": "view-a"})
    assert response.status_code == 403


def test_authorization_wins_over_x_auth_token(api):
    both = {"Authorization": "Bearer view-a", "X-Auth-Token": "admin-a"}
    assert whoami(api, both).get_json()["name"] == "victor"


def _file(tmp_path, text: str) -> str:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return str(path)


def test_expiry_is_read_from_the_tokens_file(tmp_path):
    tokens = parse_file(_file(tmp_path, """
tokens:
  - {token: a, project: p, role: viewer, expires: 2030-01-02T03:04:05Z}
  - {token: b, project: p, role: viewer, expires: "2030-01-02T04:04:05+01:00"}
  - {token: c, project: p, role: viewer, expires: 2030-01-02}
  - {token: d, project: p, role: viewer}
"""))
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert tokens["a"].expires == tokens["b"].expires == at
    assert tokens["c"].expires == datetime(2030, 1, 2, tzinfo=UTC).timestamp()
    assert tokens["d"].expires is None


@pytest.mark.parametrize("value", ["soon", '"2030-13-01T00:00:00Z"', "[1]", "12"])
def test_a_bad_expiry_is_refused_with_the_entry_named(tmp_path, value):
    path = _file(tmp_path, f"tokens:\n  - {{token: a, project: p, expires: {value}}}\n")
    with pytest.raises(InvalidInput, match=r"tokens\[0\]: expires must be an ISO 8601 time"):
        parse_file(path)


def test_a_timestamp_yaml_cannot_read_is_refused_not_a_traceback(tmp_path):
    path = _file(tmp_path, "tokens:\n  - {token: a, project: p, expires: 2030-13-01T00:00:00Z}\n")
    with pytest.raises(InvalidInput, match="cannot read the tokens file .*month must be"):
        parse_file(path)


def test_an_expired_token_is_401_saying_it_expired(store, tmp_path):
    past = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    future = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    tokens = load_tokens(_file(tmp_path, f"""
tokens:
  - {{token: old, project: alpha, role: admin, expires: "{past}"}}
  - {{token: new, project: alpha, role: admin, expires: "{future}"}}
"""), env="")
    api = Api(create_app(ApiConfig(store=store, tokens=tokens)), store, None)
    response = whoami(api, {"Authorization": "Bearer old"})
    assert response.status_code == 401
    assert "expired" in response.get_json()["message"]
    assert past[:19] in response.get_json()["message"]
    assert whoami(api, {"X-Auth-Token": "old"}).status_code == 401
    assert whoami(api, {"Authorization": "Bearer new"}).status_code == 200


def test_principals_without_expiry_never_expire(store):
    tokens = {**TOKENS, "x": Principal("alpha", "viewer", "x")}
    api = Api(create_app(ApiConfig(store=store, tokens=tokens)), store, "x")
    assert api.get("/v2/whoami").status_code == 200


def test_the_document_names_both_ways_to_send_a_token():
    from orchestrator.api.openapi import DOCUMENT

    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["authToken"] == {**schemes["authToken"], "type": "apiKey", "in": "header",
                                    "name": "X-Auth-Token"}
    assert DOCUMENT["security"] == [{"bearer": []}, {"authToken": []}]  # either one
