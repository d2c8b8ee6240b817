"""Hostile-input benchmarks against a real ``orchestrator serve``: how fast the
service refuses or contains what an attacker (or a careless author) sends.

Measured, with the targets of the security work beside them:

``billion_laughs_ms``
    ``POST /v2/workflows/validate`` of a billion-laughs document, as a viewer
    (refused; target: milliseconds, 100 ms).
``read_ms_during_runaway``
    ``GET /v2/executions`` of another project while a runaway expression runs
    (target 500 ms).
``cancel_s`` / ``force_delete_s``
    ``PUT state=CANCELLED`` and ``DELETE ?force=true`` of an execution whose
    expression is running away, until the answer (target 2 s each).
``sigterm_s``
    SIGTERM to exit of the service while an expression runs away (target: its
    grace period, 5 s here).

Usage::

    python bench/hostile.py [--db postgresql://postgres@127.0.0.1:5432/test] [--out FILE]

JSON on stdout; exit status 0 when every target passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
RUNAWAY = """
version: '2.0'
spin:
  tasks:
    loop:
      action: std.echo
      input:
        output: <% range(0, 100000000000).sum() %>
"""
LAUGHS = "\n".join(["version: '2.0'", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]"
                      for i in range(1, 10)])
TOKENS = "red=red:admin,blue=blue:operator,viewer=blue:viewer"
GRACE = 5.0


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Service:
    def __init__(self, db: str, data: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "serve", "--port", "0", "--db", db,
             "--grace", str(GRACE)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env={**os.environ, "ORCH_API_TOKENS": TOKENS,
                                      "ORCH_EXPR_CPU_SECONDS": "600", "XDG_DATA_HOME": data,
                                      "ORCH_SECRET_KEY_FILE": f"{data}/secret.key"})
        self.url = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                found = re.search(r"orchestrator serving (http://\S+)", line)
                if found:
                    self.url = found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120) or self.url is None:
            raise SystemExit("orchestrator serve did not start")
        self.ps = psutil.Process(self.proc.pid)

    def burning(self, seconds: float = 0.5) -> None:
        start = sum(self.ps.cpu_times()[:2])
        end = time.monotonic() + 120
        while sum(self.ps.cpu_times()[:2]) - start < seconds:
            if time.monotonic() > end:
                raise SystemExit("the runaway expression does not run")
            time.sleep(0.05)

    def start(self, token: str, name: str) -> str:
        r = requests.post(f"{self.url}/v2/executions", json={"workflow_name": name},
                          headers=_h(token), timeout=120)
        r.raise_for_status()
        return r.json()["id"]


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(db: str) -> dict:
    with tempfile.TemporaryDirectory() as data:
        if db.startswith("sqlite"):
            db = f"sqlite:///{data}/orchestrator.db"
        s = Service(db, data)
        try:
            requests.post(f"{s.url}/v2/workflows", data=RUNAWAY, timeout=60, headers={
                **_h("red"), "Content-Type": "text/plain"}).raise_for_status()
            laughs, r = timed(lambda: requests.post(
                f"{s.url}/v2/workflows/validate", data=LAUGHS, timeout=120,
                headers={**_h("viewer"), "Content-Type": "text/plain"}))
            refused = r.status_code in (200, 400) and not r.json().get("valid", False)

            first = s.start("red", "spin")
            s.burning()
            read, r = timed(lambda: requests.get(f"{s.url}/v2/executions", headers=_h("blue"),
                                                 timeout=120))
            cancel, r = timed(lambda: requests.put(
                f"{s.url}/v2/executions/{first}", json={"state": "CANCELLED"},
                headers=_h("red"), timeout=120))
            cancelled = r.status_code == 200 and r.json()["state"] == "CANCELLED"

            second = s.start("red", "spin")
            s.burning()
            delete, r = timed(lambda: requests.delete(
                f"{s.url}/v2/executions/{second}?force=true", headers=_h("red"), timeout=120))
            deleted = r.status_code == 204

            s.start("red", "spin")
            s.burning()
            s.proc.send_signal(signal.SIGTERM)
            stop, code = timed(lambda: s.proc.wait(120))
        finally:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(30)
    return {
        "billion_laughs_ms": {"value": round(laughs * 1000, 1), "limit": 100,
                              "pass": refused and laughs < 0.1},
        "read_ms_during_runaway": {"value": round(read * 1000, 1), "limit": 500,
                                   "pass": read < 0.5},
        "cancel_s": {"value": round(cancel, 3), "limit": 2.0,
                     "pass": cancelled and cancel <= 2.0},
        "force_delete_s": {"value": round(delete, 3), "limit": 2.0,
                           "pass": deleted and delete <= 2.0},
        "sigterm_s": {"value": round(stop, 3), "limit": GRACE,
                      "pass": code == 0 and stop <= GRACE},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="sqlite", help="a PostgreSQL URL (default: a temporary "
                                                  "SQLite file)")
    p.add_argument("--out", help="also write the JSON to this file")
    args = p.parse_args()
    if not args.db.startswith("sqlite"):
        import psycopg

        name = f"orch_bench_{os.getpid()}"
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.db.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = "sqlite"
    try:
        results = run(url)
    finally:
        if url != "sqlite":
            with psycopg.connect(args.db, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load": os.getloadavg()},
              "command": " ".join(sys.argv), "store": "sqlite" if url == "sqlite" else "postgresql",
              "results": results, "pass": all(r["pass"] for r in results.values())}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
