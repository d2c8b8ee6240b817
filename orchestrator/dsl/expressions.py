"""Mistral-compatible expressions: YAQL ``<% ... %>`` and Jinja2 ``{{ ... }}``.

The engine calls :func:`evaluate` on every task input, publish value and guard,
so the hot path is: a string without any expression is returned untouched, and
every string with expressions is compiled once (LRU cache keyed by its text)
into a list of literal and expression parts.

Data roots: YAQL ``$`` and Jinja ``_`` are the whole data dict; Jinja also sees
the data's top-level keys as plain names (they never shadow the functions).

Missing keys: YAQL ``$.missing`` is null (yaql reads mappings with ``get``).
Jinja follows the same rule for attribute access on any mapping (``_.missing``,
``_.a.missing`` are None) so both languages agree; everything else undefined
(an unknown name, ``_['missing']``, an attribute of None) raises.

Functions (both languages): ``task``, ``tasks``, ``execution``, ``env``,
``global``, ``json_parse``, ``json_dump``, ``yaml_parse``, ``yaml_dump``,
``uuid``. The first five read the caller's :class:`Functions`.
"""
from __future__ import annotations

import collections.abc  # before yaql: yaql 3.2 uses collections.abc without importing it
import functools
import itertools
import json
import re
import threading
import uuid as _uuid
from typing import Any

import jinja2
import jinja2.nodes
import yaml
import yaql
from jinja2.environment import TemplateExpression
from jinja2.sandbox import SandboxedEnvironment
from yaql.language import utils as yaql_utils

from orchestrator.dsl import bounds, yamlsource
from orchestrator.errors import ExpressionError

__all__ = ["Functions", "evaluate", "has_expression", "check_syntax"]

_YAQL_RE = re.compile(r"<%(.*?)%>", re.DOTALL)
_JINJA_RE = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
_FUNCTIONS_KEY = "__orchestrator_functions__"


class Functions:
    """What ``task()``, ``tasks()``, ``execution()``, ``env()`` and ``global()``
    return. The engine subclasses this; the defaults describe an empty world."""

    def task(self, name: str | None = None) -> dict | None:
        return None

    def tasks(self, workflow_execution_id: str | None = None, recursive: bool = False,
              state: str | None = None, flat: bool = False) -> list:
        return []

    def execution(self) -> dict:
        return {}

    def env(self) -> dict:
        return {}

    def global_(self, name: str) -> Any:
        return None

    def scope(self) -> Any:
        """What, besides the expression and its data, its value depends on (the
        execution and task whose functions these are)."""
        return None


_NO_FUNCTIONS = Functions()


# --- helpers shared by both languages -------------------------------------------------

