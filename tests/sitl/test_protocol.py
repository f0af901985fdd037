"""The simulator speaks MAVLink as PX4 does, checked with pymavlink as the ground station."""

from __future__ import annotations

import time

import pytest

from missions.plan import MissionType
from sitl.ground import GroundLink

LAT, LON = 361280000, -54380000
FENCE_SQUARE = [(6, 5001, 4, 0, 0, 0, LAT + dy, LON + dx, 0) for dy, dx in ((-50000, -50000), (-50000, 50000),
                (50000, 50000), (50000, -50000))]  # fmt: skip
WAYPOINTS = [
    (6, 22, 0, 0, 0, 0, LAT, LON, 10),
    (6, 16, 0, 0, 0, 0, LAT + 2000, LON, 10),
    (2, 178, 1, 8, -1, 0, 0, 0, 0),
    (6, 16, 0, 0, 0, 0, LAT + 2000, LON + 2000, 10),
    (2, 20, 0, 0, 0, 0, 0, 0, 0),
]


@pytest.fixture
def ground(sim_vehicle):
    with GroundLink(sim_vehicle.port) as g:
        assert g.wait_peer(5.0), "no heartbeat from the simulator"
        yield g


def test_heartbeat_says_px4_quadrotor_disarmed_in_hold(sim_vehicle, ground):
    hb = ground.recv("HEARTBEAT", 3.0)
    assert hb.get_srcSystem() == sim_vehicle.system_id == 1
    assert hb.get_srcComponent() == 1
    assert (hb.type, hb.autopilot, hb.base_mode, hb.system_status) == (2, 12, 29, 3)
    assert hb.custom_mode == (4 << 16) | (3 << 24)
    assert hb.get_msgbuf()[0] == 0xFD, "MAVLink 2 framing"


def test_health_streams_are_there(ground):
    kinds = {m.get_type() for m in ground.collect(2.5)}
    assert {"SYS_STATUS", "GPS_RAW_INT", "GLOBAL_POSITION_INT", "ATTITUDE", "EXTENDED_SYS_STATE",
            "BATTERY_STATUS", "HOME_POSITION", "MISSION_CURRENT"} <= kinds  # fmt: skip
    status = ground.recv("SYS_STATUS", 2.0)
    assert status.onboard_control_sensors_health & 0x10000020 == 0x10000020
    gps = ground.recv("GPS_RAW_INT", 2.0)
    assert gps.fix_type == 3 and gps.satellites_visible >= 8
    assert ground.recv("EXTENDED_SYS_STATE", 2.0).landed_state == 1


@pytest.mark.parametrize(("msg_id", "kind"), [(148, "AUTOPILOT_VERSION"), (242, "HOME_POSITION")])
def test_request_message_is_acked_then_sent(ground, msg_id, kind):
    ack = ground.command(1, 512, msg_id)
    assert ack.result == 0
    msg = ground.recv(kind, 2.0)
    assert msg is not None
    if kind == "AUTOPILOT_VERSION":
        assert msg.capabilities & (4 | 0x2000 | 0x4000) == 4 | 0x2000 | 0x4000  # MISSION_INT, MAVLINK2, FENCE
    else:
        assert (msg.latitude, msg.longitude) == (LAT, LON)


def test_set_message_interval_changes_the_rate(ground):
    assert ground.command(1, 511, 33, 20_000).result == 0  # 50 Hz
    ground.collect(0.2)
    count = sum(m.get_type() == "GLOBAL_POSITION_INT" for m in ground.collect(1.0))
    assert 35 <= count <= 60
    assert ground.command(1, 511, 99999, 20_000).result != 0


@pytest.mark.parametrize(
    ("mission_type", "items"),
    [
        (MissionType.MISSION, WAYPOINTS),
        (MissionType.FENCE, [*FENCE_SQUARE, (6, 5004, 20, 0, 0, 0, LAT + 30000, LON, 0)]),
        (MissionType.RALLY, [(6, 5100, 0, 0, 0, 0, LAT + 100, LON + 100, 15)]),
    ],
)
def test_upload_download_and_clear_each_mission_type(sim_vehicle, ground, mission_type, items):
    ack = ground.upload(1, items, mission_type)
    assert (ack.type, ack.mission_type) == (0, mission_type)
    stored = sim_vehicle.uploaded(mission_type)
    assert [(i.command, i.x, i.y) for i in stored] == [(c, x, y) for _f, c, _1, _2, _3, _4, x, y, _z in items]
    back = ground.download(1, mission_type)
    assert [(m.seq, m.command, m.x, m.y, m.z) for m in back] == [
        (seq, c, x, y, pytest.approx(z)) for seq, (_f, c, _1, _2, _3, _4, x, y, z) in enumerate(items)
    ]
    ground.mav.mission_clear_all_send(1, 1, mission_type)
    ack = ground.recv("MISSION_ACK", 2.0)
    assert (ack.type, ack.mission_type) == (0, mission_type)
    assert ground.download(1, mission_type) == []


