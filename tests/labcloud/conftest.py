"""The lab cloud shared by a test module (time_scale 0), reset around each test."""
from __future__ import annotations

import pytest

from labcloud import CloudConfig

from .helpers import Client, running


@pytest.fixture(scope="module")
def lab():
    """One instantaneous cloud (time_scale 0) per test module."""
    with running() as (cloud, server):
        yield cloud, server


@pytest.fixture
def cloud(lab):
    cloud, _ = lab
    cloud.reset()
    yield cloud
    cloud.reset()


@pytest.fixture
def client(lab, cloud):
    c = Client(lab[1])
    yield c
    c.close()


@pytest.fixture
def slow():
    """A cloud so slow that nothing moves during a test: states stay where they begin."""
    with running(CloudConfig(time_scale=1000)) as (cloud, server):
        c = Client(server)
        yield cloud, c
        c.close()
