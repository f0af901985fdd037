"""The camera's pose from MAVLink: interpolation and staleness by hand, then against the simulator."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from missions.geo import haversine_m
from sitl.ground import GroundLink
from sitl.ports import free_port_block
from sitl.vehicles.model import VehicleConfig
from sitl.vehicles.telemetry import quaternion
from vision.camera import CameraPose
from vision.pose import MavlinkPose, PoseHistory, StaticPose, euler_from_quaternion, gimbal_yaw_is_earth_frame

LAT, LON = 36.128, -5.438
NADIR_W = math.cos(math.pi / 4)  # the w of a gimbal quaternion looking straight down


def angle_error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def history(**kw) -> PoseHistory:
    h = PoseHistory(**kw)
    for t in (10.0, 10.1):
        h.add_position(t, LAT, LON, 50.0)
        h.add_attitude(t, 0.0, 0.0, 0.0)
    return h


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize("pitch", [-90.0, -89.8, -89.0, -60.0, -45.0, 0.0, 20.0])
@pytest.mark.parametrize("yaw", [-179.5, -90.0, 0.0, 30.0, 135.0, 180.0])
def test_quaternion_angles_survive_float32_and_nadir(pitch, yaw):
    # MAVLink packs q as float32; straight down, roll and yaw are one turn, which must come out as yaw.
    q = np.array(quaternion(0.0, math.radians(pitch), math.radians(yaw)), dtype=np.float32)
    roll_out, pitch_out, yaw_out = euler_from_quaternion(q)
    assert pitch_out == pytest.approx(pitch, abs=0.01)
    assert angle_error(yaw_out, yaw) < 0.01
    assert abs(roll_out) < 0.01


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((math.cos(math.pi / 4), 0.0, -math.sin(math.pi / 4), 0.0), (0.0, -90.0, 0.0)),  # nadir
        ((math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)), (0.0, 0.0, 90.0)),  # looking east
        ((math.cos(math.pi / 8), math.sin(math.pi / 8), 0.0, 0.0), (45.0, 0.0, 0.0)),
        ((2.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),  # not normalised
    ],
)
def test_quaternion_angles_by_hand(q, expected):
    assert euler_from_quaternion(q) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("q", [(0.0, 0.0, 0.0, 0.0), (math.nan, 0.0, 0.0, 0.0)])
def test_an_invalid_quaternion_is_refused(q):
    with pytest.raises(ValueError):
        euler_from_quaternion(q)


@pytest.mark.parametrize(
    ("flags", "earth"),
    [(32, False), (64, True), (16, True), (0, False), (16 | 32, False), (4 | 8 | 32, False), (4 | 8 | 16 | 64, True)],
)
def test_gimbal_yaw_frame_from_flags(flags, earth):
    assert gimbal_yaw_is_earth_frame(flags) is earth


# ------------------------------------------------------------------ interpolation


def test_nothing_before_the_first_fix():
    h = PoseHistory()
    assert h.pose_at(0.0) is None
    h.add_attitude(1.0, 0.0, 0.0, 0.0)
    assert h.pose_at(1.0) is None, "attitude without position"
    h.add_position(1.0, LAT, LON, 10.0)
    assert h.pose_at(1.0) is not None


def test_position_and_angles_interpolate_the_short_way_round():
    h = PoseHistory()
    h.add_position(0.0, LAT, LON, 40.0)
    h.add_position(1.0, LAT + 0.001, LON - 0.002, 60.0)
    h.add_attitude(0.0, -10.0, 4.0, 350.0 - 360.0)
    h.add_attitude(1.0, 10.0, 8.0, 10.0)
    h.add_gimbal(0.0, -80.0, 170.0)
    h.add_gimbal(1.0, -60.0, -170.0)
    pose = h.pose_at(0.25)
    assert (pose.lat_deg, pose.lon_deg, pose.alt_m) == pytest.approx((LAT + 0.00025, LON - 0.0005, 45.0))
    assert (pose.roll_deg, pose.pitch_deg) == pytest.approx((-5.0, 5.0))
    assert angle_error(pose.yaw_deg, -5.0) < 1e-9
    assert pose.gimbal_pitch_deg == pytest.approx(-75.0)
    assert angle_error(pose.gimbal_yaw_deg, 175.0) < 1e-9
    assert pose.gimbal_stabilized


def test_past_the_last_fix_the_position_follows_the_velocity():
    h = PoseHistory()
    h.add_position(0.0, LAT, LON, 40.0, velocity_ned_m_s=(10.0, -5.0, -1.0))
    h.add_attitude(0.0, 0.0, 0.0, 0.0)
    pose = h.pose_at(0.2)
    north_m = haversine_m(LAT, LON, pose.lat_deg, LON)
    west_m = haversine_m(LAT, LON, LAT, pose.lon_deg)
    assert (north_m, west_m, pose.alt_m) == pytest.approx((2.0, 1.0, 40.2), abs=0.01)
    assert pose.lat_deg > LAT and pose.lon_deg < LON


@pytest.mark.parametrize(
    ("time_s", "fresh"),
    [(9.0, True), (7.9, False), (10.05, True), (12.0, True), (12.2, False), (100.0, False)],
)
def test_stale_telemetry_gives_no_pose(time_s, fresh):
    h = history(stale_after_s=2.0)  # samples at 10.0 and 10.1
    assert (h.pose_at(time_s) is not None) is fresh


def test_a_gap_in_the_middle_gives_no_pose():
    h = history(stale_after_s=1.0)
    h.add_position(20.0, LAT, LON, 50.0)
    h.add_attitude(20.0, 0.0, 0.0, 0.0)
    assert h.pose_at(10.8) is not None
    assert h.pose_at(15.0) is None
    assert h.pose_at(19.5) is not None


def test_once_a_gimbal_is_heard_it_must_stay_fresh():
    h = history(stale_after_s=1.0)
    assert h.pose_at(10.1).gimbal_stabilized is False, "no gimbal: the fixed mount"
    h.add_gimbal(8.0, -45.0, 0.0)
    assert h.pose_at(10.1) is None
    h.add_gimbal(10.05, -45.0, 0.0)
    assert h.pose_at(10.1).gimbal_pitch_deg == pytest.approx(-45.0)


def test_without_a_gimbal_the_mount_angles_hold():
    h = history(mount_pitch_deg=-60.0, mount_yaw_deg=10.0)
    pose = h.pose_at(10.05)
    assert (pose.gimbal_pitch_deg, pose.gimbal_yaw_deg, pose.gimbal_stabilized) == (-60.0, 10.0, False)


def test_an_earth_frame_gimbal_yaw_is_turned_into_one_from_the_nose():
    h = PoseHistory()
    h.add_position(0.0, LAT, LON, 50.0)
    h.add_attitude(0.0, 0.0, 0.0, 100.0)
    h.add_gimbal(0.0, -30.0, 90.0, yaw_from_north=True)
    pose = h.pose_at(0.0)
    assert angle_error(pose.yaw_deg + pose.gimbal_yaw_deg, 90.0) < 1e-9
    assert angle_error(pose.gimbal_yaw_deg, -10.0) < 1e-9


def test_height_is_above_the_given_ground():
    h = PoseHistory(ground_amsl_m=12.5)
    h.add_position(0.0, LAT, LON, 72.5)
    h.add_attitude(0.0, 0.0, 0.0, 0.0)
    assert h.pose_at(0.0).alt_m == pytest.approx(60.0)


def test_old_samples_are_dropped():
    h = PoseHistory(keep_s=5.0)
    for i in range(200):
        h.add_position(i * 0.1, LAT, LON, 50.0)
        h.add_attitude(i * 0.1, 0.0, 0.0, 0.0)
    assert h.pose_at(19.9) is not None
    assert h.pose_at(10.0) is None, "older than the history kept"


def test_static_pose():
    pose = CameraPose(LAT, LON, 30.0)
    assert StaticPose(pose).pose_at(123.0) is pose


# ------------------------------------------------------------------ against the simulator


def wait_for(condition, timeout_s: float, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step_s)
    return condition()


@pytest.fixture
def ground(sim_vehicle):
    with GroundLink(sim_vehicle.port) as g:
        assert g.wait_peer(5.0), "no heartbeat from the simulator"
        yield g


def test_the_simulator_streams_gimbal_attitude_at_10_hz(sim_vehicle, ground):
    status = ground.recv("GIMBAL_DEVICE_ATTITUDE_STATUS", 2.0)
    assert status is not None
    assert status.flags & (4 | 8 | 32) == 4 | 8 | 32, "roll and pitch to the horizon, yaw from the nose"
    assert status.gimbal_device_id == 1
    _, pitch, yaw = euler_from_quaternion(status.q)
    assert pitch == pytest.approx(-90.0, abs=0.01) and angle_error(yaw, 0.0) < 0.01
    ground.collect(0.1)  # what queued up while we waited
    count = sum(m.get_type() == "GIMBAL_DEVICE_ATTITUDE_STATUS" for m in ground.collect(2.0))
    assert 15 <= count <= 25  # wall seconds: not sped up with the simulation


def test_gimbal_manager_pitchyaw_points_the_camera(sim_fleet):
    fleet = sim_fleet(1)
    vehicle = fleet.vehicles[0]
    with GroundLink(vehicle.port) as ground:
        assert ground.wait_peer(5.0)
        assert ground.command(1, 1000, -30.0, 25.0, math.nan, math.nan, 0).result == 0
        status = ground.recv("GIMBAL_DEVICE_ATTITUDE_STATUS", 2.0, where=lambda m: m.q[0] != pytest.approx(NADIR_W))
        assert euler_from_quaternion(status.q)[1:] == pytest.approx((-30.0, 25.0), abs=0.01)
        assert (fleet.camera_pose(0).gimbal_pitch_deg, fleet.camera_pose(0).gimbal_yaw_deg) == (-30.0, 25.0)
        assert ground.command(1, 1000, -120.0, math.nan, math.nan, math.nan, 0).result != 0, "beyond straight down"
        # Yaw locked to north: 90° is east whichever way the nose points (north, on the ground here).
        assert ground.command(1, 1000, math.nan, 90.0, math.nan, math.nan, 16).result == 0
        status = ground.recv("GIMBAL_DEVICE_ATTITUDE_STATUS", 2.0, where=lambda m: m.flags & 64)
        assert status is not None and euler_from_quaternion(status.q)[1:] == pytest.approx((-30.0, 90.0), abs=0.01)
        pose = fleet.camera_pose(0)
        assert angle_error(pose.yaw_deg + pose.gimbal_yaw_deg, 90.0) < 1e-6


def test_gimbal_pitch_from_the_vehicle_config(sim_fleet):
    fleet = sim_fleet(1, config=VehicleConfig(gimbal_pitch_deg=-45.0))
    with MavlinkPose(fleet.vehicles[0].onboard_url) as reader:
        pose = wait_for(lambda: reader.pose_at(time.time()), 5.0)
        assert pose is not None and pose.gimbal_pitch_deg == pytest.approx(-45.0, abs=0.01)
    assert fleet.camera_pose(0).gimbal_pitch_deg == -45.0


class _Autopilot:
    """A bare MAVLink sender on loopback: positions and attitudes, and a gimbal when asked."""

    def __init__(self, port: int) -> None:
        from pymavlink import mavutil
        from pymavlink.dialects.v20 import common as mavlink2

        self.conn = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=1, source_component=1)
        self.mav = mavlink2.MAVLink(self.conn, srcSystem=1, srcComponent=1)
        self.gimbal_pitch_deg: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Autopilot:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.conn.close()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(0.05):
            boot_ms = int((time.monotonic() - started) * 1000)
            mav = self.mav
            mav.global_position_int_send(boot_ms, int(LAT * 1e7), int(LON * 1e7), 50_000, 50_000, 0, 0, 0, 0)
            mav.attitude_send(boot_ms, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            if self.gimbal_pitch_deg is not None:
                q = quaternion(0.0, math.radians(self.gimbal_pitch_deg), 0.0)
                mav.gimbal_device_attitude_status_send(0, 0, boot_ms, 4 | 8 | 32, q, 0.0, 0.0, 0.0, 0)


def test_a_gimbal_heard_late_still_points_the_first_pose():
    port = free_port_block(1)
    with MavlinkPose(f"udpin:127.0.0.1:{port}", gimbal_wait_s=3.0) as reader, _Autopilot(port) as autopilot:
        assert wait_for(lambda: reader.stats().positions >= 5, 5.0), "the reader hears the autopilot"
        assert reader.pose_at(time.time()) is None, "no pose while a gimbal may still speak up"
        autopilot.gimbal_pitch_deg = -45.0
        pose = wait_for(lambda: reader.pose_at(time.time()), 5.0)
        assert pose is not None and pose.gimbal_stabilized
        assert pose.gimbal_pitch_deg == pytest.approx(-45.0, abs=0.01)


def test_a_camera_without_a_gimbal_is_taken_as_fixed_after_the_wait():
    port = free_port_block(1)
    reader = MavlinkPose(f"udpin:127.0.0.1:{port}", gimbal_wait_s=1.0, mount_pitch_deg=-60.0)
    with reader, _Autopilot(port):
        assert wait_for(lambda: reader.stats().positions >= 1, 5.0)
        waited = time.monotonic()
        pose = wait_for(lambda: reader.pose_at(time.time()), 5.0)
        assert pose is not None and not pose.gimbal_stabilized and pose.gimbal_pitch_deg == -60.0
        assert time.monotonic() - waited > 0.5, "the reader waited for a gimbal first"


def test_the_vehicle_takes_an_onboard_listener_on_its_own_port(sim_fleet):
    fleet = sim_fleet(1)
    vehicle = fleet.vehicles[0]
    host, port = vehicle.onboard_url.removeprefix("udpout:").split(":")
    assert host == "127.0.0.1" and int(port) == fleet.base_port + 40
    with GroundLink(vehicle.port) as ground, MavlinkPose(vehicle.onboard_url) as reader:
        assert ground.wait_peer(5.0), "the ground station still hears the vehicle"
        assert wait_for(lambda: reader.stats().positions >= 3, 5.0)
        assert ground.recv("GLOBAL_POSITION_INT", 1.0) is not None, "…and keeps hearing it"


def test_the_pose_matches_the_simulators_camera_in_flight(sim_fleet):
    # Real time, so that a few milliseconds of thread scheduling are centimetres, not metres.
    fleet = sim_fleet(1, speed_factor=1.0, config=VehicleConfig(takeoff_alt_m=12.0, climb_m_s=6.0, accel_m_s2=5.0))
    vehicle = fleet.vehicles[0]
    with GroundLink(vehicle.port) as ground, MavlinkPose(vehicle.onboard_url, ground_amsl_m=0.0) as reader:
        assert ground.wait_peer(5.0)
        assert ground.command(1, 400, 1).result == 0
        assert ground.command(1, 22, *[math.nan] * 7).result == 0
        assert wait_for(lambda: vehicle.state().rel_alt_m > 11.0, 10.0), "took off"
        lat, lon = vehicle.home[0] + 0.003, vehicle.home[1]  # 330 m north
        alt_amsl_m = vehicle.state().alt_amsl_m
        assert ground.command(1, 192, -1, 0, 0, math.nan, lat, lon, alt_amsl_m).result == 0
        assert wait_for(lambda: vehicle.state().ground_speed_m_s > 9.5, 10.0), "cruising"
        worst = {"position": 0.0, "alt": 0.0, "angle": 0.0}
        for _ in range(10):
            now = time.time()
            ours, truth = reader.pose_at(now), fleet.camera_pose(0, time_s=now)
            assert ours is not None
            apart_m = haversine_m(ours.lat_deg, ours.lon_deg, truth.lat_deg, truth.lon_deg)
            worst["position"] = max(worst["position"], apart_m)
            worst["alt"] = max(worst["alt"], abs(ours.alt_m - truth.alt_m))
            for name in ("roll_deg", "pitch_deg", "yaw_deg", "gimbal_pitch_deg", "gimbal_yaw_deg"):
                worst["angle"] = max(worst["angle"], angle_error(getattr(ours, name), getattr(truth, name)))
            assert ours.gimbal_stabilized and truth.gimbal_stabilized
            assert ours.gimbal_pitch_deg == pytest.approx(-90.0, abs=0.01)
            assert truth.alt_m == pytest.approx(vehicle.config.home_alt_amsl_m + vehicle.state().rel_alt_m, abs=0.5)
            time.sleep(0.07)
        assert worst["position"] < 1.0 and worst["alt"] < 0.3 and worst["angle"] < 1.0, worst
        stats = reader.stats()
        assert stats.system_id == 1 and stats.positions > 10 and stats.attitudes > 10 and stats.gimbal_updates > 10
        assert stats.messages >= stats.positions + stats.attitudes + stats.gimbal_updates
        assert stats.last_message_age_s < 0.5


def test_a_silent_link_gives_no_pose_until_it_speaks_again(sim_vehicle):
    with MavlinkPose(sim_vehicle.onboard_url, stale_after_s=0.5) as reader:
        assert wait_for(lambda: reader.pose_at(time.time()), 5.0)
        sim_vehicle.link_outage(2.0)
        time.sleep(0.8)
        assert reader.pose_at(time.time()) is None
        assert reader.stats().last_message_age_s > 0.5
        assert reader.pose_at(time.time() - 0.7) is not None, "a frame from before the outage still has its pose"
        assert wait_for(lambda: reader.pose_at(time.time()), 5.0), "back once the vehicle talks again"


def test_close_stops_the_reader_promptly(sim_vehicle):
    before = threading.active_count()
    reader = MavlinkPose(sim_vehicle.onboard_url)
    assert wait_for(lambda: reader.stats().messages > 0, 5.0)
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 1.0
    assert not reader.running
    assert threading.active_count() == before


def test_nobody_talking_gives_no_pose_and_no_stats_age():
    with MavlinkPose("udpin:127.0.0.1:0") as reader:
        time.sleep(0.3)
        assert reader.pose_at(time.time()) is None
        stats = reader.stats()
        assert (stats.messages, stats.last_message_age_s, stats.system_id) == (0, None, None)
