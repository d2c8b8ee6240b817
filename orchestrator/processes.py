"""Child processes that run in their own session (their pid is their process group
id), so that stopping one stops everything it started: the Salt lab's daemons, and
the lab cloud and service of ``orchestrator demo``. Also free ports on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def stop_group(pgid: int, grace: float = 15.0) -> None:
    """SIGTERM a process group (not necessarily our children), SIGKILL it after
    ``grace`` seconds, and return once it is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while group_members(pgid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        else:
            return


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Daemon:
    """One process started in its own session, its output appended to ``log``
    (default ``workdir/console.log``), with ``env`` added to this environment."""

    def __init__(self, name: str, argv: list[str], workdir: Path, log: Path | None = None,
                 env: dict[str, str] | None = None):
        self.name, self.argv, self.workdir = name, argv, workdir
        self.log = log or workdir / "console.log"
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def pgid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        env = {**os.environ, **self.env} if self.env else None
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         close_fds=True, env=env)

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self.proc.poll() if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and bool(group_members(self.proc.pid))

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def reap(self, deadline: float) -> bool:
        """Wait until the whole group is gone or the deadline passes; True when gone."""
        while True:
            # the leader must be reaped too (Popen then knows it ended, no zombie is left)
            if (self.proc is None or self.proc.poll() is not None) and not self.alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole group now and wait until it is gone."""
        self.signal(signal.SIGKILL)
        self.reap(time.monotonic() + 10)
        self.proc = None


def stop_all(daemons: list[Daemon], grace: float) -> None:
    """SIGTERM every daemon at once, then SIGKILL each group still there after
    ``grace`` seconds."""
    running = [d for d in daemons if d.proc is not None]
    for d in running:
        d.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for d in running:
        if not d.reap(deadline):
            d.kill()
        d.proc = None
