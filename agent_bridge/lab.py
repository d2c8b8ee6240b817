"""A private Salt LAB: one salt-master and N salt-minions on this machine, for tests and demos.

This is a lab, not a production set-up: minion keys are auto-accepted, everything runs as
the current user on 127.0.0.1, and every file (configs, keys, caches, sockets, logs) lives
in one short temporary directory that ``stop()`` removes.

    with SaltLab(minions=["vm-1", "vm-2"]) as lab:
        lab.master_config        # path of the master config: what the agent bridge needs
        lab.env()                # {"ORCH_SALT_MASTER_CONFIG": lab.master_config}
        lab.kill_minion("vm-2")  # SIGKILL its process group: a VM losing power

From the shell: ``orchestrator lab salt --minions 3`` (see ``add_commands``).

Details that matter (see the Salt lab recipe): each daemon is its own process group
(``start_new_session``) so a stop or kill reaches its workers and job processes; minions run
with ``--disable-keepalive`` so a killed minion stays dead; the master is ready only when an
MWorker answers a publish; minions are ready when they answer ``test.ping``, asked once every
few seconds (never a ping storm) with the answers read from the master's event bus.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.processes import Daemon, free_port, stop_all

log = logging.getLogger(__name__)

MAX_DIR_LEN = 50  # unix socket paths (<dir>/minions/<id>/sock/minion_event_<hex>_pull.ipc) < 108
_SOCK_SUFFIX = len("/sock/minion_event_0123456789_pull.ipc")
ENV_MASTER_CONFIG = "ORCH_SALT_MASTER_CONFIG"


class LabError(OrchestratorError):
    """The Salt lab could not be started or driven."""


# -- salt, imported lazily ------------------------------------------------------------------
_salt_lock = threading.Lock()


def import_salt():
    """Import ``salt.client``, ``salt.config`` and ``salt.utils.event`` and undo the
    process-wide side effects of importing salt: it replaces ``sys.excepthook`` and adds a
    root log handler that buffers up to 10 000 records and dumps them to stderr at exit.
    Also quiets the ``salt`` logger (it logs "Message timed out" at ERROR while a master
    starts). Returns the ``salt`` package."""
    with _salt_lock:
        if "salt.client" in sys.modules:
            _fix_nacl_importer()  # in case something imported salt before us
            return sys.modules["salt"]
        hook = sys.excepthook
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # salt and its deps import deprecated modules
            import salt.client
            import salt.config
            import salt.utils.event

            _fix_nacl_importer()
            _repair_importlib_metadata()
            try:
                import salt._logging.impl as salt_logging

                salt_logging.shutdown_temp_handler()
            except Exception:  # private API; the buffering handler is only a nuisance
                log.debug("could not remove salt's temporary log handler", exc_info=True)
        sys.excepthook = hook
        logging.getLogger("salt").setLevel(logging.CRITICAL)
        return salt


def _repair_importlib_metadata() -> None:
    """Undo what importing salt does to ``importlib.metadata``: salt's vendored
    importlib_metadata deletes ``PathFinder.find_distributions`` and puts its own finder on
    ``sys.meta_path``, whose distributions the standard library cannot read, so
    ``importlib.metadata.entry_points()`` fails in the whole process afterwards (the action
    registry, alembic's plug-ins: "'PathDistribution' object has no attribute
    '_normalized_name'"). Salt itself needs no entry points here."""
    import importlib.machinery

    path_finder = importlib.machinery.PathFinder
    if "find_distributions" not in path_finder.__dict__:
        def find_distributions(cls, *args, **kwargs):
            from importlib.metadata import MetadataPathFinder

            return MetadataPathFinder.find_distributions(*args, **kwargs)

        path_finder.find_distributions = classmethod(find_distributions)  # type: ignore
    sys.meta_path[:] = [f for f in sys.meta_path
                        if type(f).__module__ != "salt.ext.importlib_metadata"]


def _fix_nacl_importer() -> None:
    """salt puts a meta-path importer with only the legacy ``find_module`` first on
    ``sys.meta_path``; Python 3.11 then warns (ImportWarning) on every later import, an error
    under ``filterwarnings = error``. Give it the ``find_spec`` its behaviour implies."""
    import importlib.util

    for finder in sys.meta_path:
        cls = type(finder)
        if cls.__name__ == "NaclImporter" and "find_spec" not in vars(cls):
            def find_spec(self, name, path=None, target=None):
                if self.find_module(name, path) is None:
                    return None
                return importlib.util.spec_from_loader(name, self)

            setattr(cls, "find_spec", find_spec)  # noqa: B010 (mypy: no method assignment)


# -- processes ----------------------------------------------------------------------------
def _console_script(name: str) -> str:
    """A salt console script of this interpreter's environment (beside sys.executable)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            raise LabError(f"{name} not found beside {sys.executable}: install salt==3007.10 "
                           "(pip install -e '.[test]' installs it with its dependencies)")
        return found
    return str(path)


# -- the lab ------------------------------------------------------------------------------
class SaltLab:
    """A private salt-master with minions ``minions`` (ids), started by ``start()`` or
    ``with``. ``root``: the lab directory (at most 50 characters; default a new
    ``/tmp/sl-XXXXXXXX``). ``stop()`` removes it unless ``keep`` is true. Not thread-safe:
    drive one lab from one thread."""

    def __init__(self, minions: list[str] | tuple[str, ...] = ("vm-1", "vm-2", "vm-3"),
                 root: str | os.PathLike | None = None, *, keep: bool = False,
                 worker_threads: int = 2, multiprocessing: bool = False,
                 ready_timeout: float = 120.0, ping_every: float = 3.0):
        if not 2 <= worker_threads <= 16:
            raise ValueError(f"worker_threads={worker_threads}: use 2..16")
        self._ids = list(dict.fromkeys(minions))
        self._root_arg = root
        self.keep = keep
        self.worker_threads = worker_threads
        self.multiprocessing = multiprocessing
        self.ready_timeout = ready_timeout
        self.ping_every = ping_every
        self.root: Path | None = None
        self.publish_port = self.ret_port = 0
        self._master: Daemon | None = None
        self._minions: dict[str, Daemon] = {}
        self.timings: dict[str, float] = {}

    # -- public surface
    @property
    def master_config(self) -> str:
        """Path of the master config file (what LocalClient and the agent bridge read)."""
        return str(self._dir("master") / "master")

    @property
    def minions(self) -> list[str]:
        """Ids of the lab's minions (running or not)."""
        return list(self._minions)

    def env(self) -> dict[str, str]:
        """Environment variables that point the orchestrator at this lab."""
        return {ENV_MASTER_CONFIG: self.master_config}

    def __enter__(self) -> SaltLab:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configs, start the master and every minion, and return once the master
        serves and every minion answers test.ping (LabError after ``ready_timeout``)."""
        if self._master is not None:
            raise LabError("this lab is already started")
        t0 = time.monotonic()
        self._make_root()
        self.publish_port, self.ret_port = self._two_ports()
        try:
            self._write_master_config()
            self._master = Daemon("master", [_console_script("salt-master"), "-c",
                                              str(self._dir("master")), "-l", "error"],
                                   self._dir("master"))
            self._master.start()
            # minions boot (imports, grains) while the master loads; they retry auth each 1 s
            for mid in self._ids:
                self._minions[mid] = self._new_minion(mid)
                self._minions[mid].start()
            deadline = time.monotonic() + self.ready_timeout
            self._wait_master(deadline)
            self.timings["master_ready"] = time.monotonic() - t0
            self._wait_minions(self._ids, deadline)
            self.timings["all_ping"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def add_minion(self, minion_id: str) -> None:
        """Start one more minion and return once it answers test.ping."""
        if minion_id in self._minions:
            raise LabError(f"minion {minion_id!r} is already in the lab")
        self._require_started()
        self._minions[minion_id] = self._new_minion(minion_id)
        self.start_minion(minion_id)

    def spawn_minion(self, minion_id: str, wrapper: list[str] | None = None) -> None:
        """Start one more minion and return at once, without waiting for it to answer
        (a VM booting: whoever needs it waits for it, e.g. ``salt.wait_minions``).
        ``wrapper``: argv put before the minion's command (e.g. to run it in its own
        mount namespace)."""
        if minion_id in self._minions:
            raise LabError(f"minion {minion_id!r} is already in the lab")
        self._require_started()
        daemon = self._new_minion(minion_id)
        if wrapper:
            daemon.argv = [*wrapper, *daemon.argv]
        self._minions[minion_id] = daemon
        daemon.start()

    def remove_minion(self, minion_id: str) -> None:
        """Kill the minion, forget it, and delete its key from the master, so that a
        new minion with the same id (a new VM with the same name) is accepted."""
        self._minion(minion_id).kill()
        del self._minions[minion_id]
        shutil.rmtree(self._dir("minions", minion_id), ignore_errors=True)
        for state in ("minions", "minions_pre", "minions_denied", "minions_rejected"):
            self._dir("master", "pki", state, minion_id).unlink(missing_ok=True)

    def start_minion(self, minion_id: str) -> None:
        """(Re)start a stopped or killed minion and return once it answers test.ping."""
        daemon = self._minion(minion_id)
        if daemon.alive():
            return
        daemon.start()
        self._wait_minions([minion_id], time.monotonic() + self.ready_timeout)

    def kill_minion(self, minion_id: str) -> None:
        """SIGKILL the minion's process group at once (like a VM losing power); its
        running jobs die with it and it does not come back by itself."""
        self._minion(minion_id).kill()

    def stop_minion(self, minion_id: str, grace: float = 10.0) -> None:
        """SIGTERM the minion (a minion acts on it only after ~7 s), SIGKILL its process
        group after ``grace`` seconds."""
        daemon = self._minion(minion_id)
        daemon.signal(signal.SIGTERM)
        if not daemon.reap(time.monotonic() + grace):
            daemon.kill()
        daemon.proc = None

    def pgids(self) -> dict[str, int]:
        """Process group id of each running daemon ("master" and the minion ids)."""
        daemons = {"master": self._master, **self._minions}
        return {name: d.pgid for name, d in daemons.items() if d is not None and d.pgid}

    def stop(self, grace: float = 1.0, keep: bool | None = None) -> None:
        """Stop every daemon (SIGTERM, then SIGKILL of each process group after ``grace``
        seconds) and remove the lab directory unless ``keep`` (default: the lab's ``keep``)."""
        stop_all([*self._minions.values(), *([self._master] if self._master else [])], grace)
        self._master = None
        self._minions.clear()
        if self.root is not None and not (self.keep if keep is None else keep):
            shutil.rmtree(self.root, ignore_errors=True)

    # -- set-up
    def _dir(self, *parts: str) -> Path:
        if self.root is None:
            raise LabError("the lab is not started")
        return self.root.joinpath(*parts)

    def _require_started(self) -> None:
        if self._master is None:
            raise LabError("the lab is not started")

    def _minion(self, minion_id: str) -> Daemon:
        try:
            return self._minions[minion_id]
        except KeyError:
            raise LabError(f"no minion {minion_id!r} in this lab (have: {self.minions})") from None

    def _make_root(self) -> None:
        if self._root_arg is None:
            self.root = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))
        else:
            self.root = Path(self._root_arg).absolute()
            if self.root.exists() and any(self.root.iterdir()):
                raise LabError(f"{self.root} is not empty: give an empty or new directory")
            self.root.mkdir(parents=True, exist_ok=True)
        if len(str(self.root)) > MAX_DIR_LEN:
            raise LabError(f"lab directory {self.root} is longer than {MAX_DIR_LEN} characters "
                           "(unix socket paths are limited to 107 bytes): pick a shorter one")

    def _two_ports(self) -> tuple[int, int]:
        while True:
            a, b = free_port(), free_port()
            if a != b:
                return a, b

    def _write_master_config(self) -> None:
        m = self._dir("master")
        for sub in ("pki", "cache", "sock", "srv/salt", "srv/pillar"):
            (m / sub).mkdir(parents=True, exist_ok=True)
        (m / "master").write_text(f"""\
# private Salt LAB master (agent_bridge.lab): auto-accepted keys, not for production
root_dir: {m}
pki_dir: {m}/pki
cachedir: {m}/cache
sock_dir: {m}/sock
pidfile: {m}/salt-master.pid
log_file: {m}/master.log
key_logfile: {m}/key.log
log_level_logfile: info
file_roots: {{base: [{m}/srv/salt]}}
pillar_roots: {{base: [{m}/srv/pillar]}}
user: {getpass.getuser()}
interface: 127.0.0.1
publish_port: {self.publish_port}
ret_port: {self.ret_port}
auto_accept: True
worker_threads: {self.worker_threads}
keep_jobs_seconds: 86400
job_cache: True
timeout: 10
gather_job_timeout: 5
presence_events: False
# undocumented: each MWorker otherwise scans the master's grains ~6 times while starting
skip_grains: True
""")

    def _new_minion(self, minion_id: str) -> Daemon:
        d = self._dir("minions", minion_id)
        if not minion_id or "/" in minion_id or len(str(d)) + _SOCK_SUFFIX > 107:
            raise LabError(f"minion id {minion_id!r}: use a short name without '/' "
                           "(its socket paths must stay under 108 bytes)")
        d.mkdir(parents=True, exist_ok=True)
        (d / "minion").write_text(f"""\
# private Salt LAB minion (agent_bridge.lab)
id: {minion_id}
root_dir: {d}
pki_dir: {d}/pki
cachedir: {d}/cache
sock_dir: {d}/sock
pidfile: {d}/salt-minion.pid
log_file: {d}/minion.log
log_level_logfile: info
user: {getpass.getuser()}
master: 127.0.0.1
master_port: {self.ret_port}
publish_port: {self.publish_port}
acceptance_wait_time: 1
acceptance_wait_time_max: 2
random_reauth_delay: 1
auth_safemode: False
enable_fqdns_grains: False
grains_cache: True
multiprocessing: {self.multiprocessing}
# a return relay timeout loses the return on 3007.10: give it room, and keep a copy
# on the minion (saltutil.find_cached_job <jid>)
return_retry_timer: 10
return_retry_timer_max: 30
cache_jobs: True
recon_default: 500
recon_max: 3000
recon_randomize: False
startup_states: ''
# NOT mine_interval: 0, which runs mine.update every second
mine_enabled: False
file_client: remote
""")
        return Daemon(minion_id, [_console_script("salt-minion"), "-c", str(d),
                                   "--disable-keepalive", "-l", "error"], d)

    # -- readiness
    def _client(self):
        salt = import_salt()
        return salt.client.LocalClient(c_path=self.master_config)

    def _check_running(self, names: list[str]) -> None:
        daemons = {"master": self._master, **self._minions}
        for name in names:
            d = daemons.get(name)
            if d is not None and d.proc is not None and d.proc.poll() is not None:
                raise LabError(f"salt {name} exited with {d.proc.returncode}: "
                               f"{self._tail(d.workdir)}")

    def _tail(self, workdir: Path) -> str:
        lines = []
        for name in ("console.log", "master.log", "minion.log"):
            f = workdir / name
            if f.exists():
                lines += f.read_text(errors="replace").splitlines()[-5:]
        return " | ".join(lines) or f"no log in {workdir}"

    def _wait_master(self, deadline: float) -> None:
        """Ready = an MWorker answers a publish (an open ret_port is not enough)."""
        salt = import_salt()
        while time.monotonic() < deadline:
            self._check_running(["master"])
            if (self._dir("master", "sock", "publish_pull.ipc")).exists():
                lc = None
                try:
                    lc = self._client()
                    # pub(), not run_job(): run_job() print()s "No minions matched"
                    if lc.key and "jid" in (lc.pub("__nobody__", "test.ping", tgt_type="list",
                                                   timeout=2) or {}):
                        return
                except (salt.exceptions.SaltException, OSError):
                    pass
                finally:
                    if lc is not None:
                        lc.destroy()
            time.sleep(0.3)
        raise LabError(f"salt-master not serving: {self._tail(self._dir('master'))}")

    def _wait_minions(self, ids: list[str], deadline: float) -> None:
        """Ready = the minion answered test.ping. One publish to the pending minions every
        ``ping_every`` s (or 0.5 s after a minion's start event); answers are read from the
        event bus, which is drained for the whole wait and then destroyed."""
        salt = import_salt()
        opts = salt.config.client_config(self.master_config)
        bus = salt.utils.event.get_event("master", sock_dir=opts["sock_dir"], opts=opts,
                                         listen=True)
        lc = None
        ok: set[str] = set()
        try:
            bus.connect_pub(timeout=10)
            next_ping = 0.0
            while True:
                pending = [i for i in ids if i not in ok]
                if not pending:
                    return
                now = time.monotonic()
                if now >= deadline:
                    raise LabError(f"minions not answering test.ping: {pending} ("
                                   + "; ".join(self._tail(self._minions[i].workdir)
                                               for i in pending[:2]) + ")")
                self._check_running(pending)
                if now >= next_ping:
                    try:
                        lc = lc or self._client()
                        lc.pub(pending, "test.ping", tgt_type="list", timeout=5)
                    except (salt.exceptions.SaltException, OSError):
                        if lc is not None:
                            lc.destroy()
                        lc = None
                    next_ping = now + self.ping_every
                event = bus.get_event(wait=0.5, full=True)
                if not event:
                    continue
                tag, data = event["tag"], event["data"]
                if tag.startswith("salt/job/") and "/ret/" in tag:
                    if data.get("fun") == "test.ping" and data.get("return") is True:
                        ok.add(data.get("id"))
                elif tag.startswith("salt/minion/") and tag.endswith("/start"):
                    # it just connected; its SUB socket subscribes a moment later
                    next_ping = min(next_ping, time.monotonic() + 0.5)
        finally:
            bus.destroy()
            if lc is not None:
                lc.destroy()


