import json
import threading
import uuid

import pytest
import yaml

from orchestrator.dsl.expressions import Functions, check_syntax, evaluate, has_expression
from orchestrator.errors import ExpressionError

DATA = {"x": 1, "name": "web", "items": [1, 2, 3], "cfg": {"a": {"b": 2}},
        "servers": [{"name": "a", "ok": True}, {"name": "b", "ok": False}]}


class FakeFunctions(Functions):
    def __init__(self):
        self.calls = []

    def task(self, name=None):
        self.calls.append(("task", name))
        return {"name": name or "current", "result": {"id": 42}, "state": "SUCCESS"}

    def tasks(self, workflow_execution_id=None, recursive=False, state=None, flat=False):
        self.calls.append(("tasks", workflow_execution_id, recursive, state, flat))
        return [{"name": "t1", "state": state}, {"name": "t2", "state": state}]

    def execution(self):
        return {"id": "ex-1", "input": {"who": "me"}}

    def env(self):
        return {"region": "eu"}

    def global_(self, name):
        return {"counter": 7}.get(name)


# --- raw results vs interpolation -------------------------------------------------------

@pytest.mark.parametrize("expr, expected", [
    ("<% $.x %>", 1),
    ("  <% $.items %>\n", [1, 2, 3]),
    ("<% $.cfg.a %>", {"b": 2}),
    ("<% $.items.len() %>", 3),
    ("<% $.servers.where($.ok).select($.name) %>", ["a"]),
    ("<% $.x > 0 and $.name = 'web' %>", True),
    ("<% $ %>", DATA),
    ("{{ _.x }}", 1),
    (" {{ _.items }} ", [1, 2, 3]),
    ("{{ _.cfg.a }}", {"b": 2}),
    ("{{ _.items | length }}", 3),
    ("{{ name }}", "web"),
    ("{{ {'k': {'v': _.x}} }}", {"k": {"v": 1}}),
])
def test_single_expression_returns_the_raw_value(expr, expected):
    assert evaluate(expr, DATA) == expected


@pytest.mark.parametrize("expr, expected", [
    ("host-<% $.name %>-<% $.x %>", "host-web-1"),
    ("items: <% $.items %>", "items: [1, 2, 3]"),
    ("cfg <% $.cfg %>", 'cfg {"a": {"b": 2}}'),
    ("<% $.x %><% $.x %>", "11"),
    ("host-{{ _.name }}-{{ x }}", "host-web-1"),
    ("cfg {{ _.cfg }}", 'cfg {"a": {"b": 2}}'),
    ("{% for i in _.items %}{{ i }},{% endfor %}", "1,2,3,"),
    ("{{ _.x }}{{ _.x }}", "11"),
])
def test_text_with_expressions_interpolates_to_a_string(expr, expected):
    assert evaluate(expr, DATA) == expected


def test_results_are_plain_python_and_fresh_copies():
    for expr in ("<% $.cfg %>", "<% $.cfg.a %>", "{{ _.cfg }}", "<% $.items.select($) %>"):
        result = evaluate(expr, DATA)
        assert type(result) in (dict, list)
        assert result == (DATA["items"] if "items" in expr else
                          DATA["cfg"] if expr.endswith("cfg %>") or "_.cfg" in expr else {"b": 2})
        if isinstance(result, dict):
            result["mutated"] = True
    assert "mutated" not in DATA["cfg"] and "mutated" not in DATA["cfg"]["a"]
    assert evaluate("<% set(1, 2) %>", {}) == [1, 2]
    assert evaluate("<% dict(a => [1, 2]) %>", {}) == {"a": [1, 2]}


def test_yaql_distinct_works_on_dicts_from_the_data():
    data = {"l": [{"a": 1}, {"a": 1}, {"a": 2}]}
    assert evaluate("<% $.l.distinct() %>", data) == [{"a": 1}, {"a": 2}]


def test_nested_structures_and_dict_keys_are_evaluated():
    value = {"<% $.name %>": ["<% $.x %>", {"n": "{{ _.x + 1 }}"}, 5], "plain": "text"}
    assert evaluate(value, DATA) == {"web": [1, {"n": 2}, 5], "plain": "text"}


