"""Typed, validated workflow specs: what the parser produces and the engine reads.

Specs are plain dataclasses, built once per definition and never mutated. Every
value that may hold an expression is kept as raw data (str/list/dict); the
engine evaluates it with :mod:`orchestrator.dsl.expressions` at run time.
A spec serialises to a JSON-safe dict (``to_dict``) and back (``from_dict``)
so the engine can pin an execution to the exact spec it started with.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ENGINE_COMMANDS = ("succeed", "fail", "pause", "noop")
# Task keys that may appear in task-defaults (Mistral's task_defaults.py).
TASK_DEFAULT_KEYS = (
    "on-success", "on-error", "on-complete", "on-skip", "requires", "retry", "wait-before",
    "wait-after", "timeout", "pause-before", "concurrency", "fail-on", "safe-rerun",
)


@dataclass(frozen=True)
class Transition:
    """One entry of an ``on-success``/``on-error``/``on-complete`` list.

    ``target`` is a task name, or one of ENGINE_COMMANDS when ``command`` is set
    (a task whose name equals a command overrides the command, so the parser
    sets ``command`` only when no such task exists). ``guard`` is the raw
    expression string (``<% ... %>`` or ``{{ ... }}``) or None for always.
    ``msg`` is the command's message (may be an expression).
    """

    target: str
    guard: Any = None
    command: str | None = None
    msg: Any = None


@dataclass(frozen=True)
class RetrySpec:
    count: Any  # int or expression
    delay: Any = 0  # seconds or expression
    break_on: Any = None  # expression or None
    continue_on: Any = None  # expression or None


@dataclass(frozen=True)
class WithItemsSpec:
    """``with-items``: one or several ``var in <list expr or literal list>``, zipped."""

    vars: tuple[str, ...]
    sources: tuple[Any, ...]  # expression strings or literal lists, same length as vars


@dataclass(frozen=True)
class TaskSpec:
    name: str
    action: str | None = None  # action name without inline params; None with workflow
    workflow: str | None = None  # sub-workflow name (may be an expression)
    # dict (inline params merged, `input` wins) or an expression
    input: Any = field(default_factory=dict)
    publish: dict = field(default_factory=dict)
    publish_on_error: dict = field(default_factory=dict)
    publish_on_skip: dict = field(default_factory=dict)
    on_success: tuple[Transition, ...] = ()
    on_error: tuple[Transition, ...] = ()
    on_complete: tuple[Transition, ...] = ()
    on_skip: tuple[Transition, ...] = ()
    join: Any = None  # None, "all", "one" or int
    requires: tuple[str, ...] = ()
    with_items: WithItemsSpec | None = None
    concurrency: Any = None
    retry: RetrySpec | None = None
    wait_before: Any = None
    wait_after: Any = None
    timeout: Any = None
    pause_before: Any = False
    fail_on: Any = None
    keep_result: Any = True
    safe_rerun: Any = False
    line: int = 0  # 1-based line of the task in the source, 0 when unknown

    def transitions(self):
        """Every outgoing transition, in clause order (on-success, on-error, on-complete,
        on-skip)."""
        return self.on_success + self.on_error + self.on_complete + self.on_skip


@dataclass(frozen=True)
class InputParam:
    name: str
    default: Any = None
    required: bool = True  # False when a default was given (even a null default)


@dataclass(frozen=True)
class WorkflowSpec:
    name: str  # fully qualified: "<workbook>.<workflow>" inside a workbook
    type: str = "direct"  # "direct" | "reverse"
    input: tuple[InputParam, ...] = ()
    vars: dict = field(default_factory=dict)
    output: Any = None
    output_on_error: Any = None
    tasks: dict[str, TaskSpec] = field(default_factory=dict)  # in document order
    description: str = ""
    tags: tuple[str, ...] = ()

    def start_tasks(self) -> list[str]:
        """Direct workflows: tasks that no transition of another task leads to."""
        targets = {
            t.target
            for task in self.tasks.values()
            for t in task.transitions()
            if t.command is None
        }
        return [name for name in self.tasks if name not in targets]

    def upstream(self, task_name: str) -> list[str]:
        """Tasks with any clause naming ``task_name``, whatever the guard."""
        return [
            t.name
            for t in self.tasks.values()
            if any(tr.command is None and tr.target == task_name for tr in t.transitions())
        ]


@dataclass(frozen=True)
class ActionSpec:
    """An ad-hoc action: a YAML wrapper over a base action."""

    name: str  # fully qualified inside a workbook
    base: str
    base_input: Any = field(default_factory=dict)
    input: tuple[InputParam, ...] = ()
    output: Any = None
    description: str = ""


@dataclass(frozen=True)
class Document:
    """A parsed workbook (``name`` set) or standalone workflow document (``name`` None)."""

    name: str | None
    workflows: dict[str, WorkflowSpec] = field(default_factory=dict)  # by qualified name
    actions: dict[str, ActionSpec] = field(default_factory=dict)  # by qualified name
    triggers: tuple[dict, ...] = ()  # raw `triggers:` entries (used by the scheduler)


def to_dict(obj: Any) -> Any:
    """JSON-safe form of a spec object (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _transitions(items):
    return tuple(Transition(**t) for t in items)


def task_from_dict(d: dict) -> TaskSpec:
    d = dict(d)
    for key in ("on_success", "on_error", "on_complete", "on_skip"):
        d[key] = _transitions(d[key])
    d["requires"] = tuple(d["requires"])
    if d["retry"] is not None:
        d["retry"] = RetrySpec(**d["retry"])
    if d["with_items"] is not None:
        wi = d["with_items"]
        d["with_items"] = WithItemsSpec(tuple(wi["vars"]), tuple(wi["sources"]))
    return TaskSpec(**d)


def workflow_from_dict(d: dict) -> WorkflowSpec:
    d = dict(d)
    d["input"] = tuple(InputParam(**p) for p in d["input"])
    d["tasks"] = {name: task_from_dict(t) for name, t in d["tasks"].items()}
    d["tags"] = tuple(d["tags"])
    return WorkflowSpec(**d)


def action_from_dict(d: dict) -> ActionSpec:
    d = dict(d)
    d["input"] = tuple(InputParam(**p) for p in d["input"])
    return ActionSpec(**d)
