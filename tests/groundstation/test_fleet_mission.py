"""MissionPlan → MAVLink raw items: what MAVSDK's MissionRaw uploads, and the download check."""

from __future__ import annotations

import math
import socket
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
from mavsdk.component_type import ComponentType
from mavsdk.mavsdk import Configuration, Mavsdk
from mavsdk.plugins.mission_raw.mission_raw import MissionRaw

from groundstation.commands.cli import main
from groundstation.fleet.mission import (
    RawItem,
    differences,
    fence_items,
    from_mavsdk,
    mission_items,
    rally_items,
    raw_plan,
    to_mavsdk,
)
from missions.errors import InputError
from missions.formats.qgc_plan import read_plan, write_plan
from missions.plan import FenceCircle, FencePolygon, MissionItem, MissionPlan, Waypoint
from sitl.testdata import QGC_DIR, SITES_DIR

HOME = Waypoint(36.13, -5.44, 10.0)


def _plan(items, **kw) -> MissionPlan:
    return MissionPlan(items=tuple(items), home=HOME, **kw)


def _loop_plan() -> MissionPlan:
    return _plan(
        [
            MissionItem.takeoff(36.13, -5.44, 40.0),
            MissionItem.change_speed(8.0),
            MissionItem.waypoint(36.131, -5.44, 40.0),
            MissionItem.waypoint(36.131, -5.439, 40.0),
            MissionItem.jump(3, 2),
            MissionItem.return_to_launch(),
        ],
        fence_polygons=(
            FencePolygon(((36.12, -5.45), (36.14, -5.45), (36.14, -5.43), (36.12, -5.43)), inclusion=True),
            FencePolygon(((36.132, -5.442), (36.133, -5.442), (36.133, -5.441)), inclusion=False),
        ),
        fence_circles=(FenceCircle(36.135, -5.435, 50.0, inclusion=False),),
        rally=(Waypoint(36.129, -5.441, 30.0),),
    )


def test_mission_items_are_numbered_from_zero_first_current_and_positions_in_1e7_degrees():
    items = mission_items(_loop_plan())
    assert [i.seq for i in items] == list(range(6))
    assert [i.current for i in items] == [1, 0, 0, 0, 0, 0]
    assert {i.mission_type for i in items} == {0}
    takeoff = items[0]
    assert (takeoff.command, takeoff.frame, takeoff.x, takeoff.y, takeoff.z) == (22, 3, 361300000, -54400000, 40.0)
    assert math.isnan(takeoff.param4)  # unset yaw travels as NaN, as MAVSDK's importer sends it


@pytest.mark.parametrize(
    ("jump_id", "expected_seq", "expectation"),
    [
        (3, 2, does_not_raise()),
        (1, 0, does_not_raise()),
        (6, 5, does_not_raise()),
        (0, None, pytest.raises(InputError, match="doJumpId 0")),
        (7, None, pytest.raises(InputError, match="doJumpId 7")),
    ],
)
def test_do_jump_target_becomes_the_zero_based_sequence_number(jump_id, expected_seq, expectation):
    plan = _loop_plan()
    items = list(plan.items)
    items[4] = MissionItem.jump(jump_id, 2)
    with expectation:
        jump = mission_items(_plan(items))[4]
        assert (jump.command, jump.param1, jump.param2) == (177, float(expected_seq), 2.0)


def test_fence_vertices_carry_their_polygons_vertex_count_and_circles_their_radius():
    fence = fence_items(_loop_plan())
    assert [i.command for i in fence] == [5001] * 4 + [5002] * 3 + [5004]
    assert [i.param1 for i in fence] == [4.0] * 4 + [3.0] * 3 + [50.0]
    assert [i.seq for i in fence] == list(range(8))
    assert {(i.frame, i.mission_type) for i in fence} == {(0, 1)}
    assert (fence[-1].x, fence[-1].y) == (361350000, -54350000)


def test_rally_points_are_relative_to_home():
    (rally,) = rally_items(_loop_plan())
    assert (rally.command, rally.frame, rally.mission_type, rally.x, rally.y, rally.z) == (
        5100, 3, 2, 361290000, -54410000, 30.0,
    )  # fmt: skip


def test_raw_items_survive_the_trip_through_mavsdk_structures():
    raw = raw_plan(_loop_plan())
    for item in (*raw.mission, *raw.fence, *raw.rally):
        again = from_mavsdk(to_mavsdk(item).to_c_struct())
        assert differences([item], [again]) == []


