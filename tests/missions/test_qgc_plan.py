import json
import math
import warnings

import pytest
import shapely

from missions.errors import InputError
from missions.formats.geojson import read_site_geojson
from missions.formats.qgc_plan import plan_json, read_plan, read_site_plan, site_from_plan, write_plan
from missions.plan import Command, FenceCircle, FencePolygon, Frame, MissionItem, MissionPlan, Waypoint
from missions.site import Role, Site, Zone, fence_from_site
from sitl.testdata import QGC_DIR, SITES_DIR

QGC_FILES = sorted(QGC_DIR.glob("*.plan"))
SITE_FILES = sorted(SITES_DIR.glob("*.geojson"))


def minimal_plan(**mission_overrides) -> dict:
    mission = {
        "cruiseSpeed": 15,
        "firmwareType": 12,
        "hoverSpeed": 5,
        "items": [
            {
                "autoContinue": True,
                "command": 22,
                "doJumpId": 1,
                "frame": 3,
                "params": [0, 0, 0, None, 36.12, -5.43, 30],
                "type": "SimpleItem",
            }
        ],
        "plannedHomePosition": [36.12, -5.43, 10],
        "vehicleType": 2,
        "version": 2,
    }
    mission.update(mission_overrides)
    return {
        "fileType": "Plan",
        "geoFence": {"circles": [], "polygons": [], "version": 2},
        "groundStation": "QGroundControl",
        "mission": mission,
        "rallyPoints": {"points": [], "version": 2},
        "version": 1,
    }


@pytest.mark.parametrize("path", QGC_FILES, ids=lambda p: p.name)
def test_every_shared_plan_loads_and_survives_a_round_trip(path, tmp_path):
    plan = read_plan(path)
    out = tmp_path / path.name
    write_plan(plan, out)
    assert read_plan(out) == plan


@pytest.mark.parametrize(
    ("name", "items", "polygons", "home_alt_m"),
    [
        ("px4-sitl-multirotor.plan", 11, 0, 488.056),
        ("mavsdk-sample.plan", 6, 0, 488.93101752001763),
        ("geofence-home-base.plan", 0, 2, 30.0),
    ],
)
def test_shared_plans_read_as_qgroundcontrol_wrote_them(name, items, polygons, home_alt_m):
    plan = read_plan(QGC_DIR / name)
    assert (len(plan.items), len(plan.fence_polygons), plan.home.alt_m) == (items, polygons, home_alt_m)
    assert plan.cruise_speed_m_s == 15.0 and plan.hover_speed_m_s == 5.0


def test_null_params_stay_unset_and_editor_fields_survive(tmp_path):
    plan = read_plan(QGC_DIR / "px4-sitl-multirotor.plan")
    terrain_item = plan.items[5]
    assert terrain_item.params[3] is None and terrain_item.alt_m is None
    write_plan(plan, tmp_path / "out.plan")
    written = json.loads((tmp_path / "out.plan").read_text())["mission"]["items"][5]
    assert written["params"][6] is None
    assert (written["AltitudeMode"], written["Altitude"]) == (3, 80)


def test_survey_items_are_read_through_the_items_qgroundcontrol_generated(tmp_path):
    doc = minimal_plan()
    generated = [
        {"autoContinue": True, "command": 16, "doJumpId": 2 + k, "frame": 3, "params": [0, 0, 0, None, lat, -5.43, 50],
         "type": "SimpleItem"}
        for k, lat in enumerate((36.121, 36.122, 36.123))
    ]  # fmt: skip
    doc["mission"]["items"].append(
        {
            "type": "ComplexItem",
            "complexItemType": "survey",
            "version": 5,
            "TransectStyleComplexItem": {"Items": generated},
        }
    )
    (tmp_path / "survey.plan").write_text(json.dumps(doc))
    plan = read_plan(tmp_path / "survey.plan")
    assert [i.lat_deg for i in plan.items] == [36.12, 36.121, 36.122, 36.123]
    write_plan(plan, tmp_path / "flat.plan")
    assert read_plan(tmp_path / "flat.plan").items == plan.items


def bad(doc_change):
    doc = minimal_plan()
    doc_change(doc)
    return json.dumps(doc)


def set_key(*keys_and_value):
    *keys, last, value = keys_and_value

    def change(doc):
        target = doc
        for key in keys:
            target = target[key]
        target[last] = value

    return change


