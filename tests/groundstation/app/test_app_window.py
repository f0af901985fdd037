"""The whole window as an operator uses it: open a real site, plan, connect to the built-in
simulator, fly and watch the vehicles move on the map, see an alert from a synthetic camera
in the alerts panel and on the map, write the report; the layout survives a restart.

Screenshots of each step go to out/screenshots/window-*.png.
"""

from __future__ import annotations

import json
import math

import pytest
from PyQt6.QtCore import Qt

from groundstation.app.main_window import MainWindow
from groundstation.app.settings import app_settings
from groundstation.app.tiles import TileSource
from groundstation.app.video_panel import StreamConfig
from missions.formats import load_site
from missions.geo import haversine_m
from missions.planners.patrol import Pattern
from sitl.synthetic.scenarios import hover_over_zone
from sitl.testdata import SITES_DIR

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SITE = SITES_DIR / "algeciras-port.geojson"
ZONE = "Eastern anchorage"


def vehicle_positions(w: MainWindow) -> list[tuple[float, float]]:
    found = [w.map.js(f"bw.inspect.vehicle({i})") for i in range(5)]
    return [(v["lat"], v["lon"]) for v in found if v is not None and v["onMap"]]


def map_centre(w: MainWindow) -> tuple[float, float]:
    c = w.map.js("(() => { const c = bw.map.getCenter(); return [c.lat, c.lng]; })()")
    return c[0], c[1]


def test_plan_fly_and_watch_from_one_window(window: MainWindow, qtbot, sim_fleet, screenshot, tmp_path):
    w = window
    assert w.open_site(SITE)
    qtbot.waitUntil(lambda: len(w.map.js("bw.inspect.zones()")) == len(load_site(SITE).zones), timeout=15000)
    screenshot(w, "window-1-site")

    planner = w.planner_panel
    with qtbot.waitSignal(planner.planned, timeout=60000, check_params_cb=lambda p: p.drones == 2) as planned:
        planner.pattern.setCurrentIndex(planner.pattern.findData(Pattern.PERIMETER))
        planner.altitude.setValue(60.0)
        planner.drones.setValue(2)
    plans = planned.args[0].plans
    assert sorted(plans) == [0, 1]
    qtbot.waitUntil(lambda: len(w.map.js("bw.inspect.routes()")) >= 2, timeout=10000)
    screenshot(w, "window-2-planned")

    fleet = sim_fleet(2, speed_factor=10.0)
    urls = [f"udpin://0.0.0.0:{v.port}" for v in fleet.vehicles]
    with qtbot.waitSignal(w.fleet.connected, timeout=60000):
        w.connect_fleet(urls)
    qtbot.waitUntil(lambda: len(vehicle_positions(w)) == 2, timeout=20000)
    start = vehicle_positions(w)
    assert w.recorder is not None, "connecting a fleet starts recording a run"

    w.fleet_panel.confirm = lambda question: True
    w.fleet_panel.select_vehicle(0)
    w.fleet_panel.fly_selected()
    qtbot.waitUntil(
        lambda: haversine_m(*start[0], *vehicle_positions(w)[0]) > 100.0, timeout=90000
    )  # the marker on the map moves with the vehicle
    assert w.map.js("bw.inspect.vehicle(0)")["trail"] > 5
    screenshot(w, "window-3-flying")
    w.fleet.return_to_launch(0)

    with hover_over_zone(load_site(SITE), ZONE, tmp_path / "video") as hover:
        w.add_stream(StreamConfig("camera", str(hover.sdp_path), hover.onboard_url, vehicle=None))
        qtbot.waitUntil(lambda: w.alerts_model.rowCount() > 0, timeout=60000)
        qtbot.waitUntil(lambda: len(w.map.js("bw.inspect.alerts()")) > 0, timeout=10000)
        alert = w.alerts_model.alert(0)
        assert alert.zone == ZONE
        screenshot(w, "window-4-alert")
        w.alerts_panel.select(alert.alert_id)
        qtbot.waitUntil(lambda: haversine_m(alert.lat_deg, alert.lon_deg, *map_centre(w)) < 50, timeout=5000)
        assert w.alerts_panel.preview.pixmap() is not None and not w.alerts_panel.preview.pixmap().isNull()
        qtbot.wait(800)  # the page composites the new view a moment after Leaflet has moved
        screenshot(w, "window-5-alert-selected")
        w.video_panel.remove_stream("camera")

    run_dir = w.stop_recording()
    assert (run_dir / "alerts.jsonl").read_text().strip(), "the alert is kept in the run folder"
    report = w.write_report(run_dir)
    assert report.is_file()
    telemetry = [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]
    # A position not known yet is written as null (JSON has no NaN).
    assert any(t["lat_deg"] is not None and not math.isnan(t["lat_deg"]) for t in telemetry if t["vehicle"] == 0)


def test_layout_and_settings_survive_a_restart(qtbot, tmp_path):
    path = tmp_path / "settings.ini"
    first = MainWindow(app_settings(path), tiles=TileSource.none())
    qtbot.addWidget(first)
    first.show()
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.docks["video"])
    first.docks["alerts"].hide()
    first.planner_panel.drones.setValue(3)
    first.fleet_panel.set_urls(["udpin://0.0.0.0:14601", "udpin://0.0.0.0:14602"])
    first.close()

    second = MainWindow(app_settings(path), tiles=TileSource.none())
    qtbot.addWidget(second)
    second.show()
    assert second.dockWidgetArea(second.docks["video"]) is Qt.DockWidgetArea.LeftDockWidgetArea
    assert not second.docks["alerts"].isVisible()
    assert second.docks["fleet"].isVisible()
    assert second.planner_panel.drones.value() == 3
    assert second.fleet_panel.urls() == ["udpin://0.0.0.0:14601", "udpin://0.0.0.0:14602"]
    second.close()
