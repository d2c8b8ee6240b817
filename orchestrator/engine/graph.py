"""The shape of a workflow as the engine walks it: direct and reverse
workflows seen through one interface (pure functions of the spec).

A reverse workflow run for ``task_name`` becomes a direct graph over the
dependency closure of that task: each task leads on success to the tasks that
require it, and a task with several requirements is a join over them.
"""
from __future__ import annotations

from collections import Counter
from functools import cached_property

from orchestrator.dsl.spec import Transition, WorkflowSpec
from orchestrator.errors import InvalidInput


class Graph:
    def __init__(self, spec: WorkflowSpec, target: str | None = None):
        self.spec = spec
        self.target = target  # reverse workflows: the task to reach

    @classmethod
    def of(cls, spec: WorkflowSpec, task_name: str | None = None) -> Graph:
        if spec.type == "reverse":
            if not task_name:
                raise InvalidInput(
                    f"workflow {spec.name!r} is a reverse workflow: give the task to reach "
                    f"(params.task_name / --task-name), one of: {', '.join(spec.tasks)}"
                )
            if task_name not in spec.tasks:
                raise InvalidInput(f"workflow {spec.name!r} has no task {task_name!r}")
            return cls(spec, task_name)
        return cls(spec, None)

    @cached_property
    def _upstream_counts(self) -> Counter:
        # Computed once: joins ask for it on every arrival.
        return Counter(
            name
            for task in self.spec.tasks.values()
            for name in {t.target for t in task.transitions() if t.command is None}
        )

    @cached_property
    def _dependants(self) -> dict[str, tuple[Transition, ...]]:
        closure = self.closure
        return {
            name: tuple(Transition(n) for n in closure if name in self.spec.tasks[n].requires)
            for name in closure
        }

    @cached_property
    def closure(self) -> list[str]:
        """Reverse workflows: the tasks needed to reach the target, in spec order."""
        needed, stack = set(), [self.target]
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            stack.extend(self.spec.tasks[name].requires)
        return [n for n in self.spec.tasks if n in needed]

    def start_tasks(self) -> list[str]:
        if self.target is None:
            return self.spec.start_tasks()
        return [n for n in self.closure if not self.spec.tasks[n].requires]

    def clauses(self, task_name: str, outcome: str) -> tuple[Transition, ...]:
        """Transitions to follow, in order, after ``task_name`` ends with ``outcome``
        (SUCCESS, ERROR or SKIPPED): on-success/on-error (a skipped task: on-skip,
        or on-success without one) first, then on-complete."""
        if self.target is not None:
            if outcome == "ERROR":
                return ()
            return self._dependants[task_name]
        task = self.spec.tasks[task_name]
        if outcome == "ERROR":
            return task.on_error + task.on_complete
        if outcome == "SKIPPED" and task.on_skip:
            return task.on_skip + task.on_complete
        return task.on_success + task.on_complete

    def handles_error(self, task_name: str) -> bool:
        return self.target is None and bool(self.spec.tasks[task_name].on_error)

    def join_required(self, task_name: str) -> int | None:
        """How many inbound arrivals start ``task_name``; None when it is not a join."""
        if self.target is not None:
            n = len(self.spec.tasks[task_name].requires)
            return n if n > 1 else None
        join = self.spec.tasks[task_name].join
        if join is None:
            return None
        if join == "all":
            return self._upstream_counts[task_name]
        if join == "one":
            return 1
        return int(join)

    def upstream_count(self, task_name: str) -> int:
        if self.target is not None:
            return len(self.spec.tasks[task_name].requires)
        return self._upstream_counts[task_name]
