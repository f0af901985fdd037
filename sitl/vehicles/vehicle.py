"""One simulated PX4 multicopter: the autopilot, its link, its streams and the faults tests inject.

Everything but the fault controls and the snapshots runs on the fleet's one thread; the
controls only set flags the thread picks up, and `state()` returns the last published
frozen snapshot, so no lock is needed.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import replace

from missions.plan import RawItem
from sitl.vehicles.autopilot import ACCEPTED, DENIED, INJECT_FAILURE, Autopilot, _finite, _int
from sitl.vehicles.link import Link
from sitl.vehicles.mission_transfer import MissionTransfer
from sitl.vehicles.model import Gimbal, SimState, VehicleConfig
from sitl.vehicles.params import decode, encode, px4_params
from sitl.vehicles.telemetry import (
    AUTOPILOT_VERSION,
    GIMBAL_DEVICE_ATTITUDE_STATUS,
    HOME_POSITION,
    MISSION_CURRENT,
    YAW_IN_EARTH_FRAME,
    YAW_LOCK,
    Telemetry,
    attitude_rad,
)

log = logging.getLogger(__name__)

REQUEST_MESSAGE, SET_MESSAGE_INTERVAL, REQUEST_AUTOPILOT_CAPABILITIES, GET_HOME_POSITION = 512, 511, 520, 410
DO_GIMBAL_MANAGER_PITCHYAW = 1000


class SimVehicle:
    def __init__(
        self,
        system_id: int,
        home_deg: tuple[float, float],
        port: int,
        host: str,
        config: VehicleConfig,
        onboard_port: int = 0,
        shared_port: bool = False,
    ):
        self.system_id = system_id
        self.port = port
        self.shared_port = shared_port  # other vehicles send to `port` too
        self.host = host
        self.onboard_port = onboard_port  # asked for; 0 or taken: any free one, see onboard_url
        self.config = config
        self.home = home_deg
        self._autopilot = Autopilot(config, home_deg)
        self._link: Link | None = None
        self._transfer: MissionTransfer | None = None
        self._telemetry: Telemetry | None = None
        self._params = px4_params(config)
        self._pending_loss: float | None = None
        self._pending_outage_s: float | None = None
        self._failures: deque[tuple[int, int]] = deque()  # (unit, type) waiting for the fleet's thread
        self._state = self._snapshot()

    @property
    def connect_url(self) -> str:
        """What MAVSDK connects with to hear this vehicle."""
        url = f"udpin://{self.host}:{self.port}"
        return f"{url}?system={self.system_id}" if self.shared_port else url

    @property
    def onboard_url(self) -> str:
        """What a second client, a companion computer's pymavlink, connects with once the fleet runs.

        The ground station's port takes one listener only, so the vehicle also answers on
        its own port (14580+i beside 14540+i, where PX4 SITL's API link sits): send it
        anything, a HEARTBEAT, and it streams everything to you too.
        """
        if self._link is None:
            raise RuntimeError("the vehicle's link is not open: start the fleet first")
        return f"udpout:{self.host}:{self._link.local_port}"

    # ------------------------------------------------------------ thread-safe controls
    def set_packet_loss(self, percent: float) -> None:
        """Drop this share of packets, each way, independently."""
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"packet loss must be 0–100 %, not {percent}")
        self._pending_loss = percent / 100.0
        if self._link is not None:
            self._link.loss_fraction = percent / 100.0

    def link_outage(self, seconds: float) -> None:
        """Drop everything, both ways, for `seconds` of WALL time from now (the vehicle keeps flying)."""
        deadline = time.monotonic() + seconds
        self._pending_outage_s = deadline
        if self._link is not None:
            self._link.outage_until_s = deadline

    def inject_failure(self, unit: int, failure_type: int) -> None:
        """A fault, as MAV_CMD_INJECT_FAILURE would inject it (FAILURE_UNIT, FAILURE_TYPE): the GPS
        receiver (unit 4) or the battery (unit 100) off (type 1) or back (type 0)."""
        self._failures.append((unit, failure_type))

    @property
    def armed(self) -> bool:
        return self._autopilot.armed

    def state(self) -> SimState:
        return self._state

    def uploaded(self, mission_type: int) -> list[RawItem]:
        """The items last accepted for mission type 0 (mission), 1 (fence) or 2 (rally)."""
        ap = self._autopilot
        # The autopilot replaces these lists, never mutates them, so reading one from another thread is safe.
        return list({0: ap.mission, 1: ap.fence_items, 2: ap.rally}.get(int(mission_type), ()))

    # ------------------------------------------------------------ fleet thread only
    def open(self) -> None:
        try:
            self._link = Link(self.system_id, self.host, self.port, self.onboard_port)
        except OSError:
            log.warning("vehicle %d: port %d taken; onboard clients see onboard_url", self.system_id, self.onboard_port)
            self._link = Link(self.system_id, self.host, self.port)
        if self._pending_loss is not None:
            self._link.loss_fraction = self._pending_loss
        if self._pending_outage_s is not None:
            self._link.outage_until_s = self._pending_outage_s
        self._transfer = MissionTransfer(self._link, self._autopilot)
        self._telemetry = Telemetry(self._link, self._autopilot)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    def fileno(self) -> int:
        return self._link.fileno()

    def step(self, dt_s: float, steps: int) -> None:
        ap = self._autopilot
        while self._failures:
            unit, failure_type = self._failures.popleft()
            ap.command(INJECT_FAILURE, (unit, failure_type, 0, 0, 0, 0, 0), time.monotonic())
        for _ in range(steps):
            ap.step(dt_s)

    def service(self) -> None:
        """Handle what arrived, send what is due, publish a snapshot."""
        self._autopilot.tick(time.monotonic())
        for msg in self._link.receive():
            try:
                self._handle(msg)
            except (ValueError, TypeError, OverflowError, KeyError):
                # A malformed message from a ground station must not take the fleet's thread down.
                log.exception("vehicle %d: cannot handle %s", self.system_id, msg.get_type())
        self._transfer.poll()
        self._flush_events()
        self._telemetry.poll()
        self._state = self._snapshot()

    def _flush_events(self) -> None:
        ap = self._autopilot
        events, ap.events = ap.events, []
        for kind, payload in events:
            if kind == "text":
                self._telemetry.statustext(*payload)
            else:
                self._link.mav.mission_item_reached_send(payload)
                self._telemetry.send(42)

    def _snapshot(self) -> SimState:
        ap = self._autopilot
        b = ap.body
        lat, lon = ap.frame.to_deg(b.x_m, b.y_m)
        roll, pitch, yaw = attitude_rad(b)
        gimbal = self._telemetry.gimbal if self._telemetry is not None else Gimbal(self.config.gimbal_pitch_deg)
        return SimState(
            lat_deg=lat,
            lon_deg=lon,
            rel_alt_m=b.z_m,
            armed=ap.armed,
            landed_state=ap.landed_state,
            mode=ap.mode.px4_name,
            battery_pct=ap.battery_pct,
            mission_seq=ap.mission_seq,
            mission_count=len(ap.mission),
            reached=tuple(ap.reached),
            home=self.home,
            ground_speed_m_s=b.ground_speed_m_s,
            heading_deg=math.degrees(b.yaw_rad) % 360.0,
            gps_ok=ap.gps_ok,
            sim_time_s=ap.sim_time_s,
            mission_finished=ap.mission_finished,
            wall_time_s=time.time(),
            alt_amsl_m=b.z_m + self.config.home_alt_amsl_m,
            roll_deg=math.degrees(roll),
            pitch_deg=math.degrees(pitch),
            velocity_enu_m_s=(b.vx_m_s, b.vy_m_s, b.vz_m_s),
            gimbal_pitch_deg=gimbal.pitch_deg,
            gimbal_yaw_deg=gimbal.yaw_from_nose_deg(math.degrees(yaw)),
        )

    # ------------------------------------------------------------ incoming messages
    def _handle(self, msg) -> None:
        if self._transfer.handle(msg):
            return
        kind = msg.get_type()
        if kind in ("COMMAND_LONG", "COMMAND_INT"):
            self._on_command(msg, kind == "COMMAND_INT")
        elif kind == "PARAM_REQUEST_READ":
            self._on_param_read(msg)
        elif kind == "PARAM_REQUEST_LIST":
            for index in range(len(self._params)):
                self._send_param(index)
        elif kind == "PARAM_SET":
            self._on_param_set(msg)
        elif kind == "TIMESYNC" and msg.tc1 == 0:
            self._link.mav.timesync_send(int(self._autopilot.sim_time_s * 1e9), msg.ts1)

    def _on_command(self, msg, is_int: bool) -> None:
        cmd = msg.command
        if is_int:
            # COMMAND_INT carries latitude/longitude as degrees * 1e7 in x/y.
            params = (msg.param1, msg.param2, msg.param3, msg.param4, msg.x / 1e7, msg.y / 1e7, msg.z)
        else:
            params = (msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6, msg.param7)
        follow_up = None
        if cmd in (REQUEST_MESSAGE, REQUEST_AUTOPILOT_CAPABILITIES, GET_HOME_POSITION):
            msg_id = {REQUEST_AUTOPILOT_CAPABILITIES: AUTOPILOT_VERSION, GET_HOME_POSITION: HOME_POSITION}.get(
                cmd, _int(params[0])
            )
            # PX4 sends its streams on request, but not MISSION_CURRENT, which its mission manager owns.
            on_request = hasattr(self._telemetry, f"_send_{msg_id}") and msg_id != MISSION_CURRENT
            result = ACCEPTED if on_request else DENIED
            follow_up = msg_id if result == ACCEPTED else None
        elif cmd == SET_MESSAGE_INTERVAL:
            result = ACCEPTED if self._telemetry.set_interval(_int(params[0]), params[1]) else DENIED
        elif cmd == DO_GIMBAL_MANAGER_PITCHYAW:
            result = self._point_gimbal(params)
            follow_up = GIMBAL_DEVICE_ATTITUDE_STATUS if result == ACCEPTED else None
            self._state = self._snapshot()
        else:
            result = self._autopilot.command(cmd, params, time.monotonic())
            self._state = self._snapshot()  # whoever got the ACK sees the new state in state()
        self._link.mav.command_ack_send(cmd, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent())
        self._flush_events()
        if follow_up is not None:
            self._telemetry.send(follow_up)
        elif result == ACCEPTED:
            self._telemetry.send(0)  # a new mode or arming state shows at once, as PX4's heartbeat does

    def _point_gimbal(self, params: tuple[float, ...]) -> int:
        """Pitch (p1) and yaw (p2) in degrees, NaN for no change; flags (p5) YAW_LOCK or earth frame: yaw from north."""
        pitch, yaw, flags = params[0], params[1], _int(params[4], 0)
        if _finite(pitch) and not -90.0 <= pitch <= 90.0:
            return DENIED
        gimbal = self._telemetry.gimbal
        if _finite(pitch):
            gimbal = replace(gimbal, pitch_deg=pitch)
        if _finite(yaw):
            gimbal = replace(gimbal, yaw_deg=yaw, yaw_lock=bool(flags & (YAW_LOCK | YAW_IN_EARTH_FRAME)))
        self._telemetry.gimbal = gimbal
        return ACCEPTED

    def _param_name(self, msg) -> str:
        pid = msg.param_id
        return pid.decode(errors="replace") if isinstance(pid, bytes) else str(pid)

    def _send_param(self, index: int) -> None:
        name = list(self._params)[index]
        value, ptype = self._params[name]
        self._link.mav.param_value_send(name.encode(), encode(value, ptype), ptype, len(self._params), index)

    def _on_param_read(self, msg) -> None:
        names = list(self._params)
        name = self._param_name(msg).rstrip("\x00")
        index = names.index(name) if name in names else msg.param_index
        if 0 <= index < len(names):
            self._send_param(index)

    def _on_param_set(self, msg) -> None:
        name = self._param_name(msg).rstrip("\x00")
        if name not in self._params:
            return  # PX4 stays silent about unknown parameters; the client times out
        ptype = self._params[name][1]
        value = decode(msg.param_value, ptype)
        self._params[name][0] = value
        ap = self._autopilot
        if name == "MIS_TAKEOFF_ALT":
            ap.takeoff_alt_m = value
        elif name == "MPC_XY_CRUISE":
            ap.speed_m_s = min(value, self.config.max_speed_m_s)
        elif name == "RTL_RETURN_ALT":
            ap.rtl_alt_m = value
        elif name == "GF_ACTION":
            ap.fence_action = "return" if int(value) == 3 else "hold"
        self._send_param(list(self._params).index(name))
