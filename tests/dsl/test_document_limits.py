"""Documents come from users: reading one is bounded. Nested aliases ("billion
laughs"), recursive aliases, deep nesting, control characters, invalid UTF-8
and values a tag cannot hold are each one problem with a line, never an
exception, a hang or a crash, in the library and in the CLI."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import pytest

from orchestrator import dsl
from orchestrator.dsl.yamlsource import MAX_DEPTH, MAX_VALUES, Source, decode, safe_load
from orchestrator.errors import InvalidDefinition

WORKFLOW = "version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.echo\n"


def laughs(levels: int = 9) -> str:
    """The classic billion laughs: each level a list of ten aliases of the one before."""
    names = "abcdefghijklmnop"
    lines = ["version: '2.0'", "a: &a [" + ",".join(["lol"] * 10) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"{names[i]}: &{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def nested(levels: int) -> str:
    """A workflow whose task input nests ``levels`` flow lists (the root mapping,
    ``wf``, ``tasks``, ``t`` and ``input`` are 5 more levels)."""
    return WORKFLOW + "      input:\n        output: " + "[" * levels + "]" * levels + "\n"


@contextlib.contextmanager
def hang_guard(seconds: int = 30):
    """Fail instead of hanging (only a guard: no test here measures speed)."""

    def expired(signum, frame):
        raise AssertionError(f"still reading the document after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def problems(text: str) -> list[str]:
    with hang_guard():
        source = Source(text, "doc.yaml")
    return [str(p) for p in source.sorted_problems()]


# --- aliases -------------------------------------------------------------------------------

def test_billion_laughs_is_one_problem_and_nothing_is_built():
    text = laughs()
    assert len(text) < 600
    with hang_guard():
        source = Source(text, "doc.yaml")
    [problem] = source.sorted_problems()
    assert source.data is None
    assert f"more than {MAX_VALUES} values" in problem.message
    assert "each use of an alias counted as a copy" in problem.message
    assert 2 <= problem.line <= 11


def test_aliases_count_as_copies_up_to_the_limit():
    # 5 + n + k * (n + 1) values: the root mapping, two keys, two lists, n scalars
    # and k aliases of the anchored list.
    n = 999

    def doc(k: int) -> str:
        return "a: &a [" + ",".join(["1"] * n) + "]\nb: [" + ",".join(["*a"] * k) + "]\n"

    below = (MAX_VALUES - 5 - n) // (n + 1)
    with hang_guard():
        ok = Source(doc(below))
        over = Source(doc(below + 1))
    assert ok.problems == [] and len(ok.data["b"]) == below and ok.data["b"][-1] == [1] * n
    [problem] = over.sorted_problems()
    assert problem.line == 2 and f"more than {MAX_VALUES} values" in problem.message


@pytest.mark.parametrize("text, line", [
    ("version: '2.0'\na: &a [1, *a]\n", 2),
    ("version: '2.0'\na: &a\n  b: *a\n", 3),
    ("version: '2.0'\na: &a\n  b:\n    - c: [*a]\n", 4),
    ("version: '2.0'\na: &a {*a : 1}\n", 2),
])
def test_a_recursive_alias_is_a_problem_at_the_alias(text, line):
    [problem] = problems(text)
    assert problem.startswith(f"doc.yaml:{line}: alias *a is used inside the value it names")


def test_merge_keys_and_aliases_still_work_with_their_lines():
    text = ("defaults: &d {retry: 3, wait: 1}\n"
            "a:\n  <<: *d\n  wait: 2\n"
            "b: *d\n")
    source = Source(text)
    assert source.problems == []
    assert source.data == {"defaults": {"retry": 3, "wait": 1}, "a": {"retry": 3, "wait": 2},
                           "b": {"retry": 3, "wait": 1}}
    assert source.line(("a", "wait")) == 4 and source.line(("b",)) == 5


# --- depth ---------------------------------------------------------------------------------

def test_nesting_up_to_the_limit_loads():
    doc = dsl.load(nested(MAX_DEPTH - 5))
    value = doc.workflows["wf"].tasks["t"].input["output"]
    depth = 0
    while isinstance(value, list):
        depth, value = depth + 1, value[0] if value else None
    assert depth == MAX_DEPTH - 5


@pytest.mark.parametrize("levels", [MAX_DEPTH - 4, 700, 100_000])
def test_nesting_deeper_than_the_limit_is_a_problem_with_its_line(levels):
    [problem] = problems(nested(levels))
    assert problem == f"doc.yaml:7: mappings and lists are nested more than {MAX_DEPTH} " \
                      "levels deep"


def test_nesting_made_deep_by_aliases_is_a_problem_at_the_alias():
    # Each anchored list holds the one before: 10 levels written, far more expanded.
    # l<i> is 10 + 9 * i levels deep; *l9 used 10 levels down makes 101.
    lines = ["l0: &l0 " + "[" * 10 + "]" * 10]
    lines += [f"l{i}: &l{i} " + "[" * 9 + f"*l{i - 1}" + "]" * 9 for i in range(1, 20)]
    [problem] = problems("\n".join(lines) + "\n")
    assert problem == "doc.yaml:11: alias *l9 nests mappings and lists more than 100 levels deep"


# --- characters and encoding ---------------------------------------------------------------

@pytest.mark.parametrize("char, name", [("\x01", "U+0001"), ("\x00", "U+0000"),
                                        ("\x7f", "U+007F"), ("\x9b", "U+009B"),
                                        ("\ufffe", "U+FFFE")])
def test_a_control_character_is_a_problem_with_line_and_column(char, name):
    [problem] = problems(WORKFLOW + f"      input:\n        output: a{char}b\n")
    assert problem.startswith(f"doc.yaml:7: character {name} (")
    assert "at column 18 is not allowed in YAML" in problem


def test_tabs_line_ends_and_escaped_controls_are_fine():
    text = WORKFLOW + '      input:\n        output: "a\\x01\tb"\n'
    source = Source(text.replace("\n", "\r\n"))
    assert source.problems == []
    assert source.data["wf"]["tasks"]["t"]["input"]["output"] == "a\x01\tb"


def test_invalid_utf8_is_refused_with_its_line():
    raw = WORKFLOW.encode() + b"      input:\n        output: caf\xe9\n"
    with pytest.raises(InvalidDefinition) as info:
        decode(raw, "doc.yaml")
    [problem] = info.value.problems
    assert str(problem) == ("doc.yaml:7: the document is not valid UTF-8: byte 0xe9 at column "
                            "20 (invalid continuation byte); save it as UTF-8")


def test_utf8_with_or_without_a_bom_is_read():
    text = WORKFLOW + "      input:\n        output: café ☕\n"
    for raw in (text.encode(), b"\xef\xbb\xbf" + text.encode()):
        assert Source(decode(raw)).data["wf"]["tasks"]["t"]["input"]["output"] == "café ☕"


# --- values a tag cannot hold ----------------------------------------------------------------

@pytest.mark.parametrize("value, says", [
    (".nan", "cannot read '.nan' as float: JSON has no NaN or infinity"),
    ("-1.0e+400", "cannot read '-1.0e+400' as float: JSON has no NaN or infinity"),
    ("!!binary aGk=", "cannot read 'aGk=' as binary: binary data cannot be kept"),
    ("!!bool maybe", "cannot read 'maybe' as bool: unknown value 'maybe'"),
    ("!!float abc", "cannot read 'abc' as float"),
    ("!!int " + "9" * 5000, "as int: Exceeds the limit (4300 digits)"),
])
def test_a_value_its_tag_cannot_hold_is_a_problem(value, says):
    as_value, as_key = problems(WORKFLOW + f"      input:\n        output: {value}\n"
                                           f"        ? {value}\n        : 1\n")
    assert as_value.startswith("doc.yaml:7 wf.tasks.t.input.output: ") and says in as_value
    assert as_key.startswith("doc.yaml:8 wf.tasks.t.input: ") and says in as_key


def test_dates_are_kept_as_the_text_written():
    # A definition's data is JSON, which has no dates; 2020-13-45 is no date at all.
    text = WORKFLOW + ("      input:\n"
                       "        output: [2024-01-01, 2024-01-01 10:00:00Z, 2020-13-45]\n")
    source = Source(text)
    assert source.problems == []
    assert source.data["wf"]["tasks"]["t"]["input"]["output"] == [
        "2024-01-01", "2024-01-01 10:00:00Z", "2020-13-45"]


# --- YAML inside a document ----------------------------------------------------------------

def test_a_with_items_literal_is_read_within_the_limits():
    flow = laughs().replace("version: '2.0'\n", "").replace("\n", ", ")
    text = WORKFLOW + f"      input: {{output: 1}}\n      with-items: 'x in [{flow}]'\n"
    with hang_guard(), pytest.raises(InvalidDefinition) as info:
        dsl.load(text, "doc.yaml")
    [problem] = info.value.problems
    assert problem.line == 7 and "must be an expression or a literal list" in problem.message


def test_an_inline_parameter_is_read_within_the_limits():
    anchors = laughs().replace("version: '2.0'\n", "").replace("\n", ", ")
    text = WORKFLOW.replace("std.echo\n", f"'std.echo output=[a\", {anchors} z\"]'\n")
    with hang_guard():
        doc = dsl.load(text)
    # Over the limits it is not YAML: the text is kept as written, not expanded.
    assert doc.workflows["wf"].tasks["t"].input["output"].startswith('[a", a: &a [lol,')
    assert safe_load("[1, &a [2], *a]") == [1, [2], [2]]


# --- the command line ------------------------------------------------------------------------

HOSTILE = {
    "laughs": (laughs().encode(), f"more than {MAX_VALUES} values"),
    "recursive": (b"version: '2.0'\na: &a [*a]\n", "recursive alias"),
    "deep": (nested(1000).encode(), f"nested more than {MAX_DEPTH} levels deep"),
    "control": (WORKFLOW.encode() + b"      input: {output: \x07}\n", "U+0007 (a control"),
    "utf8": (WORKFLOW.encode() + b"      input: {output: \xff}\n", "not valid UTF-8: byte 0xff"),
    "nan": (WORKFLOW.encode() + b"      input: {output: .nan}\n", "JSON has no NaN"),
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True,
                          text=True, timeout=120)  # the timeout only guards against a hang


def written(tmp_path, name: str):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(HOSTILE[name][0])
    return path


def test_cli_validate_refuses_each_with_its_line_and_exit_code_3(tmp_path):
    paths = {name: written(tmp_path, name) for name in sorted(HOSTILE)}
    r = cli("validate", *map(str, paths.values()))
    assert r.returncode == 3, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == len(HOSTILE), r.stderr
    for name, path in paths.items():
        assert any(x.startswith(f"{path}:") and HOSTILE[name][1] in x for x in lines), name
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_cli_run_refuses_each_before_running_anything(tmp_path, name):
    path = written(tmp_path, name)
    r = cli("run", str(path), "--db", f"sqlite:///{tmp_path / 'o.db'}")
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith(f"{path}:") and HOSTILE[name][1] in r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert not (tmp_path / "o.db").exists()
