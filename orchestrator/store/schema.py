"""Tables of the store (SQLAlchemy Core). One row per thing, never one growing
document: a task row holds what the task published, not a copy of its context.

Times are UNIX epoch seconds (float), UTC.
"""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()
ID = String(36)

# Definitions uploaded by users (REST API). The engine never reads these while
# running: an execution is pinned to a copy of the spec (`specs`).
workbooks = Table(
    "workbooks", metadata,
    Column("id", ID, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("definition", Text, nullable=False),
    Column("tags", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name"),
)

workflow_definitions = Table(
    "workflow_definitions", metadata,
    Column("id", ID, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("workbook_name", String(255)),
    Column("definition", Text, nullable=False),
    Column("spec_hash", String(64), ForeignKey("specs.hash"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name"),
)

action_definitions = Table(
    "action_definitions", metadata,
    Column("id", ID, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("workbook_name", String(255)),
    Column("definition", Text, nullable=False),
    Column("spec_hash", String(64), ForeignKey("specs.hash"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name"),
)

environments = Table(
    "environments", metadata,
    Column("id", ID, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("variables", JSON, nullable=False),
    # Names of variables whose values the API shows as "***".
    Column("secrets", JSON, nullable=False, default=list, server_default=text("'[]'")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name"),
)

# Cron triggers start a workflow on a schedule. Times are epoch seconds; the
# scheduler advances ``next_execution_time`` with a guarded UPDATE.
cron_triggers = Table(
    "cron_triggers", metadata,
    Column("id", ID, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("pattern", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("workflow_name", String(255), nullable=False),
    Column("workflow_input", JSON, nullable=False),
    Column("workflow_params", JSON, nullable=False),
    Column("first_execution_time", Float),
    Column("remaining_executions", Integer),  # None: no limit
    Column("next_execution_time", Float),  # None: will not fire again
    Column("missed", String(8), nullable=False),  # skip | once | all
    Column("workbook_name", String(255)),  # set when defined in a workbook's `triggers:`
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name"),
    Index("ix_cron_triggers_next", "next_execution_time"),
)

# One row per (trigger, fire time) ever fired: the unique key is what makes
# firing exactly-once across scheduler processes. Kept after the trigger is gone.
cron_fires = Table(
    "cron_fires", metadata,
    Column("trigger_id", ID, nullable=False),
    Column("fire_time", Float, nullable=False),
    Column("fired_at", Float, nullable=False),
    Column("execution_id", ID, nullable=False),
    Column("error", Text),  # why no execution could start, if so
    UniqueConstraint("trigger_id", "fire_time", name="uq_cron_fires_trigger_time"),
)

# Content-addressed copies of parsed documents; executions pin one.
specs = Table(
    "specs", metadata,
    Column("hash", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

executions = Table(
    "executions", metadata,
    Column("id", ID, primary_key=True),
    Column("project", String(64), nullable=False, default="default"),
    Column("workflow_name", String(255), nullable=False),
    Column("spec_hash", String(64), ForeignKey("specs.hash"), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("state_info", Text),
    Column("input", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("context", JSON, nullable=False),  # input + vars: the root of every branch
    Column("output", JSON),
    Column("parent_action_id", ID),  # set for sub-workflow executions
    Column("root_execution_id", ID),
    Column("active_tasks", Integer, nullable=False, default=0),  # tasks not yet finished
    Column("waiting_joins", Integer, nullable=False, default=0),
    # Bytes (JSON text) of the results and published values it stores: bounded.
    Column("stored_bytes", BigInteger, nullable=False, default=0),
    Column("unhandled_errors", Integer, nullable=False, default=0),
    Column("task_seq", Integer, nullable=False, default=0),  # start order of task rows
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    Index("ix_executions_state", "state"),
    Index("ix_executions_parent", "parent_action_id"),
)

task_executions = Table(
    "task_executions", metadata,
    Column("id", ID, primary_key=True),
    Column("execution_id", ID, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_info", Text),
    Column("parent_id", ID),  # the task whose transition created this one (joins: task_links)
    Column("published", JSON),
    Column("result", JSON),
    Column("items", JSON),  # with-items: the evaluated item values
    Column("items_total", Integer, nullable=False, default=1),
    Column("items_started", Integer, nullable=False, default=0),
    Column("items_done", Integer, nullable=False, default=0),
    Column("items_failed", Integer, nullable=False, default=0),
    Column("join_arrivals", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=1),  # retry policy attempt
    Column("flags", JSON, nullable=False, default=dict),  # policy bookkeeping
    Column("is_end", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Index("ix_task_executions_exec_name", "execution_id", "name"),
    Index("ix_task_executions_exec_seq", "execution_id", "seq"),
)

# Joins have several inbound tasks; the branch context of a join merges theirs.
task_links = Table(
    "task_links", metadata,
    Column("task_id", ID, nullable=False),
    Column("from_task_id", ID, nullable=False),
    Column("seq", Integer, nullable=False),
    Index("ix_task_links_task", "task_id"),
)

action_executions = Table(
    "action_executions", metadata,
    Column("id", ID, primary_key=True),
    Column("execution_id", ID, nullable=False),
    Column("task_execution_id", ID, nullable=False),
    Column("item_index", Integer, nullable=False, default=0),
    Column("name", String(255), nullable=False),  # the Python action that runs
    Column("adhoc", String(255)),  # the ad-hoc action the task named, if any
    Column("input", JSON),
    Column("output", JSON),
    Column("state", String(16), nullable=False),
    Column("state_info", Text),
    Column("runs", Integer, nullable=False, default=0),  # times it was started (crash recovery)
    Column("superseded", Boolean, nullable=False, default=False),  # replaced by a rerun
    Column("external_ref", JSON),  # async actions: the remote reference (Salt jid, ...)
    Column("child_execution_id", ID),  # sub-workflow tasks
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_action_executions_task", "task_execution_id", "item_index"),
)

# The durable queue. An engine step claims due rows and deletes them in the
# same transaction that applies their effect; `run_action` rows are leased to
# an executor while the action runs outside any transaction.
work = Table(
    "work", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("execution_id", ID, nullable=False),
    Column("task_id", ID),
    Column("action_id", ID),
    Column("payload", JSON),
    Column("due_at", Float, nullable=False),
    Column("held", Boolean, nullable=False, default=False),  # execution paused
    Column("lease_owner", String(128)),
    Column("lease_until", Float),
    Index("ix_work_due", "held", "due_at"),
    Index("ix_work_execution", "execution_id"),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", ID, nullable=False),
    Column("task_id", ID),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("data", JSON),
    Index("ix_events_execution", "execution_id", "id"),
)
