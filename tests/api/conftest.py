"""The API in-process: a Flask test client per token, on each store backend.
Every response the API tests receive is checked against the OpenAPI document
(``tests/api/conformance.py``), so the document stays true."""
from __future__ import annotations

import json

import pytest

from orchestrator.api import ApiConfig, create_app
from orchestrator.api.auth import Principal
from orchestrator.engine.worker import Worker

TOKENS = {
    "op-a": Principal("alpha", "operator", "alice"),
    "view-a": Principal("alpha", "viewer", "victor"),
    "admin-a": Principal("alpha", "admin", "ada"),
    "op-b": Principal("beta", "operator", "bob"),
    "admin-b": Principal("beta", "admin", "bea"),
}


class Api:
    """Calls the API as one token; ``drive()`` runs the engine until idle."""

    def __init__(self, app, store, token: str | None):
        self.app, self.store, self.token = app, store, token
        self.client = app.test_client()

    def as_(self, token: str | None) -> Api:
        return Api(self.app, self.store, token)

    def call(self, method: str, path: str, body=None, *, yaml: str | None = None,
             headers: dict | None = None, **query):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        kwargs = {"query_string": query or None, "headers": h}
        if yaml is not None:
            kwargs.update(data=yaml.encode(), content_type="text/plain")
        elif body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        response = self.client.open(path, method=method, **kwargs)
        from tests.api import conformance

        conformance.check(method, path, response)
        return response

    def get(self, path, **query):
        return self.call("GET", path, **query)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, **query):
        return self.call("DELETE", path, **query)

    def drive(self) -> None:
        Worker(self.store).run_until_idle()


@pytest.fixture
def app(store):
    return create_app(ApiConfig(store=store, tokens=dict(TOKENS)))


@pytest.fixture
def api(app, store) -> Api:
    """Operator of project alpha."""
    return Api(app, store, "op-a")
