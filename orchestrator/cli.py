"""``orchestrator``: the command line. One error boundary: a user's mistake is
a message and an exit code, a traceback only with ``--debug``."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from orchestrator.errors import InvalidDefinition, OrchestratorError

EXIT_OK = 0  # validated / execution ended SUCCESS
EXIT_FAILED = 1  # execution ended ERROR or CANCELLED
EXIT_PAUSED = 2  # execution is PAUSED
EXIT_INVALID = 3  # the definition is not valid
EXIT_ERROR = 4  # could not do what was asked (bad input, missing file, ...)
EXIT_USAGE = 64  # bad command line

STATE_EXIT = {"SUCCESS": EXIT_OK, "ERROR": EXIT_FAILED, "CANCELLED": EXIT_FAILED,
              "PAUSED": EXIT_PAUSED}


class UsageError(OrchestratorError):
    """Bad command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit code 2 means PAUSED here
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _json_arg(value: str | None, what: str) -> dict:
    if not value:
        return {}
    if value.startswith("@"):
        value = Path(value[1:]).read_text()
    try:
        data = json.loads(value)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _read(path: str) -> str:
    """A definition file's text; InvalidDefinition when it is not UTF-8."""
    from orchestrator.dsl.yamlsource import decode

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    return decode(raw, path)


# -- validate ---------------------------------------------------------------------------
def cmd_validate(args) -> int:
    from orchestrator import dsl

    worst = EXIT_OK
    for path in args.files:
        try:
            doc = dsl.load(_read(path), path)
        except InvalidDefinition as e:
            for problem in e.problems:
                print(problem, file=sys.stderr)
            worst = EXIT_INVALID
            continue
        names = ", ".join(doc.workflows) or "no workflows"
        print(f"{path}: valid ({names})")
    return worst


# -- run / engine ----------------------------------------------------------------------
def _store(args):
    from orchestrator.store.db import Store

    return Store(args.db)


class _Progress:
    """Prints task state changes as they happen (from the event history)."""

    MARKS = {"SUCCESS": "ok  ", "ERROR": "FAIL", "SKIPPED": "skip", "CANCELLED": "cncl"}

    def __init__(self, store, execution_id: str, stream):
        self.store, self.execution_id, self.stream = store, execution_id, stream
        self.last_id, self.names = 0, {}

    def poll(self) -> None:
        from sqlalchemy import select

        from orchestrator.store import schema

        e, t = schema.events, schema.task_executions
        with self.store.connect() as conn:
            rows = conn.execute(
                select(e.c.id, e.c.kind, e.c.data, t.c.name, t.c.started_at, t.c.finished_at)
                .join(t, t.c.id == e.c.task_id, isouter=True)
                .where(e.c.id > self.last_id, e.c.execution_id == self.execution_id)
                .order_by(e.c.id)
            ).all()
        for row in rows:
            self.last_id = row.id
            state = row.kind.split(".")[-1]
            if row.kind.startswith("task.") and state in self.MARKS and row.name:
                took = ""
                if row.started_at and row.finished_at:
                    took = f" ({row.finished_at - row.started_at:.2f}s)"
                info = (row.data or {}).get("info")
                line = f"  {self.MARKS[state]} {row.name}{took}"
                if info and state == "ERROR":
                    line += f": {info.splitlines()[0]}"
                print(line, file=self.stream, flush=True)


def _wait(store, execution_id: str, progress: _Progress | None, timeout: float | None) -> dict:
    from orchestrator.engine import control

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ex = control.execution(store, execution_id)
        if progress:
            progress.poll()
        if ex["state"] in STATE_EXIT:
            return ex
        if deadline is not None and time.monotonic() > deadline:
            raise OrchestratorError(
                f"execution {execution_id} still {ex['state']} after {timeout:g}s; "
                f"continue it with: orchestrator engine --until {execution_id}"
            )
        time.sleep(0.05)


def _report(store, execution_id: str, as_json: bool) -> int:
    from orchestrator.engine import control

    summary = control.summary(store, execution_id)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"execution {summary['id']} ({summary['workflow_name']}): {summary['state']}")
        if summary["state_info"]:
            print(f"  {summary['state_info']}")
        if summary["output"] is not None:
            print("output: " + json.dumps(summary["output"], indent=2, default=str))
    return STATE_EXIT.get(summary["state"], EXIT_FAILED)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: the worker hands back its leases


def _agent_actions(doc) -> list[str]:
    """The Salt (agent) actions a document's tasks call by name."""
    from orchestrator.actions import registry

    names = set()
    for workflow in doc.workflows.values():
        for task in workflow.tasks.values():
            cls = registry.find(task.action) if task.action else None
            if cls is not None and getattr(cls, "queue", "default") == "agent":
                names.add(task.action)
    return sorted(names)


def _with_worker(store, fn):
    """Run ``fn`` while an engine works on ``store`` — with the Salt bridge too
    when a salt-master is configured (ORCH_SALT_MASTER_CONFIG), so local runs
    can use the salt.* actions."""
    from agent_bridge.config import SaltConfig
    from orchestrator.engine.worker import Worker

    salt_config = SaltConfig.from_env()
    bridge = None
    if salt_config.master_config:
        from agent_bridge.bridge import Bridge

        bridge = Bridge(store, salt_config).start()
    worker = Worker(store, agent=bridge is not None).start()
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return fn(worker)
    finally:
        worker.stop()
        if bridge is not None:
            bridge.stop()
        signal.signal(signal.SIGTERM, previous)


