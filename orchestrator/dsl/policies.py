"""Readers for task policy values: retry, timeouts and waits, flags, conditions.

Mistral lets every policy value be an expression evaluated when the task
starts, so each reader accepts either its literal type or a string holding an
expression; anything else is reported (a quoted ``"10"`` is a string, not a
number, and would fail at run time).
"""
from __future__ import annotations

from orchestrator.dsl.expressions import has_expression
from orchestrator.dsl.inline import InlineError, parse_params, split_words
from orchestrator.dsl.spec import RetrySpec

RETRY_KEYS = ("count", "delay", "break-on", "continue-on")


def _is_expression(value) -> bool:
    return isinstance(value, str) and has_expression(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_seconds(ctx, value, path):
    """wait-before, wait-after, timeout: seconds >= 0 or an expression."""
    if _is_expression(value) or (_is_number(value) and value >= 0):
        return value
    ctx.source.report(path, f"{path[-1]} must be a number of seconds or an expression, "
                            f"not {value!r}")
    return None


def read_positive(ctx, value, path):
    """concurrency: an integer >= 1 or an expression."""
    if _is_expression(value) or (type(value) is int and value >= 1):
        return value
    ctx.source.report(path, f"{path[-1]} must be a positive integer or an expression, "
                            f"not {value!r}")
    return None


def read_flag(ctx, value, path):
    """pause-before, keep-result, safe-rerun: true/false or an expression."""
    if isinstance(value, bool) or _is_expression(value):
        return value
    ctx.source.report(path, f"{path[-1]} must be true, false or an expression, not {value!r}")
    return None


def read_condition(ctx, value, path):
    """fail-on, break-on, continue-on: an expression (a constant bool is tolerated)."""
    if isinstance(value, bool) or _is_expression(value):
        return value
    ctx.source.report(path, f"{path[-1]} must be an expression, not {value!r}")
    return None


def read_retry(ctx, value, path):
    """``{count, delay, break-on, continue-on}`` or the one-line ``count=3 delay=1``."""
    src = ctx.source
    one_line = isinstance(value, str)
    if one_line:
        try:
            value = parse_params(split_words(value))
        except InlineError as exc:
            src.report(path, f"bad retry policy: {exc}")
            return None
    if not isinstance(value, dict):
        src.report(path, "retry must be a mapping like {count: 3, delay: 1} or "
                         "'count=3 delay=1'")
        return None

    def where(key):
        # The one-line form has no YAML node per key: point at `retry` itself.
        return path if one_line else path + (key,)

    ok = True
    for key in value:
        if key not in RETRY_KEYS:
            src.report(where(key), f"unknown retry key {key!r} (known: {', '.join(RETRY_KEYS)})")
            ok = False
    if "count" not in value:
        src.report(path, "retry needs 'count'")
        return None
    count, delay = value["count"], value.get("delay", 0)
    if not (_is_expression(count) or (type(count) is int and count >= 0)):
        src.report(where("count"), f"retry count must be a non-negative integer or an "
                                   f"expression, not {count!r}")
        ok = False
    if not (_is_expression(delay) or (_is_number(delay) and delay >= 0)):
        src.report(where("delay"), f"retry delay must be a number of seconds or an "
                                   f"expression, not {delay!r}")
        ok = False
    for key in ("break-on", "continue-on"):
        cond = value.get(key)
        if cond is not None and not (isinstance(cond, bool) or _is_expression(cond)):
            src.report(where(key), f"retry {key} must be an expression, not {cond!r}")
            ok = False
    if not ok:
        return None
    return RetrySpec(count, delay, value.get("break-on"), value.get("continue-on"))
