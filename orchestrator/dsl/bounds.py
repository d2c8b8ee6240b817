"""Limits on what one expression evaluation may cost: CPU time and result size,
and the escape that keeps slow expressions out of the store's write lock.

Every non-trivial evaluation runs inside :func:`guarded`. A watchdog thread
reads the evaluating thread's own CPU clock and, when a limit is passed,
raises an exception *inside* that thread (``PyThreadState_SetAsyncExc``), so a
runaway ``{% for %}`` loop or ``range(0, 10000000).sum()`` stops within a few
milliseconds of its limit, wherever it is in Python code.

Two limits apply to each evaluation:

- ``cpu_seconds`` (``ORCH_EXPR_CPU_SECONDS``, default 5): past it the
  expression fails with a clear message; the engine fails its task.
- ``inline_seconds`` (``ORCH_EXPR_INLINE_MS``, default 20 ms): only while the
  caller holds the store's write lock (:func:`outside_lock`). Past it the
  evaluation is abandoned with :class:`SlowExpression`; the caller rolls its
  transaction back, the expression is evaluated again with no lock held (and
  the full CPU budget), and the transaction is run again, taking the
  remembered result instead of evaluating the expression a second time.

Results are bounded too (``ORCH_EXPR_MAX_RESULT_BYTES``, default 4 MiB,
measured as JSON text), and the operators that build a large value in one C
call (``"a" * n``, ``x ** n``, ``"%999999999s"``, ``center(n)``) are checked
before they run, since an async exception only lands between bytecodes.

A C call that never returns to Python (a regular expression that backtracks
catastrophically) is not interrupted until it returns.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ExpressionError


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass
class Limits:
    cpu_seconds: float = field(default_factory=lambda: _env_float("ORCH_EXPR_CPU_SECONDS", 5.0))
    inline_seconds: float = field(
        default_factory=lambda: _env_float("ORCH_EXPR_INLINE_MS", 20.0) / 1000.0)
    max_result_bytes: int = field(default_factory=lambda: int(
        _env_float("ORCH_EXPR_MAX_RESULT_BYTES", 4 * 1024 * 1024)))
    # What one execution may hold: items of one with-items, and the data it
    # stores (task results and published values, action results), as JSON text.
    max_with_items: int = field(default_factory=lambda: int(
        _env_float("ORCH_MAX_WITH_ITEMS", 20_000)))
    max_execution_bytes: int = field(default_factory=lambda: int(
        _env_float("ORCH_MAX_EXECUTION_BYTES", 64 * 1024 * 1024)))


LIMITS = Limits()


# --- the exceptions raised inside an evaluating thread ---------------------------------

class Interrupted(BaseException):
    """Raised by the watchdog inside an evaluation. A BaseException, so that the
    ``except Exception`` of yaql, Jinja or a user's filter cannot swallow it."""


class _CpuLimit(Interrupted):
    pass


class _Inline(Interrupted):
    pass


class _Shutdown(Interrupted):
    pass


class _Abandoned(Interrupted):
    pass


class SlowExpression(BaseException):
    """An evaluation ran past the inline budget while its caller holds the store's
    write lock. It passes through the engine's ``except Exception`` handlers to
    :func:`outside_lock`, which rolls back, evaluates it there and runs again."""

    def __init__(self, key: str, run: Callable[[], Any], functions: Any, label: str):
        super().__init__("expression ran past the inline budget")
        self.key, self.run, self.functions, self.label = key, run, functions, label


class ShuttingDown(BaseException):
    """The process is stopping: evaluations in progress are abandoned (their step
    is rolled back and runs again elsewhere or after restart)."""


_set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async.argtypes = (ctypes.c_ulong, ctypes.py_object)


def _raise_in(ident: int, exc: type | None) -> None:
    _set_async(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None
               else ctypes.py_object())


# --- the watchdog ----------------------------------------------------------------------

class _Entry:
    __slots__ = ("ident", "clock", "start", "inline", "limit", "fired", "paused")

    def __init__(self, ident: int, clock: int | None, start: float, inline: float | None,
                 limit: float):
        self.ident, self.clock, self.start = ident, clock, start
        self.inline, self.limit = inline, limit
        self.fired: type | None = None
        self.paused = 0


