"""Reading request bodies and writing responses: one JSON error shape, ISO
times, pagination, and secret masking."""
from __future__ import annotations

from datetime import UTC, datetime

from flask import g, request, url_for
from sqlalchemy import JSON, Text, and_, or_, select

from orchestrator.dsl.yamlsource import decode
from orchestrator.errors import InvalidInput, NotFound
from orchestrator.store import schema

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def json_body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong."""
    data = request.get_json(silent=True)
    if data is None:
        if not request.get_data():
            raise InvalidInput("the request needs a JSON object body")
        raise InvalidInput("the request body is not valid JSON")
    if not isinstance(data, dict):
        raise InvalidInput(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def text_body() -> str:
    """A YAML definition sent as the body: UTF-8, else a 400 saying where it is not."""
    text = decode(request.get_data())
    if not text.strip():
        raise InvalidInput("the request needs a YAML definition as its body")
    return text


def field(data: dict, name: str, kind, required: bool = False, default=None):
    """One field of a JSON body, type-checked (a 400 names the field)."""
    if name not in data or data[name] is None:
        if required:
            raise InvalidInput(f"field {name!r} is required")
        return default
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool in kinds or not isinstance(value, bool):
        if isinstance(value, kinds):
            return value
    names = " or ".join(k.__name__ for k in kinds)
    raise InvalidInput(f"field {name!r} must be {names}, got {type(value).__name__}")


def project() -> str:
    return g.principal.project


def _sortable(column) -> bool:
    # JSON and long text cannot be ordered (PostgreSQL refuses JSON): a 400, not a 500.
    return not isinstance(column.type, (JSON, Text))


def page(conn, table, filters: dict, plural: str, endpoint: str, serialize,
         default_sort: str = "created_at", **url_args) -> dict:
    """One page of ``table`` rows of the caller's project (a table with a
    ``project`` column, or one with an ``execution_id`` column, scoped through
    its execution): ``limit``, ``marker``, ``sort_keys``, ``sort_dirs`` and
    equality ``filters`` (column -> value; None is no filter). Keyset paging:
    ``next`` is the URL of the following page. ``serialize`` takes the rows."""
    args = request.args
    limit = _int_arg("limit", DEFAULT_LIMIT, 1)
    limit = min(limit, MAX_LIMIT)
    keys = [k.strip() for k in args.get("sort_keys", default_sort).split(",") if k.strip()]
    dirs = [d.strip() for d in args.get("sort_dirs", "").split(",") if d.strip()]
    for k in keys:
        if k not in table.c or not _sortable(table.c[k]):
            sortable = ", ".join(c.name for c in table.c if _sortable(c))
            raise InvalidInput(f"cannot sort by {k!r}; sort keys: {sortable}")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise InvalidInput(f"sort direction must be asc or desc, not {d!r}")
    if len(dirs) > len(keys):
        raise InvalidInput(f"{len(dirs)} sort directions for {len(keys)} sort keys")
    dirs += [dirs[-1] if dirs else "asc"] * (len(keys) - len(dirs))
    if "id" not in keys:
        keys.append("id")
        dirs.append(dirs[-1])
    if "project" in table.c:
        stmt = select(table).where(table.c.project == project())
    else:
        E = schema.executions
        stmt = select(table).join(E, E.c.id == table.c.execution_id)\
            .where(E.c.project == project())
    for name, value in filters.items():
        if value is not None:
            stmt = stmt.where(table.c[name] == value)
    marker = args.get("marker")
    if marker:
        anchor = conn.execute(stmt.where(table.c.id == marker)).mappings().first()
        if anchor is None:
            raise NotFound(f"marker {marker!r} is not an item of this list")
        # Keyset pagination: the rows strictly after the marker in the sort order.
        ors = []
        for i, (k, d) in enumerate(zip(keys, dirs)):
            col = table.c[k]
            eqs = [table.c[p] == anchor[p] for p in keys[:i]]
            ors.append(and_(*eqs, col > anchor[k] if d == "asc" else col < anchor[k]))
        stmt = stmt.where(or_(*ors))
    order = [table.c[k].asc() if d == "asc" else table.c[k].desc() for k, d in zip(keys, dirs)]
    rows = [dict(r) for r in conn.execute(stmt.order_by(*order).limit(limit + 1)).mappings()]
    out = {plural: serialize(rows[:limit])}
    if len(rows) > limit:
        params = {**args.to_dict(), "marker": rows[limit - 1]["id"], **url_args}
        out["next"] = url_for(endpoint, _external=True, **params)
    return out


def _int_arg(name: str, default, minimum: int):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}, not {value}")
    return value


def int_arg(name: str, default: int | None = None, minimum: int = 0) -> int | None:
    """An integer query parameter (400 when it is not one)."""
    return _int_arg(name, default, minimum)


def bool_arg(name: str, default: bool = False) -> bool:
    """A boolean query parameter: true/false (also 1/0, yes/no)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise InvalidInput(f"{name} must be true or false, not {raw!r}")
