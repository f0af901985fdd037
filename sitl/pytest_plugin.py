"""Fixtures that start simulated drones: `def test_x(sim_vehicle): ...`.

Register with `pytest_plugins = ["sitl.pytest_plugin"]`. Each fleet gets its own block
of free UDP ports on 127.0.0.1, so tests run one after another or in parallel without
hearing each other's vehicles; MAVSDK connects with `vehicle.connect_url`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sitl.ports import free_port_block
from sitl.sim import ALGECIRAS_PAD_DEG, SimFleet, SimVehicle, VehicleConfig, spaced_homes

DEFAULT_SPEED_FACTOR = 10.0


def algeciras_home() -> tuple[float, float]:
    """The launch point of the shared Algeciras site, or its known position without the data."""
    try:
        from missions.formats import load_site
        from sitl.testdata import SITES_DIR

        site = load_site(SITES_DIR / "algeciras-port.geojson")
        point = site.launch[0].shape_deg.centroid
        return (point.y, point.x)
    except Exception:  # the shared data is optional for fixtures; the pad's position is not secret
        return ALGECIRAS_PAD_DEG


FleetFactory = Callable[..., SimFleet]


@pytest.fixture
def sim_fleet() -> Iterator[FleetFactory]:
    """`sim_fleet(n, speed_factor=10, config=VehicleConfig())`: a started fleet, stopped after the test."""
    fleets: list[SimFleet] = []

    def make(n: int = 1, speed_factor: float = DEFAULT_SPEED_FACTOR, config: VehicleConfig | None = None) -> SimFleet:
        base = free_port_block(n)
        fleet = SimFleet(spaced_homes(algeciras_home(), n), speed_factor, base, config or VehicleConfig())
        fleets.append(fleet)
        fleet.start()
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()
    errors = [f.error for f in fleets if f.error is not None]
    if errors:
        raise errors[0]


@pytest.fixture
def sim_vehicle(sim_fleet: FleetFactory) -> SimVehicle:
    """One vehicle at Algeciras' launch point, ten times faster than real time."""
    return sim_fleet(1).vehicles[0]


@dataclass(frozen=True)
class Px4Vehicle:
    """A real PX4 SITL instance as tests see it: where MAVSDK connects and where it took off."""

    connect_url: str
    home: tuple[float, float]


@pytest.fixture
def px4_vehicle() -> Iterator[Px4Vehicle]:
    """One real PX4 SITL (SIH) instance at the Algeciras pad on UDP 14540; skipped, saying why, without a build."""
    from sitl.px4 import NO_BUILD_REASON, Px4Fleet, find_build_dir, px4_instances

    build = find_build_dir()
    if build is None:
        pytest.skip(NO_BUILD_REASON)
    home = algeciras_home()
    with Px4Fleet(px4_instances(build, 1, [home])):
        yield Px4Vehicle("udpin://0.0.0.0:14540", home)


@pytest.fixture
def chromium(tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`chromium("--dump-dom", url)`: headless Chromium, offline, with a profile of the test's own; fails the
    test, saying how to install it, when there is no Chromium."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed; run `make setup` (it installs the Debian package chromium)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    return run
