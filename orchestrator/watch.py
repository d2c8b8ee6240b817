"""Watching an execution through the API until it ends (or pauses).

Each poll asks for the events after the last one seen (cheap and incremental)
and, only when some arrived, for the execution's tasks. On a terminal the task
list and a progress bar are redrawn in place; elsewhere (pipes, logs, tests)
each task state change is one line. Progress is finished tasks over the tasks
known so far: a workflow's total is not known in advance (conditions, with-items,
joins), so the bar may move back when new tasks appear."""
from __future__ import annotations

import shutil
import time
from datetime import datetime

from orchestrator.client import Client

ENDED = ("SUCCESS", "ERROR", "CANCELLED", "PAUSED")  # where watching stops
TASK_DONE = ("SUCCESS", "ERROR", "SKIPPED", "CANCELLED")
MARKS = {"SUCCESS": "ok", "ERROR": "FAIL", "SKIPPED": "skip", "CANCELLED": "cncl",
         "RUNNING": "..", "WAITING": "wait", "IDLE": "idle", "RUNNING_DELAYED": "wait"}
COLORS = {"SUCCESS": "32", "ERROR": "31", "CANCELLED": "33", "SKIPPED": "2", "RUNNING": "36",
          "PAUSED": "33"}
# Even when no event arrives, look at the execution itself now and then: the
# event stream is the fast path, not the only source of truth.
RECHECK_SECONDS = 5.0
POLL_SECONDS = 0.3


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def progress(tasks: list[dict]) -> tuple[int, int]:
    """(finished, known) tasks."""
    return sum(t["state"] in TASK_DONE for t in tasks), len(tasks)


def bar(done: int, total: int, width: int = 24) -> str:
    filled = width * done // total if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def task_line(task: dict, name_width: int = 0) -> str:
    """One task as the line-per-change view prints it."""
    state = task["state"]
    line = f"  {MARKS.get(state, '  '):<4} {task['name']:<{name_width}} {state}"
    took = seconds(task.get("started_at"), task.get("finished_at"))
    if took is not None and state in TASK_DONE:
        line += f" ({took:.2f}s)"
    if task.get("items_total"):
        line += f" [{task.get('items_done') or 0}/{task['items_total']} items]"
    if task.get("type") == "WORKFLOW":
        line += " (sub-workflow)"
    info = task.get("state_info")
    if info and state in ("ERROR", "CANCELLED"):
        line += f": {info.splitlines()[0]}"
    return line


class Watcher:
    """Polls one execution. ``step()`` is one poll; ``run()`` loops until the
    execution is in one of ``ENDED`` and returns it. ``stream`` None watches
    silently; ``live`` (default: ``stream`` is a terminal) redraws in place."""

    def __init__(self, client: Client, execution_id: str, stream, *, live: bool | None = None,
                 interval: float | None = None, clock=time.monotonic, sleep=time.sleep):
        self.client, self.execution_id, self.stream = client, execution_id, stream
        self.live = bool(stream and stream.isatty()) if live is None else live
        self.interval = POLL_SECONDS if interval is None else interval
        self.clock, self.sleep = clock, sleep
        self.last_event = 0
        self.tasks: dict[str, dict] = {}  # id -> task, in the server's order
        self.execution: dict | None = None
        self.frame: list[str] = []  # the lines last drawn
        self.retrying: set[str] = set()  # tasks between two attempts (line mode)
        self.checked_at = None

    def run(self) -> dict:
        while True:
            ended = self.step()
            if ended is not None:
                return ended
            self.sleep(self.interval)

    def step(self) -> dict | None:
        events = self.client.events(self.execution_id, after=self.last_event)
        if events:
            self.last_event = events[-1]["id"]
        now = self.clock()
        if events or self.execution is None:
            for task in self.client.execution_tasks(self.execution_id):
                self.tasks[task["id"]] = task
        ended_by_event = any(e["kind"].startswith("workflow.") and e["kind"][9:] in ENDED
                             for e in events if not e.get("task_id"))
        if self.execution is None or ended_by_event or now - self.checked_at > RECHECK_SECONDS:
            self.execution = self.client.get("executions", self.execution_id)
            self.checked_at = now
        if self.stream is None:
            pass
        elif self.live:
            self._draw()
        else:
            self._print(events)
        if self.execution["state"] in ENDED:
            return self.execution
        return None

    def progress(self) -> tuple[int, int]:
        """(finished, known) tasks."""
        return progress(list(self.tasks.values()))

    # -- line per change ------------------------------------------------------------------
    def _print(self, events: list[dict]) -> None:
        for event in events:
            kind, _, state = event["kind"].partition(".")
            task_id = event.get("task_id")
            if kind == "task" and state == "retry":
                # one line per attempt; the task's waiting/running flips between
                # attempts are left out (a polling task retries many times)
                self.retrying.add(task_id)
                task = self.tasks.get(task_id) or {"name": task_id}
                data = event.get("data") or {}
                print(f"       {task['name']} retry {data.get('attempt', '?')}",
                      file=self.stream, flush=True)
                continue
            if task_id in self.retrying and state in ("RUNNING", "RUNNING_DELAYED"):
                continue
            self.retrying.discard(task_id)
            if kind == "task" and event.get("task_id") and state != "IDLE":  # IDLE: just created
                task = dict(self.tasks.get(event["task_id"]) or {"name": event["task_id"]})
                if task.get("state") != state:  # an earlier change of this task
                    task = {"name": task["name"], "state": state,
                            "state_info": (event.get("data") or {}).get("info"),
                            "type": task.get("type")}
                print(task_line(task), file=self.stream, flush=True)
            elif kind == "workflow" and not event.get("task_id") and state != "RUNNING":
                print(f"  execution {state}", file=self.stream, flush=True)

    # -- live frame -----------------------------------------------------------------------
    def _draw(self) -> None:
        cols, rows = shutil.get_terminal_size((100, 30))
        ex, tasks = self.execution or {}, list(self.tasks.values())
        done, known = progress(tasks)
        state = ex["state"]
        head = f"{ex['workflow_name']}  {ex['id']}  {_color(state, state)}"
        lines = [head, f"{bar(done, known)} {done}/{known} known tasks finished"]
        width = max((len(t["name"]) for t in tasks), default=0)
        shown = tasks[-max(rows - 4, 3):]  # the newest tasks when taller than the screen
        if len(shown) < len(tasks):
            lines.append(f"  ... {len(tasks) - len(shown)} earlier tasks")
        lines += [_color(t["state"], task_line(t, width)[:cols - 1]) for t in shown]
        if lines == self.frame:
            return  # nothing changed: no flicker
        up = f"\x1b[{len(self.frame)}F\x1b[J" if self.frame else ""  # to the last frame's top
        self.stream.write(up + "\n".join(lines) + "\n")
        self.stream.flush()
        self.frame = lines


def _color(state: str, text: str) -> str:
    code = COLORS.get(state)
    return f"\x1b[{code}m{text}\x1b[0m" if code else text
