"""The Salt actions: ``salt.cmd``, ``salt.run``, ``salt.state``, ``salt.ping`` and
``salt.wait_minions``.

They are asynchronous agent actions: ``run`` hands the job to this process's
:class:`~agent_bridge.bridge.Bridge` (only a process with a bridge claims agent
work), which saves the job id with the action execution *before* publishing,
and completes the action when every targeted minion has returned or failed.
The task's result maps each targeted minion to ``{"retcode", "return"}``.

This module does not import salt: the action registry loads it (entry points)
in processes without salt installed, for validation and the API.

Arguments are data: ``arg`` and ``kwarg`` go to Salt as a list and a dict, and
``salt.run`` with a list ``cmd`` runs that argv without any shell.
"""
from __future__ import annotations

from typing import Any

from agent_bridge import allowlist, config
from orchestrator.actions.base import Action, ActionContext
from orchestrator.dsl.expressions import has_expression
from orchestrator.errors import InvalidInput

TARGET_TYPES = ("glob", "list", "grain", "compound")
DEFAULT_TIMEOUT = 60.0


def _timeout(value) -> float:
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"timeout must be a number of seconds, got {value!r}") from None
    if not 0 < timeout <= 86400:
        raise InvalidInput(f"timeout must be between 0 and 86400 seconds, got {value!r}")
    return timeout


def _target(tgt, tgt_type: str):
    if tgt_type not in TARGET_TYPES:
        raise InvalidInput(f"tgt_type {tgt_type!r} is not one of {', '.join(TARGET_TYPES)}")
    if tgt_type == "list":
        if isinstance(tgt, str):
            tgt = [t.strip() for t in tgt.split(",") if t.strip()]
        if not isinstance(tgt, list) or not tgt or not all(isinstance(t, str) for t in tgt):
            raise InvalidInput("tgt with tgt_type 'list' must be minion ids: a list or "
                               f"'vm-1,vm-2', got {tgt!r}")
        return tgt
    if not isinstance(tgt, str) or not tgt.strip():
        raise InvalidInput(f"tgt must be a non-empty {tgt_type} target string, got {tgt!r}")
    return tgt


def _refuse(fun: str, arg: list, kwarg: dict) -> None:
    message = config.load().refusal(fun, arg=arg, kwarg=kwarg)
    if message:
        raise InvalidInput(message)


def _literal(value):
    """``value`` with every part that holds an expression replaced by
    :data:`allowlist.UNKNOWN`, for checking a task's input before it runs."""
    if isinstance(value, dict):
        if any(has_expression(k) for k in value):
            return allowlist.UNKNOWN
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_literal(v) for v in value]
    return allowlist.UNKNOWN if has_expression(value) else value


class SaltAction(Action):
    """Base of the job-publishing Salt actions; subclasses set ``fun``, ``arg``, ``kwarg``."""

    sync = False
    queue = "agent"
    fun: str = ""

    def _setup(self, tgt, tgt_type: str, timeout, arg=None, kwarg=None) -> None:
        self.tgt_type = tgt_type
        self.tgt = _target(tgt, tgt_type)
        self.timeout = _timeout(timeout)
        if arg is None:
            arg = []
        elif not isinstance(arg, list):
            arg = [arg]
        if kwarg is not None and not isinstance(kwarg, dict):
            raise InvalidInput(f"kwarg must be a mapping of keyword arguments, got {kwarg!r}")
        self.arg, self.kwarg = arg, dict(kwarg or {})
        _refuse(self.fun, self.arg, self.kwarg)

    def job(self) -> dict[str, Any]:
        return {"fun": self.fun, "arg": self.arg, "kwarg": self.kwarg, "tgt": self.tgt,
                "tgt_type": self.tgt_type, "timeout": self.timeout}

    def run(self, context: ActionContext):
        from agent_bridge import bridge

        return bridge.current().submit(context, self.job())

    @classmethod
    def check_input(cls, given: dict) -> list[tuple[str | None, str]]:
        """Problems with a task's literal input, for ``orchestrator validate``:
        ``[(input key or None, message)]``. Values with expressions are checked
        when the task runs."""
        message = config.load().refusal(cls.fun) if cls.fun else None
        return [(None, message)] if message else []


