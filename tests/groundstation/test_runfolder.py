"""A run folder written while a patrol flies, and read back: nothing lost, damage named by file and line."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely

from groundstation.fleet.state import FleetEvent, LandedState, Reason, Severity, VehicleState
from groundstation.runs.reader import read_run
from groundstation.runs.recorder import (
    ALERTS,
    DETECTIONS,
    FORMAT,
    FRAMES,
    RUN_JSON,
    TELEMETRY,
    RunRecorder,
    new_run_directory,
)
from missions.errors import InputError, UserError
from missions.formats import load_site
from missions.plan import MissionItem, MissionPlan, Waypoint
from missions.site import Site
from sitl.testdata import SITES_DIR
from vision.alerts import Alert, RuleKind
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence_verify import verify
from vision.pipeline import FrameResult

START_S = 1_700_000_000.0
ZONE = "Eastern anchorage"
SOURCE = "drone-1"


class FakeClock:
    def __init__(self, now: float = START_S) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def algeciras() -> Site:
    return load_site(SITES_DIR / "algeciras-port.geojson")


def snapshot() -> bytes:
    image = np.full((180, 320, 3), 90, np.uint8)
    cv2.putText(image, "EVIDENCE", (20, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 255), 3)
    return cv2.imencode(".jpg", image)[1].tobytes()


def make_alert(site: Site, time_s: float, lat: float, lon: float, track: int = 1) -> Alert:
    zone = next(z for z in site.watch if z.name == ZONE)
    return Alert(
        alert_id=f"{SOURCE}:enter-eastern-anchorage-{track}",
        time_s=time_s,
        iso_time="2023-11-14T22:13:20.000Z",
        rule=RuleKind.ENTER,
        zone=zone.name,
        risk=zone.risk or 3,
        severity="high",
        object_class=ObjectClass.VESSEL,
        track_id=track,
        lat_deg=lat,
        lon_deg=lon,
        count=1,
        message=f"vessel {track} entered {zone.name}",
        source=SOURCE,
    )


def frame_result(index: int, time_s: float, pose: CameraPose | None, items=(), alerts=()) -> FrameResult:
    return FrameResult(index, time_s, Detections(SOURCE, time_s, index, tuple(items)), tuple(alerts), pose, 0, 0, 0)


@dataclass(frozen=True)
class Recorded:
    directory: Path
    site: Site
    path_m: tuple[tuple[float, float], ...]
    alerts: int
    frames_offered: int


def record_patrol(directory: Path, *, close: bool = True, step_m: float = 2.5) -> Recorded:
    """One drone flies pad → across the anchorage → back at 10 m/s and 70 m, seeing a boat and raising one alert."""
    site = algeciras()
    clock = FakeClock()
    recorder = RunRecorder.create(directory, site, [("vehicle 1", "udpin://0.0.0.0:14540")], Intrinsics(), clock=clock)
    zone_m = site.local(next(z for z in site.watch if z.name == ZONE))
    pad = site.launch_points_m()[0]
    cx, cy = zone_m.centroid.x, zone_m.centroid.y
    path = ((pad.x, pad.y), (cx - 200, cy), (cx + 200, cy), (cx, cy + 200), (pad.x, pad.y))
    home_lon, home_lat = site.frame.lonlat(*path[0])
    items = [MissionItem.takeoff(home_lat, home_lon, 60.0)]
    items += [MissionItem.waypoint(*reversed(site.frame.lonlat(*p)), 60.0) for p in path[1:]]
    recorder.add_plan(0, MissionPlan(tuple(items), Waypoint(home_lat, home_lon, 10.0)))

    xy = np.array(path)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    recorder.record_state(VehicleState(0, lat_deg=home_lat, lon_deg=home_lon, landed_state=LandedState.ON_GROUND))
    steps = int(arc[-1] / step_m)
    alerted = 0
    for i in range(steps + 1):
        clock.now += step_m / 10.0
        x, y = np.interp(i * step_m, arc, xy[:, 0]), np.interp(i * step_m, arc, xy[:, 1])
        lon, lat = site.frame.lonlat(float(x), float(y))
        recorder.record_state(
            VehicleState(
                0,
                lat_deg=lat,
                lon_deg=lon,
                rel_alt_m=60.0,
                flight_mode="mission",
                armed=True,
                landed_state=LandedState.IN_AIR,
                mission_current=1,
                mission_total=len(items),
            )
        )
        items_seen, alerts = (), ()
        if zone_m.contains(shapely.Point(x, y)):
            items_seen = (Detection(ObjectClass.VESSEL, 0.9, (600, 340, 680, 380), 1, lat_deg=lat, lon_deg=lon),)
            if not alerted:
                alert = make_alert(site, clock.now, lat, lon)
                alerts = (alert,)
                recorder.emit(alert)
                recorder.evidence.append("alert", {"alert": alert.to_json_dict()}, snapshot(), time_s=clock.now)
                alerted += 1
        recorder.record_frame(0, frame_result(i, clock.now, CameraPose(lat, lon, 70.0), items_seen, alerts))
    clock.now += 5.0
    recorder.record_state(VehicleState(0, lat_deg=home_lat, lon_deg=home_lon, landed_state=LandedState.ON_GROUND))
    recorder.record_event(FleetEvent(0, Reason.MISSION_COMPLETE, "vehicle 1: mission complete", 0.0))
    if close:
        recorder.close()
    return Recorded(directory, site, path, alerted, steps + 1)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_round_trip_keeps_every_kind_of_record(tmp_path: Path) -> None:
    recorded = record_patrol(tmp_path / "run")

    run = read_run(tmp_path / "run")

    assert run.warnings == ()
    assert run.site.name == "algeciras-port" and len(run.site.zones) == len(recorded.site.zones)
    assert run.ended is not None and run.started.startswith("2023-11-14T22:13")
    assert [(v.vehicle, v.name, v.url) for v in run.vehicles] == [(0, "vehicle 1", "udpin://0.0.0.0:14540")]
    assert run.camera == Intrinsics()
    assert [(p.vehicle, p.sortie, p.path.name) for p in run.plans] == [(0, 1, "vehicle-1.plan")]
    assert len(run.plans[0].plan.positions()) == len(recorded.path_m)
    assert run.telemetry[0].landed_state is LandedState.ON_GROUND and run.telemetry[-1].in_air is False
    assert all(p.in_air for p in run.telemetry[1:-1])
    assert [e.reason for e in run.events] == ["mission_complete"]
    assert run.events[0].severity == "info"
    assert len(run.alerts) == 1 and run.alerts[0].zone == ZONE
    assert all(f.footprint_deg is not None and f.pose is not None for f in run.frames)
    assert {d.object_class for frame in run.detections for d in frame} == {ObjectClass.VESSEL}
    assert run.evidence is not None and run.evidence.ok and run.evidence.records == 1
    assert run.evidence_last_sha256 == run.evidence_tail_sha256 is not None
    assert run.snapshots[run.alerts[0].alert_id].read_bytes()[:2] == b"\xff\xd8"


def test_footprints_are_what_the_camera_saw_in_degrees(tmp_path: Path) -> None:
    recorded = record_patrol(tmp_path / "run")
    run = read_run(tmp_path / "run")

    frame = run.frames[len(run.frames) // 2]
    footprint_m = recorded.site.frame.to_local(frame.footprint_deg)
    below = shapely.Point(recorded.site.frame.xy(frame.pose.lon_deg, frame.pose.lat_deg))

    # Nadir from 70 m with the 80° camera: 117.5 m × 66.1 m centred below the drone.
    assert footprint_m.area == pytest.approx(2 * 70 * math.tan(math.radians(40)) * 66.1, rel=0.01)
    assert footprint_m.centroid.distance(below) < 0.5


def test_telemetry_is_thinned_to_two_hertz_but_keeps_every_mode_change(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = RunRecorder.create(tmp_path / "run", algeciras(), [("v1", "udp://:1")], clock=clock)
    for i in range(40):  # 10 Hz for 4 s, switching to RTL at 2.2 s
        mode = "mission" if i < 22 else "rtl"
        recorder.record_state(VehicleState(0, lat_deg=36.12, lon_deg=-5.43, flight_mode=mode, armed=True))
        recorder.record_state(VehicleState(1, lat_deg=36.12, lon_deg=-5.43, flight_mode="hold"))
        clock.now += 0.1
    recorder.close()

    telemetry = lines(tmp_path / "run" / TELEMETRY)
    first = [t for t in telemetry if t["vehicle"] == 0]
    # 0, 0.5, … 2.0 s, the switch at 2.2 s, then 2.7, 3.2, 3.7 s: 2 Hz, plus the change when it happens.
    assert [round(t["time_s"] - START_S, 1) for t in first] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.2, 2.7, 3.2, 3.7]
    assert [t["flight_mode"] for t in first].index("rtl") == 5
    assert len([t for t in telemetry if t["vehicle"] == 1]) == 8
    assert telemetry[0]["battery_pct"] is None  # NaN is unknown, and JSON has no NaN


def test_detections_once_per_frame_thinned_but_every_new_track_kept(tmp_path: Path) -> None:
    recorder = RunRecorder.create(tmp_path / "run", algeciras(), [])
    boat = Detection(ObjectClass.VESSEL, 0.8, (0, 0, 10, 10), track_id=1)
    for i in range(10):  # 10 fps for 1 s; a second boat shows up at 0.3 s
        items = (boat,) if i < 3 else (boat, Detection(ObjectClass.VESSEL, 0.7, (20, 0, 30, 10), track_id=2))
        detections = Detections(SOURCE, START_S + i / 10, i, items)
        recorder.emit_detections(detections)
        recorder.record_frame(None, FrameResult(i, START_S + i / 10, detections, (), None, 0, 0, 0))
    recorder.close()

    written = lines(tmp_path / "run" / DETECTIONS)
    assert [d["frame_index"] for d in written] == [0, 3, 8]
    frames = lines(tmp_path / "run" / FRAMES)
    assert [f["frame_index"] for f in frames] == [0, 5]
    assert frames[0]["pose"] is None and frames[0]["footprint_deg"] is None and frames[0]["vehicle"] is None


def test_every_line_is_whole_when_threads_write_at_once(tmp_path: Path) -> None:
    site = algeciras()
    recorder = RunRecorder.create(tmp_path / "run", site, [])

    def alerts(worker: int) -> None:
        for i in range(200):
            recorder.emit(make_alert(site, START_S + i, 36.13, -5.425, track=worker * 1000 + i))

    threads = [threading.Thread(target=alerts, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()

    assert len(read_run(tmp_path / "run").alerts) == 800


def test_close_keeps_the_end_and_the_evidence_chain_head(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", close=False)
    assert json.loads((tmp_path / "run" / RUN_JSON).read_text())["ended"] is None

    run = read_run(tmp_path / "run")  # a run still being written reads as it stands

    assert run.ended is None and run.evidence_last_sha256 is None
    assert run.evidence_tail_sha256 is not None and verify(tmp_path / "run" / "evidence").ok


def test_recording_after_close_is_dropped_not_raised(tmp_path: Path) -> None:
    recorder = RunRecorder.create(tmp_path / "run", algeciras(), [])
    recorder.close()
    recorder.close()

    recorder.record_state(VehicleState(0))
    recorder.emit(make_alert(recorder.site, START_S, 36.13, -5.425))

    assert read_run(tmp_path / "run").alerts == ()


def test_a_torn_last_line_is_a_warning(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run")
    telemetry = tmp_path / "run" / TELEMETRY
    count = len(telemetry.read_text().splitlines())
    with telemetry.open("a") as file:
        file.write('{"time_s": 1700000100.5, "vehicle": 0, "lat_d')

    run = read_run(tmp_path / "run")

    assert len(run.telemetry) == count
    assert run.warnings == (f"{telemetry}:{count + 1}: the last line was cut off mid-write (a crash?) and is ignored",)


def damage_line(path: Path, number: int, text: str) -> None:
    content = path.read_text().splitlines()
    content[number - 1] = text
    path.write_text("\n".join(content) + "\n")


@pytest.mark.parametrize(
    ("name", "line", "text", "reason"),
    [
        (TELEMETRY, 2, '{"time_s": 1700000000.1, "vehicle": 0', "not a JSON record"),
        (TELEMETRY, 3, '{"time_s": 1700000000.1}', "missing field 'vehicle'"),
        (TELEMETRY, 2, "[1, 2]", "not a JSON object"),
        (FRAMES, 2, '{"time_s": "noon", "source": "a", "vehicle": 0, "frame_index": 1, "pose": null, '
         '"footprint_deg": null, "detections": 0}', "time_s is not a number"),
        (FRAMES, 4, '{"time_s": 1, "source": "a", "vehicle": 0, "frame_index": 1, "pose": null, '
         '"footprint_deg": [[1, 2]], "detections": 0}', "footprint_deg is not a polygon"),
        (ALERTS, 1, '{"alert_id": "x"}', "missing field"),
        (DETECTIONS, 2, '{"source": "a", "frame_time_s": 1, "frame_index": 2, "items": [{"class": "whale", '
         '"confidence": 1, "box_px": [0, 0, 1, 1], "track_id": null, "lat_deg": null, "lon_deg": null}]}', "whale"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_an_error_naming_file_and_line(
    tmp_path: Path, name: str, line: int, text: str, reason: str
) -> None:
    record_patrol(tmp_path / "run")
    damage_line(tmp_path / "run" / name, line, text)

    with pytest.raises(InputError, match=reason) as error:
        read_run(tmp_path / "run")

    assert str(error.value).startswith(f"{tmp_path / 'run' / name}:{line}: ")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / RUN_JSON).unlink(), "run.json: no such file: not a run folder"),
        (lambda run: (run / RUN_JSON).write_text('{"format": "borderwatch-run/9", "started": "x"}'), "format is"),
        (lambda run: (run / RUN_JSON).write_text("{"), "run.json: not valid JSON"),
        (lambda run: (run / "site.geojson").unlink(), "site.geojson: no such file"),
    ],
)
def test_not_a_run_folder_says_which_file_is_wrong(
    tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    record_patrol(tmp_path / "run", step_m=50.0)
    damage(tmp_path / "run")

    with pytest.raises(InputError, match=message):
        read_run(tmp_path / "run")


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such run folder"):
        read_run(tmp_path / "nowhere")


def test_a_run_is_never_recorded_over_another(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=50.0)

    with pytest.raises(UserError, match="already holds a run"):
        RunRecorder.create(tmp_path / "run", algeciras(), [])


def test_plans_are_named_per_vehicle_and_sortie(tmp_path: Path) -> None:
    recorder = RunRecorder.create(tmp_path / "run", algeciras(), [])
    plan = MissionPlan((MissionItem.takeoff(36.12, -5.43, 50.0),), Waypoint(36.12, -5.43, 10.0))

    paths = [recorder.add_plan(0, plan), recorder.add_plan(0, plan, sortie=2), recorder.add_plan(2, plan)]
    recorder.close()

    assert [p.name for p in paths] == ["vehicle-1.plan", "vehicle-1-s2.plan", "vehicle-3.plan"]
    assert [(p.vehicle, p.sortie) for p in read_run(tmp_path / "run").plans] == [(0, 1), (0, 2), (2, 1)]


def test_new_run_directories_never_collide(tmp_path: Path) -> None:
    first = new_run_directory(tmp_path, "Algeciras port!", START_S)
    first.mkdir()

    second = new_run_directory(tmp_path, "Algeciras port!", START_S)

    assert first.name == "20231114T221320Z-algeciras-port"
    assert second.name == "20231114T221320Z-algeciras-port-2"


def test_run_json_has_the_documented_fields(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=50.0)

    document = json.loads((tmp_path / "run" / RUN_JSON).read_text())

    assert document["format"] == FORMAT
    assert set(document) == {
        "format",
        "site_name",
        "started",
        "ended",
        "vehicles",
        "camera",
        "evidence_last_sha256",
        "time_scale",
    }
    assert document["time_scale"] == 1.0
    assert document["camera"] == {"hfov_deg": 80.0, "width_px": 1280, "height_px": 720}
    assert not list((tmp_path / "run").glob(".*.tmp"))
    assert Severity.INFO.name.lower() == lines(tmp_path / "run" / "events.jsonl")[0]["severity"]
