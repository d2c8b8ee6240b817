"""What the bridge tracks for a Salt action until it completes it, and the
action's outcome: each targeted minion's ``{"retcode", "return"}`` and, when
any failed, one message naming every failed minion and why."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Job:
    """A published job of one action execution, until its action is completed."""

    jid: str
    action_id: str
    fun: str
    timeout: float
    deadline: float  # epoch seconds
    expected: set[str] | None = None  # None while publishing
    returns: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # minion -> why (no return)
    probe: str | None = None  # jid of the find_job probe in flight
    probe_until: float = 0.0
    running_until: float = 0.0  # cap for minions still running at the deadline
    done: bool = False
    published_at: float = 0.0  # epoch seconds; 0: published by an earlier process
    last_return_at: float = 0.0

    def missing(self) -> set[str]:
        return (self.expected or set()) - self.returns.keys() - self.failed.keys()


@dataclass
class Wait:
    """A ``salt.wait_minions`` action: minions that must answer test.ping."""

    action_id: str
    minions: list[str]
    deadline: float
    timeout: float
    answered: set[str] = field(default_factory=set)
    next_ping: float = 0.0
    done: bool = False


def record(data: dict) -> dict:
    """A minion's return as the task result shows it."""
    retcode = data.get("retcode")
    if retcode is None:
        retcode = 0 if data.get("success", True) else 1
    return {"retcode": retcode, "return": data.get("return")}


def _failure(ret: dict) -> str | None:
    if ret["retcode"] != 0:
        text = str(ret["return"]).strip().replace("\n", " ")
        return f"retcode {ret['retcode']}" + (f": {text[:200]}" if text else "")
    return None


def outcome(pending: Job) -> tuple[str, dict, str | None]:
    """(SUCCESS or ERROR, {minion: {retcode, return[, error]}}, error message)."""
    output: dict = {}
    problems = []
    for minion in sorted(pending.expected or ()):
        if minion in pending.returns:
            ret = pending.returns[minion]
            output[minion] = ret
            why = _failure(ret)
        else:
            why = pending.failed[minion]
            output[minion] = {"retcode": None, "return": None, "error": why}
        if why:
            problems.append(f"{minion}: {why}")
    if not problems:
        return "SUCCESS", output, None
    info = (f"salt {pending.fun} (job {pending.jid}) failed on {len(problems)} of "
            f"{len(output)} minion(s): " + "; ".join(problems))
    return "ERROR", output, info


def wait_outcome(wait: Wait) -> tuple[str, dict, str | None]:
    """The same for salt.wait_minions: a minion that answered returned True."""
    output = {m: {"retcode": 0 if m in wait.answered else None,
                  "return": m in wait.answered} for m in wait.minions}
    late = [m for m in wait.minions if m not in wait.answered]
    if not late:
        return "SUCCESS", output, None
    return "ERROR", output, (f"minion(s) {', '.join(late)} did not answer within "
                             f"{wait.timeout:g}s (not connected or down)")
