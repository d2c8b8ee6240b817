"""The lab cloud's state: servers, volumes and attachments, moved along explicit state tables.

Requests change the state at once under one lock; what takes time in a real cloud (a
build, an attach, ...) ends later, on the timer thread, after the spec's lab duration
(``LAB_DURATIONS`` times ``time_scale``, with jitter). Machine hooks (``labcloud.machines``)
run on the timer's pool, outside the lock; their outcome is applied under the lock when
both the hook has returned and the duration has passed.
"""
from __future__ import annotations

import itertools
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, fields
from functools import partial

from labcloud.config import FLAVORS, IMAGES, NETWORK_ID, NETWORK_NAME, CloudConfig
from labcloud.errors import BadRequest, Conflict, Forbidden, NotFound, OverLimit
from labcloud.faults import FaultRules, requested_faults
from labcloud.identity import Identity, Token
from labcloud.machines import MachineError, Machines, NullMachines
from labcloud.states import (
    ATTACHABLE_VM_STATES,
    DELETABLE_VOLUME,
    GONE,
    SERVER_PHASES,
    SERVER_TRANSITIONS,
    VOLUME_TRANSITIONS,
    next_state,
)
from labcloud.timer import Timer

log = logging.getLogger(__name__)

NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
DEVICE_LETTERS = "bcdefghijklmnopqrstuvwxyz"  # vda is the root disk


# -- records ------------------------------------------------------------------------------
@dataclass
class _Server:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str
    flavor_id: str
    networks: object  # "auto", "none" or the request's list
    metadata: dict[str, str]
    user_data: str | None
    key_name: str | None
    availability_zone: str | None
    security_groups: list[str]
    description: str | None
    faults: frozenset[str]
    created: float
    updated: float
    ports: list[dict]  # {"network", "addr", "mac"}
    phase: str = "scheduling"
    before_delete: str | None = None  # the phase shown while deleting
    fault: dict | None = None
    launched_at: float | None = None
    booted: bool = False  # Machines.boot was called: destroy is owed
    seq: int = 0


@dataclass
class _Volume:
    id: str
    name: str | None
    description: str | None
    project_id: str
    user_id: str
    size: int
    metadata: dict[str, str]
    faults: frozenset[str]
    created: float
    updated: float | None = None
    status: str = "creating"
    on_machine: bool = False  # create_volume succeeded: delete_volume is owed
    seq: int = 0


@dataclass
class _Attachment:
    id: str
    bdm_uuid: str
    server_id: str
    volume_id: str
    slot: str  # the /dev/vdX given to Machines.attach
    device: str  # what is reported (the hook may replace it)
    tag: str | None
    delete_on_termination: bool
    attached_at: float | None = None
    on_machine: bool = False  # Machines.attach succeeded: detach is owed


def _public(record) -> dict:
    return {f.name: getattr(record, f.name) for f in fields(record)
            if f.name not in ("seq", "on_machine", "booted", "before_delete", "phase", "slot",
                              "ports")}


def _ref_id(ref) -> str:
    """An id from an id or a URL (``imageRef``/``flavorRef`` may be either)."""
    return str(ref).rstrip("/").rsplit("/", 1)[-1]


