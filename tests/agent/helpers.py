"""Running workflows with Salt actions: a real engine worker that claims agent
work plus a bridge on the lab's master, in this process."""
from __future__ import annotations

import time

import yaml

from agent_bridge.bridge import Bridge
from agent_bridge.config import SaltConfig
from orchestrator import dsl
from orchestrator.engine import control
from orchestrator.engine.worker import Worker


class AgentEngine:
    def __init__(self, store, master_config: str, **config):
        self.store = store
        self.bridge = Bridge(store, SaltConfig(master_config=master_config, **config),
                             poll=0.05).start()
        self.worker = Worker(store, agent=True, poll=0.05).start()

    def start(self, text: str, input: dict | None = None, **kw) -> str:
        return control.start(self.store, dsl.load(text, "test.yaml"), None, input or {}, **kw)

    def wait(self, execution_id: str, timeout: float = 60) -> dict:
        """Wait until the execution ends; its summary."""
        deadline = time.monotonic() + timeout
        while control.execution(self.store, execution_id)["state"] in ("RUNNING", "PAUSED"):
            assert time.monotonic() < deadline, f"execution still running after {timeout}s"
            time.sleep(0.05)
        return control.summary(self.store, execution_id)

    def run(self, text: str, input: dict | None = None, timeout: float = 60, **kw) -> dict:
        return self.wait(self.start(text, input, **kw), timeout)

    def action(self, execution_id: str, task: str = "job") -> dict:
        rows = [r for t in control.task_rows(self.store, execution_id) if t["name"] == task
                for r in control.action_rows(self.store, t["id"])]
        assert rows, f"no action for task {task!r} yet"
        return rows[-1]

    def wait_published(self, execution_id: str, task: str = "job", timeout: float = 20) -> dict:
        """The task's action row once its job is published (its ref lists the minions)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                row = self.action(execution_id, task)
            except AssertionError:
                row = None
            if row and isinstance(row["external_ref"], dict) and "minions" in row["external_ref"]:
                return row
            assert time.monotonic() < deadline, "the job was not published"
            time.sleep(0.02)

    def close(self) -> None:
        self.worker.stop(grace=2)
        self.bridge.stop()


def workflow(action: str, input: dict | None = None, **task) -> str:
    """A one-task workflow ``wf`` whose task ``job`` runs ``action`` with ``input``."""
    body = {"action": action, **({"input": input} if input else {}),
            **{k.replace("_", "-"): v for k, v in task.items()}}
    doc = {"version": "2.0",
           "wf": {"input": [{"fun": None}, {"args": None}], "tasks": {"job": body}}}
    return yaml.safe_dump(doc, sort_keys=False)