class Cmd(SaltAction):
    """Run any allowed Salt execution function ``fun`` with ``arg`` and ``kwarg``
    on the minions that ``tgt`` matches (``tgt_type``: glob, list, grain, compound)."""

    def __init__(self, tgt, fun: str, arg=None, kwarg=None, tgt_type: str = "glob",
                 timeout: float = DEFAULT_TIMEOUT):
        if isinstance(fun, list | tuple):
            raise InvalidInput(f"fun must be one Salt function name such as 'test.ping'; a "
                               f"list of functions (a compound job) is refused, got {fun!r}")
        if not isinstance(fun, str):
            raise InvalidInput(f"fun must be a Salt function name such as 'test.ping', "
                               f"got {fun!r}")
        self.fun = fun
        self._setup(tgt, tgt_type, timeout, arg, kwarg)

    @classmethod
    def check_input(cls, given: dict) -> list[tuple[str | None, str]]:
        fun = given.get("fun")
        if fun is None or has_expression(fun):
            return []
        arg = _literal(given.get("arg"))
        if arg is None:
            arg = []
        elif not isinstance(arg, list) and arg is not allowlist.UNKNOWN:
            arg = [arg]
        kwarg = _literal(given.get("kwarg"))
        if kwarg is not None and kwarg is not allowlist.UNKNOWN and not isinstance(kwarg, dict):
            return []  # the action refuses it when the task runs
        message = config.load().refusal(fun, arg=arg, kwarg=kwarg)
        return [("fun", message)] if message else []


class Run(SaltAction):
    """``cmd.run``: run ``cmd`` on the targeted minions. A list ``cmd`` is an argv
    run without a shell; a string is a command line run as Salt runs it (with
    the minion's shell unless ``python_shell: false``). The return is the
    output; the retcode is the command's exit status."""

    fun = "cmd.run"

    def __init__(self, tgt, cmd, tgt_type: str = "glob", cwd: str | None = None,
                 env: dict | None = None, runas: str | None = None, stdin: str | None = None,
                 python_shell: bool | None = None, timeout: float = DEFAULT_TIMEOUT):
        if isinstance(cmd, list):
            if not cmd or not all(isinstance(c, str) for c in cmd):
                raise InvalidInput(f"cmd as a list must be an argv of strings, got {cmd!r}")
            python_shell = False
        elif not isinstance(cmd, str) or not cmd.strip():
            raise InvalidInput(f"cmd must be a command line or an argv list, got {cmd!r}")
        kwarg = {k: v for k, v in (("cwd", cwd), ("env", env), ("runas", runas),
                                   ("stdin", stdin), ("python_shell", python_shell))
                 if v is not None}
        self._setup(tgt, tgt_type, timeout, [cmd], kwarg)


class State(SaltAction):
    """``state.apply``: apply ``mods`` (a state name or list; all of the highstate
    when empty), with ``pillar`` data; ``test: true`` only reports."""

    fun = "state.apply"

    def __init__(self, tgt, mods=None, tgt_type: str = "glob", pillar: dict | None = None,
                 test: bool = False, saltenv: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT):
        if isinstance(mods, list):
            mods = ",".join(mods)
        if mods is not None and not isinstance(mods, str):
            raise InvalidInput(f"mods must be a state name or a list of them, got {mods!r}")
        kwarg: dict[str, Any] = {"test": bool(test)}
        if pillar is not None:
            kwarg["pillar"] = pillar
        if saltenv is not None:
            kwarg["saltenv"] = saltenv
        self._setup(tgt, tgt_type, timeout, [mods] if mods else [], kwarg)


class Ping(SaltAction):
    """``test.ping`` on the targeted minions: each answers ``True``."""

    fun = "test.ping"

    def __init__(self, tgt, tgt_type: str = "glob", timeout: float = 10.0):
        self._setup(tgt, tgt_type, timeout)


class WaitMinions(Action):
    """Wait until every minion in ``minions`` is connected and answers
    ``test.ping`` (a VM that has just booted), for at most ``timeout`` seconds.
    Fails naming the minions that never answered."""

    sync = False
    queue = "agent"

    def __init__(self, minions, timeout: float = 300.0):
        self.minions = _target(minions, "list")
        self.timeout = _timeout(timeout)

    def run(self, context: ActionContext):
        from agent_bridge import bridge

        return bridge.current().wait_for(context, self.minions, self.timeout)


ACTIONS: dict[str, type[Action]] = {
    "salt.cmd": Cmd,
    "salt.run": Run,
    "salt.state": State,
    "salt.ping": Ping,
    "salt.wait_minions": WaitMinions,
}


def register() -> None:
    """Put the Salt actions in the action registry (entry points do it for an
    installed package; this is for a process that imported agent_bridge)."""
    from orchestrator.actions import registry

    for name, cls in ACTIONS.items():
        registry.register(name, cls)