def test_a_dict_key_that_evaluates_to_a_dict_is_an_error():
    with pytest.raises(ExpressionError, match="dict key"):
        evaluate({"<% $.cfg %>": 1}, DATA)


def test_values_without_expressions_are_returned_as_the_same_object():
    value = {"a": [1, {"b": "text"}], "c": None, "d": 1.5}
    assert evaluate(value, DATA) is value
    s = "no expression here, not even {{ half"
    assert evaluate(s, DATA) is s
    assert evaluate(None, DATA) is None


def test_missing_keys_are_null_in_both_languages():
    assert evaluate("<% $.missing %>", DATA) is None
    assert evaluate("<% $.cfg.missing %>", DATA) is None
    assert evaluate("{{ _.missing }}", DATA) is None
    assert evaluate("{{ _.cfg.missing }}", DATA) is None


def test_jinja_reads_dict_keys_before_dict_methods():
    assert evaluate("{{ _.items }}", {"items": [1]}) == [1]
    assert evaluate("{{ _.cfg.keys() | list }}", DATA) == ["a"]


# --- functions --------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_engine_functions_read_the_callers_functions_object(lang):
    fns = FakeFunctions()

    def ev(body):
        return evaluate(f"<% {body} %>" if lang == "yaql" else f"{{{{ {body} }}}}", {}, fns)

    assert ev("task('build').result.id") == 42
    assert ev("task().name") == "current"
    assert ev("execution().input.who") == "me"
    assert ev("env().region") == "eu"
    assert ev("global('counter')") == 7
    tasks = ev("tasks(state => 'ERROR')" if lang == "yaql" else "tasks(state='ERROR')")
    assert tasks == [{"name": "t1", "state": "ERROR"}, {"name": "t2", "state": "ERROR"}]
    assert ("tasks", None, False, "ERROR", False) in fns.calls


def test_jinja_functions_work_as_filters():
    fns = FakeFunctions()
    assert evaluate("{{ 'deploy' | task }}", {}, fns)["name"] == "deploy"
    assert evaluate("{{ _.s | json_parse }}", {"s": '{"a": 1}'}) == {"a": 1}


def test_default_functions_describe_an_empty_world():
    assert evaluate("<% env() %>", {}) == {}
    assert evaluate("{{ task('x') }}", {}) is None
    assert evaluate("<% tasks() %>", {}) == []
    assert evaluate("<% execution() %>", {}) == {}


@pytest.mark.parametrize("lang", ["yaql", "jinja"])
def test_json_and_yaml_helpers_round_trip(lang):
    def ev(body, data):
        return evaluate(f"<% {body} %>" if lang == "yaql" else f"{{{{ {body} }}}}", data)

    root = "$" if lang == "yaql" else "_"
    data = {"obj": {"b": [1, 2], "a": "x"}, "j": '{"k": [1, 2]}', "y": "k:\n- 1\n- 2\n"}
    assert json.loads(ev(f"json_dump({root}.obj)", data)) == data["obj"]
    assert ev(f"json_parse({root}.j)", data) == {"k": [1, 2]}
    assert yaml.safe_load(ev(f"yaml_dump({root}.obj)", data)) == data["obj"]
    assert ev(f"yaml_parse({root}.y)", data) == {"k": [1, 2]}


