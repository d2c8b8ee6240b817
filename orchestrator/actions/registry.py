"""Where action names are looked up: the built-in ``std.*`` actions plus the
plug-ins of the ``orchestrator.actions`` entry point group.

Plug-ins load lazily, once, on the first lookup. A plug-in that fails to import
is logged and skipped: one broken package must not take every workflow down.
Later registrations win over earlier ones (std, then entry points, then
:func:`register`), so a plug-in may replace a std action deliberately.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import logging
import threading

from orchestrator.actions import std
from orchestrator.actions.base import Action
from orchestrator.errors import NotFound

__all__ = ["find", "get", "names", "register", "params", "reload", "did_you_mean", "suggestions"]

ENTRY_POINT_GROUP = "orchestrator.actions"

log = logging.getLogger(__name__)

_actions: dict[str, type[Action]] = {}
_overrides: dict[str, type[Action]] = {}
_loaded = False
_lock = threading.Lock()


def _load() -> dict[str, type[Action]]:
    global _loaded
    if _loaded:
        return _actions
    with _lock:
        if not _loaded:
            found = dict(std.ACTIONS)
            found.update(_load_entry_points())
            found.update(_overrides)
            _actions.clear()
            _actions.update(found)
            _loaded = True
    return _actions


def _load_entry_points() -> dict[str, type[Action]]:
    found: dict[str, type[Action]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as e:  # any import-time failure of foreign code
            log.warning("skipping action %r from %r: %s: %s", ep.name, ep.value,
                        type(e).__name__, e)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Action)):
            log.warning("skipping action %r from %r: not a subclass of "
                        "orchestrator.actions.base.Action", ep.name, ep.value)
            continue
        found[ep.name] = cls
    return found


def reload() -> None:
    """Forget loaded plug-ins so the next lookup scans the entry points again
    (after installing a package at run time, and in tests)."""
    global _loaded
    with _lock:
        _loaded = False


def register(name: str, cls: type[Action]) -> None:
    """Register ``cls`` as action ``name`` (tests and in-process plug-ins)."""
    if not (isinstance(cls, type) and issubclass(cls, Action)):
        raise TypeError(f"{cls!r} is not a subclass of orchestrator.actions.base.Action")
    with _lock:
        _overrides[name] = cls
        _actions[name] = cls


def unregister(name: str) -> None:
    """Undo :func:`register` (tests)."""
    with _lock:
        _overrides.pop(name, None)
    reload()


def find(name: str) -> type[Action] | None:
    """The action class called ``name``, or None."""
    return _load().get(name)


def get(name: str) -> type[Action]:
    """The action class called ``name``; raises NotFound with suggestions."""
    cls = find(name)
    if cls is None:
        raise NotFound(f"unknown action {name!r}{did_you_mean(name)}")
    return cls


def did_you_mean(name: str) -> str:
    """`` (did you mean 'std.echo'?)`` or an empty string; for validation messages."""
    close = suggestions(name)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def suggestions(name: str, limit: int = 3) -> list[str]:
    """Action names close to ``name``, best first. Every std name shares the
    "std." prefix, so a low cutoff would suggest all of them; a bare name
    ("echo") is also compared with the part after the namespace."""
    scored = []
    for candidate in names():
        ratio = difflib.SequenceMatcher(None, name, candidate).ratio()
        if "." not in name:
            short = candidate.rpartition(".")[2]
            ratio = max(ratio, difflib.SequenceMatcher(None, name, short).ratio())
        if ratio >= 0.75:
            scored.append((-ratio, candidate))
    return [c for _, c in sorted(scored)[:limit]]


def names() -> list[str]:
    """All action names, sorted."""
    return sorted(_load())


def params(cls: type[Action]) -> tuple[list[str], dict, bool]:
    """The input an action takes, from its ``__init__``: (required names,
    {optional name: default}, whether it accepts arbitrary ``**kwargs``)."""
    required: list[str] = []
    optional: dict = {}
    var_kw = False
    if cls.__init__ is object.__init__:
        return required, optional, var_kw
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.default is p.empty:
            required.append(p.name)
        else:
            optional[p.name] = p.default
    return required, optional, var_kw