def _float32(item: RawItem) -> RawItem:
    f = lambda v: float(np.float32(v))  # noqa: E731
    return RawItem(
        item.seq, item.frame, item.command, 0, item.autocontinue,
        f(item.param1), f(item.param2), f(item.param3), f(item.param4), item.x + 1, item.y - 1, f(item.z),
        item.mission_type,
    )  # fmt: skip


def test_a_download_that_only_rounds_to_float32_is_the_same_mission():
    sent = mission_items(_loop_plan())
    assert differences(sent, [_float32(i) for i in sent]) == []


def test_unused_params_may_come_back_as_zero():
    sent = mission_items(_loop_plan())
    back = [RawItem(**{**vars(i), "param4": 0.0 if math.isnan(i.param4) else i.param4}) for i in sent]
    assert differences(sent, back) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"command": 21}, "command 16 came back as 21"),
        ({"x": 361310000 + 50}, "position"),
        ({"z": 45.0}, "z 40.0 came back as 45.0"),
        ({"param1": 5.0}, "param1 0.0 came back as 5.0"),
        ({"frame": 0}, "frame 3 came back as 0"),
    ],
)
def test_a_changed_item_is_reported_by_number(change, message):
    sent = mission_items(_loop_plan())
    back = list(sent)
    back[2] = RawItem(**{**vars(sent[2]), **change})
    (problem,) = differences(sent, back)
    assert problem.startswith("mission item 3: ")
    assert message in problem


def test_a_missing_item_is_reported():
    sent = mission_items(_loop_plan())
    assert differences(sent, sent[:-1]) == ["mission: sent 6 items, vehicle holds 5"]


def test_the_int_twin_of_a_frame_is_the_same_frame():
    sent = mission_items(_loop_plan())
    back = [RawItem(**{**vars(i), "frame": 6}) if i.frame == 3 else i for i in sent]
    assert differences(sent, back) == []


@pytest.fixture(scope="module")
def mavsdk_importer():
    """MAVSDK's QGroundControl importer; it needs a connected system, so one is linked over 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    autopilot = Mavsdk(Configuration.create_with_component_type(ComponentType.AUTOPILOT))
    autopilot.add_any_connection(f"udpout://127.0.0.1:{port}")
    station = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
    station.add_any_connection(f"udpin://127.0.0.1:{port}")
    system = station.first_autopilot(10.0)
    assert system is not None
    yield MissionRaw(system)
    del station, autopilot


def _theirs(items) -> list[RawItem]:
    return [from_mavsdk(i) for i in items]


@pytest.mark.parametrize("name", ["mavsdk-sample", "px4-sitl-multirotor"])  # MAVSDK refuses the third (rally v1)
def test_qgc_plans_convert_as_mavsdks_own_importer_does(mavsdk_importer, name):
    path = QGC_DIR / f"{name}.plan"
    ours = raw_plan(read_plan(path))
    theirs = mavsdk_importer.import_qgroundcontrol_mission(str(path))
    assert differences(ours.mission, _theirs(theirs.mission_items)) == []
    assert differences(ours.fence, _theirs(theirs.geofence_items), "fence") == []
    assert differences(ours.rally, _theirs(theirs.rally_items), "rally") == []


def test_borderwatch_loop_plan_converts_as_mavsdk_imports_it_but_for_the_jump_target(tmp_path, mavsdk_importer):
    out = tmp_path / "loop.plan"
    route = tmp_path / "route.plan"
    write_plan(_loop_plan(), route)
    site = SITES_DIR / "algeciras-port.geojson"
    assert main(["plan", str(site), "--pattern", "perimeter", "-o", str(out), "-q"]) == 0
    for path in [route, *sorted(tmp_path.glob("*.plan"))]:
        ours = raw_plan(read_plan(path))
        theirs = _theirs(mavsdk_importer.import_qgroundcontrol_mission(str(path)).mission_items)
        jumps = [i for i in theirs if i.command == 177]
        theirs = [RawItem(**{**vars(i), "param1": i.param1 - 1}) if i.command == 177 else i for i in theirs]
        assert differences(ours.mission, theirs) == []
        assert all(0 <= j.param1 - 1 < len(ours.mission) for j in jumps)
