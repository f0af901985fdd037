"""Fixtures that start simulated drones: `def test_x(sim_vehicle): ...`.

Register with `pytest_plugins = ["sitl.pytest_plugin"]`. Each fleet gets its own block
of free UDP ports on 127.0.0.1, so tests run one after another or in parallel without
hearing each other's vehicles; MAVSDK connects with `vehicle.connect_url`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from sitl.ports import free_port_block
from sitl.px4_sitl.launcher import Px4Fleet
from sitl.relay import UdpRelay
from sitl.vehicles.fleet import ALGECIRAS_PAD_DEG, SimFleet, SimVehicle, VehicleConfig, spaced_homes

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


PX4_SPEED_BUDGET = 4.0  # PX4 SIH costs about a fifth of a core per instance at real time: 4x in all fits two cores


def _px4_build():
    """(build, None), (None, why no build), or raises UserError for a $PX4_DIR that is no build."""
    from sitl.px4_sitl.launcher import NO_BUILD_REASON, find_build_dir

    build = find_build_dir()
    return (build, None) if build is not None else (None, NO_BUILD_REASON)


def pytest_collection_modifyitems(config, items) -> None:
    """Without a PX4 build, the `px4` tests are left out, and the summary says so once, with why."""
    from missions.errors import UserError

    try:
        build, why = _px4_build()
    except UserError:
        return  # PX4_DIR names no build: the px4 tests run and fail, saying so
    if build is not None:
        return
    px4 = [item for item in items if item.get_closest_marker("px4") is not None]
    if px4:
        items[:] = [item for item in items if item.get_closest_marker("px4") is None]
        config.hook.pytest_deselected(items=px4)
        config.stash[_PX4_LEFT_OUT] = f"{len(px4)} PX4 SITL tests skipped: {why}"


_PX4_LEFT_OUT = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    said = config.stash.get(_PX4_LEFT_OUT, None)
    if said:
        terminalreporter.write_line(said, yellow=True)


@pytest.fixture
def px4_fleet() -> Iterator[Callable[..., Px4Fleet]]:
    """`px4_fleet(n, speed_factor=4)`: n real PX4 SITL (SIH) instances at the Algeciras pad, ready,
    on free instance numbers; stopped after the test. Fails, saying why, with a broken PX4_DIR."""
    from missions.errors import UserError
    from sitl.px4_sitl.launcher import Px4Fleet, claimed_instances

    try:
        build, why = _px4_build()
    except UserError as exc:
        pytest.fail(str(exc))
    if build is None:
        pytest.skip(why)
    stack = contextlib.ExitStack()

    def make(n: int = 1, speed_factor: float = PX4_SPEED_BUDGET) -> Px4Fleet:
        first = stack.enter_context(claimed_instances(n))
        fleet = Px4Fleet(build, spaced_homes(algeciras_home(), n), first_instance=first, speed_factor=speed_factor)
        stack.callback(fleet.stop)
        fleet.start()
        return fleet

    with stack:
        yield make


# MAV_CMD_INJECT_FAILURE's units and types (MAVLink FAILURE_UNIT, FAILURE_TYPE).
FAILURE_UNIT_GPS, FAILURE_UNIT_BATTERY = 4, 100
FAILURE_OK, FAILURE_OFF = 0, 1


@dataclass
class Drones:
    """Vehicles under test, the same to a test whichever flies them: the built-in simulator or PX4 SIH.

    `urls[i]` is where MAVSDK connects to vehicle i; with `relay=True` that is through a
    :class:`UdpRelay` (`relays[i]`), where a test drops or holds packets. `speed_factor` is
    how much faster than real time the vehicles live.
    """

    kind: str
    homes: list[tuple[float, float]]
    urls: list[str]
    speed_factor: float
    relays: list[UdpRelay] = field(default_factory=list)
    sim: SimFleet | None = None
    px4: Px4Fleet | None = None

    def __len__(self) -> int:
        return len(self.homes)

    def lose_gps(self, index: int) -> None:
        """The GPS receiver goes silent: PX4's GPS simulator stops (PX4's SIH takes no GPS failure injection),
        the simulator's through its fault hook."""
        if self.px4 is not None:
            self.px4.stop_module(index, "sensor_gps_sim")
        else:
            self.sim.vehicles[index].inject_failure(FAILURE_UNIT_GPS, FAILURE_OFF)

    def fail_battery(self, index: int) -> None:
        """The battery reads empty: PX4 through MAV_CMD_INJECT_FAILURE on its payload link (which it must
        accept), the simulator through its fault hook."""
        if self.px4 is not None:
            result = self.px4.inject_failure(index, FAILURE_UNIT_BATTERY, FAILURE_OFF)
            assert result == 0, f"PX4 answered MAV_CMD_INJECT_FAILURE with MAV_RESULT {result}"
        else:
            self.sim.vehicles[index].inject_failure(FAILURE_UNIT_BATTERY, FAILURE_OFF)


DronesFactory = Callable[..., Drones]


@pytest.fixture(params=["sim", pytest.param("px4", marks=pytest.mark.px4)])
def drones(request, sim_fleet, px4_fleet) -> DronesFactory:
    """`drones(n, speed_factor=10, relay=False)`: n vehicles at the Algeciras pad, built-in or PX4 SIH.

    Tests that use it run twice, `[sim]` and `[px4]`, with the same body. PX4 runs at most
    PX4_SPEED_BUDGET/n times real time (it has to share two cores), the simulator at `speed_factor`.
    """
    stack = contextlib.ExitStack()
    request.addfinalizer(stack.close)

    def make(n: int = 1, speed_factor: float = DEFAULT_SPEED_FACTOR, relay: bool = False) -> Drones:
        if request.param == "px4":
            px4_speed = max(1.0, min(speed_factor, PX4_SPEED_BUDGET / n))
            px4 = px4_fleet(n, speed_factor=px4_speed)
            d = Drones("px4", px4.homes, px4.connect_urls, px4_speed, px4=px4)
            vehicle_ports = [inst.port for inst in px4.instances]
        else:
            sim = sim_fleet(n, speed_factor=speed_factor)
            d = Drones(
                "sim", [v.home for v in sim.vehicles], [v.connect_url for v in sim.vehicles], speed_factor, sim=sim
            )
            vehicle_ports = [v.port for v in sim.vehicles]
        if relay:
            for port in vehicle_ports:
                r = UdpRelay(port, free_port_block(1), seed=port)
                stack.callback(r.close)
                d.relays.append(r.start())
            d.urls = [r.connect_url for r in d.relays]
        return d

    return make


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
