"""Reading request bodies and writing responses: one JSON error shape, ISO
times, pagination, and secret masking."""
from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import g, request, url_for
from sqlalchemy import JSON, Text, and_, or_, select

from orchestrator.dsl.yamlsource import decode
from orchestrator.errors import InvalidInput, NotFound
from orchestrator.store import schema

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_INT = 2 ** 31 - 1  # the largest integer every column holds (PostgreSQL integer)
MAX_JSON_DEPTH = 100  # objects and arrays inside each other in a JSON body (as YAML's limit)
# What each list can be sorted by: fields of its items that are plain columns (the
# OpenAPI document lists them). COLUMNS names the column of a field named otherwise.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "workbooks": ("id", "name", "project", "created_at", "updated_at"),
    "workflows": ("id", "name", "workbook_name", "project", "created_at", "updated_at"),
    "actions": ("id", "name", "workbook_name", "is_system", "created_at", "updated_at"),
    "executions": ("id", "workflow_name", "state", "project", "root_execution_id",
                   "parent_action_execution_id", "created_at", "updated_at", "finished_at"),
    "tasks": ("id", "name", "workflow_execution_id", "state", "attempt", "created_at",
              "started_at", "finished_at"),
    "action_executions": ("id", "name", "task_execution_id", "workflow_execution_id",
                          "item_index", "state", "runs", "created_at", "updated_at"),
    "environments": ("id", "name", "project", "created_at", "updated_at"),
    "cron_triggers": ("id", "name", "pattern", "timezone", "workflow_name",
                      "first_execution_time", "remaining_executions", "next_execution_time",
                      "missed", "project", "created_at"),
}
COLUMNS = {"workflow_execution_id": "execution_id",
           "parent_action_execution_id": "parent_action_id"}


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def json_body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes
        raise InvalidInput(f"the request body is nested more than {MAX_JSON_DEPTH} levels "
                           "deep") from None
    if data is None:
        if not request.get_data():
            raise InvalidInput("the request needs a JSON object body")
        raise InvalidInput("the request body is not valid JSON")
    if not isinstance(data, dict):
        raise InvalidInput(f"the request body must be a JSON object, not {type(data).__name__}")
    _check_json(data)
    return data


def _check_json(data) -> None:
    """At most MAX_JSON_DEPTH levels, and no NUL character in any string (PostgreSQL
    cannot store one in text): a 400 here, not a failure later."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(f"the request body is nested more than {MAX_JSON_DEPTH} "
                                   "levels deep")
            if isinstance(value, dict):
                for key in value:
                    if "\x00" in key:
                        raise InvalidInput(f"a NUL character (U+0000) is not allowed, as in "
                                           f"the key {key!r}")
                items = value.values()
            else:
                items = value
            stack.extend((item, depth + 1) for item in items)
        elif isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"a NUL character (U+0000) is not allowed, as in {value[:40]!r}")


def check_path() -> None:
    """A path with a NUL character names nothing (PostgreSQL cannot even compare
    text holding one): 404, as for any name that does not exist."""
    if "\x00" in request.path:
        raise NotFound(f"no such resource: {request.path!r} (a NUL character cannot be in a "
                       "name)")


def _no_nul(name: str, value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise InvalidInput(f"a NUL character (U+0000) is not allowed in {name}")
    return value


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


def sortable(column) -> bool:
    """Whether a column can be a sort key: JSON and long text cannot be ordered
    (PostgreSQL refuses JSON); ``SORT_KEYS`` has none of them."""
    return not isinstance(column.type, (JSON, Text))


def list_args(sortable, default_sort: str) -> tuple[int, list[str], list[str]]:
    """``limit``, ``sort_keys`` and ``sort_dirs`` of a list request, checked against
    the keys that list can be sorted by (400 saying what is wrong). The default
    sort is the list's own and may use keys a client cannot give."""
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    given = request.args.get("sort_keys")
    keys = _comma_list("sort_keys", given) if given is not None else default_sort.split(",")
    if given is not None:
        for k in keys:
            if k not in sortable:
                raise InvalidInput(f"cannot sort by {k!r}; sort keys: {', '.join(sortable)}")
    raw_dirs = request.args.get("sort_dirs")
    dirs = _comma_list("sort_dirs", raw_dirs) if raw_dirs is not None else []
    for d in dirs:
        if d not in ("asc", "desc"):
            raise InvalidInput(f"sort direction must be asc or desc, not {d!r}")
    if len(dirs) > len(keys):
        raise InvalidInput(f"{len(dirs)} sort directions for {len(keys)} sort keys")
    dirs += [dirs[-1] if dirs else "asc"] * (len(keys) - len(dirs))
    if "id" not in keys:  # a total order, for the marker
        keys.append("id")
        dirs.append(dirs[-1])
    return limit, keys, dirs


