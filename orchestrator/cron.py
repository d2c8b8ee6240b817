"""Cron triggers: a workflow started on a schedule, stored per project.

A pattern has 5 fields (minute hour day-of-month month day-of-week), or 6 with
seconds first (``*/30 * * * * *``, as Quartz and Spring write it), or is one of
croniter's ``@hourly``-style aliases. It is read in the trigger's time zone
(an IANA name, default UTC), so ``0 3 * * *`` in Europe/Paris stays at 03:00
local time across daylight saving changes.

This module stores triggers and computes when they fire next; firing them is
the scheduler's job.
"""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError
from sqlalchemy import delete, insert, select

from orchestrator import catalog
from orchestrator.dsl.tasks import hint
from orchestrator.engine import workflows
from orchestrator.errors import Conflict, InvalidInput, NotFound
from orchestrator.store.schema import cron_triggers

MISSED = ("skip", "once", "all")
PARAMS = ("env", "task_name")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"timezone {name!r} is not a known IANA time zone name "
                           "(like 'UTC' or 'Europe/Paris')") from None


def _iterator(pattern: str, start: datetime) -> croniter:
    fields = pattern.split()
    if not pattern.strip().startswith("@") and len(fields) not in (5, 6):
        raise InvalidInput(f"cron pattern {pattern!r} has {len(fields)} fields; write 5 "
                           "(minute hour day month weekday) or 6 (seconds first)")
    try:
        return croniter(pattern, start, second_at_beginning=len(fields) == 6)
    except (CroniterError, ValueError, KeyError) as e:
        raise InvalidInput(f"cron pattern {pattern!r} is not valid: {e}") from None


def check_pattern(pattern: str, timezone: str = "UTC") -> None:
    _iterator(pattern, datetime.now(zone(timezone)))


def next_time(pattern: str, timezone: str, after: float) -> float:
    """The first time strictly after ``after`` (epoch seconds) that ``pattern`` matches."""
    start = datetime.fromtimestamp(after, zone(timezone))
    try:
        return _iterator(pattern, start).get_next(float)
    except CroniterError:  # e.g. "0 0 31 2 *": February has no 31st
        raise InvalidInput(f"cron pattern {pattern!r} never matches") from None


def parse_time(value: str, field: str) -> float:
    """An ISO 8601 time (``2026-11-27T08:00:00+00:00``, or without offset for UTC) as
    epoch seconds."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"field {field!r} must be an ISO 8601 time like "
                           f"'2026-11-27T08:00:00Z', not {value!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _check_input(conn, project: str, workflow_name: str, given: dict, params: dict):
    doc, qualified = catalog.workflow_document(conn, project, workflow_name)
    spec = doc.workflows[qualified]
    workflows.check_input(spec, given)  # the same check the engine makes at each firing
    for key in params:
        if key not in PARAMS:
            raise InvalidInput(f"workflow_params has no {key!r}; it takes {', '.join(PARAMS)}")
    env = params.get("env")
    if isinstance(env, str):
        catalog.get_environment(conn, project, env)  # 404 now, not at the first firing
    elif env is not None and not isinstance(env, dict):
        raise InvalidInput("workflow_params.env must be an environment name or an object")
    task = params.get("task_name")
    if task is not None and task not in spec.tasks:
        raise InvalidInput(f"workflow_params.task_name: workflow {qualified!r} has no task "
                           f"{task!r}" + hint(str(task), list(spec.tasks)))
    return qualified


def create(conn, project: str, now: float, *, name: str, pattern: str, workflow_name: str,
           workflow_input: dict, workflow_params: dict, first_execution_time: str | None = None,
           remaining_executions: int | None = None, timezone: str = "UTC",
           missed: str = "skip", unknown=(), workbook: str | None = None):
    """Store a trigger. Its first run is at ``first_execution_time`` when given (which
    must be in the future), else at the pattern's first match after ``now``.
    ``unknown``: field names the request had that a trigger does not."""
    if unknown:
        raise InvalidInput(f"a cron trigger has no field {', '.join(map(repr, unknown))}")
    if not name.strip():
        raise InvalidInput("field 'name' must not be empty")
    following = next_time(pattern, timezone, now)
    if missed not in MISSED:
        raise InvalidInput(f"field 'missed' must be one of {', '.join(MISSED)}, not {missed!r}")
    if remaining_executions is not None and remaining_executions < 1:
        raise InvalidInput("field 'remaining_executions' must be a positive integer or null")
    first = None
    if first_execution_time is not None:
        first = parse_time(first_execution_time, "first_execution_time")
        if first <= now:
            raise InvalidInput(f"first_execution_time {first_execution_time!r} is in the past")
    qualified = _check_input(conn, project, workflow_name, workflow_input, workflow_params)
    if _row(conn, project, name) is not None:
        raise Conflict(f"cron trigger {name!r} already exists; delete it first to change it")
    conn.execute(insert(cron_triggers).values(
        id=catalog.new_id(), project=project, name=name, pattern=pattern, timezone=timezone,
        workflow_name=qualified, workflow_input=workflow_input, workflow_params=workflow_params,
        first_execution_time=first, remaining_executions=remaining_executions,
        next_execution_time=following if first is None else first,
        missed=missed, workbook_name=workbook, created_at=now, updated_at=now))
    return get(conn, project, name)


def _row(conn, project: str, name: str):
    return conn.execute(select(cron_triggers).where(
        cron_triggers.c.project == project, cron_triggers.c.name == name)).mappings().first()


def get(conn, project: str, name: str):
    row = _row(conn, project, name)
    if row is None:
        known = list(conn.execute(select(cron_triggers.c.name).where(
            cron_triggers.c.project == project)).scalars())
        raise NotFound(f"no cron trigger {name!r} in this project" + hint(name, known))
    return row


def remove(conn, project: str, name: str) -> None:
    row = get(conn, project, name)
    conn.execute(delete(cron_triggers).where(cron_triggers.c.id == row["id"]))
