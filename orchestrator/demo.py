"""``orchestrator demo``: the product's main job end to end on this machine.

It starts a lab stack (:class:`LabStack`): the lab cloud (Keystone, Nova and
Cinder on 127.0.0.1, each server a real Salt minion, each volume a sparse
file) with its private salt-master, and the orchestrator service (API, engine,
scheduler and Salt bridge on SQLite). Then, as a user would through the REST
API, it uploads ``workbooks/deploy_stack.yaml``, stores the cloud's
credentials in an environment, starts the workflow, shows its progress and
prints the stack it built. Without ``--keep`` everything it started is stopped
and its directory removed; with ``--keep`` the service stays up for you to
explore (``orchestrator demo --stop`` ends it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from orchestrator.client import Client
from orchestrator.errors import Conflict, OrchestratorError
from orchestrator.processes import Daemon, free_port, port_free, stop_all, stop_group
from orchestrator.store.db import data_dir
from orchestrator.watch import Watcher

ENVIRONMENT = "lab-cloud"
WORKFLOW = "deploy_stack.deploy_stack"  # <workbook>.<workflow>, as in Mistral
READY_TIMEOUT = 120.0
SCHEDULE_PATTERN = "*/10 * * * * *"  # --schedule: every 10 seconds (seconds first)


class DemoError(OrchestratorError):
    exit_code = 1


def workbook_text(name: str) -> str:
    """A workbook shipped with the package (``workbooks/<name>.yaml``)."""
    return resources.files("workbooks").joinpath(f"{name}.yaml").read_text()


def state_file() -> Path:
    """Where a kept demo records its processes (for ``orchestrator demo --stop``)."""
    return data_dir() / "demo.json"


def tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _command() -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli"]


class LabStack:
    """The lab cloud (with its salt-master and VMs) and an orchestrator service
    using it, each a process of its own in ``root`` (default: a new short
    directory in /tmp; salt's socket paths must stay short). ``time_scale``
    multiplies the cloud's transition times (0: instantaneous)."""

    def __init__(self, root: str | os.PathLike | None = None, *, time_scale: float = 1.0,
                 port: int = 0, cloud_port: int = 0, keep: bool = False,
                 devices: str = "auto"):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="od-", dir="/tmp"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.time_scale, self.port, self.cloud_port, self.keep = (time_scale, port,
                                                                  cloud_port, keep)
        self.devices = devices  # where VMs see attached volumes (orchestrator lab cloud)
        self.cloud: dict = {}  # the lab cloud's ready file: url, auth_url, master_config, ...
        self.url = ""
        self._processes: list[Daemon] = []

    # -- life cycle
    def __enter__(self) -> LabStack:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, say=lambda text: None) -> None:
        """Start the lab cloud, then the service; ``say`` is told what happens."""
        try:
            say("starting the lab cloud (Keystone, Nova, Cinder on 127.0.0.1) with its "
                "salt-master ...")
            self._start_cloud()
            say(f"lab cloud up: {self.cloud['auth_url']}")
            say("starting the orchestrator service (API, engine, scheduler, Salt bridge; "
                "SQLite) ...")
            self._start_service()
            say(f"orchestrator API up: {self.url}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for d in reversed(self._processes):  # the service first, then the cloud
            stop_all([d], grace=15.0)
        self._processes.clear()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def pgids(self) -> list[int]:
        return [p.proc.pid for p in self._processes if p.proc is not None]

    # -- what the tests and the demo use
    def client(self) -> Client:
        return Client(self.url, token="")

    def environment(self) -> dict:
        """The environment variables deploy_stack reads with env()."""
        creds = self.cloud["credentials"]
        return {"auth_url": self.cloud["auth_url"], "username": creds["username"],
                "password": creds["password"], "project": creds["project"]}

    def lab(self, method: str, path: str, **kwargs):
        """A call to the lab cloud's own API (/lab/...: faults, state)."""
        import requests

        resp = requests.request(method, self.cloud["url"] + path, timeout=30, **kwargs)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    # -- set-up
    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> Daemon:
        d = Daemon(name, argv, self.root, log=self.root / f"{name.replace(' ', '-')}.log",
                   env=env)
        d.start()
        self._processes.append(d)
        return d

    @staticmethod
    def _check(d: Daemon) -> None:
        code = d.exited()
        if code is not None:
            raise DemoError(f"the {d.name} exited with {code}: {tail(d.log)}")

    def _start_cloud(self) -> None:
        ready = self.root / "cloud.json"
        p = self._spawn("lab cloud", [*_command(), "lab", "cloud", "--dir",
                                      str(self.root / "cloud"), "--port", str(self.cloud_port),
                                      "--time-scale", str(self.time_scale),
                                      "--devices", self.devices, "--ready-file", str(ready)])
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            self._check(p)
            if time.monotonic() > deadline:
                raise DemoError(f"the lab cloud did not start in {READY_TIMEOUT:.0f} s: "
                                f"{tail(p.log)}")
            time.sleep(0.1)
        self.cloud = json.loads(ready.read_text())

    def _start_service(self) -> None:
        port = self.port or free_port()
        db = f"sqlite:///{self.root / 'orchestrator.db'}"
        p = self._spawn("orchestrator", [*_command(), "serve", "--no-auth", "--port", str(port),
                                         "--db", db],
                        env={"ORCH_SALT_MASTER_CONFIG": self.cloud["master_config"]})
        self.url = f"http://127.0.0.1:{port}"
        client = Client(self.url, token="", timeout=5)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self._check(p)
            try:
                client.request("GET", "/health")
                return
            except OrchestratorError:
                if time.monotonic() > deadline:
                    raise DemoError(f"the orchestrator service did not answer in "
                                    f"{READY_TIMEOUT:.0f} s: {tail(p.log)}") from None
                time.sleep(0.2)


# -- what a user does through the API -------------------------------------------------
def upload(client: Client, name: str, text: str | None = None) -> None:
    """Create the workbook, or update it when it exists."""
    text = text if text is not None else workbook_text(name)
    try:
        client.create_definition("workbooks", text, file=f"{name}.yaml")
    except Conflict:
        client.update_definition("workbooks", text, file=f"{name}.yaml")


def put_environment(client: Client, name: str, variables: dict, secrets: list[str]) -> None:
    body = {"name": name, "variables": variables, "secrets": secrets,
            "description": "the lab cloud's Keystone URL and credentials"}
    try:
        client.create("environments", body)
    except Conflict:
        client.update("environments", body)


def output_of(execution: dict) -> dict:
    """An execution's output as a dict (the API may give it as JSON text, as Mistral does)."""
    output = execution.get("output") or {}
    return json.loads(output) if isinstance(output, str) else output


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table of ``rows`` (dicts) with ``columns``."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    def line(values) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])]
                     + [line(row) for row in cells])