@pytest.mark.parametrize("expr", ["<% uuid() %>", "{{ uuid() }}"])
def test_uuid_returns_a_new_uuid_each_time(expr):
    first, second = evaluate(expr, {}), evaluate(expr, {})
    assert str(uuid.UUID(first)) == first and first != second


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("expr, reason", [
    ("<% $.x + %>", "YAQL syntax error"),
    ("<% 1 / 0 %>", "ZeroDivisionError"),
    ("<% nosuch() %>", 'Unknown function "nosuch"'),
    ("<% $.missing.deeper %>", "deeper"),
    ("{{ _.x + }}", "Jinja syntax error"),
    ("{{ nosuch }}", "'nosuch' is undefined"),
    ("{{ _.missing.deeper }}", "has no attribute 'deeper'"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("x {{ nosuch }} y", "'nosuch' is undefined"),
])
def test_failures_raise_expression_error_naming_the_expression(expr, reason):
    with pytest.raises(ExpressionError) as exc:
        evaluate({"key": ["ok", expr]}, DATA)
    assert exc.value.expression.strip() in (expr, expr.strip())
    assert reason in exc.value.reason
    assert exc.value.status_code == 400


def test_only_the_failing_part_of_an_interpolated_yaql_string_is_named():
    with pytest.raises(ExpressionError) as exc:
        evaluate("ok <% $.x %> bad <% 1 / 0 %>", DATA)
    assert exc.value.expression == "<% 1 / 0 %>"


@pytest.mark.parametrize("expr", [
    "{{ ''.__class__.__mro__ }}",
    "{{ _.__class__ }}",
    "{{ (1).__class__.__subclasses__() }}",
    "{{ task.__globals__ }}",
    "x {{ ''.__class__.__mro__[1].__subclasses__() }}",
])
def test_jinja_sandbox_blocks_escapes(expr):
    with pytest.raises(ExpressionError) as exc:
        evaluate(expr, {"x": 1})
    assert "unsafe" in exc.value.reason or "undefined" in exc.value.reason


def test_mixing_yaql_and_jinja_in_one_string_is_an_error():
    with pytest.raises(ExpressionError, match="mixed"):
        evaluate("<% $.x %> and {{ _.x }}", DATA)


# --- has_expression / check_syntax ------------------------------------------------------

def test_has_expression_finds_expressions_anywhere():
    assert has_expression("<% $.x %>")
    assert has_expression({"a": ["plain", {"b": "{{ _.x }}"}]})
    assert has_expression({"<% $.k %>": 1})
    assert has_expression("{% if true %}x{% endif %}")
    assert not has_expression({"a": ["plain", 1, None, "{ not }", "<%"]})


@pytest.mark.parametrize("text", [
    "plain", "<% $.x %>", "a <% $.items.where($ > 1) %> b", "{{ _.x | length }}",
    "{% if _.x %}yes{% endif %}", "<% task(a).result %>", 42,
])
def test_check_syntax_accepts_good_expressions(text):
    assert check_syntax(text) is None


@pytest.mark.parametrize("text, message", [
    ("<% $.x + %>", "YAQL syntax error"),
    ("ok <% $.x %> then <% ($.y %>", "YAQL syntax error"),
    ("{{ _.x + }}", "Jinja syntax error"),
    ("{% if _.x %}no end", "Jinja syntax error"),
    ("{{ _.x | nosuchfilter }}", "No filter named 'nosuchfilter'"),
    ("<% $.x %> {{ _.y }}", "may not be mixed"),
])
def test_check_syntax_reports_broken_expressions(text, message):
    error = check_syntax(text)
    assert error is not None and message in error


def test_check_syntax_does_not_evaluate():
    fns = FakeFunctions()
    assert check_syntax("<% task(x) %>") is None
    assert fns.calls == []


# --- speed and threads ------------------------------------------------------------------

def test_an_expression_is_compiled_once_and_plain_text_never():
    """What keeps repeated evaluations cheap, counted rather than timed (the
    speed itself is measured by bench/, not asserted on a shared machine)."""
    from orchestrator.dsl import expressions

    text = f"<% $.x %> {uuid.uuid4().hex}"  # new to the cache
    before = expressions._compile.cache_info()
    for _ in range(1000):
        assert evaluate(text, DATA) == f"{DATA['x']} {text.split()[-1]}"
        assert evaluate("plain text", DATA) == "plain text"
    after = expressions._compile.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 999


def test_evaluation_is_thread_safe():
    errors = []

    def work(n):
        try:
            for i in range(50):
                data = {"n": n, "i": i}
                assert evaluate(f"<% $.n * 1000 + $.i + {n} %>", data) == n * 1000 + i + n
                assert evaluate("{{ _.n }}-{{ _.i }}", data) == f"{n}-{i}"
        except Exception as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