BAD_PLANS = [
    ("", "empty", None),
    ("   \n", "empty", None),
    ('{"fileType": "Plan",\n "version": 1,,}', "line 2, column 15", None),
    (bad(set_key("fileType", "Mission")), "fileType is 'Mission'", None),
    (bad(lambda d: d.pop("mission")), "no 'mission' section", None),
    ("[1, 2]", "JSON object", None),
    (bad(set_key("mission", "items", 0, "params", [0, 0, 0, 36.12, -5.43, 30])), "7 values", "mission item 1"),
    (bad(set_key("mission", "items", 0, "params", 4, 136.12)), "probably swapped", "mission item 1 (doJumpId 1)"),
    (bad(set_key("mission", "items", 0, "params", 5, -205.0)), "longitude -205.0", "mission item 1"),
    (bad(set_key("mission", "items", 0, "type", "Fancy")), "unknown item type 'Fancy'", "mission item 1"),
    (bad(set_key("mission", "items", 0, "params", 0, "fast")), "param1 must be a number", "mission item 1"),
    (bad(set_key("mission", "items", 0, "command", 1.5)), "command must be an integer", "mission item 1"),
    (
        bad(set_key("mission", "plannedHomePosition", [-5.43, 236.12, 0])),
        "longitude 236.12 is out of range",
        "plannedHomePosition",
    ),
    (bad(set_key("mission", "plannedHomePosition", [-95.43, 36.12, 0])), "probably swapped", "plannedHomePosition"),
    (
        bad(lambda d: d["mission"]["items"].append({"type": "ComplexItem", "complexItemType": "CorridorScan"})),
        "no generated items",
        "mission item 2",
    ),
    (
        bad(set_key("geoFence", "polygons", [{"inclusion": True, "polygon": [[36.1, -5.4], [36.2, -5.4]]}])),
        "at least 3 vertices",
        "geoFence polygon 1",
    ),
    (
        bad(
            set_key(
                "geoFence", "polygons", [{"inclusion": True, "polygon": [[36.1, -5.4], [36.2, -185.5], [36.1, -5.5]]}]
            )
        ),
        "out of range",
        "geoFence polygon 1",
    ),
    (
        bad(set_key("geoFence", "circles", [{"circle": {"center": [36.1, -5.4], "radius": -3}, "inclusion": False}])),
        "radius must be positive",
        "geoFence circle 1",
    ),
    (bad(set_key("rallyPoints", "points", [[136.1, -5.4, 0]])), "probably swapped", "rally point 1"),
]


@pytest.mark.parametrize(("text", "expected", "feature"), BAD_PLANS)
def test_bad_plans_are_refused_naming_file_and_item(text, expected, feature, tmp_path):
    path = tmp_path / "bad.plan"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        read_plan(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message
    if feature:
        assert feature in message


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"missing\.plan"):
        read_plan(tmp_path / "missing.plan")


# MAVSDK's importer, mavlink/MAVSDK src/mavsdk/plugins/mission_raw/mission_import.cpp, refuses a
# plan unless: root "version" == 1 (check_overall_version); "mission" present with "version" == 2
# (import_mission); every item "type" is "SimpleItem" or "ComplexItem", and a SimpleItem has non-empty
# "command", "autoContinue", "frame" and an array "params" of which it reads indices 0..6, null meaning
# NaN (import_simple_mission_item, set_float); "geoFence" present with "version" == 2 (import_geofence);
# "rallyPoints" present with "version" == 2 (import_rally_points). Fence polygons are [[lat, lon], ...]
# with "inclusion" (missing = true); circles {"circle": {"center": [lat, lon], "radius"}, "inclusion"}
# (missing = false); rally points [lat, lon, alt] taken as relative altitude.
def mavsdk_accepts(doc: dict) -> list[str]:
    problems = []
    if doc.get("version") != 1:
        problems.append("plan version")
    mission = doc.get("mission")
    if not mission or mission.get("version") != 2:
        problems.append("mission version")
    for k, item in enumerate((mission or {}).get("items", [])):
        if item.get("type") != "SimpleItem":
            problems.append(f"item {k} type")
        for key in ("command", "autoContinue", "frame"):
            if item.get(key) is None:
                problems.append(f"item {k} {key}")
        params = item.get("params")
        if not isinstance(params, list) or len(params) != 7:
            problems.append(f"item {k} params")
        elif any(p is not None and not isinstance(p, int | float) for p in params):
            problems.append(f"item {k} param type")
        if not isinstance(item.get("autoContinue"), bool):
            problems.append(f"item {k} autoContinue type")
    if not doc.get("geoFence") or doc["geoFence"].get("version") != 2:
        problems.append("geoFence version")
    for k, polygon in enumerate(doc.get("geoFence", {}).get("polygons", [])):
        if not isinstance(polygon.get("inclusion"), bool) or any(len(v) != 2 for v in polygon["polygon"]):
            problems.append(f"polygon {k}")
    for k, circle in enumerate(doc.get("geoFence", {}).get("circles", [])):
        if not isinstance(circle.get("inclusion"), bool) or len(circle["circle"]["center"]) != 2:
            problems.append(f"circle {k}")
    if not doc.get("rallyPoints") or doc["rallyPoints"].get("version") != 2:
        problems.append("rallyPoints version")
    if any(len(p) != 3 for p in doc.get("rallyPoints", {}).get("points", [])):
        problems.append("rally point")
    return problems


