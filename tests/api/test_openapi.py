"""The OpenAPI document: valid, served without a token, naming exactly the
app's routes, and a conformance checker that really fails on a wrong body."""
from __future__ import annotations

import json
import re

import pytest
from flask import Response
from openapi_spec_validator import validate

from orchestrator.api.openapi import DOCUMENT
from tests.api import conformance

EXECUTION = {
    "id": "e1", "workflow_name": "wf", "description": "", "state": "RUNNING",
    "state_info": None, "input": {}, "output": None, "params": {}, "project": "alpha",
    "root_execution_id": None, "parent_action_execution_id": None,
    "created_at": "2026-11-27T08:00:00.123456+00:00",
    "updated_at": "2026-11-27T08:00:00.123456+00:00", "finished_at": None,
}


@pytest.fixture(scope="session", autouse=True)
def coverage_summary(request):
    """At the end of the session, print which operations the API tests reached."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not conformance.EXERCISED:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in conformance.coverage_report().splitlines():
            reporter.write_line(line)


@pytest.fixture
def fake():
    """Feeds the checker made-up responses without counting them as coverage."""
    before = set(conformance.EXERCISED)

    def check(method, path, status, body=None, raw: bytes | None = None):
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        mimetype = "application/json" if body is not None else "text/plain"
        conformance.check(method, path, Response(data, status=status, mimetype=mimetype))

    yield check
    conformance.EXERCISED.intersection_update(before)


def flask_templates(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        # The dashboard's HTML pages and files are not API operations (tests/dashboard).
        if rule.endpoint == "static" or rule.endpoint.startswith("dashboard."):
            continue
        template = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        out |= {(m, template) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return out


def test_the_document_is_valid_openapi():
    validate(DOCUMENT)


def test_the_document_is_served_without_a_token(api):
    response = api.as_(None).get("/v2/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == json.loads(json.dumps(DOCUMENT))


def test_health_is_documented_and_needs_no_token(api):
    response = api.as_(None).get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_every_route_of_the_app_is_in_the_document_and_back(app):
    documented = conformance.operations()
    served = flask_templates(app)
    assert any(t.startswith("/v2/") for _, t in served)
    lacking = sorted(served - documented)
    assert not lacking, f"routes of the app that the document lacks: {lacking}"
    stale = sorted(documented - served)
    assert not stale, f"documented operations that the app lacks: {stale}"


def test_every_response_object_with_fixed_fields_is_closed():
    requests = {ref["$ref"].rsplit("/", 1)[1] for item in DOCUMENT["paths"].values()
                for op in item.values() if isinstance(op, dict) and "requestBody" in op
                for ref in (c["schema"] for c in op["requestBody"]["content"].values())
                if "$ref" in ref}
    assert requests, "request bodies are documented"
    for name, schema in DOCUMENT["components"]["schemas"].items():
        if name not in requests and "properties" in schema and name != "Report":
            assert schema.get("additionalProperties") is False, name


def test_the_checker_accepts_a_body_that_matches(fake):
    fake("GET", "/v2/executions/e1", 200, EXECUTION)
    fake("GET", "/v2/executions/e1", 404, {"error": "NotFound", "message": "no e1"})
    fake("DELETE", "/v2/executions/e1?force=true", 204)


def test_the_checker_rejects_a_missing_field(fake):
    body = {k: v for k, v in EXECUTION.items() if k != "state_info"}
    with pytest.raises(AssertionError, match="'state_info' is a required property"):
        fake("GET", "/v2/executions/e1", 200, body)


def test_the_checker_rejects_a_field_the_document_does_not_name(fake):
    with pytest.raises(AssertionError, match="'spec_hash' was unexpected"):
        fake("GET", "/v2/executions/e1", 200, {**EXECUTION, "spec_hash": "ab12"})


def test_the_checker_rejects_null_in_a_field_that_is_not_nullable(fake):
    with pytest.raises(AssertionError, match=r"\$\.workflow_name: None is not of type"):
        fake("GET", "/v2/executions/e1", 200, {**EXECUTION, "workflow_name": None})


def test_the_checker_rejects_a_timestamp_that_is_not_iso_8601(fake):
    with pytest.raises(AssertionError, match="1795766400.0 is not of type 'string'"):
        fake("GET", "/v2/executions/e1", 200, {**EXECUTION, "created_at": 1795766400.0})
    with pytest.raises(AssertionError, match="is not a 'date-time'"):
        fake("GET", "/v2/executions/e1", 200, {**EXECUTION, "created_at": "yesterday"})


def test_the_checker_checks_items_of_lists_and_nested_reports(fake):
    with pytest.raises(AssertionError, match=r"\$\.executions\[0\]"):
        fake("GET", "/v2/executions", 200, {"executions": [{**EXECUTION, "state": "LOST"}]})
    task = {"id": "t1", "name": "a", "workflow_execution_id": "e1", "workflow_name": "wf",
            "state": "ERROR", "state_info": "boom", "result": None, "published": None,
            "type": "ACTION", "items_total": None, "items_done": None, "attempt": 1,
            "created_at": EXECUTION["created_at"], "started_at": None, "finished_at": None,
            "action_executions": [], "sub_executions": [{**EXECUTION, "tasks": [], "x": 1}]}
    report = {"root_cause": None, "execution": {**EXECUTION, "tasks": [task]},
              "statistics": {"total_tasks": 1, "ERROR": 1}}
    with pytest.raises(AssertionError, match=r"sub_executions\[0\].*'x' was unexpected"):
        fake("GET", "/v2/executions/e1/report", 200, report)
    task["sub_executions"] = []
    fake("GET", "/v2/executions/e1/report", 200, report)


def test_the_checker_rejects_a_status_the_operation_does_not_declare(fake):
    with pytest.raises(AssertionError, match="status not declared"):
        fake("GET", "/v2/executions/e1", 409, {"error": "Conflict", "message": "no"})
    with pytest.raises(AssertionError, match="status not declared"):
        fake("POST", "/v2/workbooks", 200, {})


def test_the_checker_allows_only_errors_from_undocumented_operations(fake):
    fake("GET", "/v2/no-such-thing", 404, {"error": "NotFound", "message": "no"})
    fake("PATCH", "/v2/executions/e1", 405, {"error": "MethodNotAllowed", "message": "no"})
    with pytest.raises(AssertionError, match="the document lacks"):
        fake("GET", "/v2/no-such-thing", 200, {"anything": 1})


def test_the_checker_rejects_server_errors_and_errors_without_the_shape(fake):
    with pytest.raises(AssertionError, match="a server error"):
        fake("GET", "/v2/executions/e1", 500, {"error": "InternalError", "message": "ref"})
    with pytest.raises(AssertionError, match="not an error shape"):
        fake("GET", "/v2/executions/e1", 404, {"error": "NotFound"})
    with pytest.raises(AssertionError, match="must be JSON"):
        fake("GET", "/v2/executions/e1", 404, raw=b"<html>not found</html>")


def test_the_checker_rejects_a_body_on_a_response_declared_without_one(fake):
    with pytest.raises(AssertionError, match="declared without a body"):
        fake("DELETE", "/v2/executions/e1", 204, {"deleted": True})


def test_the_checker_finds_operations_as_the_router_does():
    assert conformance.find("POST", "/v2/workbooks/validate")[0] == "/v2/workbooks/validate"
    assert conformance.find("GET", "/v2/workbooks/validate")[0] == "/v2/workbooks/{name}"
    assert conformance.find("GET", "/v2/workflows/wb.deploy")[0] == "/v2/workflows/{name}"
    assert conformance.find("GET", "/v2/executions/e1/tasks?limit=2")[0] == \
        "/v2/executions/{id}/tasks"
    assert conformance.find("PATCH", "/v2/executions/e1") == (None, None)
