"""Real machines behind the lab cloud's servers: each server is a Salt minion of a
private salt-master (``agent_bridge.lab.SaltLab``), each volume a sparse file.

Attaching a volume makes it visible to that server's minion at the device path the
attachment reports (``/dev/vdb``, ``/dev/vdc``, ...), so formatting it through Salt
really writes a filesystem into the volume's file:

* **isolated devices** (root with ``unshare``, the default where it works): each
  minion runs in its own mount namespace whose ``/dev`` is the VM's own directory
  (``vms/<minion>/dev``) holding the usual device nodes (bind-mounted from the host)
  and, once attached, ``vdb -> volumes/<id>.img``. The host's ``/dev`` is untouched.
* otherwise, the attachment reports the host path of that link
  (``<root>/vms/<minion>/dev/vdb``): the same file, a less VM-like name.

The minion id is the server's ``metadata.minion_id`` when given (what cloud-init
would configure in a real VM), else the server's name.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

from agent_bridge.lab import LabError, SaltLab
from labcloud.machines import MachineError, Machines

log = logging.getLogger(__name__)

GIB = 1024 ** 3
MINION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")

# Runs inside the minion's new mount namespace: give it a /dev of its own, then exec it.
NAMESPACE_SCRIPT = """\
#!/bin/sh
# lab VM: a private /dev for this minion (runs in its own mount namespace)
set -e
D="$1"; shift
for n in null zero full random urandom tty; do
    [ -e "/dev/$n" ] || continue
    : > "$D/$n"
    mount --bind "/dev/$n" "$D/$n"
done
mkdir -p "$D/shm" "$D/pts"
mount --rbind /dev/shm "$D/shm" 2>/dev/null || true
mount --rbind /dev/pts "$D/pts" 2>/dev/null || true
ln -sfn /proc/self/fd "$D/fd"
mount --bind "$D" /dev
exec "$@"
"""


def namespaces_work() -> bool:
    """True when this process may give a child its own mount namespace."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def minion_id(server: dict) -> str:
    mid = (server.get("metadata") or {}).get("minion_id") or server.get("name") or ""
    if not MINION_ID.match(mid):
        raise MachineError(f"Build of instance {server.get('id')} aborted: minion id {mid!r} "
                           "must be 1-40 letters, digits, '.', '_' or '-'")
    return mid


class SaltMachines(Machines):
    """Servers as minions of ``lab`` (a started :class:`SaltLab`), volumes as sparse
    files under ``root``. ``isolate_devices``: None = wherever namespaces work."""

    def __init__(self, lab: SaltLab, root: str | os.PathLike,
                 isolate_devices: bool | None = None):
        self.lab = lab
        self.root = Path(root)
        self.isolated = namespaces_work() if isolate_devices is None else isolate_devices
        self._lock = threading.Lock()  # SaltLab is driven from one thread at a time
        self._minions: dict[str, str] = {}  # server id -> minion id
        (self.root / "vms").mkdir(parents=True, exist_ok=True)
        (self.root / "volumes").mkdir(parents=True, exist_ok=True)
        self._script = self.root / "vm-namespace.sh"
        self._script.write_text(NAMESPACE_SCRIPT)
        self._script.chmod(0o755)

    # -- paths
    def volume_file(self, volume_id: str) -> Path:
        return self.root / "volumes" / f"{volume_id}.img"

    def device_dir(self, server_id: str) -> Path:
        return self.root / "vms" / self._minion(server_id) / "dev"

    def _minion(self, server_id: str) -> str:
        try:
            return self._minions[server_id]
        except KeyError:
            raise MachineError(f"server {server_id} has no VM") from None

    # -- servers
    def boot(self, server: dict, faults: set[str]) -> dict:
        """Start the VM's minion; the server's metadata then tells its id (minion_id)."""
        mid = minion_id(server)
        with self._lock:
            if mid in self._minions.values():
                raise MachineError(f"Build of instance {server['id']} aborted: a VM with "
                                   f"minion id {mid!r} already runs")
            dev = self.root / "vms" / mid / "dev"
            dev.mkdir(parents=True, exist_ok=True)
            self._minions[server["id"]] = mid
            if "agent" in faults:
                log.info("server %s: VM %s boots without its agent (injected fault)",
                         server["id"], mid)
                return {"minion_id": mid}
            wrapper = (["unshare", "--mount", "--propagation", "private", str(self._script),
                        str(dev)] if self.isolated else None)
            try:
                self.lab.spawn_minion(mid, wrapper=wrapper)
            except LabError as e:
                del self._minions[server["id"]]
                raise MachineError(f"Build of instance {server['id']} aborted: {e}") from None
            return {"minion_id": mid}

    def destroy(self, server: dict) -> None:
        with self._lock:
            mid = self._minions.pop(server["id"], None)
            if mid is None:
                return
            if mid in self.lab.minions:
                self.lab.remove_minion(mid)
            shutil.rmtree(self.root / "vms" / mid, ignore_errors=True)

    # -- volumes
    def create_volume(self, volume: dict) -> None:
        path = self.volume_file(volume["id"])
        with open(path, "wb") as f:
            f.truncate(int(volume["size"]) * GIB)  # sparse: takes no space until written

    def delete_volume(self, volume: dict) -> None:
        self.volume_file(volume["id"]).unlink(missing_ok=True)

    def attach(self, server: dict, volume: dict, device: str) -> str | None:
        link = self.device_dir(server["id"]) / Path(device).name
        target = self.volume_file(volume["id"])
        if not target.exists():
            raise MachineError(f"volume {volume['id']} has no backing file")
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        return None if self.isolated else str(link)

    def detach(self, server: dict, volume: dict, device: str) -> None:
        with self._lock:
            mid = self._minions.get(server["id"])
        if mid is not None:
            (self.root / "vms" / mid / "dev" / Path(device).name).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            for mid in list(self._minions.values()):
                if mid in self.lab.minions:
                    self.lab.remove_minion(mid)
            self._minions.clear()