_lock = threading.Lock()
_active: dict[int, _Entry] = {}
_wake = threading.Event()
_watchdog: threading.Thread | None = None
POLL = 0.004


def _cpu(clock: int | None) -> float:
    if clock is None:
        return time.monotonic()
    try:
        return time.clock_gettime(clock)
    except OSError:  # the thread is gone
        return float("inf")


def _watch() -> None:
    while True:
        try:
            _watch_once()
        except Exception:  # never die: without the watchdog nothing is bounded
            logging.getLogger(__name__).exception("expression watchdog")
            time.sleep(POLL)


def _watch_once() -> None:
    _wake.wait()
    time.sleep(POLL)
    with _lock:
        entries = list(_active.values())
        if not entries:
            _wake.clear()
            return
        for e in entries:
            if e.fired is not None or e.paused:
                continue
            used = _cpu(e.clock) - e.start
            exc: type | None = None
            if e.inline is not None and used > e.inline:
                exc = _Inline
            elif used > e.limit:
                exc = _CpuLimit
            if exc is not None:
                e.fired = exc
                _raise_in(e.ident, exc)


def _ensure_watchdog() -> None:
    global _watchdog
    if _watchdog is None or not _watchdog.is_alive():
        with _lock:
            if _watchdog is None or not _watchdog.is_alive():
                _watchdog = threading.Thread(target=_watch, name="expression-watchdog",
                                             daemon=True)
                _watchdog.start()


def _leave(entry: _Entry) -> None:
    """Unregister; clear an exception fired but not yet delivered. Safe to call twice."""
    while True:
        try:
            with _lock:
                if _active.get(entry.ident) is entry:
                    del _active[entry.ident]
                if entry.fired is not None:
                    _raise_in(entry.ident, None)
            return
        except Interrupted:  # delivered while we were leaving: it is handled by our caller
            continue


def interrupt(idents, why: str = "shutdown") -> int:
    """Stop the evaluations running in these threads now. ``shutdown`` (a
    stopping worker's threads): each raises :class:`ShuttingDown`; ``abandon``
    (nobody wants the result any more: its execution ended): each fails with an
    ExpressionError. Returns how many were running."""
    exc = _Shutdown if why == "shutdown" else _Abandoned
    idents = set(idents)
    n = 0
    with _lock:
        for e in _active.values():
            if e.ident in idents and e.fired is None:
                e.fired = exc
                _raise_in(e.ident, exc)
                n += 1
    return n


# --- the caller's side -----------------------------------------------------------------

# While outside_lock runs its attempt: the results of the slow expressions it
# evaluated outside, by key: (True, value) or (False, ExpressionError).
_memo: ContextVar[dict | None] = ContextVar("orchestrator_expression_memo", default=None)
_inside = threading.local()


def fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def guarded(fn: Callable[[], Any], key: Callable[[], str], functions: Any = None,
            label: Any = "") -> Any:
    """Run ``fn()`` (one evaluation) under the limits. ``key()`` names it for the
    memo of :func:`outside_lock` (computed only when needed); ``label`` is the
    expression as shown in an error."""
    if getattr(_inside, "entry", None) is not None:  # nested: the outer guard applies
        return fn()
    memo = _memo.get()
    if memo:
        found = memo.get(key())
        if found is not None:
            ok, value = found
            if ok:
                return value
            raise value
    _ensure_watchdog()
    ident = threading.get_ident()
    try:
        clock = time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        clock = None
    entry = _Entry(ident, clock, _cpu(clock), LIMITS.inline_seconds if memo is not None else None,
                   LIMITS.cpu_seconds)
    with _lock:
        _active[ident] = entry
    _wake.set()
    _inside.entry = entry
    try:
        try:
            result = fn()
        finally:
            _inside.entry = None
            _leave(entry)
    except Interrupted as e:
        _leave(entry)
        kind = entry.fired or type(e)
        label = label() if callable(label) else label
        if kind is _Inline:
            raise SlowExpression(key(), fn, functions, label) from None
        if kind is _Shutdown:
            raise ShuttingDown() from None
        if kind is _Abandoned:
            raise ExpressionError(label, "abandoned: its execution ended while it ran") from None
        raise ExpressionError(label, f"ran longer than the CPU time limit of "
                                     f"{LIMITS.cpu_seconds:g} s (ORCH_EXPR_CPU_SECONDS)") from None
    return result


