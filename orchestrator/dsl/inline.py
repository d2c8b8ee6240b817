"""The one-line ``name k=v k2=v2`` syntax.

Mistral uses it in three places: inline action parameters
(``std.http url=<% $.url %> method=POST``), the one-line retry policy
(``count=3 delay=1``) and engine commands in transitions (``fail msg="boom"``).
Whitespace separates words except inside quotes or expression delimiters, so
``msg="a b"`` and ``url=<% $.base + '/x' %>`` are single words.
"""
from __future__ import annotations

import json
import re

import yaml

from orchestrator.dsl.yamlsource import safe_load

_OPENERS = {"<%": "%>", "{{": "}}", "{%": "%}"}
_KEY = re.compile(r"^[A-Za-z_][\w-]*$")


class InlineError(ValueError):
    """The text does not follow the ``name k=v`` syntax."""


def split_words(text: str) -> list[str]:
    """Split on whitespace outside quotes and ``<% %>`` / ``{{ }}`` / ``{% %}``."""
    words, word, i, closer = [], "", 0, None
    while i < len(text):
        if closer is not None:
            if text[i] == "\\" and closer == '"' and i + 1 < len(text):
                word += text[i:i + 2]  # an escaped character never closes the quote
                i += 2
            elif text.startswith(closer, i):
                word += closer
                i += len(closer)
                closer = None
            else:
                word += text[i]
                i += 1
            continue
        pair = text[i:i + 2]
        if pair in _OPENERS:
            closer = _OPENERS[pair]
            word += pair
            i += 2
        elif text[i] in "'\"":
            closer = text[i]
            word += text[i]
            i += 1
        elif text[i].isspace():
            if word:
                words.append(word)
            word = ""
            i += 1
        else:
            word += text[i]
            i += 1
    if closer is not None:
        raise InlineError(f"unclosed {closer!r} in {text!r}")
    if word:
        words.append(word)
    return words


def parse_value(raw: str):
    """A literal for ``k=v``: quoted strings unquoted, expressions kept verbatim,
    anything else read as a YAML scalar (``1`` -> 1, ``true`` -> True)."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        if raw[0] == '"':
            try:
                return json.loads(raw)  # honours \" and \n like Mistral's JSON parse
            except ValueError:
                pass
        return raw[1:-1]
    if any(opener in raw for opener in _OPENERS):
        return raw
    try:
        return safe_load(raw)  # within the document limits: no billion laughs
    except yaml.YAMLError:
        return raw


def parse_params(words: list[str]) -> dict:
    """``["a=1", "b='x y'"]`` -> ``{"a": 1, "b": "x y"}``."""
    params = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep or not _KEY.match(key):
            raise InlineError(f"expected key=value, got {word!r}")
        if key in params:
            raise InlineError(f"parameter {key!r} given twice")
        params[key] = parse_value(raw)
    return params


def parse_call(text: str) -> tuple[str, dict]:
    """``"std.echo output=hi"`` -> ``("std.echo", {"output": "hi"})``."""
    words = split_words(text)
    if not words:
        raise InlineError("empty")
    return words[0], parse_params(words[1:])
