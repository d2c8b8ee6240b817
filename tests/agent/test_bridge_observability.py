"""What the bridge reports about a Salt job: its round trip in the
``orchestrator_salt_job_duration_seconds`` histogram, and the job id (``salt_jid``)
on the log lines about its action (the session's lab: vm-1, vm-2, vm-3)."""
from __future__ import annotations

import logging

import pytest

from orchestrator import logs, metrics
from tests.agent.helpers import AgentEngine, workflow


@pytest.fixture
def engine_lines():
    """Records of the engine's logger at INFO, with the context's ids copied on."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    handler.addFilter(logs.ContextFilter())
    logger = logs.engine_log
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def count(state: str) -> float:
    return metrics.PROCESS.get_sample_value("orchestrator_salt_job_duration_seconds_count",
                                            {"fun": "cmd.run", "state": state}) or 0.0


def test_a_failed_job_is_timed_and_its_lines_carry_the_jid(salt_lab, sqlite_store,
                                                           engine_lines):
    ok_before, error_before = count("SUCCESS"), count("ERROR")
    engine = AgentEngine(sqlite_store, salt_lab.master_config)
    try:
        good = engine.run(workflow("salt.run", {"tgt": "vm-1", "cmd": "echo fine"}))
        bad = engine.run(workflow("salt.run", {"tgt": ["vm-1", "vm-2"], "tgt_type": "list",
                                               "cmd": "exit 3"}))
        action = engine.action(bad["id"])
    finally:
        engine.close()
    assert good["state"] == "SUCCESS" and bad["state"] == "ERROR"
    assert (count("SUCCESS"), count("ERROR")) == (ok_before + 1, error_before + 1)
    took = metrics.PROCESS.get_sample_value("orchestrator_salt_job_duration_seconds_sum",
                                            {"fun": "cmd.run", "state": "ERROR"})
    assert 0 < took < 600  # a duration in seconds (not a timestamp), however busy the machine

    failed = [r for r in engine_lines if r.getMessage().startswith("action salt.run failed")]
    assert len(failed) == 1, [r.getMessage() for r in engine_lines]
    line = failed[0]
    assert line.salt_jid == action["external_ref"]["jid"]
    assert (line.execution_id, line.action_execution_id) == (bad["id"], action["id"])
    task_line = [r for r in engine_lines if r.getMessage().startswith("task 'job' failed")][0]
    assert task_line.salt_jid is None and task_line.task_id == line.task_id
