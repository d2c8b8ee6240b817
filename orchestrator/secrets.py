"""Secret values (environment variables listed as secret) hidden as ``***`` in
API responses, events shown to users, and log lines."""
from __future__ import annotations

import logging
import threading

MASK = "***"
_known: set[str] = set()
_lock = threading.Lock()


def values_of(env: dict | None, names) -> list[str]:
    """The values to hide: those of the environment variables named secret."""
    if not env or not names:
        return []
    out = []
    for name in names:
        value = env.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value)
            if len(text) >= 3:  # masking "1" everywhere would hide more than secrets
                out.append(text)
    remember(out)
    return sorted(out, key=len, reverse=True)


def remember(values) -> None:
    """Hide these values in every log line of this process from now on."""
    with _lock:
        _known.update(values)


def known() -> list[str]:
    """Every value remembered so far, longest first (for :func:`mask`)."""
    with _lock:
        return sorted(_known, key=len, reverse=True)


def mask(value, secrets):
    """``value`` with every occurrence of a secret replaced by ``***``."""
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, MASK)
        return value
    if isinstance(value, dict):
        return {k: mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secrets) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in secrets:
        return MASK
    return value


class MaskingFilter(logging.Filter):
    """A logging filter that hides every remembered secret in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            with _lock:
                secrets = sorted(_known, key=len, reverse=True)
            record.msg = mask(record.getMessage(), secrets)
            record.args = None
        return True
