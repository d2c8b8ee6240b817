"""From YAML data to spec objects: documents, workflows, ad-hoc actions.

A document is either a workbook (``name``, ``workflows``, ``actions``, ...),
whose workflows and actions get qualified ``<workbook>.<name>`` names, or a
standalone workflow document (``version`` plus workflow names at the top).
Local names resolve first inside a workbook: ``action: foo`` means the
workbook's own ``foo`` when it defines one.

Parsing reports problems into the Source and keeps going, so one pass finds
them all; :func:`parse` also returns a :class:`Layout` telling the validator
where in the YAML each spec came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.dsl import tasks as task_reader
from orchestrator.dsl.spec import (
    TASK_DEFAULT_KEYS,
    ActionSpec,
    Document,
    InputParam,
    TaskSpec,
    WorkflowSpec,
)
from orchestrator.dsl.tasks import CLAUSES, TaskContext, hint
from orchestrator.dsl.yamlsource import Source

WORKBOOK_KEYS = ("version", "name", "description", "tags", "workflows", "actions", "triggers")
WORKFLOW_KEYS = ("type", "description", "tags", "input", "vars", "output", "output-on-error",
                 "task-defaults", "tasks")
ACTION_KEYS = ("base", "base-input", "input", "output", "description", "tags")
WORKFLOW_TYPES = ("direct", "reverse")


@dataclass
class Layout:
    """Where each spec was defined: its YAML path, by qualified name."""

    workflows: dict = field(default_factory=dict)
    actions: dict = field(default_factory=dict)


def parse(source: Source) -> tuple[Document, Layout]:
    """The document's specs (as far as they could be read) and where each came from."""
    layout = Layout()
    data = source.data
    if data is None and source.problems:
        return Document(None), layout  # YAML syntax error: nothing more to say
    if not isinstance(data, dict):
        found = "" if data is None else f", not a {type(data).__name__}"
        source.report((), "a workbook must be a mapping with 'version', 'name' and "
                          f"'workflows'{found}")
        return Document(None), layout
    _check_version(source, data)
    if any(key in data for key in ("name", "workflows", "actions")):
        return _parse_workbook(source, data, layout), layout
    return _parse_standalone(source, data, layout), layout


def _check_version(source: Source, data: dict) -> None:
    if "version" not in data:
        source.report((), "missing \"version: '2.0'\" at the top")
    elif str(data["version"]) not in ("2.0", "2"):
        source.report(("version",), f"unsupported version {data['version']!r} (only '2.0')")


def _parse_workbook(source: Source, data: dict, layout: Layout) -> Document:
    for key in data:
        if key not in WORKBOOK_KEYS:
            source.report((key,), f"unknown workbook key {key!r}" + hint(key, WORKBOOK_KEYS))
    name = data.get("name")
    if not isinstance(name, str) or not name:
        source.report(("name",), "a workbook needs a 'name' (a non-empty string)")
        name = "workbook"
    workflows = _section(source, data, "workflows")
    actions = _section(source, data, "actions")
    triggers = data.get("triggers") or []
    if not isinstance(triggers, list) or not all(isinstance(t, dict) for t in triggers):
        source.report(("triggers",), "triggers must be a list of mappings")
        triggers = []
    if not workflows and not actions:
        source.report(("workflows",) if "workflows" in data else (),
                      "a workbook needs at least one workflow or action")

    def local(names):
        return {n: f"{name}.{n}" for n in names if isinstance(n, str)}

    resolve = _Resolver(local(actions), local(workflows))
    doc_actions = {}
    for local_name, body in actions.items():
        path = ("actions", local_name)
        spec = _parse_action(source, f"{name}.{local_name}", body, path, resolve)
        if spec is not None:
            doc_actions[spec.name] = spec
            layout.actions[spec.name] = path
    doc_workflows = {}
    for local_name, body in workflows.items():
        path = ("workflows", local_name)
        spec = _parse_workflow(source, f"{name}.{local_name}", body, path, resolve)
        if spec is not None:
            doc_workflows[spec.name] = spec
            layout.workflows[spec.name] = path
    return Document(name, doc_workflows, doc_actions, tuple(triggers))


def _parse_standalone(source: Source, data: dict, layout: Layout) -> Document:
    bodies = {}
    for key, body in data.items():
        if not isinstance(key, str):
            source.report((key,), f"workflow name must be a string, not {key!r}")
        elif key != "version":
            bodies[key] = body
    if not bodies:
        source.report((), "no workflows defined (a workflow document has workflow names "
                          "at the top; a workbook has 'name' and 'workflows')")
    resolve = _Resolver({}, {n: n for n in bodies})
    workflows = {}
    for name, body in bodies.items():
        spec = _parse_workflow(source, name, body, (name,), resolve)
        if spec is not None:
            workflows[name] = spec
            layout.workflows[name] = (name,)
    return Document(None, workflows)


