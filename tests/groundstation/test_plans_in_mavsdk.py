"""What `borderwatch plan` writes, read by MAVSDK's own QGroundControl importer.

MAVSDK's `MissionRaw` needs a connected system, so the test links a ground-station
instance to an autopilot-side instance over UDP on 127.0.0.1.
"""

from __future__ import annotations

import math
import socket

import pytest
from mavsdk.component_type import ComponentType
from mavsdk.mavsdk import Configuration, Mavsdk
from mavsdk.plugins.mission_raw.mission_raw import MissionRaw

from groundstation.commands.cli import main
from missions.formats.qgc_plan import read_plan
from sitl.testdata import QGC_DIR, SITES_DIR


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mission_raw():
    port = _free_udp_port()
    autopilot = Mavsdk(Configuration.create_with_component_type(ComponentType.AUTOPILOT))
    autopilot.add_any_connection(f"udpout://127.0.0.1:{port}")
    station = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
    station.add_any_connection(f"udpin://127.0.0.1:{port}")
    system = station.first_autopilot(10.0)
    assert system is not None, "MAVSDK found no autopilot on 127.0.0.1"
    yield MissionRaw(system)
    del station, autopilot


@pytest.mark.parametrize(
    ("site", "args"),
    [
        ("algeciras-port", ["--pattern", "risk", "--drones", "2"]),
        ("kilindini-mombasa", ["--pattern", "perimeter", "--endurance", "40"]),
        ("tarifa-coast", ["--pattern", "coverage", "--spacing", "200", "--drones", "2"]),
    ],
)
def test_mavsdk_imports_every_plan_we_write(tmp_path, mission_raw, site, args):
    out = tmp_path / "p.plan"
    assert main(["plan", str(SITES_DIR / f"{site}.geojson"), *args, "-o", str(out), "-q"]) == 0
    written = sorted(tmp_path.glob("*.plan"))
    assert written
    for path in written:
        ours = read_plan(path)
        data = mission_raw.import_qgroundcontrol_mission(str(path))
        assert len(data.mission_items) == len(ours.items)
        for theirs, mine in zip(data.mission_items, ours.items, strict=True):
            assert theirs.command == mine.command
            if mine.has_position:
                assert theirs.x == round(mine.lat_deg * 1e7)
                assert theirs.y == round(mine.lon_deg * 1e7)
                assert theirs.z == pytest.approx(mine.alt_m)
        vertices = sum(len(p.vertices) for p in ours.fence_polygons)
        assert len(data.geofence_items) == vertices + len(ours.fence_circles)
        circles = [g for g in data.geofence_items if g.command in (5003, 5004)]
        assert sorted(c.param1 for c in circles) == sorted(c.radius_m for c in ours.fence_circles)
        assert len(data.rally_items) == len(ours.rally) >= 1


@pytest.mark.parametrize("name", ["mavsdk-sample", "px4-sitl-multirotor"])
def test_qgc_files_survive_our_round_trip_into_mavsdk(tmp_path, mission_raw, name):
    from missions.formats.qgc_plan import write_plan

    original = mission_raw.import_qgroundcontrol_mission(str(QGC_DIR / f"{name}.plan"))
    write_plan(read_plan(QGC_DIR / f"{name}.plan"), tmp_path / "again.plan")
    again = mission_raw.import_qgroundcontrol_mission(str(tmp_path / "again.plan"))

    def fields(items):
        # An unset altitude imports as NaN; NaN never equals itself.
        return [(i.command, i.x, i.y, None if math.isnan(i.z) else i.z, i.frame) for i in items]

    assert fields(again.mission_items) == fields(original.mission_items)
