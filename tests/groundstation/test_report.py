"""What a run achieved (KPIs on geometry with known answers) and the offline report of it."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import shapely
from test_runfolder import ZONE, algeciras, make_alert, record_patrol

from groundstation.commands.cli import main
from groundstation.fleet.state import LandedState, VehicleState
from groundstation.runs.kpis import compute_run_kpis, format_run_kpis
from groundstation.runs.reader import FrameRecord, RunData, TelemetryPoint, read_run
from groundstation.runs.recorder import ALERTS, EVIDENCE, RunRecorder
from groundstation.runs.report import write_report
from missions.formats import load_site
from missions.geo import LocalFrame
from missions.site import Role, Site, Zone
from sitl.synthetic.scenarios import hover_over_zone
from sitl.testdata import SITES_DIR
from vision.alerts import AlertEngine
from vision.camera import Intrinsics
from vision.detections import ObjectClass
from vision.detectors import DEFAULT_MODEL, load_detector
from vision.geolocate import Geolocate, Geolocator, SmoothTracks
from vision.palette import CLASS_COLORS
from vision.pipeline import Pipeline
from vision.pose import MavlinkPose
from vision.sinks import KeepEvidence, RaiseAlerts, SendAlerts, SendDetections
from vision.sources import open_source
from vision.tracking import Tracker

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"
FRAME = LocalFrame(36.0, -5.0)
T0 = 1_700_000_000.0


# ----------------------------------------------------------------------------- KPIs, by hand


def square_site(no_fly: bool = False) -> Site:
    """A 1 km square operating area around FRAME's origin, a 1 ha watch zone and a watch zone half the site big."""
    zones = [
        Zone(Role.OPERATING_AREA, "area", FRAME.to_geo(shapely.box(-500, -500, 500, 500))),
        Zone(Role.WATCH, "quay", FRAME.to_geo(shapely.box(100, 100, 200, 200)), risk=5),
        Zone(Role.WATCH, "west", FRAME.to_geo(shapely.box(-500, -500, 0, 500)), risk=2),
    ]
    if no_fly:
        zones.append(Zone(Role.NO_FLY, "tank", FRAME.to_geo(shapely.box(-500, -500, -400, -400))))
    return Site("square", "test", tuple(zones), frame=FRAME)


def seen(time_s: float, box_m: tuple[float, float, float, float]) -> FrameRecord:
    return FrameRecord(time_s, "cam", 0, 0, None, FRAME.to_geo(shapely.box(*box_m)), 0)


def run_data(site: Site, frames=(), telemetry=(), alerts=(), **kwargs) -> RunData:
    fields = dict(
        directory=Path("/nonexistent"),
        site=site,
        started="2023-11-14T22:13:20Z",
        ended="2023-11-14T22:43:20Z",
        vehicles=(),
        camera=None,
        plans=(),
        telemetry=tuple(telemetry),
        events=(),
        frames=tuple(frames),
        detections=(),
        alerts=tuple(alerts),
        evidence=None,
        evidence_last_sha256=None,
        evidence_tail_sha256=None,
    )
    fields.update(kwargs)
    return RunData(**fields)


def test_half_the_area_seen_is_a_share_of_a_half() -> None:
    frames = [seen(T0, (-500, -500, -200, 500)), seen(T0 + 1, (-300, -500, 0, 500))]  # overlapping halves of the west

    kpis = compute_run_kpis(run_data(square_site(), frames))

    assert kpis.area_m2 == pytest.approx(1e6, rel=1e-6)
    assert kpis.seen_share == pytest.approx(0.5, abs=1e-6)
    zones = {z.name: z for z in kpis.zones}
    assert zones["west"].seen_share == pytest.approx(1.0, abs=1e-6)
    assert zones["quay"].seen_share == 0.0


def test_no_fly_zones_are_not_area_to_see() -> None:
    frames = [seen(T0, (-500, -500, 0, 500))]

    kpis = compute_run_kpis(run_data(square_site(no_fly=True), frames))

    assert kpis.area_m2 == pytest.approx(1e6 - 1e4, rel=1e-6)
    assert kpis.seen_share == pytest.approx((5e5 - 1e4) / (1e6 - 1e4), abs=1e-6)


