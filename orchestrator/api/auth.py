"""Bearer tokens, each bound to a project and a role.

Tokens come from a file (YAML or JSON: ``tokens: [{token, project, role, name}]``)
and/or ``ORCH_API_TOKENS`` (``token=project:role[,token=project:role...]``).
Roles: ``viewer`` reads, ``operator`` also creates and runs, ``admin`` also
deletes. A token sees only its own project: what belongs to another project is
reported as not found (404), never as forbidden.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.errors import InvalidInput, OrchestratorError

ROLES = ("viewer", "operator", "admin")


class Unauthorized(OrchestratorError):
    """A valid bearer token is needed: send 'Authorization: Bearer <token>'."""

    status_code = 401


class Forbidden(OrchestratorError):
    """This token's role does not allow that."""

    status_code = 403


@dataclass(frozen=True)
class Principal:
    project: str
    role: str
    name: str = ""

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


NO_AUTH = Principal(project="default", role="admin", name="no-auth")


def _entry(token: str, project: str, role: str, name: str, where: str) -> tuple[str, Principal]:
    if role not in ROLES:
        raise InvalidInput(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    if not token or not project:
        raise InvalidInput(f"{where}: a token needs a value and a project")
    return token, Principal(project=project, role=role, name=name or project)


def parse_env(value: str) -> dict[str, Principal]:
    out = {}
    for i, item in enumerate(x.strip() for x in value.split(",") if x.strip()):
        token, _, rest = item.partition("=")
        project, _, role = rest.partition(":")
        t, p = _entry(token.strip(), project.strip(), role.strip() or "operator", "",
                      f"ORCH_API_TOKENS entry {i + 1}")
        out[t] = p
    return out


def parse_file(path: str) -> dict[str, Principal]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InvalidInput(f"cannot read the tokens file {path}: {e}") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise InvalidInput(f"{path}: expected 'tokens: [{{token, project, role, name}}]'")
    out = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise InvalidInput(f"{path}: tokens[{i}] must be a mapping")
        t, p = _entry(str(e.get("token") or ""), str(e.get("project") or ""),
                      str(e.get("role") or "operator"), str(e.get("name") or ""),
                      f"{path}: tokens[{i}]")
        out[t] = p
    return out


def load_tokens(file: str | None = None, env: str | None = None) -> dict[str, Principal]:
    """Tokens from ``file`` (or ``ORCH_API_TOKENS_FILE``) and ``env`` (or ``ORCH_API_TOKENS``)."""
    tokens: dict[str, Principal] = {}
    file = file or os.environ.get("ORCH_API_TOKENS_FILE")
    if file:
        tokens.update(parse_file(file))
    env = env if env is not None else os.environ.get("ORCH_API_TOKENS", "")
    if env:
        tokens.update(parse_env(env))
    return tokens


def authenticate(header: str | None, tokens: dict[str, Principal]) -> Principal:
    if not header or not header.startswith("Bearer "):
        raise Unauthorized()
    given = header[len("Bearer "):].strip()
    for token, principal in tokens.items():
        if hmac.compare_digest(token.encode(), given.encode()):  # no timing oracle
            return principal
    raise Unauthorized("the bearer token is not valid")
