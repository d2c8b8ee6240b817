"""The bridge's configuration, read once from the environment into a dataclass.

``ORCH_SALT_MASTER_CONFIG``
    path of the salt-master's config file (``/etc/salt/master`` or a lab's);
    setting it is what makes ``orchestrator serve`` start a bridge.
``ORCH_SALT_ALLOWLIST``
    the Salt functions workbooks may call, a comma list of globs
    (default: ``test.*, cmd.run, disk.*, extfs.*, mount.*, state.apply, grains.items``).
``ORCH_SALT_CONFIG``
    optional YAML/JSON file: ``allowlist: [globs]`` (instead of the variable above),
    ``projects: {name: {allowlist: [globs]}}``, ``running_grace`` and ``probe_wait``.

A project's allowlist can only narrow the global one: a function must match both.
So a workbook checked without knowing its project (``orchestrator validate``)
is refused exactly when no project could run it.

What matches: :mod:`agent_bridge.allowlist` (exact, well-formed names; globs that
never cross ``,`` or whitespace; functions that call other functions checked on
the function they would call).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from agent_bridge import allowlist
from orchestrator.errors import InvalidInput

DEFAULT_ALLOWLIST = ("test.*", "cmd.run", "disk.*", "extfs.*", "mount.*", "state.apply",
                     "grains.items")


def _globs(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{where}: an allowlist is a list of globs such as 'test.*'")
    globs = tuple(v.strip() for v in value if v.strip())
    for glob in globs:
        try:
            allowlist.compile_glob(glob)
        except allowlist.GlobError as e:
            raise InvalidInput(f"{where}: {e}") from None
    return globs


@dataclass(frozen=True)
class SaltConfig:
    master_config: str | None = None
    allowlist: tuple[str, ...] = DEFAULT_ALLOWLIST
    projects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # A minion still running its job at the deadline gets up to this much longer.
    running_grace: float = 10.0
    # How long a saltutil.find_job probe waits for answers.
    probe_wait: float = 3.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SaltConfig:
        env = os.environ if environ is None else environ
        data: dict = {}
        path = env.get("ORCH_SALT_CONFIG")
        if path:
            try:
                with open(path) as f:
                    data = yaml.safe_load(f) or {}
            except OSError as e:
                raise InvalidInput(f"ORCH_SALT_CONFIG {path}: {e.strerror}") from None
            if not isinstance(data, dict):
                raise InvalidInput(f"ORCH_SALT_CONFIG {path}: expected a mapping")
        allowlist: tuple[str, ...] = DEFAULT_ALLOWLIST
        if env.get("ORCH_SALT_ALLOWLIST"):
            allowlist = _globs(env["ORCH_SALT_ALLOWLIST"], "ORCH_SALT_ALLOWLIST")
        elif "allowlist" in data:
            allowlist = _globs(data["allowlist"], f"{path}: allowlist")
        projects = {name: _globs((entry or {}).get("allowlist", []),
                                 f"{path}: projects.{name}.allowlist")
                    for name, entry in (data.get("projects") or {}).items()}
        return cls(master_config=env.get("ORCH_SALT_MASTER_CONFIG") or data.get("master_config"),
                   allowlist=allowlist, projects=projects,
                   running_grace=float(data.get("running_grace", cls.running_grace)),
                   probe_wait=float(data.get("probe_wait", cls.probe_wait)))

    def __post_init__(self):
        for glob in (*self.allowlist, *(g for gs in self.projects.values() for g in gs)):
            try:
                allowlist.compile_glob(glob)
            except allowlist.GlobError as e:
                raise InvalidInput(f"Salt allowlist: {e}") from None

    def allowed(self, fun: str, project: str | None = None) -> bool:
        """Whether the name ``fun`` matches the allowlist (and ``project``'s, if given).
        Only the name: :meth:`refusal` also checks what an indirect function would call."""
        if not allowlist.matches(fun, self.allowlist):
            return False
        if project is not None and project in self.projects:
            return allowlist.matches(fun, self.projects[project])
        return True

    def refusal(self, fun, project: str | None = None, *, arg=None,
                kwarg=None) -> str | None:
        """The message refusing the Salt job ``fun`` with ``arg`` (a list) and ``kwarg`` (a
        mapping) for workbooks (of ``project``, if given), or None when it is allowed.
        A part of ``arg``/``kwarg`` that is :data:`allowlist.UNKNOWN` (an expression, while
        validating) leaves what depends on it to run time."""
        try:
            allowlist.check(fun, [] if arg is None else arg, {} if kwarg is None else kwarg,
                            allowed=lambda f: self.allowed(f, project))
        except allowlist.Deferred:
            return None
        except allowlist.Refused as e:
            return self._message(e, project)
        return None

    def _message(self, e: allowlist.Refused, project: str | None) -> str:
        lead = f"Salt function {'; '.join(e.via)}: " if e.via else "Salt function "
        if e.kind == "malformed":
            what = f"{e.fun!r} is not a single Salt function name ('module.function': " \
                   "letters, digits and underscores); lists, comma-separated and other " \
                   "compound forms are refused"
            return lead + (f"{e.fun!r}: {e.reason}" if e.reason else what)
        if e.kind == "refused":
            return lead + f"{e.fun!r} is refused: {e.reason}"
        globs = self.projects.get(project, self.allowlist) if project else self.allowlist
        whose = f"project {project!r}'s" if project in self.projects else "the"
        indirect = ("; a function that calls another is allowed only when the function it "
                    "calls is allowed") if e.via else ""
        return (f"{lead}{e.fun!r} is not in {whose} allowlist ({', '.join(globs)}){indirect}; "
                "ask an administrator to add it to ORCH_SALT_ALLOWLIST")


_loaded: SaltConfig | None = None


def load() -> SaltConfig:
    """The process's configuration, read from the environment on first use."""
    global _loaded
    if _loaded is None:
        _loaded = SaltConfig.from_env()
    return _loaded


def reset() -> None:
    """Read the environment again on the next :func:`load` (tests)."""
    global _loaded
    _loaded = None
