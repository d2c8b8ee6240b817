"""The transition tables: complete, applied by one function, persisted with
a guarded UPDATE and an event row."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from orchestrator.engine import control, states
from orchestrator.engine.states import ActionState, TaskState, WorkflowState
from orchestrator.engine.tx import StaleState, Tx
from orchestrator.errors import IllegalTransition
from orchestrator.store import schema

ENUMS = {"workflow": WorkflowState, "task": TaskState, "action": ActionState}


@pytest.mark.parametrize("kind", list(ENUMS))
def test_every_state_has_a_row_in_its_transition_table(kind):
    table = states.TABLES[kind]
    assert set(table) == set(ENUMS[kind])
    for targets in table.values():
        assert set(targets) <= set(ENUMS[kind])


@pytest.mark.parametrize("kind", list(ENUMS))
def test_every_state_is_reachable_or_initial(kind):
    table = states.TABLES[kind]
    reached = set().union(*table.values())
    initial = {WorkflowState.IDLE, TaskState.IDLE, TaskState.WAITING, ActionState.RUNNING}
    assert set(ENUMS[kind]) - reached <= initial


@pytest.mark.parametrize("kind,done", [("workflow", states.WORKFLOW_DONE),
                                       ("task", states.TASK_DONE),
                                       ("action", states.ACTION_DONE)])
def test_final_states_lead_nowhere_except_rerun_skip_and_reopened_joins(kind, done):
    table = states.TABLES[kind]
    leaving = {s for s in done if table[s]}
    if kind == "workflow":
        assert leaving == {WorkflowState.ERROR}
        assert table[WorkflowState.ERROR] == {WorkflowState.RUNNING}
    elif kind == "task":
        assert leaving == {TaskState.ERROR}
        assert table[TaskState.ERROR] == {TaskState.RUNNING, TaskState.SKIPPED,
                                          TaskState.WAITING}
    else:
        assert leaving == set()


@pytest.mark.parametrize("kind", list(ENUMS))
def test_check_allows_table_edges_ignores_no_change_and_raises_otherwise(kind):
    table = states.TABLES[kind]
    for old in ENUMS[kind]:
        assert states.check(kind, old.value, old.value) is False
        for new in ENUMS[kind]:
            if new == old:
                continue
            if new in table[old]:
                assert states.check(kind, old.value, new.value) is True
            else:
                with pytest.raises(IllegalTransition, match=f"{old.value} to {new.value}"):
                    states.check(kind, old.value, new.value)


def test_set_state_records_an_event_and_refuses_illegal_changes(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    t:
      action: std.async_noop
""")
    runner.drive()
    with runner.store.begin() as conn:
        tx = Tx(conn)
        ex = tx.execution(execution_id)
        with pytest.raises(IllegalTransition):
            tx.set_state("workflow", ex, WorkflowState.IDLE.value)
        assert tx.set_state("workflow", ex, WorkflowState.RUNNING.value) is False
        assert tx.set_state("workflow", ex, WorkflowState.PAUSED.value, "test") is True
        tx.flush()
    assert control.execution(runner.store, execution_id)["state"] == "PAUSED"
    e = schema.events
    with runner.store.connect() as conn:
        kinds = [r[0] for r in conn.execute(
            select(e.c.kind).where(e.c.execution_id == execution_id).order_by(e.c.id))]
    assert kinds[-1] == "workflow.PAUSED"
    assert "workflow.RUNNING" in kinds and "task.RUNNING" in kinds


def test_a_row_moved_by_someone_else_makes_the_step_stale(runner):
    execution_id = runner.start("""
version: '2.0'
wf:
  tasks:
    t:
      action: std.async_noop
""")
    runner.drive()
    with runner.store.begin() as conn:
        tx = Tx(conn)
        ex = tx.execution(execution_id)
        tx.set_state("workflow", ex, WorkflowState.PAUSED.value)
        conn.execute(schema.executions.update()
                     .where(schema.executions.c.id == execution_id)
                     .values(state=WorkflowState.CANCELLED.value))
        with pytest.raises(StaleState):
            tx.flush()
        conn.rollback()