def patrol_plan() -> MissionPlan:
    return MissionPlan(
        items=(
            MissionItem.takeoff(36.128, -5.438, 30.0),
            MissionItem.change_speed(8.0),
            MissionItem.waypoint(36.125, -5.435, 40.0, hold_s=2.0),
            MissionItem(Command.NAV_WAYPOINT, Frame.GLOBAL, (0.0, 0.0, 0.0, math.nan, 36.12, -5.43, 80.0)),
            MissionItem.jump(3, 2),
            MissionItem.return_to_launch(),
        ),
        home=Waypoint(36.128, -5.438, 12.0),
        fence_polygons=(FencePolygon(((36.135, -5.44), (36.137, -5.425), (36.125, -5.418)), True),),
        fence_circles=(FenceCircle(36.12, -5.43, 150.0, False),),
        rally=(Waypoint(36.128, -5.438, 0.0),),
    )


@pytest.mark.parametrize(
    "plan",
    [patrol_plan(), *(read_plan(p) for p in QGC_FILES)],
    ids=["patrol", *(p.name for p in QGC_FILES)],
)
def test_written_plans_meet_what_mavsdk_and_qgroundcontrol_require(plan, tmp_path):
    write_plan(plan, tmp_path / "out.plan")
    text = (tmp_path / "out.plan").read_text()
    doc = json.loads(text)
    assert mavsdk_accepts(doc) == []
    assert "NaN" not in text  # JSON has no NaN; QGroundControl and jsoncpp read null
    assert doc["fileType"] == "Plan" and doc["groundStation"] == "borderwatch"
    assert doc["mission"]["firmwareType"] == 12 and doc["mission"]["vehicleType"] == 2
    assert [i["doJumpId"] for i in doc["mission"]["items"]] == list(range(1, len(plan.items) + 1))
    assert text.startswith('{\n    "fileType"')  # indent=4, like QGroundControl


def test_shared_geofence_sample_would_be_refused_by_mavsdk_but_ours_is_not(tmp_path):
    # QGroundControl's old sample writes rallyPoints version 1, which MAVSDK rejects.
    original = json.loads((QGC_DIR / "geofence-home-base.plan").read_text())
    assert mavsdk_accepts(original) == ["rallyPoints version"]
    assert mavsdk_accepts(plan_json(read_plan(QGC_DIR / "geofence-home-base.plan"))) == []


def test_written_patrol_reads_back_equal_with_unset_params_as_none(tmp_path):
    plan = patrol_plan()
    write_plan(plan, tmp_path / "patrol.plan")
    back = read_plan(tmp_path / "patrol.plan")
    assert back.items[3].params[3] is None
    assert back.items[:3] + back.items[4:] == plan.items[:3] + plan.items[4:]
    assert (back.fence_polygons, back.fence_circles, back.rally, back.home) == (
        plan.fence_polygons,
        plan.fence_circles,
        plan.rally,
        plan.home,
    )


def test_site_from_shared_geofence_plan():
    site = read_site_plan(QGC_DIR / "geofence-home-base.plan")
    assert site.name == "geofence-home-base"
    assert [(z.role, z.name) for z in site.zones] == [
        (Role.OPERATING_AREA, "Inclusion polygon 1"),
        (Role.NO_FLY, "Exclusion polygon 1"),
        (Role.LAUNCH, "Planned home"),
    ]
    assert any("Planned home" in w for w in site.warnings)
    assert site.area_m2 > 0


