"""Turning a task item into an action run or a sub-workflow execution.

Ad-hoc actions are resolved here into the Python action that really runs
(``base`` chain, ``base-input`` evaluated over the ad-hoc input); their
``output`` is applied to the result when the action finishes. Pure actions
run at once, inside the step; others are queued as ``run_action`` work for an
executor.
"""
from __future__ import annotations

from sqlalchemy import select

from orchestrator.actions import registry
from orchestrator.actions.base import ActionContext
from orchestrator.dsl.expressions import evaluate, has_expression
from orchestrator.engine import dataflow, specs, workflows
from orchestrator.engine.states import ActionState as A
from orchestrator.engine.tx import Tx, new_id
from orchestrator.errors import ActionError, ExpressionError, OrchestratorError
from orchestrator.store import schema


def _lookup(table: dict, doc, name: str):
    if name in table:
        return name
    if doc.name and f"{doc.name}.{name}" in table:
        return f"{doc.name}.{name}"
    return None


def resolve(doc, name: str, given: dict) -> tuple[str, dict, str | None]:
    """(Python action name, its input, the ad-hoc action named) for ``name``."""
    adhoc, seen = None, set()
    while (qualified := _lookup(doc.actions, doc, name)) is not None:
        if qualified in seen:
            raise OrchestratorError(f"ad-hoc action {qualified!r} is based on itself")
        seen.add(qualified)
        spec = doc.actions[qualified]
        adhoc = adhoc or qualified
        declared = {p.name: p for p in spec.input}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise OrchestratorError(f"action {qualified!r} has no input {', '.join(unknown)}")
        missing = [n for n, p in declared.items() if p.required and n not in given]
        if missing:
            raise OrchestratorError(f"action {qualified!r} needs input {', '.join(missing)}")
        values = {n: p.default for n, p in declared.items() if not p.required}
        values.update(given)
        given = evaluate(spec.base_input or {}, values) or {}
        name = spec.base
    return name, given, adhoc


def transform_output(tx: Tx, ex: dict, task: dict, action: dict, ok: bool, output, info):
    """Apply ad-hoc ``output`` expressions, innermost first."""
    if not ok or not action.get("adhoc"):
        return ok, output, info
    doc = specs.load(tx.conn, ex["spec_hash"])
    chain, name = [], action["adhoc"]
    while (qualified := _lookup(doc.actions, doc, name)) is not None and len(chain) < 50:
        chain.append(doc.actions[qualified])
        name = doc.actions[qualified].base
    for spec in reversed(chain):
        if spec.output is not None:
            try:
                output = evaluate(spec.output, output)
            except ExpressionError as e:
                return False, None, f"action {spec.name!r}: output: {e}"
    return ok, output, info


def run(instance, context: ActionContext):
    """Run an action object: (ok, output or error data, error message, retryable).
    ``retryable`` is False when the action said trying again cannot help."""
    try:
        return True, instance.run(context), None, True
    except ActionError as e:
        return False, e.data, e.message, e.retryable
    except Exception as e:  # an action's own bug is its task's error, not ours
        return False, None, f"{type(e).__name__}: {e}", True


def context_for(ex: dict, task: dict, action: dict, save_ref=None) -> ActionContext:
    return ActionContext(
        execution_id=ex["id"], task_execution_id=task["id"], action_execution_id=action["id"],
        task_name=task["name"], workflow_name=ex["workflow_name"], attempt=action["runs"],
        external_ref=action.get("external_ref"), save_ref=save_ref,
    )


def work_kind(instance) -> str:
    """The queue an action's run waits in: agent actions only go to a bridge."""
    return "run_agent" if getattr(instance, "queue", "default") == "agent" else "run_action"


def items(tx: Tx, ex: dict, task: dict, spec, indexes: list[int]) -> list[tuple[dict, bool]]:
    """Launch the given items; return (action row, ok) for those already finished."""
    ctx = dataflow.inbound(tx, ex, task)
    doc = specs.load(tx.conn, ex["spec_hash"])
    finished = []
    for index in indexes:
        data = ctx if task["items"] is None else {**ctx, **task["items"][index]}
        row = tx.add("action", {
            "id": new_id(), "execution_id": ex["id"], "task_execution_id": task["id"],
            "item_index": index, "name": spec.action or spec.workflow, "adhoc": None,
            "input": None, "output": None, "state": A.RUNNING.value, "state_info": None,
            "runs": 0, "superseded": False, "external_ref": None, "child_execution_id": None,
            "created_at": tx.now, "updated_at": tx.now,
        })
        field = "input"
        try:
            given = dataflow.evaluate_in(tx, ex, task, spec.input, data) if spec.input else {}
            if not isinstance(given, dict):
                raise OrchestratorError(f"input must be a dictionary, got {type(given).__name__}")
            if spec.workflow:
                field = "workflow"
                _start_child(tx, ex, task, row, doc, spec, given, data)
                continue
            field = "action"
            name = spec.action
            if has_expression(name):
                name = dataflow.evaluate_in(tx, ex, task, name, data)
            py_name, py_input, adhoc = resolve(doc, name, given)
            row.update(name=py_name, adhoc=adhoc, input=py_input)
            instance = registry.get(py_name)(**py_input)
        except (ExpressionError, OrchestratorError, TypeError, ValueError) as e:
            tx.set_state("action", row, A.ERROR.value, f"task {task['name']!r}: {field}: {e}")
            finished.append((row, False))
            continue
        if getattr(instance, "pure", False):
            row["runs"] = 1
            ok, output, info, _ = run(instance, context_for(ex, task, row))
            ok, output, info = transform_output(tx, ex, task, row, ok, output, info)
            row["output"] = output
            tx.set_state("action", row, A.SUCCESS.value if ok else A.ERROR.value, info)
            finished.append((row, ok))
        else:
            tx.add_work(work_kind(instance), ex["id"], task_id=task["id"], action_id=row["id"])
    return finished


def _start_child(tx: Tx, ex: dict, task: dict, row: dict, doc, spec, given: dict, data) -> None:
    name = spec.workflow
    if has_expression(name):
        name = dataflow.evaluate_in(tx, ex, task, name, data)
    spec_hash, qualified = ex["spec_hash"], _lookup(doc.workflows, doc, name)
    if qualified is None:
        # A workflow uploaded in another document of the same project.
        wd = schema.workflow_definitions
        spec_hash = tx.conn.execute(select(wd.c.spec_hash).where(
            wd.c.project == ex["project"], wd.c.name == name)).scalar()
        if spec_hash is None:
            raise OrchestratorError(f"unknown workflow {name!r}")
        qualified = name
    row["name"] = qualified
    child = workflows.start(
        tx, spec_hash, qualified, given, {"env": ex["params"].get("env") or {}},
        project=ex["project"], parent_action=row, root_id=ex["root_execution_id"] or ex["id"],
    )
    row["child_execution_id"] = child["id"]