def parse_actions(source: Source) -> tuple[Document, Layout]:
    """A standalone ad-hoc action document: ``version`` plus action names at the top."""
    layout = Layout()
    data = source.data
    if data is None and source.problems:
        return Document(None), layout
    if not isinstance(data, dict):
        found = "" if data is None else f", not a {type(data).__name__}"
        source.report((), "an action document must be a mapping of \"version: '2.0'\" and "
                          f"action names{found}")
        return Document(None), layout
    _check_version(source, data)
    bodies = {}
    for key, body in data.items():
        if not isinstance(key, str):
            source.report((key,), f"action name must be a string, not {key!r}")
        elif key != "version":
            bodies[key] = body
    if not bodies:
        source.report((), "no actions defined (an action document has action names at the "
                          "top, each with 'base')")
    resolve = _Resolver({n: n for n in bodies}, {})
    actions = {}
    for name, body in bodies.items():
        spec = _parse_action(source, name, body, (name,), resolve)
        if spec is not None:
            actions[name] = spec
            layout.actions[name] = (name,)
    return Document(None, actions=actions), layout


def _section(source: Source, data: dict, key: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        source.report((key,), f"{key} must be a mapping of names to definitions")
        return {}
    good = {}
    for name, body in value.items():
        if not isinstance(name, str):
            source.report((key, name), f"name must be a string, not {name!r}")
        else:
            good[name] = body
    return good


class _Resolver:
    """Qualifies names that refer to the document's own actions and workflows."""

    def __init__(self, actions: dict, workflows: dict):
        self.actions, self.workflows = actions, workflows

    def action(self, name):
        return self.actions.get(name, name)

    def workflow(self, name):
        return self.workflows.get(name, name)


def read_input_params(source: Source, value, path: tuple) -> tuple:
    """``[a, {b: default}]`` -> InputParams; a default (even null) makes it optional."""
    if value is None:
        return ()
    if not isinstance(value, list):
        source.report(path, "input must be a list of names or 'name: default' pairs")
        return ()
    params, seen = [], set()
    for index, item in enumerate(value):
        if isinstance(item, str):
            param = InputParam(item)
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
            (pname, default), = item.items()
            param = InputParam(pname, default, required=False)
        else:
            source.report(path + (index,), "input entry must be a name or a one-key "
                                           f"'name: default' mapping, not {item!r}")
            continue
        if param.name in seen:
            source.report(path + (index,), f"input {param.name!r} is declared twice")
        seen.add(param.name)
        params.append(param)
    return tuple(params)


def _parse_action(source: Source, qname: str, body, path: tuple, resolve) -> ActionSpec | None:
    if not isinstance(body, dict):
        source.report(path, "an ad-hoc action must be a mapping with 'base'")
        return None
    for key in body:
        if key not in ACTION_KEYS:
            source.report(path + (key,), f"unknown action key {key!r}" + hint(key, ACTION_KEYS))
    base = body.get("base")
    if not isinstance(base, str) or not base.strip():
        source.report(path if "base" not in body else path + ("base",),
                      "an ad-hoc action needs 'base': the action it wraps")
        return None
    base_input = body.get("base-input")
    if base_input is None:
        base_input = {}
    elif not isinstance(base_input, (dict, str)):
        source.report(path + ("base-input",), "base-input must be a mapping or an expression")
    description = body.get("description") or ""
    return ActionSpec(qname, resolve.action(base.strip()), base_input,
                      read_input_params(source, body.get("input"), path + ("input",)),
                      body.get("output"), str(description))


def _parse_workflow(source: Source, qname: str, body, path: tuple, resolve) -> WorkflowSpec | None:
    if not isinstance(body, dict):
        source.report(path, "a workflow must be a mapping with 'tasks'")
        return None
    for key in body:
        if key not in WORKFLOW_KEYS:
            source.report(path + (key,), f"unknown workflow key {key!r}" + hint(key, WORKFLOW_KEYS))
    wf_type = body.get("type", "direct")
    if wf_type not in WORKFLOW_TYPES:
        source.report(path + ("type",), f"workflow type must be 'direct' or 'reverse', "
                                        f"not {wf_type!r}")
        wf_type = "direct"
    raw_tasks = body.get("tasks")
    if not isinstance(raw_tasks, dict) or not raw_tasks:
        source.report(path + ("tasks",) if "tasks" in body else path,
                      "a workflow needs 'tasks': a mapping of task names to tasks")
        raw_tasks = {}
    ctx = TaskContext(source, frozenset(n for n in raw_tasks if isinstance(n, str)),
                      wf_type == "reverse")
    defaults = _read_defaults(ctx, body.get("task-defaults"), path + ("task-defaults",))
    task_specs = {}
    for name, task_body in raw_tasks.items():
        tpath = path + ("tasks", name)
        if not task_reader.check_name(ctx, name, task_body, tpath):
            continue
        spec = _parse_task(ctx, name, task_body, tpath, defaults, resolve)
        if spec is not None:
            task_specs[name] = spec
    for key in ("vars",):
        if body.get(key) is not None and not isinstance(body[key], dict):
            source.report(path + (key,), f"{key} must be a mapping")
    tags = _read_tags(source, body.get("tags"), path + ("tags",))
    return WorkflowSpec(
        name=qname, type=wf_type,
        input=read_input_params(source, body.get("input"), path + ("input",)),
        vars=body.get("vars") if isinstance(body.get("vars"), dict) else {},
        output=body.get("output"), output_on_error=body.get("output-on-error"),
        tasks=task_specs, description=str(body.get("description") or ""),
        tags=tags,
    )


def _read_tags(source: Source, value, path: tuple) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        source.report(path, "tags must be a list of strings")
        return ()
    return tuple(value)


def _read_defaults(ctx: TaskContext, body, path: tuple) -> dict:
    if body is None:
        return {}
    if not isinstance(body, dict):
        ctx.source.report(path, "task-defaults must be a mapping")
        return {}
    return task_reader.read_keys(ctx, body, path, TASK_DEFAULT_KEYS)


def _parse_task(ctx: TaskContext, name: str, body, path: tuple, defaults: dict,
                resolve) -> TaskSpec | None:
    if body is None:
        body = {}  # a bare `task_name:` runs std.noop
    if not isinstance(body, dict):
        ctx.source.report(path, "a task must be a mapping of task keys")
        return None
    allowed = task_reader.TASK_KEYS
    fields = task_reader.read_keys(ctx, body, path, allowed)
    fields.update(task_reader.read_call(ctx, body, path))
    fields = _apply_defaults(name, fields, defaults)
    publish = dict(fields.pop("publish", None) or {})
    publish_on_error = dict(fields.pop("publish_on_error", None) or {})
    publish_on_skip = dict(fields.pop("publish_on_skip", None) or {})
    # The advanced on-* form carries its own publish; the task's own publish keys win.
    for clause in CLAUSES:
        key = clause.replace("-", "_")
        transitions, clause_publish = fields.pop(key, ((), {}))
        fields[key] = transitions
        if clause == "on-skip":
            publish_on_skip = {**clause_publish, **publish_on_skip}
            continue
        if clause != "on-error":
            publish = {**clause_publish, **publish}
        if clause != "on-success":
            publish_on_error = {**clause_publish, **publish_on_error}
    if "action" in fields:
        fields["action"] = resolve.action(fields["action"])
    elif "workflow" in fields:
        fields["workflow"] = resolve.workflow(fields["workflow"])
    else:
        fields["action"] = "std.noop"
    fields = {k: v for k, v in fields.items() if v is not None}
    return TaskSpec(name=name, publish=publish, publish_on_error=publish_on_error,
                    publish_on_skip=publish_on_skip, line=ctx.source.line(path), **fields)


def _apply_defaults(name: str, fields: dict, defaults: dict) -> dict:
    """Mistral's task-defaults (``direct_workflow.py`` get_on_*_clause): a key the
    task sets wins whole, so its own on-error replaces the default on-error rather
    than adding to it; a clause taken from the defaults drops entries leading back
    to the task itself (else a default `on-error: handle` would make `handle` loop
    on its own failure). Default `requires` add to the task's own."""
    out = dict(fields)
    for key, value in defaults.items():
        if key == "requires":
            # Reverse workflows add the default prerequisites to the task's own.
            merged = out.get("requires", ()) + tuple(r for r in value if r != name)
            out[key] = tuple(dict.fromkeys(merged))
        elif key in ("on_success", "on_error", "on_complete", "on_skip"):
            if key not in out or not out[key][0]:  # an empty own clause takes the default
                transitions, publish = value
                own = tuple(t for t in transitions if t.command or t.target != name)
                out[key] = (own, publish)
        elif key not in out:
            out[key] = value
    return out