def test_ground_seen_outside_the_operating_area_does_not_count() -> None:
    kpis = compute_run_kpis(run_data(square_site(), [seen(T0, (400, 400, 600, 600))]))

    assert kpis.seen_area_m2 == pytest.approx(1e4, rel=1e-6)


def test_revisits_of_a_small_zone_count_frames_that_see_a_fifth_of_it() -> None:
    over_quay = (90, 90, 210, 210)
    frames = [
        seen(T0, over_quay),
        seen(T0 + 10, over_quay),
        seen(T0 + 20, over_quay),  # one visit: frames less than a minute apart
        seen(T0 + 300, over_quay),
        seen(T0 + 310, over_quay),
        seen(T0 + 600, (190, 100, 290, 200)),  # a tenth of the quay, a tenth of the view: not a visit
        seen(T0 + 1000, (150, 150, 250, 250)),  # a quarter of the quay
    ]

    quay = next(z for z in compute_run_kpis(run_data(square_site(), frames)).zones if z.name == "quay")

    assert quay.visits == 3
    assert quay.mean_revisit_s == pytest.approx(500.0)
    assert quay.max_revisit_s == pytest.approx(700.0)


def test_a_big_zone_is_visited_when_most_of_the_view_is_on_it() -> None:
    frames = [
        seen(T0, (-100, 0, 50, 100)),  # two thirds of the view on the west zone, 2 % of the zone
        seen(T0 + 120, (-20, 0, 80, 100)),  # a fifth of the view: looking elsewhere
        seen(T0 + 240, (-400, 0, -300, 100)),
    ]

    west = next(z for z in compute_run_kpis(run_data(square_site(), frames)).zones if z.name == "west")

    assert west.visits == 2
    assert west.mean_revisit_s == west.max_revisit_s == pytest.approx(240.0)


def test_a_zone_seen_once_has_no_revisit_interval() -> None:
    quay = next(
        z for z in compute_run_kpis(run_data(square_site(), [seen(T0, (0, 0, 300, 300))])).zones if z.name == "quay"
    )

    assert (quay.visits, quay.mean_revisit_s, quay.max_revisit_s) == (1, None, None)


def point(time_s: float, north_m: float, state: LandedState, vehicle: int = 0) -> TelemetryPoint:
    lon, lat = FRAME.lonlat(0.0, north_m)
    nan = float("nan")
    return TelemetryPoint(
        time_s, vehicle, lat, lon, nan, 60.0, 0.0, 10.0, 80.0, "mission", True, state, 1, 5
    )  # fmt: skip


def test_distance_and_time_count_only_what_was_flown() -> None:
    telemetry = [
        point(T0, 0, LandedState.ON_GROUND),
        point(T0 + 5, 0, LandedState.IN_AIR),
        point(T0 + 15, 100, LandedState.IN_AIR),
        point(T0 + 25, 200, LandedState.IN_AIR),
        point(T0 + 40, 200, LandedState.ON_GROUND),
        point(T0 + 100, 900, LandedState.ON_GROUND),  # carried back to the van
        point(T0 + 20, 0, LandedState.IN_AIR, vehicle=1),
        point(T0 + 30, 50, LandedState.IN_AIR, vehicle=1),
    ]

    kpis = compute_run_kpis(run_data(square_site(), telemetry=telemetry))

    assert [(v.vehicle, v.name) for v in kpis.vehicles] == [(0, "vehicle 1"), (1, "vehicle 2")]
    # Great-circle distance on a sphere: within 0.5 % of the ellipsoid's, a GPS error at patrol scale.
    assert kpis.vehicles[0].distance_m == pytest.approx(200.0, rel=0.005)
    assert kpis.vehicles[0].flight_time_s == pytest.approx(20.0)
    assert kpis.vehicles[1].distance_m == pytest.approx(50.0, rel=0.005)


