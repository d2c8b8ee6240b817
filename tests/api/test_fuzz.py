"""Schemathesis against a real ``orchestrator serve``: requests made from the
OpenAPI document (its examples, the coverage phase's boundary values and
undeclared methods, then random valid and invalid ones), with an admin token, on
a SQLite file. Every response must be no 5xx and as
documented: a declared status, the declared body (schemathesis's checks and
tests/api/conformance.py), ``Allow`` on a 405, and a refusal (4xx) of what the
document forbids.

Not asserted: that every request the document allows is accepted
(schemathesis's ``positive_data_acceptance``): a document that is valid YAML but
not a valid workflow, or input a workflow does not take, is rightly a 400 the
schema cannot express.

Bounded: ``MAX_EXAMPLES`` generated cases per operation and generation mode,
derandomized, so a run sends the same ~2,300 requests each time and takes about
30 s, 90 s on a 2-core machine under ``stress-ng --cpu 2``.
"""
from __future__ import annotations

import collections
import time

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import HealthCheck
from schemathesis.specs.openapi import checks

from orchestrator.api.openapi import DOCUMENT, EXAMPLES
from tests.api import conformance
from tests.test_serve import Server

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 20
STATUSES: collections.Counter = collections.Counter()  # of every response, for the log
TOKEN = "fuzz-admin"
YAML_TYPES = ("text/plain", "application/x-yaml")
CHECKS = [not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.unsupported_method]

class Checked:
    """What ``conformance.check`` reads of a response, over schemathesis's one."""

    def __init__(self, response):
        self.status_code = response.status_code
        content_type = (response.headers.get("content-type") or [""])[0]
        self.mimetype = content_type.split(";", 1)[0].strip().lower()
        self._response = response

    def get_json(self):
        return self._response.json()

    def get_data(self, as_text: bool = False):
        return self._response.text if as_text else self._response.content


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """The server, with something for the requests to find: the document's examples
    (a workbook, an environment, a trigger, a finished execution with its task and
    action execution), so the examples phase's creations meet what exists."""
    tmp = tmp_path_factory.mktemp("fuzz")
    server = Server(f"sqlite:///{tmp}/orch.db", env={"ORCH_API_TOKENS": f"{TOKEN}=fuzz:admin"})
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"

        def call(method, path, expect, **kw):
            r = session.request(method, server.url + path, timeout=30, **kw)
            assert r.status_code == expect, (path, r.status_code, r.text, server.log())
            return r.json()

        call("POST", "/v2/workbooks", 201, data=EXAMPLES["workbooks"],
             headers={"Content-Type": "application/x-yaml"})
        call("POST", "/v2/environments", 201, json=EXAMPLES["EnvironmentWrite"])
        call("POST", "/v2/cron_triggers", 201, json=EXAMPLES["CronTriggerCreate"])
        ex = call("POST", "/v2/executions", 201, json=EXAMPLES["ExecutionCreate"])
        deadline = time.monotonic() + 30
        while call("GET", f"/v2/executions/{ex['id']}", 200)["state"] != "SUCCESS":
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        yield server
    finally:
        code = server.stop()
        print(f"fuzz: {sum(STATUSES.values())} requests, statuses {dict(sorted(STATUSES.items()))}")
        print(f"--- server log (exit {code}) ---\n{server.log()}")
    assert "Traceback" not in server.log(), server.log()


# The document as data: the one the server serves (tests/api/test_openapi.py checks
# that), loaded at collection to make one test per operation. (A schema loaded from
# the running server through ``schemathesis.pytest.from_fixture`` does not run on
# pytest 9: schemathesis 4.32 reads a private attribute pytest no longer has.)
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(request_timeout=60, suppress_health_check=[HealthCheck.all])  # a busy machine
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True,
                                with_security_parameters=False)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


def _text_body_negated(case) -> bool:
    """A YAML body is text: a "negative" body of another JSON type reaches the server
    as text too, so it is no violation the server could see."""
    return case.media_type in YAML_TYPES and not isinstance(case.body, str | bytes)


@schema.parametrize()
def test_no_server_error_and_every_response_as_documented(case, fuzz_server):
    response = case.call(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    STATUSES[response.status_code] += 1
    try:
        conformance.check(case.method, case.formatted_path, Checked(response))
    except AssertionError as e:
        raise AssertionError(f"{e}\n{case.as_curl_command()}") from None
    excluded = [checks.negative_data_rejection] if _text_body_negated(case) else []
    case.validate_response(response, checks=[c for c in CHECKS if c not in excluded])
