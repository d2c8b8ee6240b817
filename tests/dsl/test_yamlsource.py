"""YAML loading that keeps line numbers and refuses duplicate keys."""
from __future__ import annotations

from orchestrator.dsl.yamlsource import Source, format_path

TEXT = """\
top:
  list:
    - a
    - b: 1
  map:
    key: value
"""


def test_every_key_and_list_item_has_its_line():
    source = Source(TEXT)
    assert source.data == {"top": {"list": ["a", {"b": 1}], "map": {"key": "value"}}}
    assert source.line(("top",)) == 1
    assert source.line(("top", "list", 1)) == 4
    assert source.line(("top", "list", 1, "b")) == 4
    assert source.line(("top", "map", "key")) == 6
    assert source.line(("top", "map", "key", "deeper", 3)) == 6  # nearest known ancestor


def test_duplicate_keys_are_problems_while_merge_keys_may_override():
    source = Source("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\nuse: again\n", "f.yaml")
    [problem] = source.sorted_problems()
    assert str(problem) == "f.yaml:5 use: duplicate key 'use' (first defined on line 2)"


def test_merged_mapping_keeps_explicit_keys():
    source = Source("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")
    assert source.problems == []
    assert source.data["use"] == {"x": 3, "y": 2}


def test_syntax_errors_become_one_problem_with_a_line():
    source = Source("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    [problem] = source.sorted_problems()
    assert problem.line == 3 and "YAML syntax error" in problem.message
    assert source.data is None


def test_paths_print_integer_keys_as_keys_and_list_positions_as_indexes():
    assert format_path(("tasks", 1, "on-success", 0), {"tasks": {1: {"on-success": ["x"]}}}) \
        == "tasks.1.on-success[0]"
    assert format_path(("a", 2)) == "a[2]"
