"""States of executions, tasks and actions (Mistral's lists) and the only
place that decides which change is allowed: one edge per line.

``check(table, old, new)`` returns False for a no-op (same state), True for an
allowed change, and raises IllegalTransition otherwise.
"""
from __future__ import annotations

from enum import StrEnum

from orchestrator.errors import IllegalTransition


class WorkflowState(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


class TaskState(StrEnum):
    IDLE = "IDLE"  # created, not started yet
    WAITING = "WAITING"  # a join waiting for its inbound tasks
    RUNNING_DELAYED = "RUNNING_DELAYED"  # wait-before, wait-after or a retry delay
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class ActionState(StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


W, T, A = WorkflowState, TaskState, ActionState

WORKFLOW_TRANSITIONS: dict[WorkflowState, frozenset[WorkflowState]] = {
    W.IDLE: frozenset({
        W.RUNNING,  # started
    }),
    W.RUNNING: frozenset({
        W.PAUSED,  # paused by a user, a `pause` command or pause-before
        W.SUCCESS,  # no transitions left and no unhandled error, or `succeed`
        W.ERROR,  # an unhandled task error, `fail`, or forced by a user
        W.CANCELLED,  # cancelled by a user
    }),
    W.PAUSED: frozenset({
        W.RUNNING,  # resumed
        W.CANCELLED,  # cancelled while paused
        W.ERROR,  # forced by a user
        W.SUCCESS,  # forced by a user
    }),
    W.ERROR: frozenset({
        W.RUNNING,  # a failed task is rerun or skipped
    }),
    W.SUCCESS: frozenset(),
    W.CANCELLED: frozenset(),
}

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    T.IDLE: frozenset({
        T.RUNNING,  # started
        T.RUNNING_DELAYED,  # wait-before
        T.ERROR,  # input, with-items or workflow name failed to evaluate
        T.CANCELLED,  # workflow cancelled
    }),
    T.WAITING: frozenset({
        T.IDLE,  # join satisfied
        T.ERROR,  # join can never be satisfied
        T.CANCELLED,  # workflow cancelled
    }),
    T.RUNNING_DELAYED: frozenset({
        T.RUNNING,  # delay over
        T.SUCCESS,  # wait-after over
        T.ERROR,  # wait-after over, or timed out during a retry delay
        T.CANCELLED,  # workflow cancelled
    }),
    T.RUNNING: frozenset({
        T.SUCCESS,  # action(s) succeeded
        T.ERROR,  # action(s) failed, timeout, fail-on, publish error
        T.RUNNING_DELAYED,  # retry delay or wait-after
        T.CANCELLED,  # workflow cancelled
    }),
    T.ERROR: frozenset({
        T.RUNNING,  # rerun by a user
        T.SKIPPED,  # skipped by a user
        T.WAITING,  # an unsatisfied join waits again: a rerun may bring what it missed
    }),
    T.SUCCESS: frozenset(),
    T.CANCELLED: frozenset(),
    T.SKIPPED: frozenset(),
}

ACTION_TRANSITIONS: dict[ActionState, frozenset[ActionState]] = {
    A.RUNNING: frozenset({
        A.SUCCESS,  # returned a result (sync) or completed from outside (async)
        A.ERROR,  # raised, or completed with an error from outside
        A.CANCELLED,  # task timed out or workflow cancelled
    }),
    A.SUCCESS: frozenset(),
    A.ERROR: frozenset(),
    A.CANCELLED: frozenset(),
}

TABLES = {"workflow": WORKFLOW_TRANSITIONS, "task": TASK_TRANSITIONS, "action": ACTION_TRANSITIONS}

WORKFLOW_DONE = frozenset({W.SUCCESS, W.ERROR, W.CANCELLED})
TASK_DONE = frozenset({T.SUCCESS, T.ERROR, T.CANCELLED, T.SKIPPED})
ACTION_DONE = frozenset({A.SUCCESS, A.ERROR, A.CANCELLED})


def check(kind: str, old: str, new: str) -> bool:
    """True if ``old -> new`` is a change the table allows; False if it is no change."""
    table = TABLES[kind]
    old_s, new_s = type(next(iter(table)))(old), type(next(iter(table)))(new)
    if old_s == new_s:
        return False
    if new_s not in table[old_s]:
        raise IllegalTransition(f"{kind} cannot go from {old_s.value} to {new_s.value}")
    return True
