"""std.http in a workflow against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.engine import control


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        server = self.server
        server.hits.append((self.path, self.headers.get("Idempotency-Key")))
        if self.path == "/ready":
            server.polls += 1
            if server.polls < 3:
                self._reply(404, {"ready": False})
            else:
                self._reply(200, {"ready": True, "polls": server.polls})
        elif self.path == "/missing":
            self._reply(404, {"error": "no such thing"})
        else:
            self._reply(200, {"path": self.path})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._reply(201, {"got": json.loads(self.rfile.read(length))})


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hits, server.polls = [], 0
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_results_are_published_and_json_bodies_are_sent(runner, http_server):
    server, url = http_server
    s = runner.run("""
version: '2.0'
wf:
  input: [url]
  tasks:
    get:
      action: std.http url="<% $.url %>/thing"
      publish:
        path: <% task().result.content.path %>
        status: <% task().result.status %>
      on-success: post
    post:
      action: std.http
      input:
        url: <% $.url %>/things
        method: POST
        body:
          name: <% $.path %>
      publish:
        created: <% task().result.content.got %>
  output:
    status: <% $.status %>
    created: <% $.created %>
""", {"url": url})
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"status": 200, "created": {"name": "/thing"}}
    action, = control.action_rows(runner.store, runner.task(s, "get")["id"])
    assert server.hits[0] == ("/thing", action["id"])  # the idempotency key


def test_an_http_error_status_fails_the_task_with_the_response_as_error_data(
        runner, http_server):
    _, url = http_server
    s = runner.run("""
version: '2.0'
wf:
  input: [url]
  tasks:
    get:
      action: std.http url="<% $.url %>/missing"
      publish-on-error:
        status: <% task().result.status %>
        error: <% task().result.content.error %>
      on-error: noop
""", {"url": url})
    get = runner.task(s, "get")
    assert get["state"] == "ERROR"
    assert "HTTP 404" in get["state_info"]
    assert get["published"] == {"status": 404, "error": "no such thing"}
    assert s["state"] == "SUCCESS"


def test_retry_polls_an_http_endpoint_until_it_is_ready(runner, http_server):
    server, url = http_server
    s = runner.run("""
version: '2.0'
wf:
  input: [url]
  tasks:
    wait_ready:
      action: std.http url="<% $.url %>/ready"
      retry:
        count: 5
        delay: 0
      publish:
        polls: <% task().result.content.polls %>
  output:
    polls: <% $.polls %>
""", {"url": url})
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"polls": 3}
    keys = [key for path, key in server.hits if path == "/ready"]
    assert len(keys) == 3 and len(set(keys)) == 3  # each attempt is its own action run
