"""``orchestrator lab cloud``: a real process that prints how to reach it and stops on
SIGTERM."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

from .helpers import password_auth

ROOT = Path(__file__).resolve().parents[2]


def test_lab_cloud_command_serves_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "lab", "cloud", "--port",
                             "0", "--time-scale", "0", "--no-vms"], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("  {"):
                break
        env = json.loads(lines[-1])
        assert env["username"] == "admin" and env["password"] == "devstacker"
        assert env["project"] == "admin" and env["auth_url"].endswith("/identity/v3")
        resp = requests.post(f"{env['auth_url']}/auth/tokens", json=password_auth(), timeout=5)
        assert resp.status_code == 201
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "stopping the lab cloud" in proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_lab_cloud_command_refuses_a_negative_time_scale():
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "lab", "cloud", "--port",
                           "0", "--time-scale", "-1"], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert proc.returncode == 4 and "--time-scale -1" in proc.stderr, proc.stderr
