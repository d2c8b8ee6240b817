"""Bearer tokens, each bound to a project and a role.

Tokens come from a file (YAML or JSON: ``tokens: [{token, project, role, name,
expires}]``, ``expires`` an optional ISO 8601 time) and/or ``ORCH_API_TOKENS``
(``token=project:role[,token=project:role...]``). A request sends one as
``Authorization: Bearer <token>`` (the scheme in any case) or, as Mistral's
clients do, ``X-Auth-Token: <token>``. Roles: ``viewer`` reads, ``operator``
also creates and runs, ``admin`` also deletes. A token sees only its own
project: what belongs to another project is reported as not found (404), never
as forbidden. ``orchestrator serve`` reads the file again on SIGHUP.
"""
from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

from orchestrator.errors import InvalidInput, OrchestratorError

ROLES = ("viewer", "operator", "admin")


class Unauthorized(OrchestratorError):
    """A token is needed: send 'Authorization: Bearer <token>' or 'X-Auth-Token: <token>'."""

    status_code = 401


class Forbidden(OrchestratorError):
    """This token's role does not allow that."""

    status_code = 403


@dataclass(frozen=True)
class Principal:
    project: str
    role: str
    name: str = ""
    expires: float | None = None  # epoch seconds; None: never

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


NO_AUTH = Principal(project="default", role="admin", name="no-auth")


def _entry(token: str, project: str, role: str, name: str, where: str,
           expires: float | None = None) -> tuple[str, Principal]:
    if role not in ROLES:
        raise InvalidInput(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    if not token or not project:
        raise InvalidInput(f"{where}: a token needs a value and a project")
    return token, Principal(project=project, role=role, name=name or project, expires=expires)


def _expires(value, where: str) -> float | None:
    """``expires`` of a file entry: an ISO 8601 time (YAML may have read it as a
    datetime or a date already); without a zone it is UTC, a date is its midnight."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            value = None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise InvalidInput(f"{where}: expires must be an ISO 8601 time such as "
                           f"2030-01-31T18:00:00Z")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


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
    except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: a bad YAML timestamp
        raise InvalidInput(f"cannot read the tokens file {path}: {e}") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise InvalidInput(f"{path}: expected 'tokens: [{{token, project, role, name}}]'")
    out = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise InvalidInput(f"{path}: tokens[{i}] must be a mapping")
        where = f"{path}: tokens[{i}]"
        t, p = _entry(str(e.get("token") or ""), str(e.get("project") or ""),
                      str(e.get("role") or "operator"), str(e.get("name") or ""), where,
                      _expires(e.get("expires"), where))
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


def token_of(authorization: str | None, x_auth_token: str | None = None) -> str | None:
    """The token a request carries: ``Authorization: Bearer <token>`` (the scheme in
    any case, RFC 9110), else ``X-Auth-Token``; None when neither gives one."""
    if authorization:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            return rest.strip()
        return None
    if x_auth_token and x_auth_token.strip():
        return x_auth_token.strip()
    return None


def authenticate(token: str | None, tokens: dict[str, Principal],
                 now: float | None = None) -> Principal:
    if token is None:
        raise Unauthorized()
    found = None
    for known, principal in tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):  # no timing oracle
            found = principal
    if found is None:
        raise Unauthorized("the token is not valid")
    if found.expired(time.time() if now is None else now):
        at = datetime.fromtimestamp(found.expires, UTC).isoformat()
        raise Unauthorized(f"the token expired at {at}")
    return found