@contextmanager
def unguarded():
    """Engine code called from inside an expression (``task()``, ``tasks()``: SQL
    queries) is not interrupted: the watchdog waits until it returns."""
    entry = getattr(_inside, "entry", None)
    if entry is None:
        yield
        return
    with _lock:
        entry.paused += 1
    try:
        yield
    finally:
        with _lock:
            entry.paused -= 1


def outside_lock(attempt: Callable[[], Any], detach: Callable[[Any], Any],
                 on_slow: Callable[[], bool] | None = None) -> Any:
    """Run ``attempt()`` (a function that opens a write transaction and evaluates
    expressions in it) so that no evaluation longer than the inline budget runs
    inside it. ``detach(functions)`` gives a context manager yielding expression
    functions that read the store without the transaction. ``on_slow()``, when
    given and true, means the caller changed how ``attempt`` works (it leaves the
    work to the engine): it is simply run again."""
    memo: dict = {}
    for _ in range(100):
        token = _memo.set(memo)
        try:
            return attempt()
        except SlowExpression as slow:
            pending = slow
        finally:
            _memo.reset(token)
        if on_slow is not None and on_slow():
            continue
        # The transaction was rolled back: evaluate with no lock held, then run again.
        key = pending.key
        with detach(pending.functions) as functions:
            if pending.functions is not None and functions is not None:
                _rebind.fns = functions
            try:
                memo[key] = (True, guarded(pending.run, lambda k=key: k, label=pending.label))
            except ExpressionError as e:
                memo[key] = (False, e)
            finally:
                _rebind.fns = None
    raise ExpressionError("", "too many slow expressions in one step")


_rebind = threading.local()


def rebound(functions: Any) -> Any:
    """The functions an evaluation should use: while :func:`outside_lock` runs a
    slow expression again, the ones that read without the transaction."""
    replacement = getattr(_rebind, "fns", None)
    return replacement if replacement is not None else functions


# --- sizes -----------------------------------------------------------------------------

def size_of(value: Any, cap: int) -> int:
    """About how many bytes ``value`` takes as JSON text; the walk stops once the
    count passes ``cap`` (so a huge value costs no more than a small one)."""
    t = type(value)
    if t is str:
        return len(value) + 2
    if value is None or t is int or t is float or t is bool:
        return 8
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        tv = type(v)
        if tv is str:
            total += len(v) + 2
        elif isinstance(v, dict):
            total += 2 + 2 * len(v)
            for k, item in v.items():
                total += len(k) + 2 if type(k) is str else 8
                stack.append(item)
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += 2 + len(v)
            stack.extend(v)
        else:
            total += 8
        if total > cap:
            return total
    return total


def check_size(value: Any, what: str = "expression result") -> Any:
    """``value`` if its JSON text fits the result limit; ExpressionError if not."""
    limit = LIMITS.max_result_bytes
    t = type(value)
    if value is None or t is int or t is float or t is bool:
        return value
    size = size_of(value, limit)
    if size > limit:
        raise ExpressionError("", _too_big(what, size, more=t is not str))
    return value


def _too_big(what: str, size: int, more: bool = False) -> str:
    return (f"{what} is {'over ' if more else ''}{size:,} bytes, more than the limit of "
            f"{LIMITS.max_result_bytes:,} (ORCH_EXPR_MAX_RESULT_BYTES)")


def check_repeat(seq: Any, times: Any) -> None:
    """Before ``seq * times`` builds its result in one C call."""
    if isinstance(times, int) and isinstance(seq, (str, list, tuple, bytes)):
        if len(seq) * max(times, 0) > LIMITS.max_result_bytes:
            raise ExpressionError("", _too_big("a repeated value", len(seq) * times))


def check_power(base: Any, exp: Any) -> None:
    """Before ``base ** exp`` computes a huge integer in one C call."""
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        bits = abs(base).bit_length() * exp
        if bits > LIMITS.max_result_bytes * 8:
            raise ExpressionError("", f"{base} ** {exp} would have about {bits // 8:,} bytes, "
                                      f"more than the limit of {LIMITS.max_result_bytes:,}")


def check_width(width: Any) -> None:
    if isinstance(width, int) and width > LIMITS.max_result_bytes:
        raise ExpressionError("", _too_big("a padded string", width))