STACK_COLUMNS = ["vm", "server_id", "volume_id", "device", "fs_type", "fs_uuid"]


# -- the command -------------------------------------------------------------------------
def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="deploy a stack of VMs on a lab cloud, end to end (start here)",
        description="Start a lab cloud (Keystone, Nova, Cinder; each VM a real Salt minion, "
                    "each volume a file) and the orchestrator service on SQLite, upload "
                    "workbooks/deploy_stack.yaml through the REST API, run it and show its "
                    "progress: create the VMs, create a volume for each, attach them, and "
                    "format each volume (ext4) through Salt inside its VM.")
    p.add_argument("--vms", type=int, default=3, help="number of VMs (default 3, at most 20)")
    p.add_argument("--keep", action="store_true",
                   help="leave the service and the lab running to explore them "
                        "(orchestrator demo --stop ends them)")
    p.add_argument("--schedule", action="store_true",
                   help="also upload workbooks/nightly_check.yaml with a trigger every 10 s "
                        "and show it firing")
    p.add_argument("--stop", action="store_true", help="stop a demo left running by --keep")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="multiply the lab cloud's build/attach times (default 1; 0: instant)")
    p.add_argument("--port", type=int, default=8989,
                   help="port of the orchestrator API (default 8989; 0: any free port)")
    p.set_defaults(func=cmd_demo)


class _Say:
    def __init__(self, stream):
        self.stream, self.t0 = stream, time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {text}", file=self.stream, flush=True)


