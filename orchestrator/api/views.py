"""Executions, tasks and action executions as the API shows them: project-scoped
lookups, pages of rows, and rows turned into the contract's shapes with the
values of secret environment variables shown as ``***``.

Tasks and action executions have no project of their own: they belong to the
project of their execution, so every query on them joins ``executions``."""
from __future__ import annotations

from sqlalchemy import select

from orchestrator import secrets
from orchestrator.api.io import iso, project
from orchestrator.engine import specs
from orchestrator.errors import NotFound
from orchestrator.store import schema

E, T, A = schema.executions, schema.task_executions, schema.action_executions


# -- lookups in the caller's project -----------------------------------------------------
def execution_row(conn, execution_id: str) -> dict:
    """The execution, or 404 when it is unknown or another project's."""
    row = conn.execute(select(E).where(E.c.id == execution_id,
                                       E.c.project == project())).mappings().first()
    if row is None:
        raise NotFound(f"execution {execution_id} not found")
    return dict(row)


def task_row(conn, task_id: str) -> tuple[dict, dict]:
    """The task and its execution, or 404."""
    row = conn.execute(select(T).join(E, E.c.id == T.c.execution_id)
                       .where(T.c.id == task_id, E.c.project == project())).mappings().first()
    if row is None:
        raise NotFound(f"task {task_id} not found")
    return dict(row), execution_row(conn, row["execution_id"])


def action_row(conn, action_id: str) -> tuple[dict, dict]:
    """The action execution and its execution, or 404."""
    row = conn.execute(select(A).join(E, E.c.id == A.c.execution_id)
                       .where(A.c.id == action_id, E.c.project == project())).mappings().first()
    if row is None:
        raise NotFound(f"action execution {action_id} not found")
    return dict(row), execution_row(conn, row["execution_id"])