# -- command line -------------------------------------------------------------------------
def add_commands(subparsers) -> None:
    """Register ``orchestrator lab salt`` on the ``orchestrator`` parser's subparsers."""
    lab = subparsers.add_parser(
        "lab", help="start a private LAB for tests and demos (not for production)")
    kinds = lab.add_subparsers(dest="lab_kind", required=True, metavar="KIND")
    p = kinds.add_parser(
        "salt", help="a private salt-master with N minions on this machine",
        description="Start a private Salt LAB: one salt-master and N salt-minions on "
                    "127.0.0.1, all files in one temporary directory, minion keys "
                    "AUTO-ACCEPTED. For tests and demos only, not a production set-up. "
                    "Prints the master config path to give `orchestrator serve`, then runs "
                    "until Ctrl-C or SIGTERM, and stops every daemon.")
    p.add_argument("--minions", type=int, default=3, help="number of minions (default 3)")
    p.add_argument("--prefix", default="vm", help="minion ids are PREFIX-1.. (default vm)")
    p.add_argument("--dir", metavar="D",
                   help="lab directory, at most 50 characters, kept after the stop "
                        "(default: a new /tmp/sl-XXXXXXXX, removed after the stop)")
    p.set_defaults(func=cmd_lab_salt)
    from labcloud.cli import add_commands as add_cloud_commands  # lazy: labcloud imports us

    add_cloud_commands(kinds)


def cmd_lab_salt(args) -> int:
    if args.minions < 1:
        raise LabError(f"--minions {args.minions}: give at least 1")
    ids = [f"{args.prefix}-{i}" for i in range(1, args.minions + 1)]
    print(f"starting a Salt lab with {len(ids)} minions ...", flush=True)
    # SIGTERM ends the wait like Ctrl-C does, so the daemons are stopped either way
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    lab = SaltLab(minions=ids, root=args.dir, keep=args.dir is not None)
    try:
        lab.start()
        print(f"Salt lab up in {lab.timings['all_ping']:.1f} s: minions {', '.join(ids)}\n"
              f"  directory:     {lab.root}\n"
              f"  master config: {lab.master_config}\n\n"
              "Point the orchestrator at it (in another shell):\n"
              f"  export {ENV_MASTER_CONFIG}={lab.master_config}\n"
              "  orchestrator serve --no-auth\n\n"
              "LAB only: keys are auto-accepted. Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping the Salt lab ...", flush=True)
        return 0
    finally:
        lab.stop()
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None = None) -> int:  # python -m agent_bridge.lab salt ...
    parser = argparse.ArgumentParser(prog="agent_bridge.lab")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(_main())
