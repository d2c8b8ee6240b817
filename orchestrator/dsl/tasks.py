"""Reading one task (or ``task-defaults``) body into TaskSpec fields.

Each reader checks the shape of one key and reports problems into the
:class:`~orchestrator.dsl.yamlsource.Source`; what it returns is only used
when the document turns out valid, so on a problem it returns a harmless value
and lets the other keys be checked too (every problem is reported at once).
References to other tasks are checked here because the workflow's task names
are known before any task is read; references to actions and workflows are
checked later by :mod:`orchestrator.dsl.validate`, once every spec is built.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import yaml

from orchestrator.dsl import policies
from orchestrator.dsl.expressions import has_expression
from orchestrator.dsl.inline import InlineError, parse_call
from orchestrator.dsl.spec import ENGINE_COMMANDS, Transition, WithItemsSpec
from orchestrator.dsl.yamlsource import Source, safe_load

CLAUSES = ("on-success", "on-error", "on-complete", "on-skip")
DIRECT_ONLY = CLAUSES + ("join",)
TASK_KEYS = (
    "action", "workflow", "input", "publish", "publish-on-error", "publish-on-skip", "join",
    "requires",
    "with-items", "concurrency", "retry", "wait-before", "wait-after", "timeout",
    "pause-before", "fail-on", "keep-result", "safe-rerun",
) + CLAUSES
# Accepted for Mistral compatibility but without effect here: there is one
# executor pool (no `target` affinity) and task descriptions are not stored.
IGNORED_KEYS = ("description", "tags", "target")
COMMAND_ARGS = {"succeed": ("msg",), "fail": ("msg",), "pause": ("msg",), "noop": ()}
MAX_NAME, MAX_JOIN_NAME = 255, 208
_WITH_ITEMS = re.compile(r"^\s*([A-Za-z_]\w*)\s+in\s+(.+?)\s*$", re.DOTALL)


def hint(word: str, candidates) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class TaskContext:
    """What a task reader needs to know about the workflow around it."""

    source: Source
    task_names: frozenset
    reverse: bool


def read_keys(ctx: TaskContext, body: dict, path: tuple, allowed: tuple) -> dict:
    """Parse every known key of a task or task-defaults body into TaskSpec kwargs.

    On-* clauses come back as ``(transitions, clause_publish)`` pairs; the caller
    combines them with task-defaults before building the spec.
    """
    fields: dict = {}
    for key, value in body.items():
        kpath = path + (key,)
        if key in IGNORED_KEYS:
            continue
        if key not in allowed:
            ctx.source.report(kpath, f"unknown key {key!r}" + hint(key, allowed))
            continue
        if ctx.reverse and key in DIRECT_ONLY:
            ctx.source.report(kpath, f"{key!r} is a direct-only key; reverse workflows "
                                     "use 'requires'")
            continue
        if not ctx.reverse and key == "requires":
            ctx.source.report(kpath, "'requires' is for reverse workflows; direct "
                                     "workflows use on-success/on-error/on-complete/on-skip")
            continue
        if key in ("action", "workflow", "input"):
            continue  # read together in read_call
        reader = _READERS[key]
        fields[key.replace("-", "_")] = reader(ctx, value, kpath)
    return fields


def read_call(ctx: TaskContext, body: dict, path: tuple) -> dict:
    """``action``/``workflow`` with inline parameters, merged with ``input``."""
    src = ctx.source
    fields: dict = {}
    inline: dict = {}
    if "action" in body and "workflow" in body:
        src.report(path + ("workflow",), "a task has either 'action' or 'workflow', not both")
    for key in ("action", "workflow"):
        if key not in body:
            continue
        value = body[key]
        if not isinstance(value, str) or not value.strip():
            src.report(path + (key,), f"{key} must be a name (a non-empty string)")
            continue
        try:
            name, inline = parse_call(value)
        except InlineError as exc:
            src.report(path + (key,), f"bad inline parameters: {exc}")
            break  # the call is unreadable: checking its name or input would only add noise
        fields[key] = name
        break
    if "input" in body:
        value = body["input"]
        if isinstance(value, str) and has_expression(value):
            if inline:
                src.report(path + ("input",), "inline parameters cannot be merged with an "
                                              "expression 'input'; put them in the input")
            fields["input"] = value
        elif isinstance(value, dict):
            fields["input"] = {**inline, **value}
        elif value is None:
            fields["input"] = dict(inline)
        else:
            src.report(path + ("input",), "input must be a mapping or an expression")
    elif inline:
        fields["input"] = inline
    return fields


def read_transitions(ctx: TaskContext, value, path: tuple):
    """An on-* clause -> ``(tuple of Transition, publish dict from the advanced form)``."""
    publish: dict = {}
    if isinstance(value, dict) and value and set(value) <= {"next", "publish"}:
        publish = _clause_publish(ctx, value.get("publish"), path + ("publish",))
        path, value = path + ("next",), value.get("next") or []
    if value is None:
        return (), publish
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        ctx.source.report(path, "expected a task name or a list of task names")
        return (), publish
    out = []
    for index, item in enumerate(items):
        ipath = path if item is value else path + (index,)
        transition = _read_transition(ctx, item, ipath)
        if transition is not None:
            out.append(transition)
    return tuple(out), publish


def _clause_publish(ctx: TaskContext, value, path: tuple) -> dict:
    # Only the branch part fits TaskSpec: `global` would need a place in the spec.
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.source.report(path, "publish must be a mapping")
        return {}
    for key in value:
        if key != "branch":
            ctx.source.report(path + (key,), f"publish scope {key!r} is not supported "
                                             "(only 'branch')")
    branch = value.get("branch") or {}
    if not isinstance(branch, dict):
        ctx.source.report(path + ("branch",), "publish.branch must be a mapping")
        return {}
    return branch


def _read_transition(ctx: TaskContext, item, path: tuple):
    src = ctx.source
    guard = None
    if isinstance(item, dict):
        if len(item) != 1:
            src.report(path, "expected one 'task: <% guard %>' pair per list item")
            return None
        (item, guard), = item.items()
    if not isinstance(item, str):
        src.report(path, f"expected a task name, got {item!r}")
        return None
    try:
        target, args = parse_call(item)
    except InlineError as exc:
        src.report(path, f"bad transition {item!r}: {exc}")
        return None
    if target in ctx.task_names:
        if args:
            src.report(path, f"task {target!r} takes no arguments in a transition")
        return Transition(target, guard)
    if target in ENGINE_COMMANDS:
        allowed = COMMAND_ARGS[target]
        for arg in args:
            if arg not in allowed:
                takes = f"takes only {', '.join(allowed)}" if allowed else "takes no arguments"
                src.report(path, f"unknown argument {arg!r} for engine command {target!r} "
                                 f"({target} {takes})")
        return Transition(target, guard, command=target, msg=args.get("msg"))
    src.report(path, f"unknown task {target!r}" + hint(target, ctx.task_names))
    return None


def read_requires(ctx: TaskContext, value, path: tuple) -> tuple:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        ctx.source.report(path, "requires must be a task name or a list of task names")
        return ()
    out = []
    for index, name in enumerate(items):
        ipath = path if items is not value else path + (index,)
        if not isinstance(name, str):
            ctx.source.report(ipath, f"expected a task name, got {name!r}")
        elif name not in ctx.task_names:
            ctx.source.report(ipath, f"unknown task {name!r}" + hint(name, ctx.task_names))
        else:
            out.append(name)
    return tuple(out)


def read_join(ctx: TaskContext, value, path: tuple):
    if value in ("all", "one") or (type(value) is int and value > 0):
        return value
    ctx.source.report(path, f"join must be 'all', 'one' or a positive integer, not {value!r}")
    return None


def read_with_items(ctx: TaskContext, value, path: tuple):
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        ctx.source.report(path, "with-items must be 'var in <list>' or a list of them")
        return None
    names, sources = [], []
    for index, item in enumerate(items):
        ipath = path if items is not value else path + (index,)
        match = _WITH_ITEMS.match(item) if isinstance(item, str) else None
        if not match:
            ctx.source.report(ipath, f"expected 'var in <% expression %>' or 'var in [...]', "
                                     f"got {item!r}")
            continue
        name, raw = match.groups()
        if has_expression(raw):
            sources.append(raw)
        else:
            try:
                literal = safe_load(raw)  # within the document limits
            except yaml.YAMLError:
                literal = None
            if not isinstance(literal, list):
                ctx.source.report(ipath, f"the source of {name!r} must be an expression or "
                                         f"a literal list, got {raw!r}")
                continue
            sources.append(literal)
        if name in names:
            ctx.source.report(ipath, f"with-items variable {name!r} is used twice")
        names.append(name)
    # Expression lengths are only known at run time; literal ones can be checked now.
    lengths = [len(s) for s in sources if isinstance(s, list)]
    if len(set(lengths)) > 1:
        ctx.source.report(path, "zipped literal lists have different lengths "
                                f"({', '.join(map(str, lengths))})")
    if len(names) != len(items):
        return None
    return WithItemsSpec(tuple(names), tuple(sources))


def read_mapping(ctx: TaskContext, value, path: tuple) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.source.report(path, f"{path[-1]} must be a mapping")
        return {}
    return value


def check_name(ctx: TaskContext, name, body, path: tuple) -> bool:
    """Task names are strings within Mistral's database column limits."""
    if not isinstance(name, str):
        ctx.source.report(path, f"task name must be a string, not {type(name).__name__} "
                                f"{name!r} (quote it)")
        return False
    is_join = isinstance(body, dict) and "join" in body
    limit = MAX_JOIN_NAME if is_join else MAX_NAME
    if len(name) > limit:
        kind = "join task" if is_join else "task"
        ctx.source.report(path, f"{kind} name is {len(name)} characters long (at most {limit})")
    return True


_READERS = {
    "on-success": read_transitions,
    "on-error": read_transitions,
    "on-complete": read_transitions,
    "on-skip": read_transitions,
    "requires": read_requires,
    "join": read_join,
    "with-items": read_with_items,
    "publish": read_mapping,
    "publish-on-error": read_mapping,
    "publish-on-skip": read_mapping,
    "retry": policies.read_retry,
    "concurrency": policies.read_positive,
    "timeout": policies.read_seconds,
    "wait-before": policies.read_seconds,
    "wait-after": policies.read_seconds,
    "pause-before": policies.read_flag,
    "keep-result": policies.read_flag,
    "safe-rerun": policies.read_flag,
    "fail-on": policies.read_condition,
}
