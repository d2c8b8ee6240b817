"""Keystone's part of the lab cloud: users with a role on a project, and password tokens."""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from labcloud.errors import NotFound, Unauthorized
from orchestrator.errors import InvalidInput


@dataclass(frozen=True)
class Account:
    """A user with a role on a project, in the cloud's one domain."""

    user: str = "admin"
    password: str = "devstacker"
    project: str = "admin"
    role: str = "admin"


@dataclass(frozen=True)
class Token:
    """An issued token; ``project_id`` is None for an unscoped one."""

    id: str
    user_id: str
    user_name: str
    project_id: str | None
    project_name: str | None
    roles: tuple[tuple[str, str], ...]  # (id, name)
    issued_at: float
    expires_at: float
    audit_id: str


@dataclass
class _User:
    id: str
    name: str
    password: str
    roles: dict[str, str]  # project id -> role name


class Identity:
    """Users, projects and tokens (thread-safe). Tokens live ``ttl`` seconds."""

    def __init__(self, accounts: tuple[Account, ...], domain_id: str = "default",
                 domain_name: str = "Default", ttl: float = 3600.0):
        if not accounts:
            raise InvalidInput("the lab cloud needs at least one account")
        self.domain_id, self.domain_name, self.ttl = domain_id, domain_name, ttl
        self.projects: dict[str, str] = {}  # id -> name
        self.role_ids: dict[str, str] = {}  # role name -> id
        self._users: dict[str, _User] = {}  # by name
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        for a in accounts:
            project_id = self.project_id(a.project) or uuid.uuid4().hex
            self.projects[project_id] = a.project
            self.role_ids.setdefault(a.role, uuid.uuid4().hex)
            user = self._users.setdefault(a.user, _User(uuid.uuid4().hex, a.user, a.password, {}))
            if user.password != a.password:
                raise InvalidInput(f"account {a.user!r} is given two different passwords")
            user.roles[project_id] = a.role

    def project_id(self, name: str) -> str | None:
        return next((pid for pid, n in self.projects.items() if n == name), None)

    def issue(self, *, password: str, user_id: str | None = None, user_name: str | None = None,
              user_domain: dict | None = None, project_id: str | None = None,
              project_name: str | None = None, project_domain: dict | None = None) -> Token:
        """A token for a user (by id, or by name within a domain), scoped to a project (by
        id, or by name within a domain) or unscoped. Any mismatch is a 401, as in Keystone."""
        user = next((u for u in self._users.values()
                     if (u.id == user_id if user_id else u.name == user_name)), None)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            raise Unauthorized()
        if user_name is not None and not self._in_domain(user_domain):
            raise Unauthorized()
        pid = None
        if project_id is not None or project_name is not None:
            pid = project_id if project_id in self.projects else self.project_id(project_name or "")
            if project_id is None and not self._in_domain(project_domain):
                raise Unauthorized()
            if pid is None or pid not in user.roles:
                raise Unauthorized()
        now = time.time()
        role = user.roles.get(pid) if pid else None
        token = Token(id=uuid.uuid4().hex, user_id=user.id, user_name=user.name, project_id=pid,
                      project_name=self.projects.get(pid) if pid else None,
                      roles=((self.role_ids[role], role),) if role else (),
                      issued_at=now, expires_at=now + self.ttl,
                      audit_id=secrets.token_urlsafe(16)[:22])
        with self._lock:
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._tokens[token.id] = token
        return token

    def _in_domain(self, domain: dict | None) -> bool:
        if not isinstance(domain, dict):
            return False
        if "id" in domain:
            return domain["id"] == self.domain_id
        return domain.get("name") == self.domain_name

    def check(self, token_id: str | None) -> Token:
        """The valid token with this id; 401 when it is missing, unknown or expired."""
        with self._lock:
            token = self._tokens.get(token_id or "")
        if token is None or token.expires_at <= time.time():
            raise Unauthorized()
        return token

    def revoke(self, token_id: str) -> None:
        with self._lock:
            if self._tokens.pop(token_id, None) is None:
                raise NotFound(f"Could not find token: {token_id}.")
