"""The one-line ``name k=v`` syntax of actions, retry policies and commands."""
from __future__ import annotations

import pytest

from orchestrator.dsl.inline import InlineError, parse_call, split_words


def test_words_split_on_spaces_outside_quotes_and_expressions():
    text = "std.http url=<% $.base + '/a b' %> body=\"x y\" note={{ _.n }} q='1 2'"
    assert split_words(text) == [
        "std.http", "url=<% $.base + '/a b' %>", 'body="x y"', "note={{ _.n }}", "q='1 2'",
    ]


def test_values_are_yaml_scalars_unless_quoted_or_expressions():
    name, params = parse_call(
        'std.echo a=1 b=2.5 c=true d=null e=POST f="7" g=\'x y\' h=<% $.x %> i="a\\"b"')
    assert name == "std.echo"
    assert params == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "POST", "f": "7",
                      "g": "x y", "h": "<% $.x %>", "i": 'a"b'}


def test_an_expression_may_be_the_name_itself():
    assert parse_call("<% $.action %> x=1") == ("<% $.action %>", {"x": 1})


@pytest.mark.parametrize("text, reason", [
    ("std.echo hello", "expected key=value"),
    ("std.echo output='oops", "unclosed"),
    ("std.echo a=1 a=2", "given twice"),
    ("std.echo =1", "expected key=value"),
])
def test_malformed_parameters_are_refused(text, reason):
    with pytest.raises(InlineError, match=reason):
        parse_call(text)
