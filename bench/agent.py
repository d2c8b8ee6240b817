"""Agent bridge benchmark: what running a Salt call as a workflow task costs over
calling Salt directly.

A private Salt lab (``agent_bridge.lab``: one salt-master and ``--minions``
minions, 20 by default) is started; then, in one process and alternating call by
call, the same Salt calls are made

``direct``
    with ``LocalClient.cmd(ids, fun, arg, tgt_type="list")``, which publishes and
    waits for every return;
``workflow``
    as a one-task workflow (``salt.ping`` / ``salt.run``) started with
    ``control.start`` on a fresh SQLite store and run by a real
    ``Worker(agent=True)`` plus a :class:`~agent_bridge.bridge.Bridge`: the work
    row, the lease, the job id committed before the publish, the publish, the
    returns from the event bus, and the completion transaction. Timed from
    ``control.start`` until the execution is SUCCESS (polled every 5 ms).

for ``test.ping`` and ``cmd.run true`` on 1 minion and on all of them. Each case
runs ``--repeat`` times (10 by default) after one warm-up; the medians are
compared as ``ratio = workflow / direct``.

Target: the bridge adds at most 20% to a fan-out over all minions
(``ratio <= 1.2`` for both functions at N = 20).

Usage::

    python bench/agent.py [--minions 20] [--repeat 10] [--out FILE]

The JSON on stdout (and in ``--out``) holds the machine, the command, the lab's
start-up times, every case and the targets with ``pass``. Exit status 0 when
every target passed, 1 when one failed, 2 when a run failed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import machine  # noqa: E402

MAX_RATIO = 1.2
CALLS = (("test.ping", "salt.ping", {}, []), ("cmd.run", "salt.run", {"cmd": "true"}, ["true"]))


class BenchFailure(Exception):
    pass


def workflow_text(action: str, ids: list[str], extra: dict) -> str:
    import yaml

    task = {"action": action, "input": {"tgt": ids, "tgt_type": "list", "timeout": 60, **extra}}
    return yaml.safe_dump({"version": "2.0", "wf": {"tasks": {"call": task}}})


def summary_ms(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"median": round(statistics.median(ms), 1),
            "p90": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 1),
            "min": round(ms[0], 1), "max": round(ms[-1], 1)}


def run(args) -> dict:
    from agent_bridge.bridge import Bridge
    from agent_bridge.config import SaltConfig
    from agent_bridge.lab import SaltLab, import_salt
    from orchestrator import dsl
    from orchestrator.engine import control
    from orchestrator.engine.worker import Worker
    from orchestrator.store.db import Store

    ids = [f"vm-{i}" for i in range(1, args.minions + 1)]
    out: dict = {"machine": machine(), "command": shlex.join([sys.executable] + sys.argv),
                 "minions": args.minions, "repeat": args.repeat, "cases": []}
    t0 = time.monotonic()
    with SaltLab(minions=ids) as lab, tempfile.TemporaryDirectory() as tmp:
        out["lab"] = {"start_s": round(time.monotonic() - t0, 1),
                      **{k: round(v, 1) for k, v in lab.timings.items()}}
        salt = import_salt()
        local = salt.client.LocalClient(c_path=lab.master_config)
        store = Store(f"sqlite:///{tmp}/bench.db")
        bridge = Bridge(store, SaltConfig(master_config=lab.master_config)).start()
        worker = Worker(store, agent=True).start()
        try:
            docs = {}

            def direct(fun, arg, targets):
                t = time.perf_counter()
                got = local.cmd(targets, fun, arg, tgt_type="list", timeout=60)
                took = time.perf_counter() - t
                if sorted(got) != sorted(targets):
                    raise BenchFailure(f"direct {fun}: returns from {sorted(got)} only")
                return took

            def through_workflow(action, extra, targets):
                key = (action, len(targets))
                if key not in docs:
                    docs[key] = dsl.load(workflow_text(action, targets, extra))
                t = time.perf_counter()
                execution_id = control.start(store, docs[key], None, {})
                worker.wake()  # what the API does after starting an execution
                while (state := control.execution(store, execution_id)["state"]) == "RUNNING":
                    time.sleep(0.005)
                took = time.perf_counter() - t
                if state != "SUCCESS":
                    info = control.execution(store, execution_id)["state_info"]
                    raise BenchFailure(f"workflow {action}: {state}: {info}")
                return took

            for fun, action, extra, arg in CALLS:
                for targets in (ids[:1], ids):
                    direct(fun, arg, targets)  # warm-up
                    through_workflow(action, extra, targets)
                    times: dict[str, list[float]] = {"direct": [], "workflow": []}
                    for _ in range(args.repeat):
                        times["direct"].append(direct(fun, arg, targets))
                        times["workflow"].append(through_workflow(action, extra, targets))
                    d, w = summary_ms(times["direct"]), summary_ms(times["workflow"])
                    case = {"fun": fun, "action": action, "minions": len(targets),
                            "direct_ms": d, "workflow_ms": w,
                            "added_ms": round(w["median"] - d["median"], 1),
                            "ratio": round(w["median"] / d["median"], 3)}
                    print(json.dumps(case), file=sys.stderr, flush=True)
                    out["cases"].append(case)
        finally:
            worker.stop(grace=2)
            bridge.stop()
            local.destroy()
            store.dispose()
    return out


def evaluate(out: dict) -> list[dict]:
    targets = []
    for case in out["cases"]:
        if case["minions"] == out["minions"] and out["minions"] >= 20:
            targets.append({"target": f"{case['fun']} to {case['minions']} minions: workflow / "
                                      f"direct <= {MAX_RATIO}",
                            "ratio": case["ratio"], "limit": MAX_RATIO,
                            "pass": case["ratio"] <= MAX_RATIO})
    return targets


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minions", type=int, default=20, help="lab size (default 20)")
    p.add_argument("--repeat", type=int, default=10, help="timed calls per case (default 10)")
    p.add_argument("--out", help="also write the JSON to this file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        out = run(args)
    except BenchFailure as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 2
    out["targets"] = evaluate(out)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if all(t["pass"] for t in out["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