def test_route_altitudes_are_made_relative_to_home():
    site = read_site_plan(QGC_DIR / "px4-sitl-multirotor.plan")
    alts = [p.alt_m for p in site.route]
    assert alts[:2] == [30.0, 60.0]
    assert alts[2] == pytest.approx(638.056 - 488.056)  # frame 0 (AMSL) minus home
    assert alts[3] == 80.0  # terrain-following item, QGroundControl had not computed its AMSL altitude
    assert any("mission item 6" in w and "terrain" in w for w in site.warnings)


def test_terrain_frame_is_taken_as_relative_with_a_warning():
    plan = MissionPlan(
        items=(MissionItem(Command.NAV_WAYPOINT, Frame.GLOBAL_TERRAIN_ALT, (0, 0, 0, None, 36.12, -5.43, 25.0)),),
        home=Waypoint(36.12, -5.43, 5.0),
        rally=(Waypoint(36.12, -5.43, 0.0),),
    )
    site = site_from_plan(plan, "terrain.plan")
    assert site.route[0].alt_m == 25.0
    assert any("above terrain" in w for w in site.warnings)
    assert not any("Planned home" in w for w in site.warnings)


def zone_key(zone: Zone) -> tuple:
    return zone.role, zone.radius_m, zone.shape_deg.geom_type


@pytest.mark.parametrize("path", SITE_FILES, ids=lambda p: p.name)
def test_site_fence_round_trip_keeps_zones(path, tmp_path):
    site = read_site_geojson(path)
    polygons, circles, rally = fence_from_site(site)
    plan = MissionPlan(items=(), home=Waypoint(rally[0].lat_deg, rally[0].lon_deg, 0.0), fence_polygons=polygons,
                       fence_circles=circles, rally=rally)  # fmt: skip
    write_plan(plan, tmp_path / "site.plan")
    back = site_from_plan(read_plan(tmp_path / "site.plan"), str(tmp_path / "site.plan"))

    fence_roles = (Role.OPERATING_AREA, Role.NO_FLY, Role.LAUNCH)
    expected = [z for z in site.zones if z.role in fence_roles and not _has_holes(z)]
    assert sorted(map(zone_key, back.zones), key=str) == sorted(map(zone_key, expected), key=str)
    for want in expected:
        matches = [z for z in back.zones if zone_key(z) == zone_key(want) and _same_shape(z, want)]
        assert matches, f"{want.name} lost in the round trip"


def _has_holes(zone: Zone) -> bool:
    return isinstance(zone.shape_deg, shapely.Polygon) and bool(zone.shape_deg.interiors)


def _same_shape(a: Zone, b: Zone) -> bool:
    return a.shape_deg.equals_exact(b.shape_deg, tolerance=1e-7)


def test_holes_in_an_operating_area_become_exclusion_polygons():
    area = shapely.Polygon(
        [(-5.44, 36.10), (-5.40, 36.10), (-5.40, 36.14), (-5.44, 36.14)],
        [[(-5.43, 36.11), (-5.42, 36.11), (-5.42, 36.12), (-5.43, 36.12)]],
    )
    site = Site("holed", "holed.geojson", (Zone(Role.OPERATING_AREA, "Area", area),))
    polygons, circles, rally = fence_from_site(site)
    assert [p.inclusion for p in polygons] == [True, False]
    assert polygons[1].vertices == ((36.11, -5.43), (36.11, -5.42), (36.12, -5.42), (36.12, -5.43))
    back = site_from_plan(MissionPlan((), Waypoint(36.13, -5.43, 0.0), polygons, circles, rally), "x.plan")
    assert back.free_space().symmetric_difference(site.free_space()).area < 1.0  # m²


def test_holes_in_a_no_fly_zone_are_dropped_with_a_warning():
    no_fly = shapely.Polygon(
        [(-5.44, 36.10), (-5.40, 36.10), (-5.40, 36.14), (-5.44, 36.14)],
        [[(-5.43, 36.11), (-5.42, 36.11), (-5.42, 36.12), (-5.43, 36.12)]],
    )
    site = Site("ring", "ring.geojson", (Zone(Role.NO_FLY, "Ring", no_fly),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        polygons, _, _ = fence_from_site(site)
    assert [p.inclusion for p in polygons] == [False]
    assert any("'Ring'" in str(w.message) and "ring.geojson" in str(w.message) for w in caught)