def test_a_simulation_faster_than_real_time_reports_the_drones_own_time() -> None:
    telemetry = [point(T0, 0, LandedState.IN_AIR), point(T0 + 10, 100, LandedState.IN_AIR)]
    over_quay = (90, 90, 210, 210)
    frames = [seen(T0, over_quay), seen(T0 + 10, over_quay), seen(T0 + 20, over_quay)]  # 100 s apart at 10×

    kpis = compute_run_kpis(run_data(square_site(), frames, telemetry, time_scale=10.0))

    assert kpis.vehicles[0].flight_time_s == pytest.approx(100.0)
    assert kpis.vehicles[0].distance_m == pytest.approx(100.0, rel=0.005)
    quay = next(z for z in kpis.zones if z.name == "quay")
    assert (quay.visits, quay.mean_revisit_s) == (3, pytest.approx(100.0))
    assert kpis.duration_s == pytest.approx(10 * 1800.0)
    assert "simulated at 10× real time" in format_run_kpis(kpis)


def test_alerts_are_counted_once_per_id_by_zone_and_class() -> None:
    site = algeciras()
    first, second = make_alert(site, T0, 36.13, -5.425, 1), make_alert(site, T0 + 5, 36.13, -5.425, 2)

    kpis = compute_run_kpis(run_data(site, alerts=[first, first, second]))

    assert kpis.alerts == 2
    assert dict(kpis.alerts_per_zone) == {ZONE: 2}
    assert dict(kpis.alerts_per_class) == {"vessel": 2}
    assert next(z for z in kpis.zones if z.name == ZONE).alerts == 2
    assert json.loads(json.dumps(kpis.to_dict()))["alerts_per_zone"] == {ZONE: 2}


# ----------------------------------------------------------------------------- evidence verdict


def test_evidence_of_a_closed_run_is_intact(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)

    evidence = compute_run_kpis(read_run(tmp_path / "run")).evidence

    assert evidence.ok and evidence.records == 1 and evidence.snapshots_verified == 1
    assert evidence.verdict.startswith("intact")


def test_an_altered_snapshot_is_tampering(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    snapshot = next((tmp_path / "run" / EVIDENCE / "snapshots").iterdir())
    snapshot.write_bytes(snapshot.read_bytes()[:-10])

    evidence = compute_run_kpis(read_run(tmp_path / "run")).evidence

    assert not evidence.ok
    assert evidence.verdict.startswith("TAMPERED at record 1 (line 1): snapshot")


def test_newest_records_cut_off_are_caught_by_the_signed_head(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    (tmp_path / "run" / EVIDENCE / "evidence.jsonl").write_bytes(b"")  # a valid, shorter (empty) chain

    evidence = compute_run_kpis(read_run(tmp_path / "run")).evidence

    assert not evidence.ok
    assert evidence.verdict.startswith("TAMPERED: the log holds no record, but the head signed at ")
    assert evidence.verdict.endswith("is record 1: record 1 was cut off")


def test_newest_records_cut_off_with_the_signed_heads_are_caught_by_the_hash_kept_at_close(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    (tmp_path / "run" / EVIDENCE / "evidence.jsonl").write_bytes(b"")
    (tmp_path / "run" / EVIDENCE / "heads.jsonl").unlink()

    evidence = compute_run_kpis(read_run(tmp_path / "run")).evidence

    assert not evidence.ok
    assert evidence.verdict.startswith("NOT AS CLOSED")


# ----------------------------------------------------------------------------- the report page


def linked_files(page: str) -> list[str]:
    """Every relative file the page names: scripts, stylesheets, and the snapshots inside popup HTML."""
    urls = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]*)\"", page) + re.findall(r"<link\b[^>]*\bhref=\"([^\"]*)\"", page)
    urls += re.findall(r"(report_files/snapshots/[^\"\\<&]+)", page)
    return urls


