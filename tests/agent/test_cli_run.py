"""`orchestrator run` of a Salt workflow against a real salt-master."""
from __future__ import annotations

import json
import os
import subprocess
import sys

WF = """
version: '2.0'
check:
  tasks:
    usage:
      action: salt.run
      input:
        tgt: [vm-1, vm-2, vm-3]
        tgt_type: list
        cmd: [echo, hello]
"""


def test_a_local_run_uses_the_bridge_when_a_salt_master_is_configured(salt_lab, tmp_path):
    (tmp_path / "wf.yaml").write_text(WF)
    env = {**os.environ, "ORCH_SALT_MASTER_CONFIG": str(salt_lab.master_config)}
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(tmp_path / "wf.yaml"),
                        "--json", "--db", f"sqlite:///{tmp_path / 'o.db'}"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)["tasks"][0]["result"]
    assert {m: (v["retcode"], v["return"]) for m, v in result.items()} == {
        m: (0, "hello") for m in ("vm-1", "vm-2", "vm-3")}
