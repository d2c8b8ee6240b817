"""What the lab cloud offers and how it behaves: flavors, the image, the network, durations,
quotas and accounts, read once into :class:`CloudConfig`."""
from __future__ import annotations

from dataclasses import dataclass, field

from labcloud.identity import Account
from orchestrator.errors import InvalidInput

LAB_DURATIONS = {  # seconds at time_scale 1: the spec's lab defaults (§5 "Timing")
    "scheduling": 0.5, "networking": 0.4, "block_device_mapping": 0.1, "spawning": 2.0,
    "server_delete": 1.0, "volume_create": 1.5, "attach": 1.5, "detach": 1.0,
    "volume_delete": 1.0,
}
DEFAULT_QUOTAS = {"instances": 20, "volumes": 40, "gigabytes": 1000}


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    ram: int  # MiB
    vcpus: int
    disk: int  # GiB


FLAVORS = {f.id: f for f in (Flavor("1", "m1.tiny", 512, 1, 1),
                             Flavor("2", "m1.small", 2048, 1, 20),
                             Flavor("3", "m1.medium", 4096, 2, 40),
                             Flavor("4", "m1.large", 8192, 4, 80))}
IMAGES = {"0f1c9a3e-6b2d-4e8f-9a7c-3d5e1b2c4f60": "cirros-0.6.2"}  # id -> name (Glance's)
CIRROS_ID = next(iter(IMAGES))
NETWORK_NAME, NETWORK_ID = "private", "5c1b3f7e-8d2a-4c6b-9e0f-1a2b3c4d5e6f"


@dataclass
class CloudConfig:
    """How the lab cloud behaves. ``durations`` and ``quotas`` override the defaults key
    by key; ``time_scale`` 0 makes every transition immediate (for tests)."""

    time_scale: float = 1.0
    jitter: float = 0.3  # each duration is multiplied by a random factor in [1-j, 1+j]
    durations: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    accounts: tuple[Account, ...] = (Account(),)
    domain_id: str = "default"
    domain_name: str = "Default"
    region: str = "RegionOne"
    token_ttl: float = 3600.0
    hook_threads: int = 16
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.durations) - set(LAB_DURATIONS))
        if unknown:
            raise InvalidInput(f"unknown durations {unknown}: use {sorted(LAB_DURATIONS)}")
        unknown = sorted(set(self.quotas) - set(DEFAULT_QUOTAS))
        if unknown:
            raise InvalidInput(f"unknown quotas {unknown}: use {sorted(DEFAULT_QUOTAS)}")
        if self.time_scale < 0 or not 0 <= self.jitter < 1:
            raise InvalidInput("time_scale must be >= 0 and jitter in [0, 1)")
        self.durations = {**LAB_DURATIONS, **self.durations}
        self.quotas = {**DEFAULT_QUOTAS, **self.quotas}
