"""The action contract.

An action is a class: its ``__init__`` keyword parameters are the action's
input (parameters without a default are required, and validation checks them),
and ``run(context)`` does the work.

* A **sync** action returns its result from ``run`` or raises
  :class:`~orchestrator.errors.ActionError` (any other exception is an error too).
* An **async** action (``sync = False``) starts work elsewhere and returns an
  external reference (any JSON value) from ``run``; the action stays RUNNING
  until someone completes it (``PUT /v2/action_executions/{id}`` or
  :func:`orchestrator.engine.api.complete_action`).
* A **pure** action (``pure = True``) has no side effects and finishes at once;
  the engine may run it inside its own transaction, which makes it cheap.

Actions may run more than once when a process dies while running them: every
attempt sees the same ``context.idempotency_key``; pass it on to the remote
side (``std.http`` sends it as the ``Idempotency-Key`` header).

An action that starts remote work should choose its reference (a job id) and
``context.remember(ref)`` it *before* starting the work; after a crash the next
run sees ``context.external_ref`` and looks the work up instead of starting it
twice.

Custom actions are registered through the ``orchestrator.actions`` entry point
group: ``my.action = mypackage.module:MyAction``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActionContext:
    execution_id: str
    task_execution_id: str
    action_execution_id: str
    task_name: str
    workflow_name: str
    attempt: int = 1
    # What an earlier run of this same action execution saved with save_ref (it
    # died before finishing), or None on the first run.
    external_ref: Any = None
    save_ref: Callable[[Any], None] | None = None

    @property
    def idempotency_key(self) -> str:
        return self.action_execution_id

    def remember(self, ref: Any) -> None:
        """Commit ``ref`` (e.g. a job id chosen before publishing the job) to the
        action execution now, so a run after a crash finds it in ``external_ref``
        and can look the job up instead of starting it again."""
        if self.save_ref is None:
            raise RuntimeError("this action runs inside the engine step: it cannot save a ref")
        self.save_ref(ref)


class Action:
    """Base class of every action. Subclasses declare input as ``__init__`` kwargs."""

    sync: bool = True
    pure: bool = False
    # Which processes may run it: "default" (any engine) or "agent" (only a
    # process with the Salt bridge, placed beside the Salt master).
    queue: str = "default"

    def run(self, context: ActionContext):  # pragma: no cover - interface
        raise NotImplementedError
