"""The definitions of a project: workbooks, workflows and ad-hoc actions as
uploaded (YAML text), plus environments.

Every function takes the SQLAlchemy connection; the caller owns the
transaction. A definition is validated against what the project already has
(its workflows and ad-hoc actions can be called by name), then pinned with
:func:`orchestrator.engine.specs.pin`: each row points at the content hash of
the parsed document, so an update never changes what a running execution runs.
As in Mistral, a workbook is split into workflows and actions named
``<workbook>.<name>``; those rows belong to the workbook and change with it.
"""
from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, select, update

from orchestrator import dsl
from orchestrator.actions import registry
from orchestrator.dsl.expressions import has_expression
from orchestrator.dsl.spec import ActionSpec, Document, WorkflowSpec
from orchestrator.dsl.tasks import hint
from orchestrator.dsl.yamlsource import Source
from orchestrator.engine import specs
from orchestrator.errors import Conflict, InvalidInput, NotFound, OrchestratorError
from orchestrator.secrets import MASK, masked_env, open_value, seal_env
from orchestrator.store.schema import (
    action_definitions,
    cron_triggers,
    environments,
    workbooks,
    workflow_definitions,
)

WORKBOOK_FILE, WORKFLOWS_FILE, ACTIONS_FILE = "<workbook>", "<workflows>", "<actions>"


def new_id() -> str:
    return str(uuid.uuid4())


def _row(conn, table, project: str, name: str):
    return conn.execute(select(table).where(
        table.c.project == project, table.c.name == name)).mappings().first()


def _names(conn, table, project: str) -> list[str]:
    return list(conn.execute(select(table.c.name).where(table.c.project == project)).scalars())


def _missing(what: str, name: str, known: list[str]) -> NotFound:
    return NotFound(f"no {what} {name!r} in this project" + hint(name, known))


# --- what the project already has, for validation and for running -----------------------

def stored_workflow(conn, project: str, name: str) -> WorkflowSpec | None:
    row = _row(conn, workflow_definitions, project, name)
    return None if row is None else specs.load(conn, row["spec_hash"]).workflows[name]


def stored_action(conn, project: str, name: str) -> ActionSpec | None:
    row = _row(conn, action_definitions, project, name)
    return None if row is None else specs.load(conn, row["spec_hash"]).actions[name]


def _lookups(conn, project: str) -> dict:
    """``dsl.load`` keyword arguments: names resolve to the registry, then the project."""

    def action(name):
        return registry.find(name) or stored_action(conn, project, name)

    return {"lookup_action": action,
            "lookup_workflow": lambda name: stored_workflow(conn, project, name)}


def _load(conn, project: str, text: str, kind: str) -> Document:
    """Parse and validate ``text`` as a workbook, workflows or actions document."""
    if kind == ACTIONS_FILE:
        return dsl.load_actions(text, kind, lookup_action=_lookups(conn, project)["lookup_action"])
    doc = dsl.load(text, kind, **_lookups(conn, project))
    if kind == WORKBOOK_FILE and doc.name is None:
        raise InvalidInput("this is a workflow document, not a workbook (a workbook has 'name' "
                           "and 'workflows'); upload it to /v2/workflows")
    if kind == WORKFLOWS_FILE and doc.name is not None:
        raise InvalidInput("this is a workbook, not a workflow document; upload it to "
                           "/v2/workbooks")
    if kind == WORKFLOWS_FILE and not doc.workflows:
        raise InvalidInput("the document defines no workflow")
    return doc


def validate(conn, project: str, text: str, kind: str) -> Document:
    """The parsed document, or InvalidDefinition / InvalidInput saying what is wrong."""
    return _load(conn, project, text, kind)


def _pieces(text: str, names) -> dict[str, str]:
    """The text of each top-level entry of a standalone document, as a document of
    its own, so that each workflow's ``definition`` is that workflow only."""
    names = list(names)
    if len(names) < 2:
        return {n: text for n in names}
    source = Source(text)
    lines = text.splitlines(keepends=True)

    def start(line: int) -> int:
        # Comments right above an entry belong to it.
        while line > 1 and (not lines[line - 2].strip() or lines[line - 2].startswith("#")):
            line -= 1
        return line

    starts = sorted(start(line) for path, line in source.lines.items() if len(path) == 1)
    out = {}
    for name in names:
        first = start(source.lines[(name,)])
        end = next((s for s in starts if s > first), len(lines) + 1)
        body = "".join(lines[first - 1:end - 1]).strip("\n")
        out[name] = f"---\nversion: '2.0'\n\n{body}\n"
    return out


