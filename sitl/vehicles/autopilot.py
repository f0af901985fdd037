"""PX4's commander as a ground station sees it: modes, arming, commands and failsafes.

No sockets here: :class:`Autopilot` is stepped in simulated seconds and answers commands
with MAV_RESULT codes; what it wants to say (STATUSTEXT, MISSION_ITEM_REACHED) waits in
`events` for the link to send. The mission itself is the :class:`Navigator`'s.

What it answers, and in which words, is PX4's (PX4-Autopilot main, SIH): recorded against
real PX4 SITL by sitl.px4_sitl.conformance, with the differences that remain in docs/px4-conformance.md.
"""

from __future__ import annotations

import math

from missions.plan import RawItem
from sitl.vehicles.fence import Fence
from sitl.vehicles.model import LandedState, Mode, VehicleConfig
from sitl.vehicles.navigator import Navigator
from sitl.vehicles.physics import Body, FlatFrame

ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED = 0, 1, 2, 3, 4
ARM_DISARM, TAKEOFF, LAND, RTL, SET_MODE, MISSION_START, REPOSITION, CHANGE_SPEED = 400, 22, 21, 20, 176, 300, 192, 178
INJECT_FAILURE = 420
FAILURE_UNIT_GPS, FAILURE_UNIT_BATTERY, FAILURE_OK, FAILURE_OFF = 4, 100, 0, 1
FORCE_MAGIC = 21196
HOME_CHANGE_M = 1.0  # PX4 kMinHomePositionChangeEPH
# MAV_SEVERITY
CRITICAL, WARNING, INFO = 2, 4, 6


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def _int(value: float, default: int = -1) -> int:
    """Ground stations send NaN for 'unset' params; int() of NaN raises."""
    return int(value) if _finite(value) else default


