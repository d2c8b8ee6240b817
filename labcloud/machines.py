"""What the lab cloud calls so that real machines can back its servers and volumes.

The cloud calls these hooks on a small thread pool, never while holding its lock, and in
order for one resource (a server's hooks never overlap, a volume's neither). Each gets
copies of the cloud's records (plain dicts: ``id``, ``name``, ``metadata``, ``size``, ...),
so changing them changes nothing in the cloud. A hook may block for a few seconds.
"""
from __future__ import annotations


class MachineError(Exception):
    """A machine operation failed; the message is what the cloud reports (a server's fault
    message, a failed attach)."""


class Machines:
    """The hook interface. Every hook does nothing here: subclass and override what you
    need (``labcloud.vms.SaltMachines`` backs servers with Salt minions)."""

    def boot(self, server: dict, faults: set[str]) -> dict | None:
        """The server enters ``spawning``; it goes ACTIVE when this returns (and the build
        time has passed). Raise :class:`MachineError` to make it go ERROR with that fault
        message. ``faults`` holds the fault kinds injected for this server, e.g.
        ``{"agent"}``: the VM's agent must never answer. A returned dict is added to the
        server's metadata (what the machine tells about itself, e.g. its agent's id)."""
        return None

    def destroy(self, server: dict) -> None:
        """The server is deleted (its volumes were detached first). Called only for
        servers whose ``boot`` was called."""

    def create_volume(self, volume: dict) -> None:
        """The volume is being created (``volume["size"]`` GiB); it becomes ``available``
        when this returns. :class:`MachineError` makes it go to ``error``."""

    def delete_volume(self, volume: dict) -> None:
        """The volume is being deleted. Called only for volumes whose ``create_volume``
        succeeded. :class:`MachineError` leaves it in ``error_deleting``."""

    def attach(self, server: dict, volume: dict, device: str) -> str | None:
        """The volume is being attached as ``device`` (``/dev/vdb``, ...); it becomes
        ``in-use`` when this returns. Return another path to report instead of ``device``
        (None keeps it). :class:`MachineError` fails the attach: the volume goes back to
        ``available`` with no attachment."""
        return None

    def detach(self, server: dict, volume: dict, device: str) -> None:
        """The volume is being detached (``device`` is the one given to ``attach``); it
        becomes ``available`` when this returns. :class:`MachineError` on an explicit
        detach puts it back ``in-use``; while its server is deleted it is only logged."""

    def close(self) -> None:
        """The cloud is closing: release everything."""


class NullMachines(Machines):
    """No machines at all: servers and volumes exist only in the cloud's memory."""
