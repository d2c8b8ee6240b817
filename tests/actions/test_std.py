import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.actions import std
from orchestrator.actions.base import ActionContext
from orchestrator.errors import ActionError

CTX = ActionContext(execution_id="ex-1", task_execution_id="t-1",
                    action_execution_id="act-123", task_name="call", workflow_name="wf")


# --- a real HTTP server that records what it receives -----------------------------------

class Recorder(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self.server.requests.append({
            "method": self.command, "path": url.path, "query": parse_qs(url.query),
            "headers": dict(self.headers), "body": body,
        })
        route = url.path
        if route == "/json":
            self._send(200, json.dumps({"hello": "world"}).encode(), "application/json")
        elif route == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        elif route == "/missing":
            self._send(404, json.dumps({"error": "no such thing"}).encode(), "application/json")
        elif route == "/slow":
            time.sleep(1.5)
            self._send(200, b"late", "text/plain")
        elif route == "/big":
            self._send(200, b"x" * (std.MAX_RESPONSE_BYTES + 1), "text/plain")
        elif route == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"y" * (1024 * 1024)
            for _ in range(6):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif route == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/json")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(200, b"", "text/plain")

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


# --- simple actions ---------------------------------------------------------------------

def test_noop_returns_none_and_is_pure():
    assert std.Noop().run(CTX) is None
    assert std.Noop.pure is True


def test_echo_returns_its_output_and_is_pure_only_without_delay():
    echo = std.Echo(output={"a": [1]})
    assert echo.run(CTX) == {"a": [1]} and echo.pure
    slow = std.Echo(output="x", delay=0.05)
    start = time.monotonic()
    assert slow.run(CTX) == "x"
    assert time.monotonic() - start >= 0.05
    assert not slow.pure


def test_fail_without_data_raises_the_mistral_message():
    with pytest.raises(ActionError) as exc:
        std.Fail().run(CTX)
    assert exc.value.message == "Fail action expected exception."
    assert exc.value.data == "Fail action expected exception."
    assert std.Fail.pure


def test_fail_with_data_carries_that_data():
    with pytest.raises(ActionError) as exc:
        std.Fail(error_data={"code": 7}).run(CTX)
    assert exc.value.data == {"code": 7}


def test_sleep_sleeps_and_returns_none():
    start = time.monotonic()
    assert std.Sleep(seconds=0.05).run(CTX) is None
    assert time.monotonic() - start >= 0.05


def test_async_noop_is_async_and_returns_none():
    assert std.AsyncNoop.sync is False
    assert std.AsyncNoop().run(CTX) is None


# --- std.http ---------------------------------------------------------------------------

def test_http_get_returns_parsed_json_and_response_details(server):
    result = std.Http(url=server.url + "/json", params={"q": "a b", "n": 2}).run(CTX)
    assert result["content"] == {"hello": "world"}
    assert result["status"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    assert result["url"].startswith(server.url + "/json?")
    assert result["reason"] == "OK"
    assert isinstance(result["elapsed"], float)
    json.dumps(result)  # storable as an action result
    req = server.requests[-1]
    assert req["method"] == "GET" and req["query"] == {"q": ["a b"], "n": ["2"]}


def test_http_text_response_is_returned_as_text(server):
    result = std.Http(url=server.url + "/text").run(CTX)
    assert result["content"] == "plain words"
    assert result["encoding"] == "utf-8"


def test_http_post_sends_json_body_headers_and_idempotency_key(server):
    std.Http(url=server.url + "/things", method="post", json={"name": "x", "n": [1, 2]},
             headers={"X-Trace": "abc", "X-Count": 3}).run(CTX)
    req = server.requests[-1]
    assert req["method"] == "POST"
    assert json.loads(req["body"]) == {"name": "x", "n": [1, 2]}
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Trace"] == "abc" and req["headers"]["X-Count"] == "3"
    assert req["headers"]["Idempotency-Key"] == "act-123"


def test_http_keeps_an_idempotency_key_set_by_the_caller(server):
    std.Http(url=server.url + "/x", headers={"idempotency-key": "mine"}).run(CTX)
    assert server.requests[-1]["headers"]["idempotency-key"] == "mine"


def test_http_sends_a_raw_body_and_a_dict_body_as_json(server):
    std.Http(url=server.url + "/raw", method="PUT", body="a=1&b=2").run(CTX)
    assert server.requests[-1]["body"] == b"a=1&b=2"
    std.Http(url=server.url + "/dict", method="PUT", body={"k": "v"}).run(CTX)
    assert json.loads(server.requests[-1]["body"]) == {"k": "v"}
    assert server.requests[-1]["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize("auth", [["alice", "s3cret:x"], "alice:s3cret:x"])
def test_http_basic_auth_from_list_or_string(server, auth):
    std.Http(url=server.url + "/private", auth=auth).run(CTX)
    header = server.requests[-1]["headers"]["Authorization"]
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode() == "alice:s3cret:x"


def test_http_bad_auth_is_a_non_retryable_error(server):
    with pytest.raises(ActionError, match="auth") as exc:
        std.Http(url=server.url + "/private", auth=["only-user"]).run(CTX)
    assert exc.value.retryable is False


def test_http_404_raises_with_the_result_as_error_data(server):
    with pytest.raises(ActionError) as exc:
        std.Http(url=server.url + "/missing").run(CTX)
    assert exc.value.message == f"HTTP 404 Not Found from GET {server.url}/missing"
    assert exc.value.data["status"] == 404
    assert exc.value.data["content"] == {"error": "no such thing"}


def test_http_follows_redirects_unless_told_not_to(server):
    assert std.Http(url=server.url + "/redirect").run(CTX)["content"] == {"hello": "world"}
    result = std.Http(url=server.url + "/redirect", allow_redirects=False).run(CTX)
    assert result["status"] == 302


def test_http_connection_refused_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ActionError, match="could not connect") as exc:
        std.Http(url=f"http://127.0.0.1:{port}/x").run(CTX)
    assert exc.value.retryable is True


def test_http_timeout_is_a_clear_error(server):
    # /slow answers after 1.5 s: without the 0.2 s timeout the call would succeed.
    with pytest.raises(ActionError, match=r"timed out after 0.2s"):
        std.Http(url=server.url + "/slow", timeout=0.2).run(CTX)


@pytest.mark.parametrize("route", ["/big", "/big-chunked"])
def test_http_response_larger_than_5_mib_is_an_error(server, route):
    with pytest.raises(ActionError, match="bytes allowed") as exc:
        std.Http(url=server.url + route).run(CTX)
    assert exc.value.retryable is False


def test_http_invalid_url_is_a_non_retryable_error():
    with pytest.raises(ActionError, match="invalid") as exc:
        std.Http(url="not a url").run(CTX)
    assert exc.value.retryable is False


def test_http_calls_from_many_threads_do_not_interfere(server):
    results, errors = [], []

    def call(i):
        try:
            ctx = ActionContext("ex", "t", f"act-{i}", "call", "wf")
            results.append(std.Http(url=server.url + "/json", params={"i": i}).run(ctx))
        except Exception as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 10
    keys = {r["headers"]["Idempotency-Key"] for r in server.requests}
    assert keys == {f"act-{i}" for i in range(10)}