def test_a_fence_without_home_inside_is_kept_but_said_to_be_invalid(sim_vehicle, ground):
    far = [(6, 5001, 3, 0, 0, 0, LAT + 100000 + dy, LON + dx, 0) for dy, dx in ((0, 0), (10000, 0), (0, 10000))]
    ack = ground.upload(1, far, MissionType.FENCE)
    assert ack.type == 0  # PX4 takes it, and says it will not use it
    text = ground.recv("STATUSTEXT", 2.0, where=lambda m: "Geofence" in m.text)
    assert text is not None and text.text == "Geofence invalid, doesn't contain Home position"
    assert len(sim_vehicle.uploaded(MissionType.FENCE)) == 3


def test_upload_survives_a_lost_request(sim_vehicle, ground):
    """The vehicle re-requests an item the ground station never answered (with MISSION_REQUEST, as PX4
    asks a ground station that has not yet shown it speaks the _INT messages)."""
    ground.mav.mission_count_send(1, 1, 2, 0)
    first = ground.recv(("MISSION_REQUEST_INT", "MISSION_REQUEST"), 2.0)
    again = ground.recv(("MISSION_REQUEST_INT", "MISSION_REQUEST"), 2.0)
    assert first.seq == again.seq == 0


def test_a_ground_station_that_only_speaks_int_is_asked_again_with_int(sim_vehicle, ground):
    """MAVSDK answers MISSION_REQUEST with MISSION_ACK(UNSUPPORTED); PX4 then asks with MISSION_REQUEST_INT."""
    ground.mav.mission_count_send(1, 1, 1, 0)
    assert ground.recv("MISSION_REQUEST", 2.0).seq == 0
    ground.mav.mission_ack_send(1, 1, 3, 0)
    assert ground.recv("MISSION_REQUEST_INT", 2.0).seq == 0


def test_commands_are_acked_as_px4_acks_them(sim_vehicle, ground):
    assert ground.command(1, 22).result == 0, "take-off mode while disarmed: taken, nothing moves"
    assert ground.command(1, 176, 1, 4, 3).result == 0
    assert ground.command(1, 300).result == 2, "no mission to start"
    assert ground.upload(1, WAYPOINTS).type == 0
    assert ground.command(1, 300).result == 2, "mission still being checked: no valid mission yet"
    time.sleep(0.4)
    assert ground.command(1, 176, 1, 4, 4).result == 0
    assert ground.command(1, 178, 1, 7).result == 0
    assert ground.command(1, 31999).result == 3
    assert ground.command(1, 400, 1).result == 0
    assert ground.recv("HEARTBEAT", 2.0, where=lambda m: m.base_mode & 128).base_mode == 157
    assert ground.recv("GLOBAL_POSITION_INT", 5.0, where=lambda m: m.relative_alt > 2000) is not None
    assert ground.command(1, 400, 0).result == 1, "disarming in the air is temporarily rejected"


def test_mission_outside_fence_is_denied_with_statustext(sim_vehicle, ground):
    assert ground.upload(1, FENCE_SQUARE, MissionType.FENCE).type == 0
    outside = [*WAYPOINTS[:3], (6, 16, 0, 0, 0, 0, LAT + 90000, LON, 10)]
    assert ground.upload(1, outside).type == 0
    text = ground.recv("STATUSTEXT", 2.0, where=lambda m: "Geofence" in m.text)  # said once checked
    assert text.text == "Geofence violation for waypoint 4"
    assert ground.command(1, 300).result == 2
    assert ground.recv("STATUSTEXT", 2.0).text == "Mission start denied! No valid mission"


def test_packet_loss_drops_about_the_share_asked(sim_vehicle, ground):
    ground.collect(0.3)
    clean = sum(m.get_type() == "GLOBAL_POSITION_INT" for m in ground.collect(2.0))
    sim_vehicle.set_packet_loss(50)
    ground.collect(0.1)
    lossy = sum(m.get_type() == "GLOBAL_POSITION_INT" for m in ground.collect(2.0))
    assert 0.3 * clean <= lossy <= 0.7 * clean


def test_link_outage_is_silence_then_the_link_comes_back(sim_vehicle, ground):
    sim_vehicle.link_outage(1.0)
    ground.collect(0.05)
    assert ground.collect(0.8) == []
    assert ground.recv("HEARTBEAT", 2.0) is not None


def test_speed_factor_runs_simulated_time_faster(sim_fleet):
    vehicle = sim_fleet(1, speed_factor=8).vehicles[0]

    def latest(g: GroundLink) -> tuple[float, int]:
        """time_boot_ms of the newest position, stamped when the collecting window closed."""
        positions = [m for m in g.collect(0.3) if m.get_type() == "GLOBAL_POSITION_INT"]
        return time.monotonic(), positions[-1].time_boot_ms

    with GroundLink(vehicle.port) as g:
        assert g.wait_peer(3.0)
        t0, ms0 = latest(g)
        time.sleep(1.5)
        t1, ms1 = latest(g)
    assert (ms1 - ms0) / 1000.0 / (t1 - t0) == pytest.approx(8, rel=0.15)