def cmd_run(args) -> int:
    from orchestrator import dsl
    from orchestrator.engine import control

    try:
        doc = dsl.load(_read(args.file), args.file)
    except InvalidDefinition as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    salt = _agent_actions(doc)
    if salt and not os.environ.get("ORCH_SALT_MASTER_CONFIG"):
        raise UsageError(f"this workflow calls {', '.join(salt)}: set ORCH_SALT_MASTER_CONFIG "
                         "to the salt-master's config file (for a lab: orchestrator lab salt)")
    store = _store(args)
    execution_id = control.start(
        store, doc, args.workflow, _json_arg(args.input, "--input"),
        env=_json_arg(args.env, "--env"), task_name=args.task_name,
    )
    progress = None if args.json else _Progress(store, execution_id, sys.stderr)
    if not args.json:
        print(f"execution {execution_id} started", file=sys.stderr, flush=True)
    try:
        _with_worker(store, lambda w: _wait(store, execution_id, progress, args.timeout))
    except KeyboardInterrupt:
        print(f"interrupted; execution {execution_id} goes on with: orchestrator engine "
              f"--until {execution_id}", file=sys.stderr)
        return 130
    return _report(store, execution_id, args.json)


def cmd_engine(args) -> int:
    store = _store(args)

    def loop(worker):
        if args.until:
            progress = None if args.json else _Progress(store, args.until, sys.stderr)
            _wait(store, args.until, progress, args.timeout)
            return _report(store, args.until, args.json)
        print(f"engine running on {store.url.split('://')[0]} (Ctrl-C to stop)", file=sys.stderr)
        while True:
            time.sleep(3600)

    return loop_result if (loop_result := _with_worker(store, loop)) is not None else EXIT_OK


def cmd_serve(args) -> int:
    from orchestrator.logs import LogStream
    from orchestrator.server import ServeOptions, serve

    return serve(ServeOptions(
        db=args.db, host=args.host, port=args.port,
        roles=tuple(args.role) if args.role else None,
        salt_master_config=args.salt_master_config,
        no_auth=args.no_auth, tokens_file=args.tokens, executor_threads=args.threads,
        grace=args.grace, lease=args.lease,
    ), out=LogStream("orchestrator.server") if args.log_format == "json" else sys.stderr)


# -- entry point ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="orchestrator", description="Durable Mistral v2 workflows for VM stacks.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    _log_options(p, argparse.SUPPRESS)  # default: the global options' defaults below
    p.set_defaults(log_format="text", log_level=None)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="check workbooks and workflow files")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.set_defaults(func=cmd_validate)

    db_help = "database URL (default: ORCH_DATABASE_URL or the embedded SQLite store)"
    r = sub.add_parser("run", help="run a workflow to its end on the local store")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--workflow", help="workflow name (wf or workbook.wf); optional if only one")
    r.add_argument("--input", help="input as a JSON object (or @file.json)")
    r.add_argument("--env", help="environment for env() as a JSON object (or @file.json)")
    r.add_argument("--task-name", help="reverse workflows: the task to reach")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    r.add_argument("--db", help=db_help)
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("engine", help="run the engine on the store (continues every execution)")
    e.add_argument("--until", metavar="EXECUTION_ID", help="stop when this execution ends")
    e.add_argument("--json", action="store_true", help="with --until: print one JSON object")
    e.add_argument("--timeout", type=float, help="with --until: give up after this many seconds")
    e.add_argument("--db", help=db_help)
    e.set_defaults(func=cmd_engine)

    s = sub.add_parser("serve", help="run the service: REST API, engine (one process or several)")
    s.add_argument("--db", help=db_help)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8989, help="port (default 8989; 0 picks one)")
    s.add_argument("--role", action="append", choices=["api", "engine", "scheduler", "agent"],
                   help="run only this role (repeatable; default: api, engine, scheduler, "
                        "and agent when a salt-master is configured)")
    s.add_argument("--salt-master-config", metavar="FILE",
                   help="the salt-master's config file: run the Salt bridge (agent role) "
                        "beside it (also ORCH_SALT_MASTER_CONFIG)")
    s.add_argument("--tokens", metavar="FILE", help="API tokens file (also ORCH_API_TOKENS)")
    s.add_argument("--no-auth", action="store_true",
                   help="no authentication (binds 127.0.0.1 only; for local use)")
    s.add_argument("--threads", type=int, default=8, help="action executor threads (default 8)")
    s.add_argument("--lease", type=float, default=15.0,
                   help="seconds a running action stays claimed without a heartbeat before "
                        "another engine takes it over (default 15)")
    s.add_argument("--grace", type=float, default=10.0,
                   help="seconds running actions get at shutdown before being handed back")
    _log_options(s, argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    from orchestrator.cli_client import add_commands  # here: cli_client imports this module

    add_commands(sub)
    from agent_bridge.lab import add_commands as add_lab_commands

    add_lab_commands(sub)
    from orchestrator.demo import add_commands as add_demo_commands

    add_demo_commands(sub)
    return p


def _log_options(parser, default) -> None:
    parser.add_argument("--log-format", choices=("text", "json"), default=default,
                        help="log lines as text (default) or one JSON object per line")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=default, help="default warning (debug with --debug)")


def main(argv: list[str] | None = None) -> int:
    from orchestrator import logs

    args = build_parser().parse_args(argv)
    logs.setup(args.log_format, args.log_level or ("debug" if args.debug else "warning"))
    err = logs.LogStream("orchestrator.cli", logging.ERROR) if args.log_format == "json" \
        else sys.stderr
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except OrchestratorError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=err)
        return EXIT_ERROR
    except Exception as e:  # our bug: say so plainly, traceback with --debug
        if args.debug:
            raise
        print(f"internal error: {type(e).__name__}: {e} (run with --debug for details)",
              file=err)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