def with_first_popup_open(page: Path) -> Path:
    """A copy of the page that opens the first popup on the map once it is drawn (a click, headless)."""
    text = page.read_text(encoding="utf-8")
    map_var = re.search(r"var (map_[0-9a-f]+) = L\.map", text)[1]
    opener = (
        f"<script>var opened = false; {map_var}.eachLayer(function (layer) {{"
        "if (opened || !layer.getPopup || !layer.getPopup()) { return; } opened = true;"
        # Centre the marker a little below the middle, so the popup above it is in the screenshot whole.
        f"{map_var}.setView(layer.getLatLng(), {map_var}.getZoom(), {{animate: false}});"
        f"{map_var}.panBy([0, -180], {{animate: false}}); layer.openPopup(); }});</script>"
    )
    copy = page.with_name("report-popup.html")
    copy.write_text(text + opener, encoding="utf-8")
    return copy


def test_report_is_one_folder_that_names_only_local_files(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run")

    out = write_report(read_run(tmp_path / "run"), tmp_path / "out" / "report.html")

    page = out.read_text(encoding="utf-8")
    links = linked_files(page)
    assert sorted(set(unquote(u) for u in links)) == [
        "report_files/leaflet/leaflet.css",
        "report_files/leaflet/leaflet.js",
        f"report_files/snapshots/{next((tmp_path / 'run' / EVIDENCE / 'snapshots').iterdir()).name}",
    ]
    for url in links:
        assert (out.parent / unquote(url)).is_file(), url
    assert not re.search(r"https?://|//cdn|jquery|bootstrap", page, flags=re.IGNORECASE)
    shutil.rmtree(tmp_path / "run")  # the report needs nothing from the run folder any more
    assert (out.parent / "report_files" / "leaflet" / "images" / "layers.png").is_file()


def test_report_draws_the_run_offline_in_chromium(tmp_path: Path, chromium) -> None:
    recorded = record_patrol(tmp_path / "run")
    run = read_run(tmp_path / "run")
    out = write_report(run, tmp_path / "report" / "report.html")

    dom = chromium("--dump-dom", out.as_uri()).stdout
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1700", out.as_uri())
    popup = with_first_popup_open(out)
    popup_dom = chromium("--dump-dom", popup.as_uri()).stdout
    popup_shot = SCREENSHOTS / "report-alert-popup.png"
    chromium(f"--screenshot={popup_shot}", "--window-size=1200,900", popup.as_uri())
    print(f"report screenshots: {shot} {popup_shot}")

    assert "leaflet-container" in dom
    paths = [p for p in re.findall(r"<path\b[^>]*>", dom) if "leaflet-interactive" in p]
    assert sum("borderwatch-seen" in p for p in paths) >= 1
    assert sum(f'fill="{CLASS_COLORS[ObjectClass.VESSEL]}"' in p for p in paths) >= 3  # vessel detections
    assert sum('stroke="#111111"' in p for p in paths) == recorded.alerts
    for label in ("vehicle 1 planned", "vehicle 1 flown", "Seen by the cameras", "Detection: vessel", "Alert"):
        assert label in dom
    section = dom[dom.index('class="borderwatch-report"') :]
    assert "Eastern anchorage" in section and "intact" in section
    assert 'class="leaflet-popup-content"' in popup_dom
    assert re.search(r'<img class="borderwatch-snapshot" src="report_files/snapshots/[0-9a-f-]+\.jpg"', popup_dom)
    assert shot.stat().st_size > 20_000 and popup_shot.stat().st_size > 20_000


# ----------------------------------------------------------------------------- the command


def test_report_command_prints_kpis_and_writes_beside_the_run(tmp_path: Path, capsys) -> None:
    record_patrol(tmp_path / "run", step_m=10.0)

    assert main(["report", str(tmp_path / "run")]) == 0

    out = capsys.readouterr().out
    assert "algeciras-port: run started" in out
    assert f"watch zone '{ZONE}'" in out and "evidence: intact" in out
    assert out.strip().endswith(f"wrote {tmp_path / 'run' / 'report' / 'report.html'}")
    assert (tmp_path / "run" / "report" / "report_files" / "leaflet" / "leaflet.js").is_file()


def test_report_command_writes_where_it_is_told(tmp_path: Path, capsys) -> None:
    record_patrol(tmp_path / "run", step_m=50.0)

    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "elsewhere" / "patrol.html"), "-q"]) == 0

    assert capsys.readouterr().out == f"wrote {tmp_path / 'elsewhere' / 'patrol.html'}\n"
    assert (tmp_path / "elsewhere" / "patrol_files" / "snapshots").is_dir()