# -- masking -------------------------------------------------------------------------------
class Views:
    """Serializers for one request: remembers executions and their secret
    values, so a page of tasks reads each execution once."""

    def __init__(self, conn):
        self.conn = conn
        self._executions: dict[str, dict | None] = {}
        self._secrets: dict[str, tuple[list[str], secrets.Masker]] = {}

    def remember(self, ex: dict) -> dict:
        self._executions[ex["id"]] = ex
        return ex

    def _execution(self, execution_id: str) -> dict:
        if execution_id not in self._executions:
            row = self.conn.execute(select(E).where(E.c.id == execution_id)).mappings().first()
            self._executions[execution_id] = dict(row) if row else None
        found = self._executions[execution_id]
        if found is None:  # deleted while this request read its tasks
            raise NotFound(f"execution {execution_id} not found")
        return found

    def preload(self, execution_ids) -> None:
        missing = list({i for i in execution_ids if i not in self._executions})
        for at in range(0, len(missing), 500):
            for row in self.conn.execute(select(E).where(E.c.id.in_(missing[at:at + 500])))\
                    .mappings():
                self._executions[row["id"]] = dict(row)

    def _hidden(self, ex: dict) -> tuple[list[str], secrets.Masker]:
        """The names of ``ex``'s secret variables and what masks their values (every
        leaf, every derived form). Sub-executions inherit the root's environment but
        not its list of secret names, so look there (an encrypted value is secret
        anyway). A secret the key cannot decrypt fails the request (SecretKeyError):
        what cannot be masked is not shown."""
        if ex["id"] not in self._secrets:
            names = list((ex["params"] or {}).get("secrets") or ())
            root_id = ex.get("root_execution_id")
            if root_id and root_id != ex["id"]:
                try:
                    root = self._execution(root_id)
                except NotFound:  # the root was deleted: its secret names with it
                    root = {"params": {}}
                names += list((root["params"] or {}).get("secrets") or ())
            env = (ex["params"] or {}).get("env")
            self._secrets[ex["id"]] = (names, secrets.masker(
                secrets.values_of(env, names, strict=True)))
        return self._secrets[ex["id"]]

    def secrets_of(self, ex: dict) -> secrets.Masker:
        """What hides the secrets of ``ex`` (give it to :func:`secrets.mask`)."""
        return self._hidden(ex)[1]

    def params(self, ex: dict) -> dict:
        """``params`` as shown: each secret variable of ``env`` is ``***`` (never the
        stored ciphertext), then every form of a secret value is masked."""
        names, hide = self._hidden(ex)
        params = dict(ex["params"] or {})
        if isinstance(params.get("env"), dict):
            params["env"] = secrets.masked_env(params["env"], names)
        return secrets.mask(params, hide)

    # -- shapes ------------------------------------------------------------------------
    def execution(self, ex: dict) -> dict:
        self.remember(ex)
        hide = self.secrets_of(ex)
        return {
            "id": ex["id"], "workflow_name": ex["workflow_name"],
            "description": secrets.mask(ex["description"] or "", hide),
            "state": ex["state"], "state_info": secrets.mask(ex["state_info"], hide),
            "input": secrets.mask(ex["input"], hide), "output": secrets.mask(ex["output"], hide),
            "params": self.params(ex), "project": ex["project"],
            "root_execution_id": ex["root_execution_id"],
            "parent_action_execution_id": ex["parent_action_id"],
            "created_at": iso(ex["created_at"]), "updated_at": iso(ex["updated_at"]),
            "finished_at": iso(ex["finished_at"]),
        }

    def task(self, task: dict) -> dict:
        ex = self._execution(task["execution_id"])
        hide = self.secrets_of(ex)
        with_items = task["items"] is not None
        return {
            "id": task["id"], "name": task["name"], "workflow_execution_id": ex["id"],
            "workflow_name": ex["workflow_name"], "state": task["state"],
            "state_info": secrets.mask(task["state_info"], hide),
            "result": secrets.mask(task["result"], hide),
            "published": secrets.mask(task["published"] or {}, hide),
            "type": _task_type(self.conn, ex, task["name"]),
            # Only with-items tasks count items; null says "not a with-items task".
            "items_total": task["items_total"] if with_items else None,
            "items_done": task["items_done"] if with_items else None,
            "attempt": task["attempt"], "created_at": iso(task["created_at"]),
            "started_at": iso(task["started_at"]), "finished_at": iso(task["finished_at"]),
        }

    def action(self, action: dict) -> dict:
        hide = self.secrets_of(self._execution(action["execution_id"]))
        return {
            "id": action["id"], "name": action["adhoc"] or action["name"],
            "task_execution_id": action["task_execution_id"],
            "workflow_execution_id": action["execution_id"], "item_index": action["item_index"],
            "state": action["state"], "state_info": secrets.mask(action["state_info"], hide),
            "input": secrets.mask(action["input"], hide),
            "output": secrets.mask(action["output"], hide),
            "external_ref": secrets.mask(action["external_ref"], hide), "runs": action["runs"],
            "created_at": iso(action["created_at"]), "updated_at": iso(action["updated_at"]),
        }

    def event(self, event: dict) -> dict:
        hide = self.secrets_of(self._execution(event["execution_id"]))
        return {"id": event["id"], "at": iso(event["at"]), "kind": event["kind"],
                "task_id": event["task_id"], "data": secrets.mask(event["data"], hide)}

    def tasks(self, rows) -> list[dict]:
        self.preload(r["execution_id"] for r in rows)
        return [self.task(r) for r in rows]

    def actions(self, rows) -> list[dict]:
        self.preload(r["execution_id"] for r in rows)
        return [self.action(r) for r in rows]


def _task_type(conn, ex: dict, name: str) -> str:
    workflow = specs.load(conn, ex["spec_hash"]).workflows.get(ex["workflow_name"])
    task = workflow.tasks.get(name) if workflow else None
    return "WORKFLOW" if task is not None and task.workflow is not None else "ACTION"
