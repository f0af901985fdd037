"""PX4's flight logic, as a ground station sees it: modes, mission execution, failsafes.

No sockets here: :class:`Autopilot` is stepped in simulated seconds and answers commands
with MAV_RESULT codes; what it wants to say (STATUSTEXT, MISSION_ITEM_REACHED) waits in
`events` for the link to send. DO_JUMP's param1 is read as the 1-based position of the
target item (seq = param1 - 1), as QGroundControl's doJumpId is when a plan is uploaded
item for item; param2 is the number of repeats.
"""

from __future__ import annotations

import math

from missions.plan import RawItem
from sitl.fence import Fence
from sitl.model import LandedState, Mode, VehicleConfig
from sitl.physics import Body, FlatFrame

ACCEPTED, TEMPORARILY_REJECTED, DENIED, UNSUPPORTED, FAILED = 0, 1, 2, 3, 4
NAV_WAYPOINT, NAV_LOITER_TIME, NAV_RTL, NAV_LAND, NAV_TAKEOFF = 16, 19, 20, 21, 22
DO_JUMP, DO_CHANGE_SPEED = 177, 178
POSITIONAL = frozenset({NAV_WAYPOINT, NAV_LOITER_TIME, NAV_LAND, NAV_TAKEOFF})
RELATIVE_FRAMES = frozenset({3, 6, 10, 11})  # GLOBAL_RELATIVE_ALT(_INT), terrain treated as relative
FORCE_MAGIC = 21196
# MISSION_STATE
NO_MISSION, NOT_STARTED, ACTIVE, PAUSED, COMPLETE = 1, 2, 3, 4, 5
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
        self.home_deg = home_deg
        self.frame = FlatFrame(*home_deg)
        self.body = Body(config)
        self.mode = Mode.HOLD
        self.armed = False
        self.sim_time_s = 0.0
        self.gps_ok = True
        self.mission: list[RawItem] = []
        self.fence = Fence()
        self.fence_items: list[RawItem] = []
        self.rally: list[RawItem] = []
        self.mission_seq = 0
        self.mission_finished = False
        self.reached: list[int] = []
        self.events: list[tuple[str, object]] = []  # ("text", (severity, text)) or ("reached", seq)
        self.speed_m_s = config.cruise_speed_m_s
        self.takeoff_alt_m = config.takeoff_alt_m
        self.fence_action = config.fence_action
        self._target: tuple[float, float, float] | None = None
        self._taking_off = False
        self._landing = False
        self._rtl_phase = ""
        self._hold_until_s: float | None = None
        self._jumps_left: dict[int, int] = {}
        self._armed_at_s = 0.0
        self._upload_wall_s = -math.inf
        self._gps_lost_at_s: float | None = None
        self._breached = False
        self._low_battery_done = False
        self._emergency_done = False
        self._mission_entered = False

    # ----------------------------------------------------------------- state
    @property
    def airborne(self) -> bool:
        return self.armed and (self.body.z_m > 0.05 or self._taking_off)

    @property
    def landed_state(self) -> LandedState:
        if not self.airborne:
            return LandedState.ON_GROUND
        if self._landing:
            return LandedState.LANDING
        if self._taking_off:
            return LandedState.TAKEOFF
        return LandedState.IN_AIR

    @property
    def battery_pct(self) -> float:
        return 100.0 * self.body.battery

    @property
    def mission_state(self) -> int:
        if not self.mission:
            return NO_MISSION
        if self.mission_finished:
            return COMPLETE
        if self.mode is Mode.MISSION and self.armed:
            return ACTIVE
        return PAUSED if self.mission_seq > 0 else NOT_STARTED

    def say(self, severity: int, text: str) -> None:
        self.events.append(("text", (severity, text)))

    # ----------------------------------------------------------------- uploads
    def accept_upload(self, mission_type: int, items: list[RawItem], wall_now_s: float) -> str | None:
        """Store uploaded items; return why they are rejected, or None."""
        if mission_type == 1:
            try:
                fence = Fence.from_items(items, self.frame)
            except ValueError as exc:
                return f"Geofence invalid: {exc}"
            if not fence.contains(0.0, 0.0):
                return "Geofence invalid: home is outside the fence"
            self.fence, self.fence_items = fence, list(items)
        elif mission_type == 2:
            self.rally = list(items)
        else:
            self.mission = list(items)
            self.mission_seq = 0
            self.mission_finished = False
            self._jumps_left = {}
            if self.mode is Mode.MISSION and self.airborne:
                self._enter(Mode.HOLD)
        self._upload_wall_s = wall_now_s
        return None

    def clear(self, mission_type: int) -> None:
        if mission_type in (0, 255):
            self.mission, self.mission_seq, self.mission_finished = [], 0, False
        if mission_type in (1, 255):
            self.fence, self.fence_items = Fence(), []
        if mission_type in (2, 255):
            self.rally = []

    # ----------------------------------------------------------------- commands
    def command(self, cmd: int, p: tuple[float, ...], wall_now_s: float) -> int:
        """Execute COMMAND_LONG/COMMAND_INT `cmd` with params p[0..6] (degrees in p[4], p[5])."""
        if cmd == 400:
            return self._arm(p[0] >= 0.5, _int(p[1]) == FORCE_MAGIC)
        if cmd == 22:
            return self._takeoff(p[6])
        if cmd == 21:
            if not self.armed:
                return DENIED
            self._enter(Mode.LAND)
            return ACCEPTED
        if cmd == 20:
            if not self.armed:
                return DENIED
            self._enter(Mode.RTL)
            return ACCEPTED
        if cmd == 176:
            mode = Mode.from_px4(_int(p[1]), _int(p[2], 0))
            if mode is None:
                return DENIED
            return self._set_mode(mode, wall_now_s)
        if cmd == 300:
            first = _int(p[0])
            result = self._set_mode(Mode.MISSION, wall_now_s)
            if result == ACCEPTED and 0 <= first < len(self.mission):
                self.mission_seq = first
            return result
        if cmd == 192:
            return self._reposition(p)
        if cmd == 178:
            if _finite(p[1]) and p[1] > 0:
                self.speed_m_s = min(p[1], self.config.max_speed_m_s)
            return ACCEPTED
        return UNSUPPORTED

    def _arm(self, arm: bool, force: bool) -> int:
        if not arm:
            if self.airborne and not force:
                self.say(CRITICAL, "Disarming denied: not landed")
                return DENIED
            self._disarm()
            return ACCEPTED
        if self.armed:
            return ACCEPTED
        if not force:
            if not self.gps_ok:
                self.say(CRITICAL, "Arming denied: no GPS fix")
                return DENIED
            if self.battery_pct <= self.config.low_battery_pct:
                self.say(CRITICAL, "Arming denied: low battery")
                return DENIED
        self.armed = True
        self._armed_at_s = self.sim_time_s
        self._low_battery_done = self._emergency_done = False
        self.say(INFO, "Armed by external command")
        if self.mode is Mode.MISSION:
            self._mission_entered = False
        return ACCEPTED

    def _disarm(self) -> None:
        if self.armed:
            self.say(INFO, "Disarmed")
        if self.armed and not self.airborne:
            # A fresh battery for the next sortie, as PX4's battery simulator reads full while disarmed.
            self.body.battery = 1.0
        self.armed = False
        self._taking_off = self._landing = False
        self.body.vx_m_s = self.body.vy_m_s = self.body.vz_m_s = 0.0

    def _takeoff(self, alt_amsl_m: float) -> int:
        if not self.armed:
            self.say(CRITICAL, "Takeoff denied: disarmed")
            return DENIED
        if not self.gps_ok:
            return DENIED
        if _finite(alt_amsl_m):
            self.takeoff_alt_m = max(1.0, alt_amsl_m - self.config.home_alt_amsl_m)
        self._enter(Mode.TAKEOFF)
        return ACCEPTED

    def _set_mode(self, mode: Mode, wall_now_s: float) -> int:
        if mode is Mode.MISSION:
            result = self._mission_startable(wall_now_s)
            if result != ACCEPTED:
                return result
            if self.mission_finished:
                self.mission_seq, self.mission_finished, self._jumps_left = 0, False, {}
        if mode in (Mode.RTL, Mode.LAND, Mode.TAKEOFF) and not self.armed:
            return DENIED
        if mode is Mode.TAKEOFF:
            return self._takeoff(math.nan)
        self._enter(mode)
        return ACCEPTED

    def _mission_startable(self, wall_now_s: float) -> int:
        if not self.mission:
            self.say(CRITICAL, "Mission rejected: no mission uploaded")
            return DENIED
        if wall_now_s - self._upload_wall_s < self.config.mission_check_s:
            return TEMPORARILY_REJECTED
        if not self.fence.is_empty:
            for i, item in enumerate(self.mission):
                if item.command in POSITIONAL and (item.x or item.y):
                    x, y = self.frame.to_local(item.lat_deg, item.lon_deg)
                    if not self.fence.contains(x, y):
                        self.say(CRITICAL, f"Geofence violation for waypoint {i + 1}")
                        return DENIED
        return ACCEPTED

    def _reposition(self, p: tuple[float, ...]) -> int:
        if not self.airborne:
            return DENIED
        x, y = (self.body.x_m, self.body.y_m)
        if _finite(p[4]) and _finite(p[5]) and (p[4] or p[5]):
            x, y = self.frame.to_local(p[4], p[5])
        z = p[6] - self.config.home_alt_amsl_m if _finite(p[6]) else self.body.z_m
        if _finite(p[0]) and p[0] > 0:
            self.speed_m_s = min(p[0], self.config.max_speed_m_s)
        self._enter(Mode.HOLD)
        self._target = (x, y, max(z, 1.0))
        return ACCEPTED

    def _enter(self, mode: Mode) -> None:
        b = self.body
        self.mode = mode
        self._landing = False
        self._rtl_phase = ""
        self._hold_until_s = None
        self._mission_entered = False
        if mode is Mode.TAKEOFF:
            self._taking_off = True
            self._target = (b.x_m, b.y_m, self.takeoff_alt_m)
        elif mode is Mode.LAND:
            self._landing = True
            self._target = (b.x_m, b.y_m, 0.0)
        elif mode is Mode.RTL:
            self._rtl_phase = "climb"
            self._target = (b.x_m, b.y_m, max(b.z_m, self.config.rtl_alt_m))
        elif self.airborne:
            # PX4 holds where the vehicle comes to rest after braking, not where the command found it.
            speed = math.hypot(b.vx_m_s, b.vy_m_s)
            brake_m = speed * speed / (2.0 * self.config.accel_m_s2)
            ux, uy = (b.vx_m_s / speed, b.vy_m_s / speed) if speed > 1e-6 else (0.0, 0.0)
            self._target = (b.x_m + ux * brake_m, b.y_m + uy * brake_m, b.z_m)
        else:
            self._target = None

    # ----------------------------------------------------------------- stepping
    def step(self, dt_s: float) -> None:
        self.sim_time_s += dt_s
        if self.armed:
            self._fly()
        self.body.step(dt_s, self._target, self.speed_m_s, powered=self.armed, airborne=self.airborne)
        if self.armed:
            self._after_move()

    def _fly(self) -> None:
        if self.mode is Mode.MISSION:
            self._run_mission()

    def _after_move(self) -> None:
        b = self.body
        if self._taking_off and self._target is not None and b.z_m >= self._target[2] - 0.2:
            self._taking_off = False
            if self.mode is Mode.TAKEOFF:
                self._enter(Mode.HOLD)
        if self.mode is Mode.RTL:
            self._step_rtl()
        if self._landing and b.z_m <= 0.05:
            self._touchdown()
            return
        if not self.airborne and not self._landing and self.sim_time_s - self._armed_at_s > self.config.auto_disarm_s:
            self.say(INFO, "Disarmed by auto preflight disarming")
            self._disarm()
            return
        self._failsafes()

    def _touchdown(self) -> None:
        self.say(INFO, "Landing detected")
        if self.mode is Mode.MISSION and not self.mission_finished:
            self._finish_item()
        self._disarm()

    def _step_rtl(self) -> None:
        b = self.body
        if self._rtl_phase == "climb" and b.z_m >= self._target[2] - 0.5:
            self._rtl_phase = "return"
            self._target = (0.0, 0.0, self._target[2])
        elif self._rtl_phase == "return" and math.hypot(b.x_m, b.y_m) <= self.config.acceptance_radius_m:
            self._rtl_phase = "land"
            self._landing = True
            self._target = (0.0, 0.0, 0.0)

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
            self._emergency_done = True
            self.say(CRITICAL, "Emergency battery level! Landing immediately")
            self._enter(Mode.LAND)
        elif pct <= self.config.low_battery_pct and not self._low_battery_done and not self._emergency_done:
            self._low_battery_done = True
            self.say(CRITICAL, "Low battery level! Returning home")
            if self.mode is not Mode.LAND:
                self._enter(Mode.RTL)
        lost_at = self._gps_lost_at_s
        if (
            lost_at is not None
            and self.mode is not Mode.LAND
            and self.sim_time_s - lost_at >= self.config.gps_loss_hold_s
        ):
            self.say(CRITICAL, "No GPS: landing")
            self._enter(Mode.LAND)

    def lose_gps(self) -> None:
        if not self.gps_ok:
            return
        self.gps_ok = False
        self._gps_lost_at_s = self.sim_time_s
        self.say(CRITICAL, "GPS lost: holding position")
        if self.airborne:
            self._enter(Mode.HOLD)

    def fail_battery(self) -> None:
        self.body.battery = min(self.body.battery, self.config.critical_battery_pct / 100.0)
        self.say(CRITICAL, "Battery failure: critical level")

    # ----------------------------------------------------------------- mission
    def _item_target(self, item: RawItem) -> tuple[float, float, float]:
        b = self.body
        if item.x or item.y:
            x, y = self.frame.to_local(item.lat_deg, item.lon_deg)
        else:
            x, y = b.x_m, b.y_m
        z = item.z if item.frame in RELATIVE_FRAMES else item.z - self.config.home_alt_amsl_m
        return x, y, z

    def _finish_item(self) -> None:
        seq = self.mission_seq
        self.reached.append(seq)
        self.events.append(("reached", seq))
        self._mission_entered = False
        self._hold_until_s = None
        if seq + 1 >= len(self.mission):
            self.mission_finished = True
            self.mission_seq = len(self.mission)
            self.say(INFO, "Mission finished")
            if self.airborne and not self._landing:
                self._enter(Mode.HOLD)
        else:
            self.mission_seq = seq + 1

    def _run_mission(self) -> None:
        """Advance through non-moving items at once, then steer towards the current one."""
        for _ in range(len(self.mission) + 1):  # bounded: a DO_JUMP loop cannot spin forever within one step
            if self.mission_finished or self.mission_seq >= len(self.mission):
                return
            item = self.mission[self.mission_seq]
            if item.command == DO_CHANGE_SPEED:
                if item.param2 > 0:
                    self.speed_m_s = min(item.param2, self.config.max_speed_m_s)
                self._finish_item()
            elif item.command == DO_JUMP:
                target = int(item.param1) - 1
                left = self._jumps_left.setdefault(self.mission_seq, int(item.param2))
                if left > 0 and 0 <= target < len(self.mission):
                    self._jumps_left[self.mission_seq] = left - 1
                    self.reached.append(self.mission_seq)
                    self.events.append(("reached", self.mission_seq))
                    self.mission_seq = target
                else:
                    self._finish_item()
            elif item.command in POSITIONAL or item.command == NAV_RTL:
                self._steer(item)
                return
            else:
                self._finish_item()

    def _steer(self, item: RawItem) -> None:
        b = self.body
        if item.command == NAV_RTL:
            if not self._mission_entered:
                self._mission_entered = True
                self._rtl_phase = "climb"
                self._target = (b.x_m, b.y_m, max(b.z_m, self.config.rtl_alt_m))
            self._step_rtl()
            return
        x, y, z = self._item_target(item)
        if item.command == NAV_TAKEOFF:
            x, y = b.x_m, b.y_m
        if not self._mission_entered:
            self._mission_entered = True
            if b.z_m < 1.0:
                self._taking_off = True
        if self._taking_off:
            climb_to = z if item.command == NAV_TAKEOFF else max(self.takeoff_alt_m, min(z, self.takeoff_alt_m * 4))
            self._target = (b.x_m, b.y_m, climb_to)
            if b.z_m < climb_to - 0.5:
                return
            self._taking_off = False
        if item.command == NAV_LAND:
            if math.hypot(x - b.x_m, y - b.y_m) > self.config.acceptance_radius_m and not self._landing:
                self._target = (x, y, b.z_m)
            else:
                self._landing = True
                self._target = (x, y, 0.0)
            return
        self._target = (x, y, z)
        arrived = math.hypot(x - b.x_m, y - b.y_m) <= self.config.acceptance_radius_m and abs(z - b.z_m) <= 1.0
        if not arrived:
            return
        hold_s = item.param1 if item.command in (NAV_WAYPOINT, NAV_LOITER_TIME) and item.param1 > 0 else 0.0
        if self._hold_until_s is None:
            self._hold_until_s = self.sim_time_s + hold_s
        if self.sim_time_s >= self._hold_until_s:
            self._finish_item()