def _insert_members(conn, project: str, doc: Document, digest: str, now: float,
                    workbook: str | None, texts: dict) -> None:
    for table, names in ((workflow_definitions, doc.workflows), (action_definitions, doc.actions)):
        rows = [{"id": new_id(), "project": project, "name": name, "workbook_name": workbook,
                 "definition": texts[name], "spec_hash": digest, "created_at": now,
                 "updated_at": now} for name in names]
        if rows:
            conn.execute(insert(table), rows)


def _check_free(conn, project: str, doc: Document, workbook: str | None) -> None:
    """Names of ``doc`` that another workbook (or the standalone space) already uses."""
    for table, names, what in ((workflow_definitions, doc.workflows, "workflow"),
                               (action_definitions, doc.actions, "action")):
        for name in names:
            if what == "action" and registry.find(name) is not None:
                raise Conflict(f"action {name!r} is a system action; choose another name")
            row = _row(conn, table, project, name)
            if row is not None and row["workbook_name"] != workbook:
                owner = (f"workbook {row['workbook_name']!r}" if row["workbook_name"]
                         else f"a standalone {what} document")
                raise Conflict(f"{what} {name!r} already exists in {owner}")


# --- workbooks ---------------------------------------------------------------------------

def get_workbook(conn, project: str, name: str):
    row = _row(conn, workbooks, project, name)
    if row is None:
        raise _missing("workbook", name, _names(conn, workbooks, project))
    return row


