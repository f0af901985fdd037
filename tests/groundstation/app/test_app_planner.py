"""The Planner panel over a real SiteModel: plans as parameters change, off the UI thread."""

from __future__ import annotations

import itertools
import time

import pytest
from PyQt6.QtCore import QSettings, QTimer

from groundstation.app.plan_worker import Planned
from groundstation.app.planner_panel import ERROR_COLOR, PlannerPanel
from groundstation.app.site_model import SiteModel
from missions.formats.geojson import read_site_geojson
from missions.formats.kml import read_site_kml
from missions.formats.qgc_plan import read_plan
from missions.plan import Command
from missions.planners.patrol import Pattern
from sitl.testdata import SITES_DIR

pytestmark = pytest.mark.gui

PLAN_TIMEOUT_MS = 30_000


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def site_model():
    model = SiteModel()
    model.open(SITES_DIR / "algeciras-port.geojson")
    return model


@pytest.fixture
def panel(qtbot, site_model, settings):
    view = PlannerPanel(site_model, settings)
    view.resize(420, 760)
    qtbot.addWidget(view)
    view.show()
    return view


def first_plan(qtbot, panel: PlannerPanel) -> Planned:
    with qtbot.waitSignal(panel.planned, timeout=PLAN_TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def test_a_shared_site_is_planned_on_open_with_kpis_shown(qtbot, panel, screenshot):
    planned = first_plan(qtbot, panel)
    assert planned.request.pattern is Pattern.COVERAGE
    assert planned.site.name == "algeciras-port"
    assert len(planned.routes) == planned.kpis.sorties and planned.routes[0].group == "drone 1"
    lat, lon = planned.routes[0].points_deg[0]
    assert 36.0 < lat < 36.3 and -5.5 < lon < -5.3
    assert list(planned.plans) == [0]
    assert panel.kpi_values["path"].text() == f"{planned.kpis.path_length_m / 1000:.1f} km"
    assert panel.kpi_values["sorties"].text() == "1"
    assert "coverage patrol" in panel.kpi_text.toPlainText()
    assert panel.export_plan_button.isEnabled()
    qtbot.wait(50)
    screenshot(panel, "planner-panel")


def test_changes_replan_debounced_and_the_ui_keeps_answering(qtbot, panel):
    first_plan(qtbot, panel)
    started = panel.plans_started
    results: list[Planned] = []
    panel.planned.connect(results.append)

    # The UI thread's timer keeps ticking while a coverage plan (about a second) runs on the worker.
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    for altitude in (70, 75, 80, 85, 90):
        panel.altitude.setValue(altitude)
        qtbot.wait(20)
    panel.drones.setValue(2)
    qtbot.waitUntil(lambda: bool(results) and results[-1].request.drones == 2, timeout=PLAN_TIMEOUT_MS)
    qtbot.wait(600)
    timer.stop()

    assert panel.plans_started - started <= 2
    assert len(results) <= 2
    final = results[-1]
    assert (final.request.altitude_m, final.request.drones) == (90, 2)
    assert sorted(final.plans) == [0, 1]
    assert {r.group for r in final.routes} == {"drone 1", "drone 2"}
    assert panel.kpi_text.toPlainText().count("drone ") >= 2
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.5, f"the UI thread stalled for {max(gaps):.2f} s"


def test_a_newer_request_drops_the_older_result(qtbot, panel):
    first_plan(qtbot, panel)
    results: list[Planned] = []
    panel.planned.connect(results.append)
    panel.plan_now()  # coverage at 60 m: about a second of work
    panel.pattern.setCurrentIndex(panel.pattern.findData(Pattern.PERIMETER))
    panel.plan_now()
    qtbot.waitUntil(lambda: bool(results), timeout=PLAN_TIMEOUT_MS)
    qtbot.wait(1500)
    assert [r.request.pattern for r in results] == [Pattern.PERIMETER]


def test_an_impossible_altitude_is_shown_inline(qtbot, panel):
    first_plan(qtbot, panel)
    with qtbot.waitSignal(panel.failed, timeout=PLAN_TIMEOUT_MS) as blocker:
        panel.altitude.setValue(150)
    assert "above the site's altitude limit of 120 m" in blocker.args[0]
    assert "150 m" in panel.status.text() and ERROR_COLOR in panel.status.text()
    assert panel.kpi_values["path"].text() == "–"
    assert not panel.export_plan_button.isEnabled()
    with qtbot.waitSignal(panel.planned, timeout=PLAN_TIMEOUT_MS):
        panel.altitude.setValue(100)
    assert ERROR_COLOR not in panel.status.text()


def test_a_site_with_errors_is_not_planned(qtbot, panel, site_model):
    first_plan(qtbot, panel)
    far = {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-5.0, 36.1]}}
    with qtbot.waitSignal(panel.failed, timeout=PLAN_TIMEOUT_MS) as blocker:
        site_model.add_drawn(far, "launch", "Far pad")
    assert blocker.args[0].startswith("Fix the site first: launch 'Far pad'")


def test_exports_read_back(qtbot, panel, tmp_path):
    panel.pattern.setCurrentIndex(panel.pattern.findData(Pattern.PERIMETER))
    panel.drones.setValue(2)
    panel.endurance_on.setChecked(True)
    panel.endurance.setValue(20)
    with qtbot.waitSignal(panel.planned, timeout=PLAN_TIMEOUT_MS):
        pass
    qtbot.waitUntil(lambda: panel.result is not None and panel.result.request.drones == 2, timeout=PLAN_TIMEOUT_MS)
    planned = panel.result
    written = panel.export_plans(tmp_path / "plans" / "algeciras.plan")
    assert {p.name.removeprefix("algeciras-")[0] for p in written} == {"1", "2"}  # OUT-D.plan / OUT-D-sK.plan
    assert len(written) == planned.kpis.sorties
    for path, sortie in zip(written, planned.sorties, strict=True):
        plan = read_plan(path)
        assert plan.items[0].command == Command.NAV_TAKEOFF
        assert len(plan.items) == len(sortie.plan.items)
        assert plan.fence_polygons and plan.fence_circles
    geojson = panel.export_geojson(tmp_path / "patrol.geojson")
    assert read_site_geojson(geojson).route  # the drones' routes come back as route lines
    kml = panel.export_kml(tmp_path / "patrol.kml")
    assert len(read_site_kml(kml).zones) == len(planned.site.zones)


def test_parameters_persist(qtbot, site_model, settings):
    first = PlannerPanel(site_model, settings)
    qtbot.addWidget(first)
    first.altitude.setValue(80)
    first.drones.setValue(3)
    first.spacing_mode.setCurrentIndex(first.spacing_mode.findData("fixed"))
    first.spacing.setValue(45)
    first.plan_now()
    again = PlannerPanel(site_model, settings)
    qtbot.addWidget(again)
    request = again.request()
    assert (request.altitude_m, request.drones, request.spacing_m) == (80, 3, 45)
    assert not again.sensor_width.isEnabled()