class Cloud:
    """The whole lab cloud, thread-safe. ``close()`` stops its timer and its machines."""

    def __init__(self, config: CloudConfig | None = None, machines: Machines | None = None):
        self.config = config or CloudConfig()
        self.machines = machines or NullMachines()
        self.identity = Identity(self.config.accounts, self.config.domain_id,
                                 self.config.domain_name, self.config.token_ttl)
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._seq = itertools.count(1)
        self._servers: dict[str, _Server] = {}
        self._volumes: dict[str, _Volume] = {}
        self._attachments: dict[str, _Attachment] = {}  # by volume id
        self._rules = FaultRules()
        self._timer = Timer(self.config.hook_threads)

    def close(self) -> None:
        self._timer.close()
        self.machines.close()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no transition is pending (with time_scale 0: until all are done)."""
        return self._timer.wait_idle(timeout)

    # -- servers ------------------------------------------------------------------------
    def create_server(self, token: Token, *, name: str, image_ref, flavor_ref,
                      networks: object = "auto", metadata: dict | None = None,
                      user_data: str | None = None, key_name: str | None = None,
                      availability_zone: str | None = None,
                      security_groups: list[str] | None = None, description: str | None = None,
                      fail: str | None = None) -> dict:
        """Accept a server (BUILD/scheduling); ``fail`` is the X-Lab-Fail header."""
        image_id, flavor_id = _ref_id(image_ref), _ref_id(flavor_ref)
        if image_id not in IMAGES:
            raise BadRequest("Can not find requested image")
        if flavor_id not in FLAVORS:
            raise BadRequest("Invalid flavorRef provided.")
        kinds = requested_faults(fail, metadata, "server", ("build", "agent", "attach"))
        with self._lock:
            used = sum(s.project_id == token.project_id for s in self._servers.values())
            quota = self.config.quotas["instances"]
            if used + 1 > quota:
                raise Forbidden(f"Quota exceeded for instances: Requested 1, but already used "
                                f"{used} of {quota} instances")
            ports = self._ports(networks)
            kinds |= self._rules.take(("build", "agent"), name)  # the request is valid: use one
            now = time.time()
            s = _Server(id=str(uuid.uuid4()), name=name, project_id=token.project_id or "",
                        user_id=token.user_id, image_id=image_id, flavor_id=flavor_id,
                        networks=networks, metadata=dict(metadata or {}), user_data=user_data,
                        key_name=key_name, availability_zone=availability_zone,
                        security_groups=list(security_groups or ["default"]),
                        description=description, faults=frozenset(kinds), created=now,
                        updated=now, ports=ports, seq=next(self._seq))
            self._servers[s.id] = s
            self._timer.at(self._due("scheduling"), lambda: self._server_step(s.id, "scheduling"))
            return self._server_dict(s)

    def servers(self, token: Token) -> list[dict]:
        """The project's servers, newest first (Nova's default order)."""
        with self._lock:
            found = [s for s in self._servers.values() if s.project_id == token.project_id]
            return [self._server_dict(s) for s in sorted(found, key=lambda s: -s.seq)]

    def server(self, token: Token, server_id: str) -> dict:
        with self._lock:
            return self._server_dict(self._server(token, server_id))

    def delete_server(self, token: Token, server_id: str) -> None:
        """Start deleting (again: nothing more); its volumes are detached, or deleted when
        ``delete_on_termination``, then it is gone."""
        with self._lock:
            s = self._server(token, server_id)
            if s.phase == "deleting":
                return
            s.before_delete = s.phase
            self._set_server(s, "delete")
            for a in self._attachments_of(s.id):
                v = self._volumes[a.volume_id]
                if v.status == "in-use":
                    self._set_volume(v, "begin_detach")
            due = self._due("server_delete")
        self._hook(server_id, due, self._unmachine, (server_id,),
                   lambda _result, _error: self._server_gone(server_id))

    def _server_step(self, server_id: str, phase: str) -> None:
        with self._lock:
            s = self._servers.get(server_id)
            if s is None or s.phase != phase:
                return  # being deleted
            self._set_server(s, "step")
            phase = s.phase
            if phase != "spawning":
                self._timer.at(self._due(phase), lambda: self._server_step(server_id, phase))
                return
            due = self._due("spawning")
            if "build" in s.faults:
                self._timer.at(due, lambda: self._spawned(server_id, NO_VALID_HOST))
                return
            s.booted = True
            server, kinds = self._server_dict(s), set(s.faults)
        self._hook(server_id, due, self.machines.boot, (server, kinds),
                   lambda result, error: self._spawned(server_id, error, result))

    def _spawned(self, server_id: str, error: str | None, metadata=None) -> None:
        with self._lock:
            s = self._servers.get(server_id)
            if s is None or s.phase != "spawning":
                return
            if error is None:
                if isinstance(metadata, dict):  # what the machine tells about itself
                    s.metadata.update({str(k): str(v) for k, v in metadata.items()})
                s.launched_at = time.time()
                self._set_server(s, "booted")
            else:
                log.info("lab cloud: server %s goes ERROR: %s", server_id, error)
                s.fault = {"code": 500, "created": time.time(), "message": error}
                self._set_server(s, "failed")

    def _unmachine(self, server_id: str) -> None:
        """Detach the deleted server's volumes from its machine, then destroy it."""
        with self._lock:
            s = self._servers.get(server_id)
            if s is None:
                return
            server = self._server_dict(s)
            owed = [(self._volume_dict(self._volumes[a.volume_id]), a.slot)
                    for a in self._attachments_of(server_id) if a.on_machine]
            booted = s.booted
        for volume, device in owed:
            self._call(self.machines.detach, server, volume, device)
        if booted:
            self._call(self.machines.destroy, server)

    def _server_gone(self, server_id: str) -> None:
        with self._lock:
            s = self._servers.get(server_id)
            if s is None or s.phase != "deleting":
                return
            for a in self._attachments_of(server_id):
                v = self._volumes[a.volume_id]
                del self._attachments[v.id]
                self._set_volume(v, "release")
                if a.delete_on_termination:
                    self._start_volume_delete(v)
            self._set_server(s, "deleted")

    # -- attachments (Nova's os-volume_attachments) ---------------------------------------
    def attach_volume(self, token: Token, server_id: str, volume_id: str, *,
                      device: str | None = None, tag: str | None = None,
                      delete_on_termination: bool = False, fail: str | None = None) -> dict:
        """Reserve the volume and start attaching it (reserved -> in-use)."""
        with self._lock:
            s = self._server(token, server_id)
            self._check_server_state(s, "attach_volume")
            v = self._volume(token, volume_id)
            a = self._attachments.get(v.id)
            if a is not None:
                raise BadRequest(f"Invalid volume: volume {v.id} is already attached to "
                                 f"instances: {a.server_id}")
            if v.status != "available":
                raise BadRequest(
                    f"Invalid input received: Invalid volume: Volume {v.id} status must be "
                    f"available or downloading to reserve, but the current status is "
                    f"{v.status}. (HTTP 400) (Request-ID: req-{uuid.uuid4()})")
            mine = self._attachments_of(s.id)
            if device and any(device in (x.device, x.slot) for x in mine):
                raise Conflict(f"The supplied device path ({device}) is in use.")
            slot = next((f"/dev/vd{c}" for c in DEVICE_LETTERS
                         if f"/dev/vd{c}" not in {x.slot for x in mine}), None)
            if slot is None:
                raise Forbidden(f"The maximum allowed number of disk devices "
                                f"({len(DEVICE_LETTERS) + 1}) to attach to a single instance "
                                "has been exceeded.")
            failing = bool(requested_faults(fail, None, "volume attachment", ("attach",))
                           or "attach" in s.faults or "attach" in v.faults
                           or self._rules.take(("attach",), s.name, v.name))
            a = _Attachment(id=str(uuid.uuid4()), bdm_uuid=str(uuid.uuid4()), server_id=s.id,
                            volume_id=v.id, slot=slot, device=slot, tag=tag,
                            delete_on_termination=delete_on_termination)
            self._attachments[v.id] = a
            self._set_volume(v, "reserve")
            due = self._due("attach")
            if failing:
                self._timer.at(due, lambda: self._attached(a.id, v.id, None,
                                                           "injected attach fault"))
                return self._attachment_dict(a)
            server, volume = self._server_dict(s), self._volume_dict(v)
            result = self._attachment_dict(a)
        self._hook(s.id, due, self.machines.attach, (server, volume, slot),
                   lambda device, error: self._attached(a.id, v.id, device, error),
                   record=lambda _device, error: self._mark(a, error is None))
        return result

    def attachments(self, token: Token, server_id: str) -> list[dict]:
        with self._lock:
            s = self._server(token, server_id)
            return [self._attachment_dict(a) for a in self._attachments_of(s.id)]

    def attachment(self, token: Token, server_id: str, volume_id: str) -> dict:
        with self._lock:
            s = self._server(token, server_id)
            a = self._attachments.get(volume_id)
            if a is None or a.server_id != s.id:
                raise NotFound(f"Instance {server_id} is not attached to volume {volume_id}")
            return self._attachment_dict(a)

    def detach_volume(self, token: Token, server_id: str, volume_id: str) -> None:
        """Start detaching (in-use -> detaching -> available)."""
        with self._lock:
            s = self._server(token, server_id)
            v = self._volume(token, volume_id)
            a = self._attachments.get(v.id)
            if a is None or a.server_id != s.id:
                raise NotFound(f"Instance {server_id} is not attached to volume {volume_id}")
            self._check_server_state(s, "detach_volume")
            if v.status != "in-use":
                raise BadRequest(
                    "Invalid input received: Invalid volume: Unable to detach volume. Volume "
                    "status must be 'in-use' and attach_status must be 'attached' to detach. "
                    f"(HTTP 400) (Request-ID: req-{uuid.uuid4()})")
            self._set_volume(v, "begin_detach")
            due = self._due("detach")
            server, volume = self._server_dict(s), self._volume_dict(v)
        self._hook(server_id, due, self.machines.detach, (server, volume, a.slot),
                   lambda _result, error: self._detached(a.id, v.id, error),
                   record=lambda _result, error: self._mark(a, error is not None))

    def _attached(self, attachment_id: str, volume_id: str, device: object,
                  error: str | None) -> None:
        with self._lock:
            a = self._attachments.get(volume_id)
            if a is None or a.id != attachment_id:
                return
            v, s = self._volumes[volume_id], self._servers[a.server_id]
            if v.status != "reserved" or s.phase == "deleting":
                return  # the server's deletion releases it
            if error is None:
                a.device = device if isinstance(device, str) and device else a.slot
                a.attached_at = time.time()
                self._set_volume(v, "attached")
            else:
                log.info("lab cloud: attaching volume %s failed: %s", volume_id, error)
                del self._attachments[volume_id]
                self._set_volume(v, "release")

    def _detached(self, attachment_id: str, volume_id: str, error: str | None) -> None:
        with self._lock:
            a = self._attachments.get(volume_id)
            if a is None or a.id != attachment_id:
                return
            v, s = self._volumes[volume_id], self._servers[a.server_id]
            if v.status != "detaching" or s.phase == "deleting":
                return  # the server's deletion releases it
            if error is None:
                del self._attachments[volume_id]
                self._set_volume(v, "detached")
            else:
                log.info("lab cloud: detaching volume %s failed: %s", volume_id, error)
                self._set_volume(v, "failed")

    def _mark(self, a: _Attachment, on_machine: bool) -> None:
        with self._lock:
            a.on_machine = on_machine

    # -- volumes (Cinder) ---------------------------------------------------------------
    def create_volume(self, token: Token, *, size: int, name: str | None = None,
                      description: str | None = None, metadata: dict | None = None,
                      fail: str | None = None) -> dict:
        """Accept a volume (creating); ``fail`` is the X-Lab-Fail header."""
        kinds = requested_faults(fail, metadata, "volume", ("volume", "attach"))
        with self._lock:
            mine = [v for v in self._volumes.values() if v.project_id == token.project_id]
            quota, gigabytes = self.config.quotas["volumes"], self.config.quotas["gigabytes"]
            if len(mine) + 1 > quota:
                raise OverLimit(f"VolumeLimitExceeded: Maximum number of volumes allowed "
                                f"({quota}) exceeded for quota 'volumes'.")
            consumed = sum(v.size for v in mine)
            if consumed + size > gigabytes:
                raise OverLimit(f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot "
                                f"exceeds allowed gigabytes quota. Requested {size}G, quota is "
                                f"{gigabytes}G and {consumed}G has been consumed.")
            kinds |= self._rules.take(("volume",), name)
            v = _Volume(id=str(uuid.uuid4()), name=name, description=description,
                        project_id=token.project_id or "", user_id=token.user_id, size=size,
                        metadata=dict(metadata or {}), faults=frozenset(kinds),
                        created=time.time(), seq=next(self._seq))
            self._volumes[v.id] = v
            due = self._due("volume_create")
            if "volume" in kinds:
                self._timer.at(due, lambda: self._created(v.id, "injected volume fault"))
                return self._volume_dict(v)
            volume = self._volume_dict(v)
        self._hook(v.id, due, self.machines.create_volume, (volume,),
                   lambda _result, error: self._created(v.id, error))
        return volume

    def volumes(self, token: Token) -> list[dict]:
        """The project's volumes, newest first (Cinder's default order)."""
        with self._lock:
            found = [v for v in self._volumes.values() if v.project_id == token.project_id]
            return [self._volume_dict(v) for v in sorted(found, key=lambda v: -v.seq)]

    def volume(self, token: Token, volume_id: str) -> dict:
        with self._lock:
            return self._volume_dict(self._volume(token, volume_id))

    def delete_volume(self, token: Token, volume_id: str) -> None:
        with self._lock:
            v = self._volume(token, volume_id)
            if v.status not in DELETABLE_VOLUME or v.id in self._attachments:
                raise BadRequest(
                    "Invalid volume: Volume status must be available or error or "
                    "error_restoring or error_extending or error_managing and must not be "
                    "migrating, attached, belong to a group, have snapshots, awaiting a "
                    "transfer, or be disassociated from snapshots after volume transfer.")
            self._start_volume_delete(v)

    def _created(self, volume_id: str, error: str | None) -> None:
        with self._lock:
            v = self._volumes.get(volume_id)
            if v is None or v.status != "creating":
                return
            if error is None:
                v.on_machine = True
                self._set_volume(v, "created")
            else:
                log.info("lab cloud: volume %s goes to error: %s", volume_id, error)
                self._set_volume(v, "failed")

    def _start_volume_delete(self, v: _Volume) -> None:
        """(Under the lock.)"""
        self._set_volume(v, "delete")
        due, vid = self._due("volume_delete"), v.id
        if not v.on_machine:
            self._timer.at(due, lambda: self._volume_gone(vid, None))
            return
        self._hook(vid, due, self.machines.delete_volume, (self._volume_dict(v),),
                   lambda _result, error: self._volume_gone(vid, error))

    def _volume_gone(self, volume_id: str, error: str | None) -> None:
        with self._lock:
            v = self._volumes.get(volume_id)
            if v is None or v.status != "deleting":
                return
            if error is not None:
                log.warning("lab cloud: deleting volume %s failed: %s", volume_id, error)
            self._set_volume(v, "deleted" if error is None else "failed")

    # -- the lab's own API --------------------------------------------------------------
    def add_fault(self, kind: str, match: str = "", times: int = 1) -> dict:
        """Make the next ``times`` (0: every) servers or volumes whose name matches the
        ``match`` regex fail with ``kind`` (see ``labcloud.faults``)."""
        return self._rules.add(kind, match, times)

    def faults(self) -> list[dict]:
        """The fault rules, with the ``remaining`` times of each."""
        return self._rules.list()

    def remove_fault(self, rule_id: str) -> None:
        self._rules.remove(rule_id)

    def clear_faults(self) -> None:
        self._rules.clear()

    def state(self) -> dict:
        """Every server and volume of every project, and the fault rules."""
        with self._lock:
            servers = sorted(self._servers.values(), key=lambda s: s.seq)
            volumes = sorted(self._volumes.values(), key=lambda v: v.seq)
            return {"servers": [self._server_dict(s) for s in servers],
                    "volumes": [self._volume_dict(v) for v in volumes],
                    "faults": self._rules.list()}

    def reset(self, timeout: float | None = 60) -> None:
        """Forget every server, volume and fault rule; their machines are destroyed (after
        any hook still running for them) before this returns."""
        with self._lock:
            servers = [self._server_dict(s) for s in self._servers.values() if s.booted]
            volumes = [self._volume_dict(v) for v in self._volumes.values() if v.on_machine]
            self._servers.clear()
            self._volumes.clear()
            self._attachments.clear()
            self._timer.cancel_due()  # they would find nothing to move
        self._rules.clear()
        for hook, records in ((self.machines.destroy, servers),
                              (self.machines.delete_volume, volumes)):
            wait([self._timer.hook(r["id"], partial(self._call, hook, r)) for r in records],
                 timeout)

    # -- helpers (callers hold the lock unless said otherwise) ----------------------------
    def _server(self, token: Token, server_id: str) -> _Server:
        s = self._servers.get(server_id)
        if s is None or s.project_id != token.project_id:
            raise NotFound(f"Instance {server_id} could not be found.")
        return s

    def _volume(self, token: Token, volume_id: str) -> _Volume:
        v = self._volumes.get(volume_id)
        if v is None or v.project_id != token.project_id:
            raise NotFound(f"Volume {volume_id} could not be found.")
        return v

    def _attachments_of(self, server_id: str) -> list[_Attachment]:
        return sorted((a for a in self._attachments.values() if a.server_id == server_id),
                      key=lambda a: a.slot)

    def _check_server_state(self, s: _Server, action: str) -> None:
        vm_state = SERVER_PHASES[s.before_delete or s.phase][1]
        if vm_state not in ATTACHABLE_VM_STATES:
            raise Conflict(f"Cannot '{action}' instance {s.id} while it is in vm_state {vm_state}")
        if s.phase == "deleting":
            raise Conflict(f"Cannot '{action}' instance {s.id} while it is in task_state deleting")

    def _set_server(self, s: _Server, event: str) -> None:
        s.phase = next_state(SERVER_TRANSITIONS, f"server {s.id}", s.phase, event)
        s.updated = time.time()
        if s.phase == GONE:
            del self._servers[s.id]

    def _set_volume(self, v: _Volume, event: str) -> None:
        v.status = next_state(VOLUME_TRANSITIONS, f"volume {v.id}", v.status, event)
        v.updated = time.time()
        if v.status == GONE:
            del self._volumes[v.id]

    def _due(self, step: str) -> float:
        seconds = self.config.durations[step] * self.config.time_scale
        if seconds and self.config.jitter:
            seconds *= self._rng.uniform(1 - self.config.jitter, 1 + self.config.jitter)
        return time.monotonic() + seconds

    def _hook(self, key: str, due: float, hook: Callable, args: tuple,
              then: Callable[[object, str | None], None],
              record: Callable[[object, str | None], None] | None = None) -> None:
        """(Without the lock.) Call the machine hook on the pool after the earlier hooks of
        ``key``; ``record(result, error)`` right after it, ``then(result, error)`` once
        ``due`` has passed too."""
        def run() -> None:
            result, error = self._call(hook, *args)
            if record is not None:
                record(result, error)
            self._timer.at(due, lambda: then(result, error))

        self._timer.hook(key, run)

    @staticmethod
    def _call(hook: Callable, *args) -> tuple[object, str | None]:
        """(Without the lock.) Run a hook: (its result, None) or (None, the error message)."""
        try:
            return hook(*args), None
        except MachineError as e:
            return None, str(e) or type(e).__name__
        except Exception as e:  # a bug in the machines: report it like a machine error
            log.exception("lab cloud: Machines.%s failed", getattr(hook, "__name__", hook))
            return None, f"{type(e).__name__}: {e}"

    def _ports(self, networks: object) -> list[dict]:
        if networks == "none":
            return []
        wanted = networks if isinstance(networks, list) and networks else [{"uuid": NETWORK_ID}]
        used = {p["addr"] for s in self._servers.values() for p in s.ports}
        ports = []
        for net in wanted:
            if "port" in net:
                raise BadRequest(f"Port {net['port']} could not be found.")
            if net.get("uuid", NETWORK_ID) != NETWORK_ID:
                raise BadRequest(f"Network {net['uuid']} could not be found.")
            addr = net.get("fixed_ip") or next(
                (f"10.0.0.{i}" for i in range(3, 255) if f"10.0.0.{i}" not in used), None)
            if addr is None:
                raise BadRequest(f"No more IP addresses available on network {NETWORK_ID}.")
            if not re.fullmatch(r"10\.0\.0\.([3-9]|[1-9]\d|1\d\d|2[0-4]\d|25[0-4])", addr):
                raise BadRequest(f"IP address {addr} is not a valid IP for the specified "
                                 f"subnet (network {NETWORK_NAME}: 10.0.0.3-10.0.0.254).")
            if addr in used:
                raise BadRequest(f"Fixed IP address {addr} is already in use.")
            used.add(addr)
            mac = "fa:16:3e:" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(3))
            ports.append({"network": NETWORK_NAME, "addr": addr, "mac": mac})
        return ports

    def _server_dict(self, s: _Server) -> dict:
        status, vm_state, task_state, power, shown = SERVER_PHASES[s.before_delete or s.phase]
        d = _public(s)
        d.update(status=status, vm_state=vm_state, power_state=power,
                 task_state="deleting" if s.phase == "deleting" else task_state,
                 addresses=[dict(p) for p in s.ports] if shown else [],
                 fault=dict(s.fault) if s.fault and status == "ERROR" else None,
                 metadata=dict(s.metadata), faults=sorted(s.faults),
                 security_groups=list(s.security_groups),
                 attachments=[self._attachment_dict(a) for a in self._attachments_of(s.id)])
        return d

    def _volume_dict(self, v: _Volume) -> dict:
        a = self._attachments.get(v.id)
        d = _public(v)
        d.update(metadata=dict(v.metadata), faults=sorted(v.faults),
                 attachments=[self._attachment_dict(a)]
                 if a is not None and v.status in ("in-use", "detaching") else [])
        return d

    @staticmethod
    def _attachment_dict(a: _Attachment) -> dict:
        return _public(a)