def _tags(text: str) -> list[str]:
    data = Source(text).data
    tags = data.get("tags") if isinstance(data, dict) else None
    if tags is None or isinstance(tags, str):
        return [] if tags is None else [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput("the workbook's tags must be a list of strings")
    return tags


def create_workbook(conn, project: str, text: str, now: float):
    doc = _load(conn, project, text, WORKBOOK_FILE)
    name = str(doc.name)  # _load checked it is a workbook
    if _row(conn, workbooks, project, name) is not None:
        raise Conflict(f"workbook {name!r} already exists; use PUT to update it")
    _check_free(conn, project, doc, name)
    digest = specs.pin(conn, doc, now)
    conn.execute(insert(workbooks).values(
        id=new_id(), project=project, name=name, definition=text, tags=_tags(text),
        created_at=now, updated_at=now))
    texts = dict.fromkeys([*doc.workflows, *doc.actions], text)
    _insert_members(conn, project, doc, digest, now, name, texts)
    _sync_triggers(conn, project, doc, now)
    return get_workbook(conn, project, name)


def _sync_triggers(conn, project: str, doc: Document, now: float) -> None:
    """Make the workbook's cron triggers (named ``<workbook>.<name>``) those of its
    ``triggers:`` section. A trigger whose schedule did not change keeps its next
    fire time, so updating a workbook neither skips nor repeats a fire."""
    from orchestrator import cron

    t = cron_triggers
    mine = (t.c.project == project) & (t.c.workbook_name == doc.name)
    before = {r["name"]: r for r in conn.execute(select(t).where(mine)).mappings()}
    conn.execute(delete(t).where(mine))
    for i, entry in enumerate(doc.triggers):
        name = f"{doc.name}.{entry['name']}"
        workflow = entry["workflow"]
        if f"{doc.name}.{workflow}" in doc.workflows:
            workflow = f"{doc.name}.{workflow}"
        try:
            row = cron.create(
                conn, project, now, name=name, pattern=entry["pattern"],
                workflow_name=workflow, workflow_input=entry.get("input") or {},
                workflow_params=entry.get("params") or {},
                timezone=entry.get("timezone") or "UTC", missed=entry.get("missed") or "skip",
                first_execution_time=entry.get("first_execution_time"),
                remaining_executions=entry.get("remaining_executions"), workbook=doc.name)
        except OrchestratorError as e:
            raise InvalidInput(f"triggers[{i}] ({entry['name']}): {e.message}") from None
        old = before.get(name)
        if old is not None and (old["pattern"], old["timezone"]) == (row["pattern"],
                                                                     row["timezone"]):
            conn.execute(update(t).where(t.c.id == row["id"]).values(
                next_execution_time=old["next_execution_time"],
                remaining_executions=old["remaining_executions"]))


def update_workbook(conn, project: str, text: str, now: float):
    """Replace the workbook named inside ``text`` and all its workflows and actions."""
    doc = _load(conn, project, text, WORKBOOK_FILE)
    name = str(doc.name)  # _load checked it is a workbook
    old = get_workbook(conn, project, name)
    _check_free(conn, project, doc, name)
    digest = specs.pin(conn, doc, now)
    _delete_members(conn, project, name)
    conn.execute(update(workbooks).where(workbooks.c.id == old["id"]).values(
        definition=text, tags=_tags(text), updated_at=now))
    texts = dict.fromkeys([*doc.workflows, *doc.actions], text)
    _insert_members(conn, project, doc, digest, now, name, texts)
    _sync_triggers(conn, project, doc, now)
    return get_workbook(conn, project, name)


def _delete_members(conn, project: str, workbook: str) -> None:
    for table in (workflow_definitions, action_definitions):
        conn.execute(delete(table).where(table.c.project == project,
                                         table.c.workbook_name == workbook))


def delete_workbook(conn, project: str, name: str) -> None:
    """Delete the workbook, its workflows and its actions (running executions keep
    their pinned copy)."""
    row = get_workbook(conn, project, name)
    _delete_members(conn, project, name)
    conn.execute(delete(cron_triggers).where(cron_triggers.c.project == project,
                                             cron_triggers.c.workbook_name == name))
    conn.execute(delete(workbooks).where(workbooks.c.id == row["id"]))


# --- standalone workflows and actions ----------------------------------------------------

_KINDS = {WORKFLOWS_FILE: (workflow_definitions, "workflow"),
          ACTIONS_FILE: (action_definitions, "action")}


def _members(doc: Document, kind: str) -> dict:
    return doc.workflows if kind == WORKFLOWS_FILE else doc.actions


def create_standalone(conn, project: str, text: str, kind: str, now: float) -> list:
    """POST /v2/workflows or /v2/actions: every entry of the document is new."""
    table, what = _KINDS[kind]
    doc = _load(conn, project, text, kind)
    _check_free(conn, project, doc, None)
    for name in _members(doc, kind):
        if _row(conn, table, project, name) is not None:
            raise Conflict(f"{what} {name!r} already exists; use PUT to update it")
    digest = specs.pin(conn, doc, now)
    _insert_members(conn, project, doc, digest, now, None, _pieces(text, _members(doc, kind)))
    return [_row(conn, table, project, name) for name in _members(doc, kind)]


def update_standalone(conn, project: str, text: str, kind: str, now: float) -> list:
    """PUT /v2/workflows or /v2/actions: every entry must exist outside any workbook."""
    table, what = _KINDS[kind]
    doc = _load(conn, project, text, kind)
    texts = _pieces(text, _members(doc, kind))
    digest = specs.pin(conn, doc, now)
    for name in _members(doc, kind):
        row = _standalone(conn, project, table, what, name, "update")
        conn.execute(update(table).where(table.c.id == row["id"]).values(
            definition=texts[name], spec_hash=digest, updated_at=now))
    return [_row(conn, table, project, name) for name in _members(doc, kind)]


def _standalone(conn, project: str, table, what: str, name: str, verb: str):
    row = _row(conn, table, project, name)
    if row is None:
        raise _missing(what, name, _names(conn, table, project))
    if row["workbook_name"]:
        raise Conflict(f"{what} {name!r} belongs to workbook {row['workbook_name']!r}; "
                       f"{verb} the workbook instead")
    return row


def get_workflow(conn, project: str, name: str):
    row = _row(conn, workflow_definitions, project, name)
    if row is None:
        raise _missing("workflow", name, _names(conn, workflow_definitions, project))
    return row


def delete_workflow(conn, project: str, name: str) -> None:
    row = _standalone(conn, project, workflow_definitions, "workflow", name, "delete")
    conn.execute(delete(workflow_definitions).where(workflow_definitions.c.id == row["id"]))


def get_action(conn, project: str, name: str):
    """An ad-hoc action row, or None for a system action; NotFound for neither."""
    row = _row(conn, action_definitions, project, name)
    if row is None and registry.find(name) is None:
        known = _names(conn, action_definitions, project) + registry.names()
        raise _missing("action", name, known)
    return row


def delete_action(conn, project: str, name: str) -> None:
    if _row(conn, action_definitions, project, name) is None and registry.find(name):
        raise Conflict(f"action {name!r} is a system action; it cannot be deleted")
    row = _standalone(conn, project, action_definitions, "action", name, "delete")
    conn.execute(delete(action_definitions).where(action_definitions.c.id == row["id"]))


def spec_of(conn, row) -> WorkflowSpec | ActionSpec:
    """The pinned spec of a workflow or action row."""
    doc = specs.load(conn, row["spec_hash"])
    return doc.workflows.get(row["name"]) or doc.actions[row["name"]]


# --- starting executions -----------------------------------------------------------------

def workflow_document(conn, project: str, name: str) -> tuple[Document, str]:
    """The document to start workflow ``name`` of the project with, and its qualified
    name. The document holds that workflow, every workflow and ad-hoc action it
    calls by name (as stored now, recursively) and the project's standalone ad-hoc
    actions, so an execution pinned to it needs nothing else."""
    row = get_workflow(conn, project, name)
    workflows: dict[str, WorkflowSpec] = {}
    actions: dict[str, ActionSpec] = {}
    for action_row in conn.execute(select(action_definitions).where(
            action_definitions.c.project == project,
            action_definitions.c.workbook_name.is_(None))).mappings():
        actions[action_row["name"]] = specs.load(conn, action_row["spec_hash"]).actions[
            action_row["name"]]
    pending_workflows, pending_actions = [name], [a.base for a in actions.values()]
    while pending_workflows or pending_actions:
        if pending_actions:
            action_name = pending_actions.pop()
            if action_name in actions or registry.find(action_name) is not None:
                continue
            action = stored_action(conn, project, action_name)
            if action is not None:  # unknown names fail at run time, with the task's context
                actions[action_name] = action
                pending_actions.append(action.base)
            continue
        wf_name = pending_workflows.pop()
        if wf_name in workflows:
            continue
        workflow = stored_workflow(conn, project, wf_name)
        if workflow is None:
            continue
        workflows[wf_name] = workflow
        for task in workflow.tasks.values():
            if task.workflow is not None and has_expression(task.workflow):
                pending_workflows.extend(_names(conn, workflow_definitions, project))
            elif task.workflow is not None:
                pending_workflows.append(task.workflow)
            elif task.action is not None and not has_expression(task.action):
                pending_actions.append(task.action)
    return Document(row["workbook_name"], workflows, actions), name


# --- environments ------------------------------------------------------------------------

def _check_environment(variables, secrets) -> None:
    if not isinstance(variables, dict):
        raise InvalidInput("field 'variables' must be an object of names to values")
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        raise InvalidInput("field 'secrets' must be a list of variable names")
    unknown = [s for s in secrets if s not in variables]
    if unknown:
        raise InvalidInput(f"secrets name variables the environment does not have: "
                           f"{', '.join(map(repr, unknown))}" + hint(unknown[0], list(variables)))


def get_environment(conn, project: str, name: str):
    """An environment row as stored: the values of its secret variables are
    encrypted (``enc:v1:…``; rows from before encryption may hold them in clear).
    Copy them as they are: only the engine decrypts them (``env()``)."""
    row = _row(conn, environments, project, name)
    if row is None:
        raise _missing("environment", name, _names(conn, environments, project))
    return row


def create_environment(conn, project: str, name: str, variables: dict, secrets: list,
                       description: str, now: float):
    if not name or not name.strip():
        raise InvalidInput("field 'name' must not be empty")
    _check_environment(variables, secrets)
    if _row(conn, environments, project, name) is not None:
        raise Conflict(f"environment {name!r} already exists; use PUT to update it")
    conn.execute(insert(environments).values(
        id=new_id(), project=project, name=name, description=description or "",
        variables=seal_env(variables, secrets), secrets=list(dict.fromkeys(secrets)),
        created_at=now, updated_at=now))
    return get_environment(conn, project, name)


def update_environment(conn, project: str, name: str, now: float, variables=None,
                       secrets=None, description=None):
    """Replace the fields given (None keeps the stored one). A secret variable sent
    back as ``***`` (as the API shows it) keeps its stored value. Secret values are
    stored encrypted; a variable that is no longer secret is stored in clear again."""
    old = get_environment(conn, project, name)
    secrets = list(old["secrets"]) if secrets is None else secrets
    if variables is None:
        variables = dict(old["variables"])
    elif isinstance(variables, dict):
        variables = {k: old["variables"][k] if v == MASK and k in secrets
                     and k in old["variables"] else v for k, v in variables.items()}
    _check_environment(variables, secrets)
    variables = seal_env({k: v if k in secrets else open_value(v) for k, v in variables.items()},
                         secrets)
    conn.execute(update(environments).where(environments.c.id == old["id"]).values(
        variables=variables, secrets=list(dict.fromkeys(secrets)), updated_at=now,
        description=old["description"] if description is None else description))
    return get_environment(conn, project, name)


def delete_environment(conn, project: str, name: str) -> None:
    row = get_environment(conn, project, name)
    conn.execute(delete(environments).where(environments.c.id == row["id"]))


def masked_variables(row) -> dict:
    """The environment's variables as users see them: secret values are ``***``
    (and so is any value stored encrypted: ciphertext is never shown)."""
    return masked_env(row["variables"], row["secrets"])