def _comma_list(name: str, raw: str) -> list[str]:
    """``a, b``: items with the spaces around them dropped; an empty one is a 400."""
    if not raw.strip(" "):
        raise InvalidInput(f"{name} is empty: leave it out, or give a comma list")
    items = [item.strip(" ") for item in raw.split(",")]
    if "" in items:
        raise InvalidInput(f"{name} has an empty item: {raw!r}")
    return items


def next_link(endpoint: str, params: dict, **path_args) -> str:
    """The URL of the next page: the list's path and the request's query with
    ``params`` replaced (query names are never taken for ``url_for`` arguments)."""
    query = {**request.args.to_dict(), **params}
    return url_for(endpoint, _external=True, **path_args) + "?" + urlencode(query)


def enum_arg(name: str, values) -> str | None:
    """A query parameter that must be one of ``values`` (None when not given)."""
    raw = request.args.get(name)
    if raw is not None and raw not in values:
        raise InvalidInput(f"{name} {raw!r} is not one of {', '.join(map(str, values))}")
    return raw


def page(conn, table, filters: dict, plural: str, endpoint: str, serialize,
         default_sort: str = "created_at", **url_args) -> dict:
    """One page of ``table`` rows of the caller's project (a table with a
    ``project`` column, or one with an ``execution_id`` column, scoped through
    its execution): ``limit``, ``marker``, ``sort_keys`` (of ``SORT_KEYS[plural]``),
    ``sort_dirs`` and equality ``filters`` (column -> value; None is no filter).
    Keyset paging: ``next`` is the URL of the following page (``endpoint`` with
    ``url_args`` as its path arguments). ``serialize`` takes the rows."""
    limit, keys, dirs = list_args(SORT_KEYS[plural], default_sort)
    keys = [COLUMNS.get(k, k) for k in keys]
    if "project" in table.c:
        stmt = select(table).where(table.c.project == project())
    else:
        E = schema.executions
        stmt = select(table).join(E, E.c.id == table.c.execution_id)\
            .where(E.c.project == project())
    for name, value in filters.items():
        if _no_nul(f"the {name} filter", value) is not None:
            stmt = stmt.where(table.c[name] == value)
    marker = _no_nul("marker", request.args.get("marker"))
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
        out["next"] = next_link(endpoint, {"marker": rows[limit - 1]["id"]}, **url_args)
    return out


def _int_arg(name: str, default, minimum: int, maximum: int = MAX_INT):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:  # also more than 4300 digits
        raise InvalidInput(f"{name} must be an integer, not {raw[:50]!r}") from None
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}, not {value}")
    if value > maximum:
        raise InvalidInput(f"{name} must be at most {maximum}, not {raw[:50]}")
    return value


def int_arg(name: str, default: int | None = None, minimum: int = 0,
            maximum: int = MAX_INT) -> int | None:
    """An integer query parameter (400 when it is not one, or out of its range)."""
    return _int_arg(name, default, minimum, maximum)


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
