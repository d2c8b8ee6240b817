"""A real HTTP server on 127.0.0.1 that records every delivery of every
``Idempotency-Key`` (when it arrived, its path, the ``rid`` of its JSON body and
which process sent it), echoes the body back, and on ``/flaky`` fails the first
attempts of a request id: the n-th distinct key seen for ``rid`` gets 503 while
n <= the body's ``fails``, else 200 with ``attempt: n``. A repeat of the same key
(an action run again after a crash) gets the same answer as its first delivery,
so the outcome does not depend on when processes die.

The sender: give a process ``HTTP_PROXY=proxy_url(name)``; it then sends its
requests to this same server as its proxy, with ``name`` in the
``Proxy-Authorization`` header, and the server answers them itself."""
from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Delivery:
    at: float  # time.monotonic() when the request arrived
    path: str
    rid: str | None
    sender: str | None  # the name in its proxy URL, if it came through one


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # dozens of executor threads connect at once


class RecordingServer:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.deliveries: dict[str, list[Delivery]] = {}  # Idempotency-Key -> deliveries
        self.attempts: dict[str, list[str]] = {}  # /flaky rid -> distinct keys, in order
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                key = self.headers.get("Idempotency-Key")
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"null")
                except (ValueError, OSError):  # the sender died mid-request
                    body = None
                rid = body.get("rid") if isinstance(body, dict) else None
                path = urlsplit(self.path).path  # absolute when sent to us as a proxy
                status, reply = 200, {"path": path, "echo": body}
                with outer.lock:
                    outer.deliveries.setdefault(key, []).append(
                        Delivery(time.monotonic(), path, rid, self._sender()))
                    if path == "/flaky" and rid is not None:
                        keys = outer.attempts.setdefault(rid, [])
                        if key not in keys:
                            keys.append(key)
                        n = keys.index(key) + 1
                        reply["attempt"] = n
                        if n <= int(body.get("fails", 0)):
                            status = 503
                time.sleep(outer.delay)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client was killed mid-request: that is the point

            def _sender(self) -> str | None:
                scheme, _, creds = (self.headers.get("Proxy-Authorization") or "").partition(" ")
                if scheme.lower() != "basic":
                    return None
                try:
                    return base64.b64decode(creds).decode().partition(":")[0]
                except (binascii.Error, UnicodeDecodeError):
                    return None

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def proxy_url(self, sender: str) -> str:
        """An ``HTTP_PROXY`` value that makes a process's deliveries carry ``sender``."""
        return self.url.replace("http://", f"http://{sender}:x@", 1)

    def snapshot(self) -> dict[str, list[Delivery]]:
        with self.lock:
            return {k: list(v) for k, v in self.deliveries.items()}

    def __enter__(self) -> RecordingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
