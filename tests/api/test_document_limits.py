"""Hostile YAML through the REST API: each document is refused with the
validation error format (400, or ``valid: false`` from a validate endpoint),
a problem with its line, and nothing is stored; never a 500 or a hang. An
over-size body is a 413 with a message, through a real HTTP server too."""
from __future__ import annotations

import contextlib
import http.client
import json
import threading

import pytest
import waitress

from orchestrator.api import ApiConfig, create_app
from orchestrator.dsl.yamlsource import MAX_DEPTH, MAX_VALUES
from tests.api import conformance
from tests.api.conftest import TOKENS
from tests.dsl.test_document_limits import WORKFLOW, hang_guard, laughs, nested

HOSTILE = {
    "laughs": (laughs().encode(), 2, f"more than {MAX_VALUES} values"),
    "recursive": (b"version: '2.0'\nwf: &a\n  tasks: [*a]\n", 3, "(a recursive alias"),
    "deep": (nested(700).encode(), 7, f"nested more than {MAX_DEPTH} levels deep"),
    "control": (WORKFLOW.encode() + b"      input: {output: \x1b[1m}\n", 6,
                "U+001B (a control character) at column 23"),
    "utf8": (WORKFLOW.encode() + b"      input: {output: caf\xe9}\n", 6,
             "not valid UTF-8: byte 0xe9 at column 26"),
    "binary": (WORKFLOW.encode() + b"      input: {output: !!binary aGk=}\n", 6,
               "cannot read 'aGk=' as binary: binary data cannot be kept"),
    "nan": (WORKFLOW.encode() + b"      input: {output: .nan}\n", 6,
            "cannot read '.nan' as float: JSON has no NaN or infinity"),
}

WRITES = [("POST", "/v2/workbooks"), ("PUT", "/v2/workbooks"), ("POST", "/v2/workflows"),
          ("PUT", "/v2/workflows"), ("POST", "/v2/actions"), ("PUT", "/v2/actions")]
VALIDATES = ["/v2/workbooks/validate", "/v2/workflows/validate", "/v2/actions/validate"]


def send(api, method: str, path: str, raw: bytes):
    """The body as these bytes, not re-encoded."""
    with hang_guard():
        response = api.client.open(path, method=method, data=raw, content_type="text/plain",
                                   headers={"Authorization": f"Bearer {api.token}"})
    conformance.check(method, path, response)
    return response


@pytest.mark.parametrize("path", VALIDATES)
def test_a_billion_laughs_from_a_viewer_is_refused_by_validate(api, path):
    response = send(api.as_("view-a"), "POST", path, laughs().encode())
    body = response.get_json()
    assert response.status_code == 200 and body["valid"] is False
    [problem] = body["problems"]
    assert f"more than {MAX_VALUES} values" in problem["message"] and problem["line"] >= 2
    assert body["error"].endswith(f">:{problem['line']}: {problem['message']}")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_says_what_is_wrong_and_on_which_line(api, name):
    raw, line, says = HOSTILE[name]
    body = send(api.as_("view-a"), "POST", "/v2/workflows/validate", raw).get_json()
    assert body["valid"] is False
    [problem] = body["problems"]
    assert problem["line"] >= line and says in problem["message"]


@pytest.mark.parametrize("method, path", WRITES)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_document_is_a_400_and_nothing_is_stored(api, name, method, path):
    raw, line, says = HOSTILE[name]
    response = send(api, method, path, raw)
    body = response.get_json()
    assert response.status_code == 400 and body["error"] == "InvalidDefinition", body
    # The hostile part is said on its line (a workflow document sent as an action
    # document also gets what is wrong with that, when the YAML can be read).
    [problem] = [p for p in body["problems"] if says in p["message"]]
    assert problem["line"] >= line
    assert says in body["message"]
    for listing in ("workbooks", "workflows", "actions"):
        rows = api.get(f"/v2/{listing}").get_json()[listing]
        assert [r for r in rows if not r.get("is_system")] == []


def test_a_date_is_stored_and_used_as_the_text_written(api):
    doc = ("version: '2.0'\nwf:\n  input: [{when: 2024-01-01}]\n  tasks:\n    t:\n"
           "      action: std.echo output=<% $.when %>\n      publish: {at: 2024-02-02 10:00}\n")
    assert send(api, "POST", "/v2/workflows", doc.encode()).status_code == 201
    assert api.get("/v2/workflows/wf").get_json()["input"] == [
        {"name": "when", "required": False, "default": "2024-01-01"}]
    execution = api.post("/v2/executions", {"workflow_name": "wf"}).get_json()
    api.drive()
    done = api.get(f"/v2/executions/{execution['id']}").get_json()
    assert done["state"] == "SUCCESS", done


def test_a_document_at_the_depth_limit_is_stored(api):
    response = send(api, "POST", "/v2/workflows", nested(MAX_DEPTH - 5).encode())
    assert response.status_code == 201, response.get_json()
    assert "[" * (MAX_DEPTH - 5) in api.get("/v2/workflows/wf").get_json()["definition"]


def test_an_oversize_body_is_a_413_over_real_http_with_or_without_a_length(store):
    app = create_app(ApiConfig(store=store, tokens=dict(TOKENS), max_body=1000))
    server = waitress.create_server(app, host="127.0.0.1", port=0)

    def run():
        with contextlib.suppress(OSError):  # close() below ends run() with EBADF
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    body = WORKFLOW.encode() + b"#" * 2000 + b"\n"
    try:
        for chunked in (False, True):
            conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
            conn.request("POST", "/v2/workflows/validate",
                         body=iter([body[:500], body[500:]]) if chunked else body,
                         headers={"Authorization": "Bearer view-a",
                                  "Content-Type": "text/plain"}, encode_chunked=chunked)
            response = conn.getresponse()
            assert response.status == 413
            assert json.loads(response.read()) == {
                "error": "RequestEntityTooLarge",
                "message": "the request body is larger than 1000 bytes"}
            conn.close()
    finally:
        server.close()
        thread.join(10)