def cmd_demo(args) -> int:
    if args.stop:
        return stop_kept(sys.stdout)
    if not 1 <= args.vms <= 20:
        raise DemoError(f"--vms {args.vms}: give 1 to 20")
    if args.keep and state_file().exists():
        raise DemoError(f"a kept demo may still run ({state_file()}): stop it first with "
                        "orchestrator demo --stop")
    out = sys.stdout
    say = _Say(out)
    port = args.port if args.port and port_free(args.port) else 0
    stack = LabStack(time_scale=args.time_scale, port=port, keep=args.keep)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    kept = False
    try:
        stack.start(say)
        client = stack.client()
        say("POST /v2/workbooks            workbooks/deploy_stack.yaml")
        upload(client, "deploy_stack")
        say(f"POST /v2/environments         {ENVIRONMENT} (auth_url, username, project; "
            "password as a secret)")
        put_environment(client, ENVIRONMENT, stack.environment(), ["password"])
        say(f"POST /v2/executions           deploy_stack vm_count={args.vms}")
        ex = client.start_execution(WORKFLOW, {"vm_count": args.vms},
                                    env=ENVIRONMENT)
        ended = Watcher(client, ex["id"], out).run()
        code = _result(client, ended, out, say)
        if args.schedule:
            _schedule(client, out, say)
        if args.keep:
            kept = True
            _keep(stack, ex["id"], out)
        return code
    except KeyboardInterrupt:
        print("interrupted: stopping the demo ...", file=out, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not kept:
            say("stopping the service and the lab cloud; removing their files ...")
            stack.keep = False
            stack.stop()


def _result(client: Client, ended: dict, out, say) -> int:
    took = _took(ended)
    if ended["state"] == "SUCCESS":
        stack = output_of(ended).get("stack") or []
        say(f"deploy_stack SUCCESS in {took}: {len(stack)} VMs, each with an ext4 volume")
        print("\n" + table(stack, STACK_COLUMNS) + "\n", file=out, flush=True)
        return 0
    report = client.report(ended["id"])
    cause = report.get("root_cause") or {}
    task = cause.get("task", "?")
    say(f"deploy_stack {ended['state']} in {took}")
    print(f"  first cause: task {task}: {cause.get('state_info') or ended.get('state_info')}",
          file=out, flush=True)
    return 1


def _took(ex: dict) -> str:
    from orchestrator.watch import seconds

    s = seconds(ex.get("created_at"), ex.get("updated_at"))
    return f"{s:.1f} s" if s is not None else "?"


def _schedule(client: Client, out, say, fires: int = 2) -> None:
    text = workbook_text("nightly_check").replace('pattern: "0 2 * * *"',
                                                  f'pattern: "{SCHEDULE_PATTERN}"')
    say(f"POST /v2/workbooks            workbooks/nightly_check.yaml, its trigger set to "
        f"'{SCHEDULE_PATTERN}' (every 10 s)")
    upload(client, "nightly_check", text)
    say(f"waiting for {fires} scheduled runs of nightly_check ...")
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 15 * fires + 30
    while time.monotonic() < deadline:
        for ex in client.list("executions", workflow_name="nightly_check.nightly_check"):
            if ex["state"] in ("SUCCESS", "ERROR") and ex["id"] not in seen:
                seen[ex["id"]] = ex
                output = output_of(ex)
                detail = (f"agents {', '.join(output.get('agents') or [])}; disk "
                          + ", ".join(f"{u['vm']} {u['used_percent']}"
                                      for u in output.get("usage") or [])
                          if ex["state"] == "SUCCESS" else ex.get("state_info"))
                say(f"nightly_check fired at {ex['created_at']}: {ex['state']}: {detail}")
        if len(seen) >= fires:
            break
        time.sleep(1)
    else:
        raise DemoError(f"nightly_check fired {len(seen)} time(s) in the time allowed, "
                        f"not {fires}")
    client.request("DELETE", "/v2/workbooks/nightly_check")
    say("deleted workbook nightly_check (and its trigger)")


def _keep(stack: LabStack, execution_id: str, out) -> None:
    state_file().write_text(json.dumps({"root": str(stack.root), "pgids": stack.pgids(),
                                        "url": stack.url, "cloud": stack.cloud}))
    print(f"""
The demo keeps running (its files: {stack.root}).
  dashboard          {stack.url}/
  orchestrator API   {stack.url}/v2/executions      (no authentication, 127.0.0.1 only)
  lab cloud          {stack.cloud['auth_url']}   (admin / {stack.cloud['credentials']['password']})
  salt-master        ORCH_SALT_MASTER_CONFIG={stack.cloud['master_config']}

Explore it:
  export ORCH_URL={stack.url}
  orchestrator execution list
  orchestrator execution report {execution_id}
  orchestrator execution start {WORKFLOW} --input '{{"vm_count": 2, "name_prefix": "more"}}' \\
      --env {ENVIRONMENT} --watch
  curl -s {stack.cloud['url']}/lab/state

Stop it: orchestrator demo --stop""", file=out, flush=True)


def stop_kept(out) -> int:
    path = state_file()
    if not path.exists():
        print("no kept demo is running", file=out)
        return 0
    state = json.loads(path.read_text())
    for pgid in reversed(state["pgids"]):
        stop_group(pgid)
    shutil.rmtree(state["root"], ignore_errors=True)
    path.unlink()
    print(f"stopped the demo and removed {state['root']}", file=out)
    return 0
