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

Custom actions are registered through the ``orchestrator.actions`` entry point
group: ``my.action = mypackage.module:MyAction``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionContext:
    execution_id: str
    task_execution_id: str
    action_execution_id: str
    task_name: str
    workflow_name: str
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        return self.action_execution_id


class Action:
    """Base class of every action. Subclasses declare input as ``__init__`` kwargs."""

    sync: bool = True
    pure: bool = False

    def run(self, context: ActionContext):  # pragma: no cover - interface
        raise NotImplementedError
