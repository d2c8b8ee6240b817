"""The lab cloud's state tables: one edge per line, applied by ``next_state`` only.

Servers follow the spec's Nova state table (§2.3), volumes Cinder's statuses (§3)."""
from __future__ import annotations

from labcloud.errors import IllegalTransition

GONE = "gone"  # the record is removed: GET answers 404

# A server's phase -> (status, vm_state, task_state, power_state, addresses shown): the
# spec's state table (§2.3). While deleting, the phase before the delete is shown with
# task_state "deleting".
SERVER_PHASES = {
    "scheduling": ("BUILD", "building", "scheduling", 0, False),
    "networking": ("BUILD", "building", "networking", 0, False),
    "block_device_mapping": ("BUILD", "building", "block_device_mapping", 0, False),
    "spawning": ("BUILD", "building", "spawning", 0, False),
    "active": ("ACTIVE", "active", None, 1, True),
    "error": ("ERROR", "error", None, 0, False),
}
SERVER_TRANSITIONS = {
    ("scheduling", "step"): "networking",  # a host was picked
    ("networking", "step"): "block_device_mapping",  # ports plugged
    ("block_device_mapping", "step"): "spawning",  # disks ready: Machines.boot is called
    ("spawning", "booted"): "active",
    ("spawning", "failed"): "error",  # injected build fault or MachineError from boot
    ("scheduling", "delete"): "deleting",
    ("networking", "delete"): "deleting",
    ("block_device_mapping", "delete"): "deleting",
    ("spawning", "delete"): "deleting",
    ("active", "delete"): "deleting",
    ("error", "delete"): "deleting",
    ("deleting", "deleted"): GONE,  # volumes detached (or deleted), machine destroyed
}
# A volume's status. An attachment exists exactly while its volume is reserved, in-use or
# detaching (no multiattach), so its state is its volume's status.
VOLUME_TRANSITIONS = {
    ("creating", "created"): "available",
    ("creating", "failed"): "error",  # injected volume fault or MachineError: no fault field
    ("available", "reserve"): "reserved",  # attach requested (cinder _attachment_reserve)
    ("reserved", "attached"): "in-use",
    ("reserved", "release"): "available",  # attach failed, or its server was deleted
    ("in-use", "begin_detach"): "detaching",  # detach requested, or its server is deleted
    ("detaching", "detached"): "available",
    ("detaching", "failed"): "in-use",  # MachineError from detach: Nova's rollback
    ("detaching", "release"): "available",  # its server was deleted
    ("available", "delete"): "deleting",
    ("error", "delete"): "deleting",
    ("deleting", "deleted"): GONE,
    ("deleting", "failed"): "error_deleting",  # MachineError from delete_volume
}
DELETABLE_VOLUME = ("available", "error", "error_restoring", "error_extending", "error_managing")
ATTACHABLE_VM_STATES = ("active", "paused", "stopped", "resized", "soft_deleted", "shelved",
                        "shelved_offloaded")


def next_state(table: dict, kind: str, state: str, event: str) -> str:
    """The state after ``event``; raises IllegalTransition when the table has no edge."""
    try:
        return table[(state, event)]
    except KeyError:
        raise IllegalTransition(f"{kind}: no transition from {state!r} on {event!r}") from None
