"""Checks that need the whole document: references between specs and the
action registry, reverse-workflow cycles, and the syntax of every expression.

Runs after :mod:`orchestrator.dsl.parser` has built the specs; it only
reports problems (into the Source), never changes a spec.
"""
from __future__ import annotations

import re

from orchestrator.actions import registry
from orchestrator.dsl.expressions import check_syntax, has_expression
from orchestrator.dsl.parser import Layout
from orchestrator.dsl.spec import ActionSpec, Document, WorkflowSpec
from orchestrator.dsl.tasks import hint
from orchestrator.dsl.yamlsource import Source
from orchestrator.errors import InvalidInput

# Free text is never evaluated, so braces in a description are not expressions.
_FREE_TEXT_KEYS = ("description", "tags")
_UNCLOSED = ((re.compile(r"<%(?!.*%>)", re.DOTALL), "<%", "%>"),
             (re.compile(r"{{(?!.*}})", re.DOTALL), "{{", "}}"))


TRIGGER_KEYS = ("name", "pattern", "workflow", "input", "params", "timezone", "missed",
                "first_execution_time", "remaining_executions", "description")


class Checker:
    """Cross-reference checks over one parsed document; ``run`` reports into the Source."""

    def __init__(self, doc: Document, source: Source, layout: Layout,
                 lookup_action, lookup_workflow, action_names=()):
        self.doc, self.source, self.layout = doc, source, layout
        self.lookup_action, self.lookup_workflow = lookup_action, lookup_workflow
        self.action_names = action_names

    def run(self) -> None:
        for name, path in self.layout.actions.items():
            self._check_adhoc(self.doc.actions[name], path)
        for name, path in self.layout.workflows.items():
            workflow = self.doc.workflows[name]
            for task in workflow.tasks.values():
                self._check_task(task, path + ("tasks", task.name))
            if workflow.type == "reverse":
                self._check_cycles(workflow, path)
            elif workflow.tasks and not workflow.start_tasks():
                # Every task is the target of a transition: nothing would ever run.
                self.source.report(path + ("tasks",), "no task to start with: every task is "
                                   "the target of a transition (a direct workflow starts with "
                                   "the tasks that no on-* clause names)")
        self._check_triggers()
        for path in list(self.layout.actions.values()) + list(self.layout.workflows.values()):
            self._check_expressions(_at(self.source.data, path), path, ())

    # --- local names as the user writes them ----------------------------------------

    def _short(self, qualified: str) -> str:
        prefix = f"{self.doc.name}." if self.doc.name else ""
        return qualified[len(prefix):] if prefix and qualified.startswith(prefix) else qualified

    # --- actions ----------------------------------------------------------------------

    def _find_action(self, name: str):
        """An ActionSpec, an action class, or None."""
        if name in self.doc.actions:
            return self.doc.actions[name]
        return self.lookup_action(name)

    def _action_params(self, action) -> tuple[list, dict, bool]:
        if isinstance(action, ActionSpec):
            required = [p.name for p in action.input if p.required]
            return required, {p.name: p.default for p in action.input if not p.required}, False
        return registry.params(action)

    def _unknown_action(self, name: str, path: tuple) -> None:
        candidates = list(self.action_names) + [self._short(n) for n in self.doc.actions]
        self.source.report(path, f"unknown action {name!r}" + hint(name, candidates))

    def _check_adhoc(self, spec: ActionSpec, path: tuple) -> None:
        base, seen = spec.base, {spec.name}
        if has_expression(base):
            self.source.report(path + ("base",), "base must be an action name, not an expression")
            return
        action = self._find_action(base)
        if action is None:
            self._unknown_action(self._short(base), path + ("base",))
            return
        # Follow ad-hoc bases down to the registered action, refusing loops.
        walker = action
        while isinstance(walker, ActionSpec):
            if walker.name in seen:
                self.source.report(path + ("base",), f"ad-hoc action {self._short(spec.name)!r} "
                                                     "is its own base through other actions")
                return
            seen.add(walker.name)
            walker = self._find_action(walker.base)
            if walker is None:
                return  # reported on the action whose base is unknown
        if isinstance(spec.base_input, dict):
            raw = _at(self.source.data, path + ("base-input",))
            self._check_input(action, f"action {self._short(base)!r}", spec.base_input,
                              raw if isinstance(raw, dict) else {},
                              path + ("base-input",), path + ("base",))

    # --- tasks ------------------------------------------------------------------------

    def _check_task(self, task, path: tuple) -> None:
        raw = _at(self.source.data, path) or {}
        raw_input = raw.get("input") if isinstance(raw, dict) else None
        raw_input = raw_input if isinstance(raw_input, dict) else {}
        call_key = "workflow" if task.workflow is not None else "action"
        name = task.workflow if task.workflow is not None else task.action
        if name is None or has_expression(name):
            return  # dynamic: resolved at run time
        if task.workflow is not None:
            target = self.doc.workflows.get(name) or (self.lookup_workflow and
                                                      self.lookup_workflow(name))
            if target is None:
                candidates = [self._short(n) for n in self.doc.workflows]
                self.source.report(path + ("workflow",),
                                   f"unknown workflow {name!r}" + hint(name, candidates))
                return
            what = f"workflow {self._short(name)!r}"
        else:
            target = self._find_action(name)
            if target is None:
                # The task path only exists when the task wrote `action:` itself.
                where = path + ("action",) if "action" in raw else path
                self._unknown_action(self._short(name), where)
                return
            what = f"action {self._short(name)!r}"
        if isinstance(task.input, dict):
            input_path = path + ("input",) if "input" in raw else path + (call_key,)
            self._check_input(target, what, task.input, raw_input, input_path,
                              path + (call_key,))

    def _check_input(self, target, what: str, given: dict, explicit: dict,
                     input_path: tuple, call_path: tuple) -> None:
        """Required parameters present, unknown ones refused unless **kwargs."""
        if isinstance(target, WorkflowSpec):
            required = [p.name for p in target.input if p.required]
            optional, kwargs = [p.name for p in target.input if not p.required], False
        else:
            required, optional, kwargs = self._action_params(target)
        known = list(required) + list(optional)
        for name in required:
            if name not in given:
                self.source.report(input_path, f"missing required input {name!r} for {what}")
        # An action may check its literal input itself (the Salt actions refuse a
        # function outside the allowlist): [(input key or None, message)].
        for key, message in getattr(target, "check_input", lambda given: [])(given):
            where = input_path + (key,) if key in explicit else call_path
            self.source.report(where, f"{what}: {message}")
        if kwargs:
            return
        for name in given:
            if name not in known and not has_expression(name):  # computed keys: run time
                where = input_path + (name,) if name in explicit else call_path
                takes = ", ".join(known) if known else "nothing"
                self.source.report(where, f"unknown input {name!r} for {what}"
                                          + (hint(name, known) or f" (it takes: {takes})"))

    # --- reverse workflows ----------------------------------------------------------------

    def _check_cycles(self, workflow: WorkflowSpec, path: tuple) -> None:
        reported: set = set()
        state: dict = {}  # name -> "open" while on the DFS stack, "done" after

        def visit(name: str, trail: list) -> None:
            state[name] = "open"
            trail.append(name)
            for dep in workflow.tasks[name].requires:
                if dep not in workflow.tasks:
                    continue
                if state.get(dep) == "open":
                    cycle = trail[trail.index(dep):] + [dep]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.source.report(path + ("tasks", dep, "requires"),
                                           "requires cycle: " + " -> ".join(cycle))
                elif dep not in state:
                    visit(dep, trail)
            trail.pop()
            state[name] = "done"

        for name in workflow.tasks:
            if name not in state:
                visit(name, [])

    # --- triggers ---------------------------------------------------------------------

    def _check_triggers(self) -> None:
        """The workbook's ``triggers:``: each a cron trigger created with the workbook."""
        from orchestrator.cron import MISSED, check_pattern

        seen: set = set()
        for i, entry in enumerate(self.doc.triggers):
            path = ("triggers", i)
            for key in entry:
                if key not in TRIGGER_KEYS:
                    self.source.report(path + (key,), f"unknown trigger key {key!r}"
                                       + hint(key, TRIGGER_KEYS))
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip():
                self.source.report(path, "a trigger needs a 'name'")
            elif name in seen:
                self.source.report(path + ("name",), f"trigger {name!r} is defined twice")
            seen.add(name)
            try:
                check_pattern(entry.get("pattern"), entry.get("timezone") or "UTC")
            except (InvalidInput, AttributeError) as e:
                message = e.message if isinstance(e, InvalidInput) else "a trigger needs a " \
                    "'pattern' (5 cron fields, or 6 with seconds first)"
                self.source.report(path + ("pattern",), message)
            workflow = entry.get("workflow")
            local = f"{self.doc.name}.{workflow}"
            if not isinstance(workflow, str) or not workflow:
                self.source.report(path, "a trigger needs the 'workflow' it starts")
            elif local not in self.doc.workflows and workflow not in self.doc.workflows \
                    and not (self.lookup_workflow and self.lookup_workflow(workflow)):
                known = [self._short(w) for w in self.doc.workflows]
                self.source.report(path + ("workflow",), f"unknown workflow {workflow!r}"
                                   + hint(workflow, known))
            if entry.get("missed", "skip") not in MISSED:
                self.source.report(path + ("missed",), f"missed must be one of "
                                   f"{', '.join(MISSED)}")
            for key in ("input", "params"):
                if entry.get(key) is not None and not isinstance(entry[key], dict):
                    self.source.report(path + (key,), f"{key} must be a mapping")

    # --- expressions ------------------------------------------------------------------

    def _check_expressions(self, value, path: tuple, rel: tuple) -> None:
        """Check every string under a workflow or action body (``rel``: path inside it)."""
        if isinstance(value, dict):
            # Descriptions and tags of the workflow/action and of its tasks are free text;
            # a `description` key inside some input is data like any other.
            structural = rel == () or (len(rel) == 2 and rel[0] == "tasks")
            for key, item in value.items():
                if not (structural and key in _FREE_TEXT_KEYS):
                    self._check_expressions(item, path + (key,), rel + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._check_expressions(item, path + (index,), rel + (index,))
        elif isinstance(value, str):
            error = check_syntax(value)
            if error is None:
                for pattern, opener, closer in _UNCLOSED:
                    if pattern.search(value):
                        error = f"{opener!r} without a closing {closer!r} in {value!r}"
            if error is not None:
                self.source.report(path, error)


def _at(data, path: tuple):
    """The raw YAML value at ``path``, or None."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data
