"""Every file in invalid/ is a broken workbook whose first lines say, one
``# expect: <line> <path>: <message part>`` per problem, what load() must
report, in order (problems come sorted by line)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.dsl import load
from orchestrator.errors import InvalidDefinition

HERE = Path(__file__).parent / "invalid"
EXPECT = re.compile(r"^# expect: (\d+) (\S*): (.+)$")


def expectations(text: str) -> list[tuple[int, str, str]]:
    out = []
    for line in text.splitlines():
        match = EXPECT.match(line)
        if not match:
            break
        out.append((int(match[1]), match[2], match[3]))
    return out


@pytest.mark.parametrize("path", sorted(HERE.glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_workbook_reports_every_expected_problem(path):
    text = path.read_text()
    expected = expectations(text)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(InvalidDefinition) as info:
        load(text, path.name)
    got = [str(p) for p in info.value.problems]
    assert len(got) == len(expected), "\n".join(got)
    for (line, ypath, part), problem in zip(expected, got):
        where = f"{path.name}:{line}" if line else path.name  # line 0: nowhere to point
        prefix = f"{where} {ypath}: " if ypath else f"{where}: "
        assert problem.startswith(prefix) and part in problem, "\n".join(got)


def test_problems_carry_file_line_and_path_for_the_api():
    text = (HERE / "deploy.yaml").read_text()
    with pytest.raises(InvalidDefinition) as info:
        load(text, "deploy.yaml")
    assert info.value.to_dict()["problems"] == [{
        "path": "workflows.deploy.tasks.attach.on-success[0]",
        "line": 14,
        "message": "unknown task 'formt' (did you mean 'format'?)",
    }]
    assert str(info.value) == ("deploy.yaml:14 workflows.deploy.tasks.attach.on-success[0]: "
                               "unknown task 'formt' (did you mean 'format'?)")
