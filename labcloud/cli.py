"""``orchestrator lab cloud``: run the lab cloud until Ctrl-C or SIGTERM."""
from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from labcloud.config import CloudConfig
from labcloud.machines import Machines, NullMachines
from labcloud.model import Cloud
from labcloud.server import LabCloudServer
from orchestrator.errors import InvalidInput

DEFAULT_PORT = 8775


class _Labs:
    """What the command started besides the cloud (the Salt lab), to stop at the end."""

    salt = None
    temporary_root: Path | None = None  # removed at the end


def make_machines(args, labs: _Labs) -> Machines:
    """The machines behind the cloud's servers and volumes: real Salt minions and volume
    files under ``args.dir`` (default), or none with ``--no-vms``."""
    if args.no_vms:
        return NullMachines()
    from agent_bridge.lab import SaltLab
    from labcloud.vms import SaltMachines

    root = Path(args.dir or tempfile.mkdtemp(prefix="lc-", dir="/tmp")).absolute()
    root.mkdir(parents=True, exist_ok=True)
    if not args.dir:
        labs.temporary_root = root
    labs.salt = SaltLab(minions=[], root=root / "salt", keep=True)
    labs.salt.start()
    isolate = {"auto": None, "namespace": True, "host": False}[args.devices]
    return SaltMachines(labs.salt, root, isolate_devices=isolate)


def add_commands(lab_subparsers) -> None:
    """Register ``cloud`` on the ``orchestrator lab`` subparsers."""
    p = lab_subparsers.add_parser(
        "cloud", help="an OpenStack-compatible lab cloud (Keystone, Nova, Cinder) in memory",
        description="Serve an in-memory emulation of the OpenStack APIs workbooks use "
                    "(Keystone v3, Nova v2.1, Cinder v3), with failure injection under /lab. "
                    "Prints the auth URL and credentials, then runs until Ctrl-C or SIGTERM. "
                    "For tests and demos only.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="multiply every build/attach/... duration by X (default 1; "
                        "0: instantaneous)")
    p.add_argument("--dir", metavar="D",
                   help="directory for the VMs' files: the salt-master, the minions, the "
                        "volume files (default: a new /tmp/lc-XXXXXXXX; at most 40 characters)")
    p.add_argument("--no-vms", action="store_true",
                   help="API only: no salt-master, servers are not backed by minions")
    p.add_argument("--devices", choices=("auto", "namespace", "host"), default="auto",
                   help="where a VM sees its attached volumes: namespace = /dev/vdb in the "
                        "minion's own mount namespace (needs root); host = the host path "
                        "of the volume's link, reported as the attachment's device; auto "
                        "(default) = namespace where it works")
    p.add_argument("--ready-file", metavar="F",
                   help="once serving, write the URLs, credentials and salt-master config "
                        "path to F as JSON")
    p.set_defaults(func=cmd_lab_cloud)


def cmd_lab_cloud(args, machines_factory: Callable[..., Machines] = make_machines) -> int:
    if args.time_scale < 0:
        raise InvalidInput(f"--time-scale {args.time_scale}: give a number >= 0")
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    labs, server, cloud = _Labs(), None, None
    try:
        if not args.no_vms:
            print("starting the salt-master for the lab's VMs ...", flush=True)
        cloud = Cloud(CloudConfig(time_scale=args.time_scale), machines_factory(args, labs))
        try:
            server = LabCloudServer(cloud, host=args.host, port=args.port).start()
        except OSError as e:
            raise InvalidInput(f"cannot serve on {args.host}:{args.port}: {e}") from e
        account = cloud.config.accounts[0]
        env = {"auth_url": server.auth_url, "username": account.user,
               "password": account.password, "project": account.project}
        print(f"lab cloud serving {server.url}\n"
              f"  auth URL: {server.auth_url}\n"
              f"  user {account.user} / password {account.password}, project "
              f"{account.project}, domain {cloud.config.domain_name}\n"
              f"  time scale: {args.time_scale}\n\n"
              f"env for workbooks:\n  {json.dumps(env)}\n\n"
              + (f"salt-master for the VMs' minions (give it to orchestrator serve):\n"
                 f"  ORCH_SALT_MASTER_CONFIG={labs.salt.master_config}\n\n"
                 if labs.salt else "")
              + "LAB only, state in memory. Ctrl-C stops it.", flush=True)
        if args.ready_file:
            ready = {"url": server.url, "auth_url": server.auth_url,
                     "master_config": labs.salt.master_config if labs.salt else None,
                     "credentials": {"username": account.user, "password": account.password,
                                     "project": account.project}}
            tmp = Path(args.ready_file + ".tmp")
            tmp.write_text(json.dumps(ready))
            tmp.replace(args.ready_file)  # whoever waits for it never reads half of it
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping the lab cloud ...", flush=True)
        return 0
    finally:
        if server is not None:
            server.stop()
        if cloud is not None:
            cloud.close()  # destroys the VMs (their minions)
        if labs.salt is not None:
            labs.salt.stop(keep=args.dir is not None)
        if labs.temporary_root is not None:
            shutil.rmtree(labs.temporary_root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
