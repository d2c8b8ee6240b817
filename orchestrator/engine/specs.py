"""Pinning: an execution runs the spec it started with, even if the workbook
is updated meanwhile. Documents are stored once, content-addressed."""
from __future__ import annotations

import hashlib
import json
import threading

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.dsl import spec as dsl_spec
from orchestrator.store import schema

_cache: dict[str, dsl_spec.Document] = {}
_lock = threading.Lock()


def _doc_from_dict(body: dict) -> dsl_spec.Document:
    return dsl_spec.Document(
        name=body["name"],
        workflows={k: dsl_spec.workflow_from_dict(v) for k, v in body["workflows"].items()},
        actions={k: dsl_spec.action_from_dict(v) for k, v in body["actions"].items()},
        triggers=tuple(body.get("triggers") or ()),
    )


def pin(conn, doc: dsl_spec.Document, now: float) -> str:
    """Store ``doc`` (once) and return its hash."""
    body = dsl_spec.to_dict(doc)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    with _lock:
        known = digest in _cache
        _cache.setdefault(digest, doc)
    if not known or conn.execute(
        select(schema.specs.c.hash).where(schema.specs.c.hash == digest)
    ).first() is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(schema.specs)
            .values(hash=digest, body=body, created_at=now)
            .on_conflict_do_nothing()
        )
    return digest


def load(conn, digest: str) -> dsl_spec.Document:
    doc = _cache.get(digest)
    if doc is not None:
        return doc
    body = conn.execute(select(schema.specs.c.body).where(schema.specs.c.hash == digest)).scalar()
    doc = _doc_from_dict(body)
    with _lock:
        _cache[digest] = doc
    return doc