def test_report_command_warns_of_a_torn_line_and_still_reports(tmp_path: Path, capsys) -> None:
    record_patrol(tmp_path / "run", step_m=50.0)
    with (tmp_path / "run" / ALERTS).open("a") as file:
        file.write('{"alert_id": "drone-1:ent')

    assert main(["report", str(tmp_path / "run"), "-q"]) == 0

    assert "alerts.jsonl:2: the last line was cut off" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "no such run folder"),
        (lambda d: (d.mkdir(), d)[1], "run.json: no such file: not a run folder"),
        (lambda d: (record_patrol(d, step_m=50.0), (d / ALERTS).write_text("{}\n{}\n"), d)[2], "alerts.jsonl:1: "),
    ],
)
def test_a_bad_run_folder_is_one_line_and_exit_2(tmp_path: Path, capsys, make, message: str) -> None:
    run_dir = make(tmp_path / "run")

    assert main(["report", str(run_dir)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("borderwatch: error: ") and message in err
    assert err.count("\n") == 1


# ----------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_a_recorded_hover_over_the_anchorage_reports_what_it_saw(tmp_path: Path, chromium) -> None:
    """The simulator's drone over the anchorage, its camera through the real pipeline, recorded and reported."""
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    recorder = RunRecorder.create(tmp_path / "run", site, [("vehicle 1", "simulated")], Intrinsics())
    with hover_over_zone(site, ZONE, tmp_path / "video", camera_alt_m=60.0) as hover:
        detector = load_detector(DEFAULT_MODEL)
        with MavlinkPose(hover.onboard_url) as poses, open_source(str(hover.sdp_path), "drone-1") as source:
            pipeline = Pipeline(
                detector,
                [Geolocate(poses, Geolocator(site.frame, Intrinsics())), Tracker(), SmoothTracks(site.frame)],
                [
                    RaiseAlerts(AlertEngine(site)),
                    SendDetections([recorder]),
                    SendAlerts([recorder]),
                    KeepEvidence(recorder.evidence),
                ],
                source_name="drone-1",
            )
            stop_at = time.monotonic() + 12.0
            while time.monotonic() < stop_at:
                sim = hover.fleet.vehicles[0].state()
                recorder.record_state(
                    VehicleState(
                        0,
                        lat_deg=sim.lat_deg,
                        lon_deg=sim.lon_deg,
                        rel_alt_m=sim.rel_alt_m,
                        heading_deg=sim.heading_deg,
                        flight_mode=sim.mode,
                        armed=sim.armed,
                        landed_state=LandedState.IN_AIR if sim.landed_state.name == "IN_AIR" else LandedState.UNKNOWN,
                    )
                )
                frame = source.read(0.5)
                if frame is not None:
                    recorder.record_frame(0, pipeline.process(frame))
    recorder.close()

    run = read_run(tmp_path / "run")
    kpis = compute_run_kpis(run)
    print(format_run_kpis(kpis))
    out = write_report(run, tmp_path / "run" / "report" / "report.html", kpis)

    anchorage = next(z for z in kpis.zones if z.name == ZONE)
    assert run.warnings == ()
    assert 15 <= len(run.frames) <= 26  # 10 fps thinned to 2 Hz over 12 s
    # One 100 m × 57 m view from 60 m, 30 m inside the zone's edge: about 1 % of the 55 ha anchorage.
    assert anchorage.visits == 1 and 0.005 < anchorage.seen_share < 0.02
    assert kpis.alerts >= 1 and anchorage.alerts == kpis.alerts
    assert kpis.tracks_per_class.get("vessel", 0) >= 1
    assert kpis.evidence.ok and kpis.evidence.snapshots_verified == kpis.alerts
    copied = list((out.parent / "report_files" / "snapshots").iterdir())
    assert len(copied) == kpis.alerts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "report-hover-alert.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,900", with_first_popup_open(out).as_uri())
    print(f"report screenshot: {shot}")
