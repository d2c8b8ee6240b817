"""The standard actions (Mistral's ``std.*``): noop, echo, fail, sleep,
async_noop and http. ``ACTIONS`` maps their names to classes for the registry.

Actions run in worker threads, so nothing here keeps shared mutable state:
std.http opens one requests.Session per call.
"""
from __future__ import annotations

import json as jsonlib
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from orchestrator import secrets
from orchestrator.actions.amqp import Amqp
from orchestrator.actions.base import Action, ActionContext
from orchestrator.errors import ActionError

MAX_RESPONSE_BYTES = 5 * 1024 * 1024


class Noop(Action):
    """Does nothing; returns None."""

    pure = True

    def run(self, context: ActionContext) -> None:
        return None


class Echo(Action):
    """Returns ``output``, after ``delay`` seconds."""

    def __init__(self, output, delay: float = 0):
        self.output, self.delay = output, delay
        # Only an instant echo may run inside the engine's transaction.
        self.pure = not delay

    def run(self, context: ActionContext) -> Any:
        if self.delay:
            time.sleep(float(self.delay))
        return self.output


class Fail(Action):
    """Always fails; the error value is ``error_data`` when given."""

    pure = True

    def __init__(self, error_data=None):
        self.error_data = error_data

    def run(self, context: ActionContext) -> None:
        if self.error_data is None:
            raise ActionError("Fail action expected exception.")
        raise ActionError(f"Fail action: {self.error_data}", data=self.error_data)


class Sleep(Action):
    """Sleeps ``seconds``; returns None."""

    def __init__(self, seconds: float = 1):
        self.seconds = seconds

    def run(self, context: ActionContext) -> None:
        time.sleep(float(self.seconds))


class AsyncNoop(Action):
    """Starts nothing; stays RUNNING until completed through the API."""

    sync = False

    def run(self, context: ActionContext) -> None:
        return None


class Http(Action):
    """An HTTP request with ``requests``. Returns ``{content, status, headers,
    url, encoding, reason, elapsed}``; ``content`` is parsed JSON when the
    response is JSON. A status of 400 or more fails with that same dict as the
    error value. The ``Idempotency-Key`` header carries the action execution id
    so a remote side can recognise the repeat of an attempt."""

    def __init__(self, url: str, method: str = "GET", params=None, body=None, json=None,
                 headers=None, auth=None, timeout: float = 60, verify: bool = True,
                 allow_redirects: bool = True):
        self.url, self.method = url, str(method).upper()
        self.params, self.body, self.json = params, body, json
        self.headers = dict(headers or {})
        self.auth, self.timeout = auth, timeout
        self.verify, self.allow_redirects = verify, allow_redirects

    def run(self, context: ActionContext) -> dict:
        headers = {str(k): str(v) for k, v in self.headers.items()}
        if not any(k.lower() == "idempotency-key" for k in headers):
            headers["Idempotency-Key"] = context.idempotency_key
        body = self.body
        if isinstance(body, (dict, list)):
            # Mistral accepts a structured body and sends it as JSON.
            body = jsonlib.dumps(body)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        auth = _auth(self.auth)
        _hide_credentials(auth, self.url)
        where = f"{self.method} {_shown_url(self.url)}"
        try:
            with requests.Session() as session:
                resp = session.request(
                    self.method, self.url, params=self.params, data=body, json=self.json,
                    headers=headers, auth=auth, timeout=self.timeout,
                    verify=self.verify, allow_redirects=self.allow_redirects, stream=True)
                with resp:
                    raw = _read_capped(resp, where)
        except requests.Timeout as e:
            raise ActionError(f"HTTP request {where} timed out after {self.timeout}s: {e}") from e
        except requests.ConnectionError as e:
            # requests reports a read timeout in the body as a ConnectionError.
            if "timed out" in str(e):
                raise ActionError(
                    f"HTTP request {where} timed out after {self.timeout}s: {e}") from e
            raise ActionError(f"HTTP request {where} could not connect: {e}") from e
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema, ValueError) as e:
            # The request itself is wrong: trying again cannot help.
            raise ActionError(f"HTTP request {where} is invalid: {e}", retryable=False) from e
        except requests.RequestException as e:
            raise ActionError(f"HTTP request {where} failed: {e}") from e

        result = {
            "content": _content(resp, raw),
            "status": resp.status_code,
            "headers": dict(resp.headers),
            "url": _shown_url(resp.url),
            "encoding": resp.encoding,
            "reason": resp.reason,
            "elapsed": resp.elapsed.total_seconds(),
        }
        if resp.status_code >= 400:
            # Retryable: a policy that polls until a resource exists retries on 404.
            # Not 401 and 403: the same credentials are refused again.
            raise ActionError(f"HTTP {resp.status_code} {resp.reason} from {where}", data=result,
                              retryable=resp.status_code not in (401, 403))
        return result


def _shown_url(url) -> str:
    """``url`` without the password of its user info (``http://user:***@host/``)."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return str(url)
    if parts.password is None:
        return str(url)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{secrets.MASK}@{netloc[2]}"))


def _hide_credentials(auth, url) -> None:
    """Hide the password of a Basic credential (``auth``, or the URL's user info) in
    this process's log lines, with the base64 header requests builds from it."""
    passwords = [auth[1]] if auth else []
    try:
        password = urlsplit(str(url)).password
    except ValueError:
        password = None
    if password:
        passwords += [password, unquote(password)]
    secrets.remember(p for p in passwords if len(p.strip()) >= secrets.MIN_LENGTH)


def _auth(auth) -> tuple[str, str] | None:
    if auth is None or auth == "":
        return None
    if isinstance(auth, str) and ":" in auth:
        user, _, password = auth.partition(":")
        return user, password
    if isinstance(auth, (list, tuple)) and len(auth) == 2:
        return str(auth[0]), str(auth[1])
    raise ActionError("std.http auth must be [user, password] or 'user:password'",
                      retryable=False)


def _read_capped(resp: requests.Response, where: str) -> bytes:
    # Content-Length alone (Mistral's check) misses chunked responses; count bytes.
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
        raise ActionError(f"HTTP response from {where} is {length} bytes, more than the "
                          f"{MAX_RESPONSE_BYTES} bytes allowed", retryable=False)
    chunks, size = [], 0
    for chunk in resp.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ActionError(f"HTTP response from {where} is more than the "
                              f"{MAX_RESPONSE_BYTES} bytes allowed", retryable=False)
        chunks.append(chunk)
    return b"".join(chunks)


def _content(resp: requests.Response, raw: bytes) -> Any:
    text = raw.decode(resp.encoding or "utf-8", errors="replace")
    ctype = resp.headers.get("Content-Type", "").lower()
    # JSON by content type, or a body that looks like a JSON document (Mistral
    # parses "when possible"; a bare "123" stays text to avoid surprises).
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            return jsonlib.loads(text)
        except ValueError:
            pass
    return text


ACTIONS: dict[str, type[Action]] = {
    "std.noop": Noop,
    "std.echo": Echo,
    "std.fail": Fail,
    "std.sleep": Sleep,
    "std.async_noop": AsyncNoop,
    "std.http": Http,
    "std.amqp": Amqp,
}
