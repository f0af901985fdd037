"""PX4's navigator as a ground station sees it: it checks an uploaded mission, flies it item by item,
and hands a final RETURN_TO_LAUNCH over to Return mode.

Its words and results are PX4's own (see docs/px4-conformance.md): a mission with a waypoint
outside the fence is refused with "Geofence violation for waypoint N" as soon as it is
checked, and until a mission is found valid MISSION_CURRENT says there is none.

DO_JUMP's param1 is read as the 0-based sequence number to jump to (the ground station turns
QGroundControl's 1-based doJumpId into it before upload); param2 is the number of repeats.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from missions.plan import RawItem

if TYPE_CHECKING:
    from sitl.vehicles.autopilot import Autopilot

NAV_WAYPOINT, NAV_LOITER_TIME, NAV_RTL, NAV_LAND, NAV_TAKEOFF = 16, 19, 20, 21, 22
DO_JUMP, DO_CHANGE_SPEED = 177, 178
POSITIONAL = frozenset({NAV_WAYPOINT, NAV_LOITER_TIME, NAV_LAND, NAV_TAKEOFF})
RELATIVE_FRAMES = frozenset({3, 6, 10, 11})  # GLOBAL_RELATIVE_ALT(_INT), terrain treated as relative
# MISSION_STATE
NO_MISSION, NOT_STARTED, ACTIVE, PAUSED, COMPLETE = 1, 2, 3, 4, 5
CRITICAL, INFO = 2, 6  # MAV_SEVERITY


class Navigator:
    def __init__(self, ap: Autopilot) -> None:
        self._ap = ap
        self.items: list[RawItem] = []
        self.seq = 0
        self.finished = False
        self.reached: list[int] = []  # every item reached, over every mission flown
        self._reached_any = False  # of this mission: PX4 resets seq_reached to -1 on each upload
        self.valid: bool | None = None  # None: uploaded but not checked yet
        self._check_at_wall_s = math.inf
        self._jumps_left: dict[int, int] = {}
        self._entered = False  # the current item has been started
        self._hold_until_s: float | None = None
        self._to_report: int | None = None
        self.taking_off = False

    # ----------------------------------------------------------------- the plan
    def load(self, items: list[RawItem], wall_now_s: float) -> None:
        self.items = list(items)
        self.seq, self.finished, self._jumps_left = 0, False, {}
        self._reached_any = False
        self.valid = None if items else False
        self._check_at_wall_s = wall_now_s + self._ap.config.mission_check_s

    def clear(self) -> None:
        self.load([], -math.inf)

    def recheck(self, wall_now_s: float) -> None:
        """The fence changed: the mission is checked again against it."""
        if self.items:
            self.valid = None
            self._check_at_wall_s = wall_now_s + self._ap.config.mission_check_s

    def check_due(self, wall_now_s: float) -> None:
        """Runs the feasibility check once its (wall-time) moment has come, saying why a mission fails."""
        if self.valid is not None or wall_now_s < self._check_at_wall_s:
            return
        self.valid = True
        ap = self._ap
        if ap.fence.is_empty:
            return
        for i, item in enumerate(self.items):
            if item.command in POSITIONAL and (item.x or item.y):
                x, y = ap.frame.to_local(item.lat_deg, item.lon_deg)
                if not ap.fence.contains(x, y):
                    self.valid = False
                    ap.say(CRITICAL, f"Geofence violation for waypoint {i + 1}")
                    return

    @property
    def state(self) -> int:
        """MISSION_CURRENT's mission_state, as PX4 reports it."""
        if not self.items or not self.valid:
            return NO_MISSION
        if self.finished:
            return COMPLETE
        if self._ap.mode.name == "MISSION" and self._ap.armed:
            return ACTIVE
        return PAUSED if self._reached_any else NOT_STARTED

    def restart_if_finished(self) -> None:
        if self.finished:
            self.seq, self.finished, self._jumps_left = 0, False, {}

    def set_current(self, seq: int) -> None:
        if 0 <= seq < len(self.items):
            self.seq, self.finished = seq, False

    def enter(self) -> None:
        """Mission mode begins or resumes: the current item starts over."""
        self._entered = False
        self._hold_until_s = None

    # ----------------------------------------------------------------- flying it
    def step(self) -> None:
        """Advance through items that do not move the vehicle at once, then steer towards the current one.

        As PX4 does, one MISSION_ITEM_REACHED tells the last item done in the step (the DO_ items
        that follow a waypoint are done with it), and a DO_JUMP is never reported reached.
        """
        self._advance()
        if self._to_report is not None:
            self._ap.events.append(("reached", self._to_report))
            self._to_report = None

    def _advance(self) -> None:
        for _ in range(len(self.items) + 1):  # bounded: a DO_JUMP loop cannot spin forever within one step
            if self.finished or self.seq >= len(self.items):
                return
            item = self.items[self.seq]
            if item.command == DO_CHANGE_SPEED:
                if item.param2 > 0:
                    self._ap.speed_m_s = min(item.param2, self._ap.config.max_speed_m_s)
                self._finish_item()
            elif item.command == DO_JUMP:
                target = int(item.param1)
                left = self._jumps_left.setdefault(self.seq, int(item.param2))
                if left > 0 and 0 <= target < len(self.items):
                    self._jumps_left[self.seq] = left - 1
                    self.seq = target
                else:
                    self._finish_item(report=False)
            elif item.command == NAV_RTL:
                # PX4 finishes the mission on it and switches to Return mode.
                self._finish_item()
                self._ap.return_home()
                return
            elif item.command in POSITIONAL:
                if not self._steer(item):
                    return
            else:
                self._finish_item()

    def on_touchdown(self) -> None:
        if not self.finished and self.seq < len(self.items) and self.items[self.seq].command == NAV_LAND:
            self._finish_item()
            self._ap.events.append(("reached", self.reached[-1]))
            self._to_report = None

    def _finish_item(self, report: bool = True) -> None:
        if report:
            self.reached.append(self.seq)
            self._reached_any = True
            self._to_report = self.seq
        self._entered = False
        self._hold_until_s = None
        if self.seq + 1 >= len(self.items):
            self.finished = True
            self.seq = len(self.items)
            ap = self._ap
            if ap.airborne and not ap.landing:
                ap.say(INFO, "Mission finished, loitering")
                ap.hold_here()
        else:
            self.seq += 1

    def _item_target(self, item: RawItem) -> tuple[float, float, float]:
        ap, b = self._ap, self._ap.body
        if item.x or item.y:
            x, y = ap.frame.to_local(item.lat_deg, item.lon_deg)
        else:
            x, y = b.x_m, b.y_m
        z = item.z if item.frame in RELATIVE_FRAMES else item.z - ap.config.home_alt_amsl_m
        return x, y, z

    def _steer(self, item: RawItem) -> bool:
        """Towards `item`; True once it is done (the next item then starts in the same step)."""
        ap, b = self._ap, self._ap.body
        x, y, z = self._item_target(item)
        if item.command == NAV_TAKEOFF:
            x, y = b.x_m, b.y_m
        if not self._entered:
            self._entered = True
            if b.z_m < 1.0:
                # PX4 climbs straight up to the item's altitude first, whatever the item.
                self.taking_off = True
                ap.say(INFO, f"Climb to {z:.1f} meters above home")
        if self.taking_off:
            climb_to = max(z, 1.0)
            ap.target = (b.x_m, b.y_m, climb_to)
            if b.z_m < climb_to - 0.5:
                return False
            self.taking_off = False
        if item.command == NAV_LAND:
            if math.hypot(x - b.x_m, y - b.y_m) > ap.config.acceptance_radius_m and not ap.landing:
                ap.target = (x, y, b.z_m)
            else:
                ap.landing = True
                ap.target = (x, y, 0.0)
            return False  # done on touchdown
        ap.target = (x, y, z)
        arrived = math.hypot(x - b.x_m, y - b.y_m) <= ap.config.acceptance_radius_m and abs(z - b.z_m) <= 1.0
        if not arrived:
            return False
        hold_s = item.param1 if item.command in (NAV_WAYPOINT, NAV_LOITER_TIME) and item.param1 > 0 else 0.0
        if self._hold_until_s is None:
            self._hold_until_s = ap.sim_time_s + hold_s
        if ap.sim_time_s < self._hold_until_s:
            return False
        self._finish_item()
        return True
