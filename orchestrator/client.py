"""A small client of the REST API (``/v2``). Errors come back as the product's
own exceptions, built from the API's one JSON error shape: the server's
message is kept, the class follows the status (404 NotFound, 409 Conflict,
400 InvalidInput, or InvalidDefinition when the server lists problems)."""
from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import requests

from orchestrator.errors import (
    Conflict,
    InvalidDefinition,
    InvalidInput,
    NotFound,
    OrchestratorError,
    Problem,
)

DEFAULT_URL = "http://127.0.0.1:8989"
YAML = {"Content-Type": "application/x-yaml"}
# The names the API uses in paths and as the key of a list response.
RESOURCES = ("workbooks", "workflows", "actions", "executions", "tasks", "action_executions",
             "environments", "cron_triggers")
_BY_STATUS = {400: InvalidInput, 404: NotFound, 409: Conflict, 413: InvalidInput}


def error_from_response(resp: requests.Response, file: str | None = None) -> OrchestratorError:
    """The exception for an error response; ``file`` names the local file a
    definition came from, so problems read ``FILE:LINE PATH: MESSAGE``."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or f"HTTP {resp.status_code} {resp.reason} from {resp.url}"
    if body.get("problems"):
        problems = [Problem(p.get("path", ""), p.get("message", ""), p.get("line") or 0, file)
                    for p in body["problems"]]
        return InvalidDefinition(problems)
    if resp.status_code == 401:
        message += " (pass --token or set ORCH_TOKEN)"
    err = _BY_STATUS.get(resp.status_code, OrchestratorError)(message)
    err.status_code = resp.status_code
    return err


class Client:
    """One API endpoint and token. ``url``/``token`` default to ``ORCH_URL``
    and ``ORCH_TOKEN``. Every method returns the decoded JSON response."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.url = (url or os.environ.get("ORCH_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        token = token if token is not None else os.environ.get("ORCH_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, *, params=None, json=None, text: str | None = None,
                file: str | None = None):
        """One call; ``path`` starts with ``/`` (or is a whole URL). None for 204."""
        url = path if path.startswith(("http://", "https://")) else self.url + path
        headers = YAML if text is not None else None
        data = text.encode() if text is not None else None
        try:
            resp = self.session.request(method, url, params=params, json=json,
                                        data=data, headers=headers, timeout=self.timeout)
        except requests.ConnectionError:
            raise OrchestratorError(
                f"cannot reach the orchestrator API at {self.url}: "
                f"is `orchestrator serve` running?") from None
        except requests.Timeout:
            raise OrchestratorError(
                f"the orchestrator API at {self.url} did not answer within {self.timeout:g}s"
            ) from None
        if resp.status_code >= 400:
            raise error_from_response(resp, file)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise OrchestratorError(
                f"{method} {path}: the answer from {self.url} is not JSON "
                f"(is ORCH_URL the orchestrator API?)") from None

    # -- any resource ------------------------------------------------------------------
    def list(self, resource: str, *, limit: int | None = None, follow: bool = False,
             **filters) -> builtins.list[dict]:
        """Items of a list endpoint: one page of ``limit`` items, or every page
        when ``follow`` (the ``next`` links, ``limit`` items at a time)."""
        return list(self.iter(resource, limit=limit, follow=follow, **filters))

    def iter(self, resource: str, *, limit: int | None = None, follow: bool = True,
             **filters) -> Iterator[dict]:
        params: dict | None = {k: v for k, v in filters.items() if v is not None}
        if limit is not None:
            params = {**(params or {}), "limit": limit}
        path = f"/v2/{resource}"
        while True:
            page = self.request("GET", path, params=params)
            yield from page[resource.rsplit("/", 1)[-1]]  # "executions/X/tasks" -> "tasks"
            if not follow or not page.get("next"):
                return
            # Follow "next" on our own host: the server may know itself by another name.
            base, nxt = urlsplit(self.url), urlsplit(page["next"])
            path, params = urlunsplit((base.scheme, base.netloc, nxt.path, nxt.query, "")), None

    def get(self, resource: str, name: str) -> dict:
        return self.request("GET", f"/v2/{resource}/{name}")

    def delete(self, resource: str, name: str, **params) -> None:
        self.request("DELETE", f"/v2/{resource}/{name}", params=params or None)

    # -- definitions (YAML bodies): workbooks, workflows, actions --------------------------
    def create_definition(self, resource: str, text: str, file: str | None = None) -> dict:
        return self.request("POST", f"/v2/{resource}", text=text, file=file)

    def update_definition(self, resource: str, text: str, file: str | None = None) -> dict:
        return self.request("PUT", f"/v2/{resource}", text=text, file=file)

    def validate_definition(self, resource: str, text: str) -> dict:
        """``{"valid": true}`` or ``{"valid": false, "error", "problems"}``."""
        return self.request("POST", f"/v2/{resource}/validate", text=text)

    # -- executions ----------------------------------------------------------------------
    def start_execution(self, workflow_name: str, input: dict | None = None, *,
                        env: dict | str | None = None, task_name: str | None = None,
                        description: str | None = None, id: str | None = None) -> dict:
        params: dict = {}
        if env is not None:
            params["env"] = env
        if task_name:
            params["task_name"] = task_name
        body = {"workflow_name": workflow_name, "input": input or {}, "params": params}
        if description is not None:
            body["description"] = description
        if id is not None:
            body["id"] = id
        return self.request("POST", "/v2/executions", json=body)

    def set_execution_state(self, execution_id: str, state: str,
                            state_info: str | None = None) -> dict:
        body = {"state": state}
        if state_info is not None:
            body["state_info"] = state_info
        return self.request("PUT", f"/v2/executions/{execution_id}", json=body)

    def execution_tasks(self, execution_id: str) -> builtins.list[dict]:
        """Every task of the execution (all pages), in start order."""
        return builtins.list(self.iter(f"executions/{execution_id}/tasks", limit=1000))

    def events(self, execution_id: str, after: int = 0) -> builtins.list[dict]:
        """The execution's events with an id above ``after``, oldest first."""
        return self.request("GET", f"/v2/executions/{execution_id}/events",
                            params={"after": after})["events"]

    def report(self, execution_id: str) -> dict:
        return self.request("GET", f"/v2/executions/{execution_id}/report")

    # -- tasks and action executions -----------------------------------------------------
    def rerun_task(self, task_id: str, reset: bool = True) -> dict:
        return self.request("PUT", f"/v2/tasks/{task_id}", json={"state": "RUNNING",
                                                                  "reset": reset})

    def skip_task(self, task_id: str) -> dict:
        return self.request("PUT", f"/v2/tasks/{task_id}", json={"state": "SKIPPED"})

    def complete_action(self, action_execution_id: str, state: str, output=None) -> dict:
        return self.request("PUT", f"/v2/action_executions/{action_execution_id}",
                            json={"state": state, "output": output})

    # -- environments and cron triggers (JSON bodies) ------------------------------------
    def create(self, resource: str, body: dict) -> dict:
        return self.request("POST", f"/v2/{resource}", json=body)

    def update(self, resource: str, body: dict) -> dict:
        return self.request("PUT", f"/v2/{resource}", json=body)