def _thaw(obj: Any) -> Any:
    """Fresh plain dicts and lists: undoes yaql's freezing, and keeps a Jinja
    result from aliasing the caller's data (YAQL results are fresh too)."""
    if isinstance(obj, collections.abc.Mapping):
        return {k: _thaw(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_thaw(v) for v in obj]
    return obj


def _json_dump(obj: Any) -> str:
    return json.dumps(_thaw(obj), sort_keys=True, default=str)


def _yaml_parse(text: str) -> Any:
    # Within the document limits: a task result may be a billion-laughs document.
    return yamlsource.safe_load(text)


def _yaml_dump(obj: Any) -> str:
    return yaml.safe_dump(_thaw(obj), default_flow_style=False, sort_keys=False)


def _to_text(value: Any) -> str:
    """How an expression result is written into a surrounding string."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


# --- YAQL -------------------------------------------------------------------------------

def _freeze(obj: Any) -> Any:
    """yaql's convert_input_data with fast paths for JSON types. yaql expects
    immutable input (tuples, FrozenDict) so that distinct(), toSet() and dict
    keys work; the engine's data is plain JSON, which we walk without ABC checks."""
    t = type(obj)
    if t is str or t is int or t is float or t is bool or obj is None:
        return obj
    if t is dict:
        return yaql_utils.FrozenDict({k: _freeze(v) for k, v in obj.items()})
    if t is list or t is tuple:
        return tuple(_freeze(v) for v in obj)
    return yaql_utils.convert_input_data(obj)


_YAQL_ENGINE = yaql.factory.YaqlFactory().create(options={
    # Results must be plain JSON-able Python: lists, not tuples or sets.
    "yaql.convertOutputData": True,
    "yaql.convertTuplesToLists": True,
    "yaql.convertSetsToLists": True,
    "yaql.limitIterators": -1,
    # Bounds what yaql's own collection and string functions build in one call
    # ('a' * n, list * n, dict(...)); CPU time is bounded by dsl.bounds.
    "yaql.memoryQuota": bounds.LIMITS.max_result_bytes,
})


def _fns(context) -> Functions:
    return context["$" + _FUNCTIONS_KEY]


def _yaql_task(context, name=None):
    return _freeze(_fns(context).task(name))


def _yaql_tasks(context, workflow_execution_id=None, recursive=False, state=None, flat=False):
    return _freeze(_fns(context).tasks(workflow_execution_id, recursive, state, flat))


def _yaql_execution(context):
    return _freeze(_fns(context).execution())


def _yaql_env(context):
    return _freeze(_fns(context).env())


def _yaql_global(context, name):
    return _freeze(_fns(context).global_(name))


@yaql.specs.parameter("d", yaql_utils.MappingType, alias="dict")
@yaql.specs.parameter("key", yaql.yaqltypes.Keyword())
@yaql.specs.name("#operator_.")
def _yaql_dict_get(d, key):
    # yaql 3 raises KeyError for $.missing; Mistral users rely on the older null.
    return d.get(key)


def _make_yaql_root():
    # The child layer's overloads win over the standard library's.
    root = yaql.create_context().create_child_context()
    root.register_function(_yaql_dict_get)
    for name, fn in (("task", _yaql_task), ("tasks", _yaql_tasks),
                     ("execution", _yaql_execution), ("env", _yaql_env),
                     ("global", _yaql_global),
                     ("json_parse", lambda s: _freeze(json.loads(s))),
                     ("json_dump", _json_dump),
                     ("yaml_parse", lambda s: _freeze(_yaml_parse(s))),
                     ("yaml_dump", _yaml_dump),
                     ("uuid", lambda: str(_uuid.uuid4()))):
        root.register_function(fn, name=name)
    return root


_YAQL_ROOT = _make_yaql_root()


# ``$``, ``$.a``, ``$.a.b``...: most expressions in real workbooks. yaql spends
# ~100 us resolving overloads for them; walking the dicts ourselves is ~1 us and
# needs no frozen copy of the data.
_SIMPLE_PATH = re.compile(r"\$((?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_YAQL_KEYWORDS = frozenset(("true", "false", "null", "and", "or", "not", "in"))


class _YaqlExpr:
    __slots__ = ("text", "statement", "path")

    def __init__(self, text: str, body: str):
        self.text = text
        body = body.strip()
        m = _SIMPLE_PATH.fullmatch(body)
        keys = m.group(1).split(".")[1:] if m else None
        self.path = keys if keys is not None and not _YAQL_KEYWORDS.intersection(keys) else None
        try:
            self.statement = _YAQL_ENGINE(body)
        except Exception as e:  # yaql raises several unrelated exception types
            raise ExpressionError(text, f"YAQL syntax error: {e}") from None

    def __call__(self, data: Any, functions: Functions, frozen: list) -> Any:
        if self.path is not None:
            value = data
            for key in self.path:
                if type(value) is not dict:
                    break  # let yaql decide (and word the error)
                value = value.get(key)
            else:
                return _thaw(value) if isinstance(value, (dict, list, tuple)) else value
        if not frozen:  # once per evaluate() call, shared by all its expressions
            frozen.append(_freeze(data))
        ctx = _YAQL_ROOT.create_child_context()
        ctx["$"] = frozen[0]
        ctx[_FUNCTIONS_KEY] = functions
        try:
            result = self.statement.evaluate(context=ctx)
        except ExpressionError:
            raise
        except Exception as e:
            raise ExpressionError(self.text, _reason(e)) from None
        return _bounded(self.text, result)


# --- Jinja ------------------------------------------------------------------------------

def _bounded(text: str, result: Any) -> Any:
    try:
        return bounds.check_size(result)
    except ExpressionError as e:
        raise ExpressionError(text, e.reason) from None


class _Env(SandboxedEnvironment):
    # Operators that can build a huge value in one C call are checked first.
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            bounds.check_repeat(left, right)
            bounds.check_repeat(right, left)
        elif operator == "**":
            bounds.check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            for width in re.findall(r"%[-+ #0]*(\d*)(?:\.(\d+))?", left):
                for digits in width:
                    if digits:
                        bounds.check_width(int(digits[:12]))
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj, attribute):
        # A mapping's keys come before its methods (``_.items`` is the data,
        # not dict.items) and a missing key is None, like YAQL's ``$.missing``.
        if isinstance(obj, collections.abc.Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
            if not hasattr(obj, attribute):
                return None
        return super().getattr(obj, attribute)


def _jinja_fn(method):
    @jinja2.pass_context
    def call(ctx, *args, **kwargs):
        return getattr(ctx.get(_FUNCTIONS_KEY, _NO_FUNCTIONS), method)(*args, **kwargs)
    return call


def _make_jinja_env() -> _Env:
    env = _Env(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
               finalize=lambda v: _to_text(v) if isinstance(v, (dict, list)) else v)
    helpers = {
        "task": _jinja_fn("task"), "tasks": _jinja_fn("tasks"),
        "execution": _jinja_fn("execution"), "env": _jinja_fn("env"),
        "global": _jinja_fn("global_"),
        "json_parse": json.loads, "json_dump": _json_dump,
        "yaml_parse": _yaml_parse, "yaml_dump": _yaml_dump,
        "uuid": lambda *_: str(_uuid.uuid4()),
    }
    env.globals.update(helpers)
    # Mistral registers its functions as filters too: ``{{ 'x' | task }}``.
    env.filters.update(helpers)
    for name in ("center", "indent", "wordwrap"):  # a width builds the string in one call
        env.filters[name] = _width_checked(env.filters[name])
    return env


def _width_checked(filter_fn):
    @functools.wraps(filter_fn)
    def checked(value, width=80, *args, **kwargs):
        bounds.check_width(width)
        return filter_fn(value, width, *args, **kwargs)
    return checked


_JINJA_ENV = _make_jinja_env()
_JINJA_NAMES = frozenset(_JINJA_ENV.globals) | {"_", _FUNCTIONS_KEY}


def _jinja_vars(data: Any, functions: Functions) -> dict:
    names = {}
    if isinstance(data, dict):
        names = {k: v for k, v in data.items() if type(k) is str and k not in _JINJA_NAMES}
    names["_"] = data
    names[_FUNCTIONS_KEY] = functions
    return names


class _JinjaExpr:
    """A whole string that Jinja renders, or one pure ``{{ expr }}``."""

    __slots__ = ("text", "pure", "template")

    def __init__(self, text: str, pure: bool):
        self.text, self.pure = text, pure
        try:
            tree = _JINJA_ENV.parse(text)
            if pure:
                expr = tree.body[0].nodes[0]
                tree = jinja2.nodes.Template(
                    [jinja2.nodes.Assign(jinja2.nodes.Name("result", "store"), expr, lineno=1)],
                    lineno=1)
            template = _JINJA_ENV.from_string(tree)
        except jinja2.TemplateSyntaxError as e:
            raise ExpressionError(text, f"Jinja syntax error: {e.message}") from None
        self.template = TemplateExpression(template, False) if pure else template

    def __call__(self, data: Any, functions: Functions, frozen: list) -> Any:
        try:
            if self.pure:
                result = self.template(_jinja_vars(data, functions))
                if isinstance(result, jinja2.Undefined):
                    result._fail_with_undefined_error()
                result = _thaw(result) if isinstance(result, (dict, list)) else result
            else:
                result = self.template.render(_jinja_vars(data, functions))
        except ExpressionError as e:
            raise ExpressionError(self.text, e.reason) from None
        except Exception as e:
            raise ExpressionError(self.text, _reason(e)) from None
        return _bounded(self.text, result)


def _is_pure_jinja(text: str) -> bool:
    """True when ``text`` is one ``{{ expr }}`` and nothing else."""
    if not (text.startswith("{{") and text.endswith("}}")) or "{%" in text:
        return False
    try:
        body = _JINJA_ENV.parse(text).body
    except jinja2.TemplateSyntaxError:
        return False
    return (len(body) == 1 and isinstance(body[0], jinja2.nodes.Output)
            and len(body[0].nodes) == 1
            and not isinstance(body[0].nodes[0], jinja2.nodes.TemplateData))


def _reason(e: Exception) -> str:
    if isinstance(e, jinja2.UndefinedError):
        return e.message or "undefined value"
    if isinstance(e, jinja2.exceptions.SecurityError):
        return f"not allowed: {e}"
    if isinstance(e, KeyError):
        return f"no key {e.args[0]!r}"
    if isinstance(e, yaql.language.exceptions.MemoryQuotaExceededException):
        return (f"built a value larger than the limit of {bounds.LIMITS.max_result_bytes:,} "
                f"bytes (ORCH_EXPR_MAX_RESULT_BYTES)")
    text = str(e) or type(e).__name__
    return text if type(e).__module__.startswith("yaql") else f"{type(e).__name__}: {text}"


# --- compiling strings ------------------------------------------------------------------

class _Compiled:
    """A string split into literal text and expressions. ``parts`` holds either
    str (literal) or a callable(data, functions, frozen); ``raw`` is set when the whole
    string is one expression whose value is returned as is."""

    __slots__ = ("parts", "raw")

    def __init__(self, parts: list, raw: bool):
        self.parts, self.raw = parts, raw

    def __call__(self, data: Any, functions: Functions, frozen: list) -> Any:
        if self.raw:
            return self.parts[0](data, functions, frozen)
        text = "".join(p if type(p) is str else _to_text(p(data, functions, frozen))
                       for p in self.parts)
        return _bounded(text[:200], text) if len(text) > 4096 else text


_compile_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> _Compiled:
    has_yaql = _YAQL_RE.search(text) is not None
    has_jinja = _JINJA_RE.search(text) is not None
    if has_yaql and has_jinja:
        raise ExpressionError(text, "YAQL and Jinja may not be mixed in one string")
    stripped = text.strip()
    # ply's lexer and parser keep state, so parsing is serialised; results are cached.
    with _compile_lock:
        if has_jinja:
            pure = _is_pure_jinja(stripped)
            return _Compiled([_JinjaExpr(stripped if pure else text, pure)], True)
        parts: list = []
        pos = 0
        for m in _YAQL_RE.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            parts.append(_YaqlExpr(m.group(0), m.group(1)))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        exprs = [p for p in parts if type(p) is not str]
        if len(exprs) == 1 and all(type(p) is not str or not p.strip() for p in parts):
            return _Compiled(exprs, True)
        return _Compiled(parts, False)


def _maybe_expression(s: str) -> bool:
    return ("<%" in s and "%>" in s) or ("{{" in s and "}}" in s) or ("{%" in s and "%}" in s)


# --- public API -------------------------------------------------------------------------

def evaluate(value: Any, data: dict, functions: Functions | None = None) -> Any:
    """Evaluate every expression in ``value`` (a str, or lists/dicts of them,
    keys included) against ``data``. A string that is exactly one expression
    yields its raw value; a string mixing text and expressions yields a string.
    Values without expressions come back as the same object (no copy).
    Raises :class:`ExpressionError` naming the failing expression.

    Each call is bounded in CPU time and result size (see :mod:`orchestrator.dsl.bounds`)."""
    if type(value) is str and not _maybe_expression(value):
        return value
    fns = functions or _NO_FUNCTIONS

    def run():
        return _eval(value, data, bounds.rebound(fns), [])

    return bounds.guarded(run, lambda: bounds.fingerprint(fns.scope(), value, data), fns,
                          label=lambda: _label(value))


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _eval(value: Any, data: Any, functions: Functions, frozen: list) -> Any:
    t = type(value)
    if t is str:
        if not _maybe_expression(value):
            return value
        return _compile(value)(data, functions, frozen)
    if t is dict or isinstance(value, dict):
        out = None  # built only once something changed: no garbage on the fast path
        for i, (k, v) in enumerate(value.items()):
            k2, v2 = _eval(k, data, functions, frozen), _eval(v, data, functions, frozen)
            if out is None:
                if k2 is k and v2 is v:
                    continue
                out = dict(itertools.islice(value.items(), i))
            if isinstance(k2, (dict, list)):
                raise ExpressionError(str(k), f"a dict key evaluated to a {type(k2).__name__}")
            out[k2] = v2
        return value if out is None else out
    if t is list or t is tuple:
        items = None
        for i, v in enumerate(value):
            v2 = _eval(v, data, functions, frozen)
            if items is None:
                if v2 is v:
                    continue
                items = list(value[:i])
            items.append(v2)
        if items is None:
            return value
        return items if t is list else tuple(items)
    return value


def has_expression(value: Any) -> bool:
    """True if any string in ``value`` (nested lists/dicts, keys too) holds an expression."""
    if isinstance(value, str):
        return _YAQL_RE.search(value) is not None or _JINJA_RE.search(value) is not None
    if isinstance(value, dict):
        return any(has_expression(k) or has_expression(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_expression(v) for v in value)
    return False


def check_syntax(text: str) -> str | None:
    """Parse every expression in ``text`` without evaluating it. Returns a
    readable error message, or None when the string is fine."""
    if not isinstance(text, str) or not _maybe_expression(text):
        return None
    try:
        _compile(text)
    except ExpressionError as e:
        return e.message
    return None