class Autopilot:
    def __init__(self, config: VehicleConfig, home_deg: tuple[float, float]) -> None:
        self.config = config
        self.frame = FlatFrame(*home_deg)
        self.home_m = (0.0, 0.0)  # (east, north) of home in the frame; PX4 moves it where the vehicle lands
        self.body = Body(config)
        self.nav = Navigator(self)
        self.mode = Mode.HOLD
        self.armed = False
        self.sim_time_s = 0.0
        self.gps_ok = True
        self.fence = Fence()
        self.fence_items: list[RawItem] = []
        self.rally: list[RawItem] = []
        self.events: list[tuple[str, object]] = []  # ("text", (severity, text)) or ("reached", seq)
        self.speed_m_s = config.cruise_speed_m_s
        self.takeoff_alt_m = config.takeoff_alt_m
        self.rtl_alt_m = config.rtl_alt_m
        self.fence_action = config.fence_action
        self.target: tuple[float, float, float] | None = None
        self.landing = False
        self._in_air = False  # since "Takeoff detected", until touchdown
        self._taking_off = False
        self._rtl_phase = ""
        self._rtl_destination = (0.0, 0.0, 0.0)
        self._armed_at_s = 0.0
        self._gps_lost_at_s: float | None = None
        self._battery_empty = False
        self._breached = False
        self._low_battery_done = False
        self._emergency_done = False

    # ----------------------------------------------------------------- state
    @property
    def home_deg(self) -> tuple[float, float]:
        return self.frame.to_deg(*self.home_m)

    @property
    def mission(self) -> list[RawItem]:
        return self.nav.items

    @property
    def mission_seq(self) -> int:
        return self.nav.seq

    @property
    def mission_finished(self) -> bool:
        return self.nav.finished

    @property
    def reached(self) -> list[int]:
        return self.nav.reached

    @property
    def mission_state(self) -> int:
        return self.nav.state

    @property
    def airborne(self) -> bool:
        return self.armed and (self.body.z_m > 0.05 or self._taking_off or self.nav.taking_off)

    @property
    def landed_state(self) -> LandedState:
        if not self.airborne:
            return LandedState.ON_GROUND
        if self.landing:
            return LandedState.LANDING
        if self._taking_off or self.nav.taking_off:
            return LandedState.TAKEOFF
        return LandedState.IN_AIR

    @property
    def battery_pct(self) -> float:
        return 0.0 if self._battery_empty else 100.0 * self.body.battery

    def say(self, severity: int, text: str) -> None:
        self.events.append(("text", (severity, text)))

    # ----------------------------------------------------------------- uploads
    def accept_upload(self, mission_type: int, items: list[RawItem], wall_now_s: float) -> str | None:
        """Store uploaded items; return why they are rejected, or None. The mission is checked a moment later."""
        if mission_type == 1:
            try:
                fence = Fence.from_items(items, self.frame)
            except ValueError as exc:
                return f"Geofence invalid: {exc}"
            self.fence_items = list(items)
            if fence.contains(*self.home_m):
                self.fence = fence
            else:  # PX4 keeps it, says so, and does not enforce it
                self.fence = Fence()
                self.say(CRITICAL, "Geofence invalid, doesn't contain Home position")
            self.nav.recheck(wall_now_s)
        elif mission_type == 2:
            self.rally = list(items)
        else:
            self.nav.load(items, wall_now_s)
            if self.mode is Mode.MISSION and self.airborne:
                self._enter(Mode.HOLD)
        return None

    def clear(self, mission_type: int) -> None:
        if mission_type in (0, 255):
            self.nav.clear()
        if mission_type in (1, 255):
            self.fence, self.fence_items = Fence(), []
        if mission_type in (2, 255):
            self.rally = []

    def tick(self, wall_now_s: float) -> None:
        """What runs on the ground station's clock: the check of a freshly uploaded mission."""
        self.nav.check_due(wall_now_s)

    # ----------------------------------------------------------------- commands
    def command(self, cmd: int, p: tuple[float, ...], wall_now_s: float) -> int:
        """Execute COMMAND_LONG/COMMAND_INT `cmd` with params p[0..6] (degrees in p[4], p[5])."""
        self.tick(wall_now_s)
        if cmd == ARM_DISARM:
            return self._arm(p[0] >= 0.5, _int(p[1]) == FORCE_MAGIC)
        if cmd == TAKEOFF:
            return self._takeoff(p[6])
        if cmd == LAND:
            self.say(INFO, "Landing at current position")
            self._enter(Mode.LAND)
            return ACCEPTED
        if cmd == RTL:
            self.return_home()
            return ACCEPTED
        if cmd == SET_MODE:
            mode = Mode.from_px4(_int(p[1]), _int(p[2], 0))
            return DENIED if mode is None else self._set_mode(mode)
        if cmd == MISSION_START:
            return self._mission_start(_int(p[0]))
        if cmd == REPOSITION:
            return self._reposition(p)
        if cmd == CHANGE_SPEED:
            if _finite(p[1]) and p[1] > 0:
                self.speed_m_s = min(p[1], self.config.max_speed_m_s)
            return ACCEPTED
        if cmd == INJECT_FAILURE:
            return self._inject_failure(_int(p[0]), _int(p[1]))
        return UNSUPPORTED

    def _arm(self, arm: bool, force: bool) -> int:
        if not arm:
            if self.airborne and not force:
                self.say(CRITICAL, "Disarming denied: not landed")
                return TEMPORARILY_REJECTED
            self._disarm("Disarmed by external command")
            return ACCEPTED
        if self.armed:
            return ACCEPTED
        if not force and not self._healthy_for(self.mode):
            self.say(CRITICAL, "Arming denied: Resolve system health failures first")
            return TEMPORARILY_REJECTED
        self._arm_now("Armed by external command")
        return ACCEPTED

    def _healthy_for(self, mode: Mode) -> bool:
        """PX4's health and arming checks, those a simulated quad can fail: GPS, battery, and a mission to fly."""
        if not self.gps_ok or self.battery_pct <= self.config.low_battery_pct:
            return False
        return mode is not Mode.MISSION or bool(self.nav.valid)

    def _arm_now(self, text: str) -> None:
        self.armed = True
        self._armed_at_s = self.sim_time_s
        self._low_battery_done = self._emergency_done = False
        self.say(INFO, text)
        if self.mode in (Mode.MISSION, Mode.TAKEOFF):
            self._enter(self.mode)  # armed in these modes, it goes
        else:
            self.target = None

    def _home_where_landed(self) -> None:
        """PX4's commander sets home again where a disarmed vehicle stands once it is more than a metre
        from the old one (HomePosition::update with check_if_changed), so the next fence and return use it."""
        b = self.body
        if math.hypot(b.x_m - self.home_m[0], b.y_m - self.home_m[1]) > HOME_CHANGE_M:
            self.home_m = (b.x_m, b.y_m)

    def _disarm(self, text: str) -> None:
        if self.armed:
            self.say(INFO, text)
        if self.armed and not self.airborne:
            # A fresh battery for the next sortie, as PX4's battery simulator reads full while disarmed.
            self.body.battery = 1.0
            self._battery_empty = False
            self._home_where_landed()
        self.armed = False
        self._taking_off = self.landing = self.nav.taking_off = self._in_air = False
        self.target = None
        self.body.vx_m_s = self.body.vy_m_s = self.body.vz_m_s = 0.0
        if self.mode in (Mode.LAND, Mode.RTL, Mode.TAKEOFF):
            self._enter(Mode.HOLD)

    def _takeoff(self, alt_amsl_m: float) -> int:
        if _finite(alt_amsl_m):
            self.takeoff_alt_m = max(1.0, alt_amsl_m - self.config.home_alt_amsl_m)
        elif self.airborne:
            self.takeoff_alt_m = self.config.takeoff_alt_m
            self.say(INFO, f"Using default takeoff altitude: {self.takeoff_alt_m:.1f} m")
        self._enter(Mode.TAKEOFF)
        return ACCEPTED

    def _set_mode(self, mode: Mode) -> int:
        if mode is Mode.MISSION and self.armed and not self._healthy_for(Mode.MISSION):
            self.say(CRITICAL, "Switching to Mission is currently not available")
            return TEMPORARILY_REJECTED
        if mode is Mode.MISSION:
            self.nav.restart_if_finished()
        self._enter(mode)
        return ACCEPTED

    def _mission_start(self, first: int) -> int:
        """MAV_CMD_MISSION_START: Mission mode, and armed if it was not."""
        if not self.nav.valid:
            self.say(CRITICAL, "Mission start denied! No valid mission")
            return DENIED
        if not self._healthy_for(Mode.MISSION) and not self.armed:
            self.say(CRITICAL, "Mission start denied")
            return DENIED
        self.nav.restart_if_finished()
        if 0 <= first < len(self.mission):
            self.nav.set_current(first)
        if not self.armed:
            self._arm_now("Armed by mission start")
        self._enter(Mode.MISSION)
        return ACCEPTED

    def _reposition(self, p: tuple[float, ...]) -> int:
        if not self.airborne:
            return ACCEPTED  # PX4 takes it on the ground and does nothing with it
        x, y = (self.body.x_m, self.body.y_m)
        if _finite(p[4]) and _finite(p[5]) and (p[4] or p[5]):
            x, y = self.frame.to_local(p[4], p[5])
        z = p[6] - self.config.home_alt_amsl_m if _finite(p[6]) else self.body.z_m
        if _finite(p[0]) and p[0] > 0:
            self.speed_m_s = min(p[0], self.config.max_speed_m_s)
        self._enter(Mode.HOLD)
        self.target = (x, y, max(z, 1.0))
        return ACCEPTED

    def _inject_failure(self, unit: int, failure: int) -> int:
        """MAV_CMD_INJECT_FAILURE, for the faults PX4's simulators take: the GPS receiver, the battery."""
        if unit == FAILURE_UNIT_BATTERY and failure in (FAILURE_OFF, FAILURE_OK):
            self._battery_empty = failure == FAILURE_OFF  # PX4: the battery reads empty
            return ACCEPTED
        if unit == FAILURE_UNIT_GPS and failure in (FAILURE_OFF, FAILURE_OK):
            if failure == FAILURE_OFF:
                self.lose_gps()
            else:
                self.gps_ok, self._gps_lost_at_s = True, None
            return ACCEPTED
        return UNSUPPORTED

    # ----------------------------------------------------------------- modes
    def return_home(self) -> None:
        self.say(INFO, "Returning to launch")
        self._enter(Mode.RTL)

    def hold_here(self) -> None:
        self._enter(Mode.HOLD)

    def _enter(self, mode: Mode) -> None:
        b = self.body
        previous = self.mode
        self.mode = mode
        self.landing = False
        self._rtl_phase = ""
        if mode is Mode.MISSION:
            self.nav.enter()
            if self.armed:
                self.say(INFO, "Executing Mission")
            return
        if mode is Mode.TAKEOFF:
            self._taking_off = self.armed
            self.target = (b.x_m, b.y_m, max(self.takeoff_alt_m, b.z_m if self.airborne else 0.0))
        elif mode is Mode.LAND:
            self.landing = self.armed
            self.target = (b.x_m, b.y_m, 0.0)
        elif mode is Mode.RTL:
            if self.airborne:
                self._rtl_phase = "climb"
                self._rtl_destination = self._closest_safe_point()
                dz = self._rtl_destination[2]
                climb_to = max(b.z_m, dz + self.rtl_alt_m)
                amsl = climb_to + self.config.home_alt_amsl_m
                self.say(INFO, f"RTL: start return at {amsl:.0f} m ({climb_to - dz:.0f} m above destination)")
                self.target = (b.x_m, b.y_m, climb_to)
        elif self.airborne:
            # PX4 holds where the vehicle comes to rest after braking, not where the command found it.
            speed = math.hypot(b.vx_m_s, b.vy_m_s)
            brake_m = speed * speed / (2.0 * self.config.accel_m_s2)
            ux, uy = (b.vx_m_s / speed, b.vy_m_s / speed) if speed > 1e-6 else (0.0, 0.0)
            self.target = (b.x_m + ux * brake_m, b.y_m + uy * brake_m, b.z_m)
        elif previous is not mode:
            self.target = None

    # ----------------------------------------------------------------- stepping
    def step(self, dt_s: float) -> None:
        self.sim_time_s += dt_s
        if self.armed and self.mode is Mode.MISSION:
            self.nav.step()
        target = self.target if self.armed else None  # disarmed, the motors do not turn whatever the mode
        self.body.step(dt_s, target, self.speed_m_s, powered=self.armed, airborne=self.airborne)
        if self.armed:
            if not self._in_air and self.body.z_m > 0.5:
                self._in_air = True
                self.say(INFO, "Takeoff detected")
            self._after_move()

    def _after_move(self) -> None:
        b = self.body
        if self._taking_off and self.target is not None and b.z_m >= self.target[2] - 0.2:
            self._taking_off = False
            if self.mode is Mode.TAKEOFF:
                self._enter(Mode.HOLD)
        if self.mode is Mode.RTL:
            self._step_rtl()
        if self.landing and b.z_m <= 0.05:
            self._touchdown()
            return
        idle = not self.airborne and not self.landing and self.mode is not Mode.MISSION
        if idle and self.sim_time_s - self._armed_at_s > self.config.auto_disarm_s:
            self._disarm("Disarmed by auto preflight disarming")
            return
        self._failsafes()

    def _touchdown(self) -> None:
        self._in_air = False
        self.say(INFO, "Landing detected")
        if self.mode is Mode.MISSION:
            self.nav.on_touchdown()
        self._disarm("Disarmed by landing")
        self._enter(Mode.HOLD)

    def _closest_safe_point(self) -> tuple[float, float, float]:
        """Where Return mode goes (PX4's RTL_TYPE 0): home or the nearest rally point, (east, north, up) metres."""
        b = self.body
        points = [(*self.home_m, 0.0)]
        for item in self.rally:
            x, y = self.frame.to_local(item.lat_deg, item.lon_deg)
            z = item.z if item.frame in (3, 6, 10, 11) else item.z - self.config.home_alt_amsl_m
            points.append((x, y, z))
        return min(points, key=lambda p: math.hypot(p[0] - b.x_m, p[1] - b.y_m))

    def _step_rtl(self) -> None:
        b = self.body
        x, y, _ = self._rtl_destination
        if self._rtl_phase == "climb" and b.z_m >= self.target[2] - 0.5:
            self._rtl_phase = "return"
            self.target = (x, y, self.target[2])
        elif self._rtl_phase == "return" and math.hypot(b.x_m - x, b.y_m - y) <= self.config.acceptance_radius_m:
            self._rtl_phase = "land"
            self.landing = True
            self.target = (x, y, 0.0)
            self.say(INFO, "RTL: land at destination")

    def _failsafes(self) -> None:
        if not self.airborne:
            return
        b = self.body
        if not self.fence.is_empty:
            inside = self.fence.contains(b.x_m, b.y_m)
            if not inside and not self._breached:
                self.say(CRITICAL, "Geofence breached")
                self._enter(Mode.RTL if self.fence_action == "return" else Mode.HOLD)
            self._breached = not inside
        pct = self.battery_pct
        if pct <= self.config.emergency_battery_pct and not self._emergency_done:
            # PX4: "Low battery", then the failsafe lands at once where the vehicle is.
            self._emergency_done = True
            if not self._low_battery_done:
                self.say(CRITICAL, "Low battery")
            self.say(CRITICAL, "Failsafe activated")
            self._enter(Mode.LAND)
        elif pct <= self.config.low_battery_pct and not self._low_battery_done and not self._emergency_done:
            self._low_battery_done = True
            self.say(CRITICAL, "Low battery")
            self.say(CRITICAL, "Failsafe activated")
            if self.mode is not Mode.LAND:
                self._enter(Mode.RTL)
        lost_at = self._gps_lost_at_s
        if lost_at is not None and self.mode is not Mode.LAND and self.sim_time_s - lost_at >= self.config.gps_loss_s:
            # PX4: once the estimator gives up the position, the failsafe descends where the vehicle is.
            self.say(CRITICAL, "Failsafe activated")
            self._enter(Mode.LAND)

    def lose_gps(self) -> None:
        if self.gps_ok:
            self.gps_ok = False
            self._gps_lost_at_s = self.sim_time_s
