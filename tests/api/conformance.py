"""Checks API responses against the OpenAPI document served at /v2/openapi.json.

``check(method, path, response)`` is called for every response of the API
tests (``tests/api/conftest.py``). It fails the test when

- any error is not JSON ``{error, message}``, or the status is 5xx;
- the status is not declared for the operation (path template + method);
- a 2xx comes from a path or method the document does not have;
- the JSON body does not match the declared schema (JSON Schema 2020-12, as
  OpenAPI 3.1 uses it, with ``$ref`` resolved in the whole document);
- a response declared without a body has one.

``EXERCISED`` records (method, template, status) of every checked response so
``test_openapi.py`` can report which operations the API tests reach.
"""
from __future__ import annotations

import re
from functools import cache

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from orchestrator.api.openapi import DOCUMENT

BASE = "urn:orchestrator:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

EXERCISED: set[tuple[str, str, int]] = set()
# Methods HTTP gives every path without a document naming them: HEAD (a GET without
# its body) and OPTIONS (the methods in Allow).
IMPLICIT = ("HEAD", "OPTIONS")


def operations(document: dict = DOCUMENT) -> set[tuple[str, str]]:
    """Every (METHOD, path template) of the document."""
    return {(m.upper(), t) for t, item in document["paths"].items() for m in item if m in METHODS}


@cache
def _templates() -> list[tuple[re.Pattern, str]]:
    # Literal segments win over parameters (/v2/workbooks/validate before /{name}),
    # as they do in the Flask router.
    out = []
    for template in DOCUMENT["paths"]:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        out.append((template.count("{"), re.compile(f"^{pattern}$"), template))
    return [(rx, t) for _, rx, t in sorted(out, key=lambda x: (x[0], x[2]))]


def find(method: str, path: str) -> tuple[str, dict] | tuple[None, None]:
    """The (template, operation) that serves ``method path``, or (None, None)."""
    path = path.split("?", 1)[0]
    for rx, template in _templates():
        if rx.match(path):
            operation = DOCUMENT["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None, None


def _resolve(obj: dict) -> dict:
    while "$ref" in obj:
        node = DOCUMENT
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


@cache
def _validator(pointer: str) -> Draft202012Validator:
    registry = Registry().with_resource(BASE, DRAFT202012.create_resource(DOCUMENT))
    return Draft202012Validator({"$ref": f"{BASE}#{pointer}"}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def _response_pointer(template: str, method: str, status: int) -> str:
    declared = DOCUMENT["paths"][template][method.lower()]["responses"][str(status)]
    if "$ref" in declared:  # a shared response of components/responses
        return declared["$ref"].removeprefix("#")
    return _pointer("paths", template, method.lower(), "responses", str(status))


def schema_errors(template: str, method: str, status: int, body) -> list[str]:
    """Where ``body`` does not match the schema of that response (empty: it does)."""
    pointer = _response_pointer(template, method, status) + _pointer(
        "content", "application/json", "schema")
    errors = sorted(_validator(pointer).iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


def check(method: str, path: str, response) -> None:
    status = response.status_code
    where = f"{method} {path} -> {status}"
    is_json = response.mimetype == "application/json"
    if status >= 400:
        assert is_json, f"{where}: an error must be JSON, got {response.mimetype}"
        body = response.get_json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) \
            and isinstance(body.get("message"), str), f"{where}: not an error shape: {body}"
    assert status < 500, f"{where}: a server error: {response.get_data(as_text=True)}"

    template, operation = find(method, path)
    if operation is None:
        implicit = method.upper() in IMPLICIT and any(rx.match(path.split("?", 1)[0])
                                                      for rx, _ in _templates())
        assert status >= 400 or implicit, \
            f"{where}: a success from an operation the document lacks"
        return
    EXERCISED.add((method.upper(), template, status))
    declared = operation["responses"]
    assert str(status) in declared, (
        f"{where}: status not declared for {method.upper()} {template} "
        f"(declared: {', '.join(declared)})")
    content = _resolve(declared[str(status)]).get("content")
    if content is None:
        assert not response.get_data(), f"{where}: declared without a body, but has one"
        return
    if "application/json" not in content:  # e.g. /metrics: text, no schema to check
        assert response.mimetype in content, \
            f"{where}: expected {' or '.join(content)}, got {response.mimetype}"
        return
    assert is_json, f"{where}: expected JSON, got {response.mimetype}"
    problems = schema_errors(template, method, status, response.get_json())
    assert not problems, (f"{where}: the body does not match the document "
                          f"({method.upper()} {template} {status}):\n  " + "\n  ".join(problems))


def coverage_report() -> str:
    """Which documented operations the API tests exercised, and with which statuses."""
    seen: dict[tuple[str, str], set[int]] = {}
    for method, template, status in EXERCISED:
        seen.setdefault((method, template), set()).add(status)
    ops = sorted(operations(), key=lambda o: (o[1], o[0]))
    lines = [f"OpenAPI operations exercised: {sum(o in seen for o in ops)}/{len(ops)}"]
    for method, template in ops:
        statuses = seen.get((method, template))
        mark = " ".join(str(s) for s in sorted(statuses)) if statuses else "NOT EXERCISED"
        lines.append(f"  {method:6} {template:40} {mark}")
    return "\n".join(lines)
