"""The command line as users call it: a real `orchestrator` process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dsl.test_invalid import HERE as INVALID
from tests.dsl.test_invalid import expectations

ROOT = Path(__file__).parent.parent


def cli(*args, env_db=None, tmp=None):
    cmd = [sys.executable, "-m", "orchestrator.cli", *args]
    env = None
    if tmp is not None:
        import os

        env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data")}
        env.pop("ORCH_DATABASE_URL", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_validate_accepts_a_valid_workbook():
    r = cli("validate", str(ROOT / "workbooks" / "rollout.yaml"))
    assert r.returncode == 0, r.stderr
    assert "valid (rollout.rollout, rollout.configure_one)" in r.stdout


def test_validate_rejects_every_invalid_workbook_with_line_and_path():
    files = sorted(INVALID.glob("*.yaml"))
    assert len(files) >= 20
    r = cli("validate", *map(str, files))
    assert r.returncode == 3
    lines = r.stderr.splitlines()
    for path in files:
        for line, ypath, part in expectations(path.read_text()):
            where = f"{path}:{line}" if line else str(path)
            prefix = f"{where} {ypath}: " if ypath else f"{where}: "
            assert any(x.startswith(prefix) and part in x for x in lines), (path.name, prefix)


def test_validate_of_a_missing_file_says_so():
    r = cli("validate", "/nonexistent/deploy.yaml")
    assert r.returncode == 4
    assert "cannot read /nonexistent/deploy.yaml" in r.stderr
    assert "Traceback" not in r.stderr


WF = """
version: '2.0'
greet:
  input:
    - name
    - fail: false
  tasks:
    hello:
      action: std.echo output="hello <% $.name %>"
      publish:
        greeting: <% task().result %>
      on-success:
        - boom: <% $.fail %>
        - done: <% not $.fail %>
    boom:
      action: std.fail
    done:
      action: std.noop
  output:
    greeting: <% $.greeting %>
"""

PAUSING = """
version: '2.0'
wf:
  tasks:
    a:
      on-success: [pause, b]
    b:
      action: std.noop
"""


def test_run_json_prints_the_execution_and_every_task_in_start_order(tmp_path):
    (tmp_path / "wf.yaml").write_text(WF)
    r = cli("run", str(tmp_path / "wf.yaml"), "--input", '{"name": "ops"}', "--json", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"id", "workflow_name", "state", "state_info", "output", "tasks"}
    assert out["state"] == "SUCCESS"
    assert out["output"] == {"greeting": "hello ops"}
    assert [(t["name"], t["state"]) for t in out["tasks"]] == [("hello", "SUCCESS"),
                                                                ("done", "SUCCESS")]
    assert out["tasks"][0]["published"] == {"greeting": "hello ops"}
    assert out["tasks"][0]["result"] == "hello ops"
    assert (tmp_path / "data" / "orchestrator" / "orchestrator.db").exists()


def test_run_exits_1_when_the_execution_fails_and_names_the_failed_task(tmp_path):
    (tmp_path / "wf.yaml").write_text(WF)
    r = cli("run", str(tmp_path / "wf.yaml"), "--input", '{"name": "x", "fail": true}',
            tmp=tmp_path)
    assert r.returncode == 1
    assert "ERROR" in r.stdout and "boom" in r.stdout
    assert "FAIL boom" in r.stderr  # live progress


def test_run_exits_2_when_the_execution_pauses(tmp_path):
    (tmp_path / "wf.yaml").write_text(PAUSING)
    r = cli("run", str(tmp_path / "wf.yaml"), "--json", tmp=tmp_path)
    assert r.returncode == 2, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "PAUSED"
    assert [t["name"] for t in out["tasks"]] == ["a"]


@pytest.mark.parametrize("args, message", [
    (["--input", "{bad"], "--input is not valid JSON"),
    (["--input", "[1]"], "--input must be a JSON object"),
    (["--input", '{"nme": "x"}'], "has no input 'nme'"),
    (["--input", "{}"], "needs input 'name'"),
    (["--workflow", "nope", "--input", '{"name": "x"}'], "no workflow 'nope'"),
])
def test_run_with_bad_input_explains_without_a_traceback(tmp_path, args, message):
    (tmp_path / "wf.yaml").write_text(WF)
    r = cli("run", str(tmp_path / "wf.yaml"), *args, tmp=tmp_path)
    assert r.returncode == 4
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_run_of_an_invalid_file_exits_3_with_the_problems(tmp_path):
    typo = WF.replace("on-success:\n        - boom", "on-success:\n        - bom")
    (tmp_path / "wf.yaml").write_text(typo)
    r = cli("run", str(tmp_path / "wf.yaml"), tmp=tmp_path)
    assert r.returncode == 3
    assert "unknown task 'bom' (did you mean 'boom'?)" in r.stderr


def test_run_picks_a_workflow_of_a_workbook_by_short_or_full_name(tmp_path):
    wb = str(ROOT / "workbooks" / "rollout.yaml")
    for name in ("configure_one", "rollout.configure_one"):
        r = cli("run", wb, "--workflow", name, "--task-name", "configure", "--json", tmp=tmp_path)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["workflow_name"] == "rollout.configure_one"
        assert out["tasks"][-1]["result"] == "web-1 @ latest"
    r = cli("run", wb, tmp=tmp_path)
    assert r.returncode == 4 and "several workflows" in r.stderr


def test_bad_command_line_is_a_usage_error_not_paused():
    r = cli("run")
    assert r.returncode == 64


SALT_WF = """
version: '2.0'
ping:
  tasks:
    ping:
      action: salt.ping tgt=vm-1
"""


def test_run_of_a_salt_workflow_without_a_salt_master_says_what_to_set(tmp_path):
    (tmp_path / "wf.yaml").write_text(SALT_WF)
    r = cli("run", str(tmp_path / "wf.yaml"), tmp=tmp_path)
    assert r.returncode == 4
    assert "calls salt.ping: set ORCH_SALT_MASTER_CONFIG" in r.stderr
