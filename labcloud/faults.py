"""Failure injection: which fault kinds a new server, volume or attachment gets, from the
``X-Lab-Fail`` header, the ``lab:fail`` metadata key and the lab's fault rules.

Kinds: ``build`` (the server goes ERROR: no valid host), ``volume`` (creating -> error),
``attach`` (the volume goes back to available, no attachment), ``agent`` (passed to
``Machines.boot``: the VM's agent never answers). All are asynchronous, as in real clouds:
the request succeeds and the failure shows later.
"""
from __future__ import annotations

import re
import threading
import uuid
from dataclasses import asdict, dataclass

from labcloud.errors import BadRequest, NotFound

FAULT_KINDS = ("build", "volume", "attach", "agent")
METADATA_KEY = "lab:fail"


@dataclass
class Rule:
    id: str
    kind: str
    match: str  # a regex searched in the server's or volume's name
    times: int  # 0 = always
    remaining: int


class FaultRules:
    """The lab's fault rules (thread-safe)."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, match: str = "", times: int = 1) -> dict:
        """Make the next ``times`` (0: every) servers or volumes whose name matches ``match``
        fail with ``kind`` (for ``attach``: the server's or the volume's name)."""
        if kind not in FAULT_KINDS:
            raise BadRequest(f"unknown fault kind {kind!r}: use {', '.join(FAULT_KINDS)}")
        if not isinstance(match, str):
            raise BadRequest(f"match must be a regular expression (a string), not {match!r}")
        try:
            re.compile(match)
        except re.error as e:
            raise BadRequest(f"match {match!r} is not a valid regular expression: {e}") from None
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise BadRequest(f"times must be an integer >= 0 (0 = always), not {times!r}")
        rule = Rule(id=str(uuid.uuid4()), kind=kind, match=match, times=times, remaining=times)
        with self._lock:
            self._rules[rule.id] = rule
        return asdict(rule)

    def list(self) -> list[dict]:
        with self._lock:
            return [asdict(r) for r in self._rules.values()]

    def remove(self, rule_id: str) -> None:
        with self._lock:
            if self._rules.pop(rule_id, None) is None:
                raise NotFound(f"Fault rule {rule_id} could not be found.")

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, kinds: tuple[str, ...], *names: str | None) -> set[str]:
        """The kinds among ``kinds`` whose rules match one of ``names``; each match uses up
        one of its rule's ``times``."""
        found: set[str] = set()
        with self._lock:
            for rule in list(self._rules.values()):
                if rule.kind not in kinds or rule.kind in found:
                    continue
                if not any(re.search(rule.match, n or "") for n in names):
                    continue
                found.add(rule.kind)
                if rule.times:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del self._rules[rule.id]
        return found


def requested_faults(header: str | None, metadata: dict | None, what: str,
              applies: tuple[str, ...]) -> set[str]:
    """The kinds asked by ``X-Lab-Fail`` and metadata ``lab:fail`` (comma-separated); 400
    for an unknown kind or one that does not apply to ``what``."""
    kinds = set()
    for source in (header, (metadata or {}).get(METADATA_KEY)):
        for kind in filter(None, (k.strip() for k in str(source or "").split(","))):
            if kind not in FAULT_KINDS:
                raise BadRequest(f"unknown lab fault {kind!r}: use {', '.join(FAULT_KINDS)}")
            if kind not in applies:
                raise BadRequest(f"lab fault {kind!r} does not apply to a {what} "
                                 f"(use {' or '.join(applies)})")
            kinds.add(kind)
    return kinds
