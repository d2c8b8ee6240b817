"""The Salt lab shared by the agent tests: one private salt-master with minions vm-1, vm-2
and vm-3, started once per test session (about 5 s) and stopped at its end. Tests that
kill or stop one of its minions start it again before they end."""
from __future__ import annotations

import pytest

from agent_bridge.lab import SaltLab, import_salt

LAB_MINIONS = ["vm-1", "vm-2", "vm-3"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "salt_lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.salt)


@pytest.fixture(scope="session")
def salt_lab():
    """A running SaltLab (vm-1, vm-2, vm-3); ``salt_lab.master_config`` is its master config."""
    with SaltLab(minions=LAB_MINIONS) as lab:
        yield lab


@pytest.fixture
def local_client(salt_lab):
    """A salt LocalClient on the shared lab, for this test's thread only."""
    salt = import_salt()
    client = salt.client.LocalClient(c_path=salt_lab.master_config)
    yield client
    client.destroy()
