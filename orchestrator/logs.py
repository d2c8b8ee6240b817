"""Log lines: the text format (default) or one JSON object per line
(``--log-format json``), secrets masked in both.

A JSON line holds ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``
and, when known, the ids of what the line is about: ``execution_id``,
``task_id`` (a task execution), ``action_execution_id`` and ``salt_jid`` (a
Salt job), plus ``exception`` (the traceback) for a logged exception.

The ids come from :func:`context`, a ``contextvars`` context that the worker
sets while it applies a work item or runs an action, and the Salt bridge
around a job.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime

from orchestrator import secrets

# Not "jid": once salt is imported, its logger class owns that record attribute.
IDS = ("execution_id", "task_id", "action_execution_id", "salt_jid")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

_ids: ContextVar[dict | None] = ContextVar("orchestrator_log_ids", default=None)
engine_log = logging.getLogger("orchestrator.engine")


# -- the context ---------------------------------------------------------------------
class LogContext:
    """Adds ids to the log lines of this thread (or task) while it is entered; an id
    given as None hides the enclosing context's (the line is not about one)."""

    __slots__ = ("ids", "_token")

    def __init__(self, ids: dict):
        self.ids = ids

    def __enter__(self) -> LogContext:
        self._token = _ids.set({**(_ids.get() or {}), **self.ids})
        return self

    def __exit__(self, *exc) -> None:
        _ids.reset(self._token)


def context(**ids) -> LogContext:
    """``with context(execution_id=..., task_id=...):`` every line logged inside
    carries these ids (those given as None are left out)."""
    return LogContext({k: v for k, v in ids.items() if v is not None})


class ContextFilter(logging.Filter):
    """Copies the context's ids onto each record; an id the line names itself with
    ``extra`` wins, even as None (not about any). (Prefer a context to ``extra``:
    salt's logger class, which loggers made after salt is imported have, drops
    ``extra``.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


# -- the JSON format -----------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; known secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        hide = secrets.known()
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": secrets.mask(record.getMessage(), hide),
        }
        for key in IDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = secrets.mask(self.formatException(record.exc_info), hide)
        elif record.exc_text:
            out["exception"] = secrets.mask(record.exc_text, hide)
        if record.stack_info:
            out["stack"] = secrets.mask(self.formatStack(record.stack_info), hide)
        return json.dumps(out, ensure_ascii=False, default=str)


class LogStream:
    """A text stream whose lines become log records: status lines written with
    ``print(..., file=stream)`` come out in the log format. They are shown at any
    log level, as printed lines were; a line starting ``WARNING: `` is a warning."""

    def __init__(self, logger: str, level: int = logging.INFO):
        self.logger, self.level = logging.getLogger(logger), level
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            if line.strip():
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        pass

    def _emit(self, line: str) -> None:
        level = self.level
        if line.startswith("WARNING: "):
            level, line = logging.WARNING, line[len("WARNING: "):]
        # Not logger.makeRecord(): salt's logger class, once salt is imported, needs
        # the arguments its own _log() adds.
        self.logger.handle(logging.getLogRecordFactory()(self.logger.name, level, "(stream)",
                                                         0, line, None, None))


# -- setting up ----------------------------------------------------------------------
def setup(fmt: str = "text", level: int | str = logging.WARNING, stream=None) -> None:
    """Configure the root logger once per process (the CLI's ``main``): ``text``
    as before, or ``json`` lines on stderr; secrets masked in both."""
    if isinstance(level, str):
        level = getattr(logging, level.upper())
    root = logging.getLogger()
    if fmt == "text":
        logging.basicConfig(level=level, format=TEXT_FORMAT, stream=stream)
        for handler in root.handlers:
            if not any(isinstance(f, secrets.MaskingFilter) for f in handler.filters):
                handler.addFilter(secrets.MaskingFilter())
        return
    if fmt != "json":
        raise ValueError(f"unknown log format {fmt!r}; formats: {', '.join(FORMATS)}")
    for handler in [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(secrets.MaskingFilter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # Nothing else may write to stderr: warnings and uncaught exceptions are logged too.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    sys.excepthook = _log_exception


def _log_thread_exception(args) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("orchestrator").error(
        "uncaught exception in thread %s", name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _log_exception(exc_type, exc_value, exc_traceback) -> None:
    logging.getLogger("orchestrator").critical(
        "uncaught exception", exc_info=(exc_type, exc_value, exc_traceback))


# -- the engine's lines --------------------------------------------------------------
def log_transitions(transitions) -> None:
    """Log lines for state changes the engine committed (``(kind, old, new, row)``,
    see :data:`orchestrator.engine.tx.REPORTED`): executions started and ended,
    tasks and actions failed at INFO, other action ends at DEBUG."""
    if not engine_log.isEnabledFor(logging.INFO):
        return
    debug = engine_log.isEnabledFor(logging.DEBUG)
    around = _ids.get() or {}  # one transaction may move other tasks than its context's

    def ids(execution_id, task_id=None, action_id=None) -> LogContext:
        # Every id named, None for "not about one": nothing of the context leaks in.
        jid = around.get("salt_jid") if action_id and action_id == around.get(
            "action_execution_id") else None
        return LogContext({"execution_id": execution_id, "task_id": task_id,
                           "action_execution_id": action_id, "salt_jid": jid})

    for kind, old, new, row in transitions:
        if kind == "workflow":
            if old == "IDLE":
                params = row.get("params") or {}
                if params.get("secrets"):  # this process may not have read it yet
                    secrets.values_of(params.get("env"), params["secrets"])
                with ids(row["id"]):
                    engine_log.info("execution %s of %s started", row["id"],
                                    row["workflow_name"])
            elif new != "RUNNING":
                with ids(row["id"]):
                    engine_log.info("execution %s of %s ended %s%s", row["id"],
                                    row["workflow_name"], new,
                                    f": {row['state_info']}" if row.get("state_info") else "")
        elif kind == "task":
            with ids(row["execution_id"], row["id"]):
                engine_log.info("task %r failed: %s", row["name"], row.get("state_info"))
        elif new == "ERROR":
            with ids(row["execution_id"], row["task_execution_id"], row["id"]):
                engine_log.info("action %s failed: %s", row["name"], row.get("state_info"))
        elif debug:
            with ids(row["execution_id"], row["task_execution_id"], row["id"]):
                engine_log.debug("action %s ended %s", row["name"], new)
