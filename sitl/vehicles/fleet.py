"""A fleet of simulated PX4 multicopters that MAVSDK flies as it flies real PX4.

Why pymavlink and not MAVSDK's own autopilot-side plugins: MAVSDK 4.1's
`mission_raw_server` handles MISSION_COUNT only for MAV_MISSION_TYPE_MISSION (fence and
rally uploads go unanswered), serves no download (MISSION_REQUEST_LIST) and acks every
MISSION_CLEAR_ALL; none of the server plugins can drop packets or silence the link for a
test; and each server vehicle would be a full MAVSDK instance with its own threads,
where ten vehicles must share one thread on a two-core machine. So the vehicle side is
written on pymavlink's MAVLink 2 codec, with the protocol rules PX4 follows.

All vehicles run on ONE background thread: a select() loop that wakes every
`TICK_S` wall seconds (or when a packet arrives), advances physics by
`speed_factor * elapsed` simulated seconds in steps of at most 1/physics_hz, and sends
whatever telemetry is due.

Lockstep, as PX4's: `speed_factor` is how fast the simulation may run, not how fast it
must. Whoever must see every instant it asks for — a camera owes its pipeline a frame every
1/fps of the drones' own time — holds the simulation at that instant (`hold_at`) until it
has taken it, and the simulation waits. Its clock (`clock()`, `clock_at()`) is the drones'
own time as a Unix time, `start + simulated time`: frames, poses and the run stamped by it
keep the drones' durations and speeds whatever the speed factor and the machine's load.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from missions.plan import RawItem
from sitl.vehicles.model import LandedState, Mode, SimState, VehicleConfig
from sitl.vehicles.physics import FlatFrame
from sitl.vehicles.vehicle import SimVehicle
from vision.camera import CameraPose

__all__ = ["ALGECIRAS_PAD_DEG", "LandedState", "Mode", "RawItem", "SimFleet", "SimState", "SimVehicle", "VehicleConfig"]

# The port police pad of the Algeciras site in the shared test data: where `borderwatch sim`
# and the fixtures put vehicles when no site is given.
ALGECIRAS_PAD_DEG = (36.128, -5.438)
TICK_S = 0.02
MAX_CATCH_UP_S = 0.5  # wall time the loop may fall behind before it lets simulated time slip
SPACING_M = 5.0
# Vehicle i also answers onboard clients on base_port + 40 + i: 14580+i, PX4 SITL's local API port.
ONBOARD_PORT_OFFSET = 40


class SimFleet:
    def __init__(
        self,
        homes: Sequence[tuple[float, float]],
        speed_factor: float = 1.0,
        base_port: int = 14540,
        config: VehicleConfig = VehicleConfig(),  # noqa: B008 - frozen, so one shared default is safe
        host: str = "127.0.0.1",
        per_port: int = 1,
    ) -> None:
        """Vehicle i is system i+1 and sends to `base_port`+i; with `per_port` N, vehicles share ports N at
        a time (vehicle i to `base_port` + i // N), and the ground station tells them apart by system id."""
        if not homes:
            raise ValueError("a fleet needs at least one home")
        if not speed_factor > 0:
            raise ValueError(f"speed factor must be positive, not {speed_factor}")
        self.speed_factor = float(speed_factor)
        self.base_port = base_port
        self.host = host
        self.config = config
        # More vehicles than the offset would put onboard ports on ground-station ports: any free port then.
        onboard_base = base_port + ONBOARD_PORT_OFFSET if len(homes) <= ONBOARD_PORT_OFFSET else None
        onboard = [0 if onboard_base is None else onboard_base + i for i in range(len(homes))]
        if per_port < 1:
            raise ValueError(f"vehicles per port must be at least 1, not {per_port}")
        ports = [base_port + i // per_port for i in range(len(homes))]
        self.vehicles: list[SimVehicle] = [
            SimVehicle(i + 1, (float(lat), float(lon)), ports[i], host, config, onboard[i], shared_port=per_port > 1)
            for i, (lat, lon) in enumerate(homes)
        ]
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.sim_time_s = 0.0  # how far the whole fleet has been simulated: whole physics steps
        self._steps = 0
        self._owed_s = 0.0  # simulated time due but less than a step
        self.first_armed_s: float | None = None  # when a vehicle of the fleet first armed
        self._started_s = time.time()
        self._holds: dict[object, float] = {}  # who holds the simulation, at which simulated instant
        self._ticked = threading.Condition()
        self._wake_r: socket.socket | None = None  # a hold that moves wakes the loop through this pair
        self._wake_w: socket.socket | None = None

    @classmethod
    def at_site(cls, site, vehicles: int, **kw) -> SimFleet:
        """`vehicles` drones at the site's first launch point, a few metres apart eastwards."""
        launch = site.launch
        if not launch:
            raise ValueError(f"{site.source}: the site has no launch point")
        point = launch[0].shape_deg.centroid
        return cls(spaced_homes((point.y, point.x), vehicles), **kw)

    def start(self) -> None:
        if self._thread is not None:
            return
        for v in self.vehicles:
            v.open()
        self._stop.clear()
        self._started_s = time.time() - self.sim_time_s
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="sitl-fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._ticked:
            self._ticked.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
            for v in self.vehicles:
                v.close()
            for sock in (self._wake_r, self._wake_w):
                sock.close()
            self._wake_r = self._wake_w = None

    def __enter__(self) -> SimFleet:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def camera_pose(self, index: int, time_s: float | None = None, ground_amsl_m: float = 0.0) -> CameraPose:
        """Where vehicle `index`'s camera is and looks, for rendering what it sees; safe from any thread.

        From the vehicle's last snapshot (`vehicles[index].state()`, at most a tick, 20 ms,
        old; its `wall_time_s` says when) or, given `time_s` (time.time() seconds), moved
        along the vehicle's velocity to that instant: meant for a frame time within a tick
        or two of the snapshot, not for predicting a turn. `alt_m` is the height above a
        plane at `ground_amsl_m`, 0 for the sea.
        """
        state = self.vehicles[index].state()
        pose = state.camera_pose(ground_amsl_m)
        if time_s is None:
            return pose
        ahead_s = (time_s - state.wall_time_s) * self.speed_factor
        east, north, up = (v * ahead_s for v in state.velocity_enu_m_s)
        lat, lon = FlatFrame(state.lat_deg, state.lon_deg).to_deg(east, north)
        return replace(pose, lat_deg=lat, lon_deg=lon, alt_m=pose.alt_m + up)

    # ------------------------------------------------------------ lockstep
    def clock(self) -> float:
        """The simulation's clock: the drones' own time, `start + simulated time` (see the module doc)."""
        return self.clock_at(self.sim_time_s)

    def clock_at(self, sim_s: float) -> float:
        return self._started_s + sim_s

    def hold_at(self, key: object, sim_s: float | None) -> None:
        """The simulation goes no further than `sim_s` until `key` moves its hold on (None: lets go)."""
        if sim_s is None:
            self._holds.pop(key, None)
        else:
            self._holds[key] = sim_s
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.send(b"\0")

    def wait_until(self, sim_s: float, stop: threading.Event, timeout_s: float = 1.0) -> bool:
        """Whether the simulation has reached `sim_s` within `timeout_s`: the last whole physics step at
        or before it (a hold there keeps it from the next)."""
        reached_at = sim_s - 1.0 / self.config.physics_hz + 1e-9
        with self._ticked:
            return (
                self._ticked.wait_for(
                    lambda: self.sim_time_s > reached_at or stop.is_set() or not self.running, timeout_s
                )
                and self.sim_time_s > reached_at
            )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """What stopped the fleet's thread, if it died."""
        return self._error

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # kept for the owner to see; a dead simulator must not pass silently
            self._error = exc
            raise

    def _loop(self) -> None:
        dt_max_s = 1.0 / self.config.physics_hz
        sockets = {v.fileno(): v for v in self.vehicles}
        wake = self._wake_r.fileno()
        last = time.monotonic()
        next_tick = last
        while not self._stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            ready, _, _ = select.select([*sockets, wake], [], [], timeout)
            if wake in ready:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
                ready.remove(wake)
                next_tick = min(next_tick, time.monotonic())  # a hold moved on: go on at once
            now = time.monotonic()
            if now >= next_tick:
                elapsed = min(now - last, MAX_CATCH_UP_S)
                last = now
                next_tick = max(next_tick + TICK_S, now)
                held_at = min(self._holds.values(), default=math.inf)
                # Whole physics steps of one fixed length, as PX4's lockstep: the flight is the same
                # whatever the ticks' timing; what is left of a step waits for the next tick.
                wanted_s = self.sim_time_s + self._owed_s + elapsed * self.speed_factor
                until_s = min(wanted_s, held_at)
                steps = max(0, math.floor((until_s - self.sim_time_s) / dt_max_s + 1e-6))
                if steps:
                    for v in self.vehicles:
                        v.step(dt_max_s, steps)
                    self._steps += steps
                    self.sim_time_s = self._steps * dt_max_s
                    if self.first_armed_s is None and any(v.armed for v in self.vehicles):
                        self.first_armed_s = self.sim_time_s
                self._owed_s = 0.0 if wanted_s > held_at else min(max(0.0, wanted_s - self.sim_time_s), dt_max_s)
                for v in self.vehicles:
                    v.service()
                with self._ticked:
                    self._ticked.notify_all()
            else:
                for fd in ready:
                    sockets[fd].service()


def spaced_homes(
    origin_deg: tuple[float, float], count: int, spacing_m: float = SPACING_M
) -> list[tuple[float, float]]:
    """`count` homes in a row eastwards from `origin_deg` (lat, lon), `spacing_m` apart."""
    frame = FlatFrame(*origin_deg)
    return [frame.to_deg(i * spacing_m, 0.0) for i in range(count)]
