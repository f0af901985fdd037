"""The Site panel over a real SiteModel: open, draw, edit in place, validate, save and read back."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QSettings
from PyQt6.QtGui import QTextDocument
from PyQt6.QtWidgets import QComboBox, QLabel, QSpinBox

from groundstation.app.site_model import ROLE_LABELS, SiteModel
from groundstation.app.site_panel import ERROR_COLOR, WARNING_COLOR, SitePanel
from missions.formats import load_site
from missions.site import Role
from sitl.testdata import QGC_DIR, SITES_DIR

pytestmark = pytest.mark.gui

SHARED_SITES = ("algeciras-port", "tarifa-coast", "kilindini-mombasa")


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def panel(qtbot, settings):
    view = SitePanel(SiteModel(), settings)
    view.resize(420, 640)
    qtbot.addWidget(view)
    view.show()
    return view


def rows(panel: SitePanel) -> list[tuple[str, str, str, str]]:
    """The zone table as a user reads it: name, role, risk, size."""

    def text(row: int, column: int) -> str:
        widget = panel.table.cellWidget(row, column)
        if isinstance(widget, QComboBox):
            return widget.currentText()
        if isinstance(widget, QSpinBox):
            return str(widget.value())
        if isinstance(widget, QLabel):
            return widget.text()
        return panel.table.item(row, column).text()

    return [tuple(text(r, c) for c in range(4)) for r in range(panel.table.rowCount())]


def shown(label: QLabel) -> str:
    """A rich-text label's text as it reads on screen."""
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def square(lon: float, lat: float, half_deg: float) -> dict:
    ring = [
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def circle(lon: float, lat: float, radius_m: float) -> dict:
    return {
        "type": "Feature",
        "properties": {"radius_m": radius_m},
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


@pytest.mark.parametrize("name", SHARED_SITES)
def test_each_shared_site_opens_with_its_zones_in_the_table(panel, name):
    assert panel.open_file(SITES_DIR / f"{name}.geojson")
    site = load_site(SITES_DIR / f"{name}.geojson")
    table = rows(panel)
    assert [(r[0], r[1]) for r in table] == [(z.name, ROLE_LABELS[z.role]) for z in site.zones]
    watch = [r for r in table if r[1] == "watch"]
    assert watch and all(r[2] in "12345" for r in watch)
    assert any(r[3].endswith("km²") for r in table if r[1] == "operating area")
    assert any(r[3].startswith("r ") for r in table if r[1] == "no-fly")
    assert name in shown(panel.file_label) and "*" not in shown(panel.file_label)
    assert "The site is valid." in shown(panel.messages_label)


def test_a_plan_file_opens_as_a_site_with_its_warnings(panel):
    assert panel.open_file(QGC_DIR / "geofence-home-base.plan")
    assert [r[1] for r in rows(panel)] == ["operating area", "no-fly", "launch"]
    assert "no rally points" in shown(panel.messages_label)
    assert WARNING_COLOR in panel.messages_label.text()


def test_a_broken_file_names_itself_and_the_old_site_stays(panel, tmp_path):
    panel.open_file(SITES_DIR / "algeciras-port.geojson")
    before = rows(panel)
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    assert not panel.open_file(broken)
    assert str(broken) in shown(panel.messages_label)
    assert "not valid JSON" in shown(panel.messages_label)
    assert ERROR_COLOR in panel.messages_label.text()
    assert rows(panel) == before
    assert panel.model.path == SITES_DIR / "algeciras-port.geojson"


def test_drawn_zones_join_the_table_and_validation_follows(panel, qtbot, screenshot):
    panel.open_file(SITES_DIR / "algeciras-port.geojson")
    area = panel.model.site.operating_areas[0].shape_deg.representative_point()
    messages: list[tuple[str, ...]] = []
    panel.model.messages.connect(messages.append)

    panel.set_next_zone(Role.NO_FLY, "Tanker berth")
    assert panel.add_drawn(circle(area.x, area.y, 120)) == 6
    panel.set_next_zone(Role.WATCH, "Ferry ramp", risk=4)
    assert panel.add_drawn(square(area.x + 0.004, area.y, 0.0015)) == 7
    assert rows(panel)[6][:3] == ("Tanker berth", "no-fly", "")
    assert rows(panel)[6][3] == "r 120 m"
    assert rows(panel)[7][:3] == ("Ferry ramp", "watch", "4")
    assert rows(panel)[7][3].endswith("km²")
    assert panel.selected_zone() == 7
    assert "*" in shown(panel.file_label)

    # A launch point outside the operating area is shown, and named, as an error.
    panel.set_next_zone(Role.LAUNCH, "Far pad")
    assert panel.add_drawn(circle(area.x + 0.2, area.y, 10)) == 8
    assert "launch point is outside the operating area" in messages[-1][0]
    assert ERROR_COLOR in panel.messages_label.text() and "Far pad" in shown(panel.messages_label)
    panel.table.selectRow(8)
    panel.delete_button.click()
    assert len(rows(panel)) == 8
    assert messages[-1] == ()

    # A figure-eight cannot be repaired unambiguously: the panel says redraw it.
    panel.set_next_zone(Role.WATCH, "Knot", risk=2)
    bow = [[area.x, area.y], [area.x + 0.003, area.y + 0.003], [area.x + 0.003, area.y], [area.x, area.y + 0.003]]
    panel.add_drawn(
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [bow + bow[:1]]}}
    )
    assert "self-intersecting polygon" in shown(panel.messages_label)
    panel.model.undo()
    assert "The site is valid." in shown(panel.messages_label)

    # A polygon is no launch point: refused inline, nothing added.
    panel.set_next_zone(Role.LAUNCH)
    assert not panel.draw_polygon_button.isEnabled()
    assert panel.add_drawn(square(area.x, area.y, 0.001)) is None
    assert "new launch 'Launch 2': a launch must be a Point" in shown(panel.messages_label)
    assert str(SITES_DIR) not in shown(panel.messages_label)
    assert len(rows(panel)) == 8

    panel.set_next_zone(Role.LAUNCH, "Far pad")
    panel.add_drawn(circle(area.x + 0.2, area.y, 10))
    panel.set_next_zone(Role.WATCH, "", risk=4)
    panel.table.selectRow(7)
    qtbot.wait(50)  # let the layout settle around the new messages
    screenshot(panel, "site-panel")


def test_zones_edit_in_place(panel, qtbot):
    panel.open_file(SITES_DIR / "algeciras-port.geojson")
    watch_row = [r[1] for r in rows(panel)].index("watch")
    spin = panel.table.cellWidget(watch_row, 2)
    spin.setValue(5)
    qtbot.waitUntil(lambda: panel.model.zones[watch_row].risk == 5)
    assert rows(panel)[watch_row][2] == "5"

    panel.table.item(watch_row, 0).setText("Outer anchorage")
    qtbot.waitUntil(lambda: panel.model.zones[watch_row].name == "Outer anchorage")

    # The fuel terminal circle becomes a watch zone: a polygon with a risk.
    circle_row = [r[3].startswith("r ") for r in rows(panel)].index(True)
    box = panel.table.cellWidget(circle_row, 1)
    box.setCurrentIndex(box.findText("watch"))
    box.activated.emit(box.currentIndex())
    qtbot.waitUntil(lambda: panel.model.zones[circle_row].role is Role.WATCH)
    assert rows(panel)[circle_row][1:3] == ("watch", "1")
    assert rows(panel)[circle_row][3].endswith("km²")
    assert panel.model.dirty


@pytest.mark.parametrize("suffix", [".geojson", ".kml"])
def test_save_and_read_back(panel, tmp_path, settings, suffix):
    panel.open_file(SITES_DIR / "tarifa-coast.geojson")
    area = panel.model.site.operating_areas[0].shape_deg.representative_point()
    panel.set_next_zone(Role.NO_FLY, "Lighthouse")
    panel.add_drawn(circle(area.x, area.y, 90))
    panel.set_next_zone(Role.WATCH, "Slipway", risk=4)
    panel.add_drawn(square(area.x + 0.01, area.y, 0.001))
    target = tmp_path / "out" / f"edited{suffix}"
    assert panel.save_file_as(target)
    assert "*" not in shown(panel.file_label) and str(target) in shown(panel.file_label)
    assert settings.value("site/last_folder") == str(target.parent)

    again = load_site(target)

    def described(zones):
        return sorted((z.role.value, z.name, z.risk, z.radius_m) for z in zones)

    assert described(again.zones) == described(panel.model.zones)
    for zone in panel.model.zones:
        twin = next(z for z in again.zones if z.name == zone.name)
        assert twin.shape_deg.equals_exact(zone.shape_deg, 1e-9)


def test_a_site_with_errors_is_not_saved(panel, tmp_path):
    panel.model.new_site("harbour")
    assert "no operating area" in shown(panel.messages_label)
    panel.set_next_zone(Role.OPERATING_AREA)
    panel.add_drawn(square(-5.43, 36.12, 0.01))
    panel.set_next_zone(Role.LAUNCH, "Outside")
    panel.add_drawn(circle(-5.3, 36.12, 5))
    assert not panel.save_file_as(tmp_path / "harbour.geojson")
    assert "not saved: " in shown(panel.messages_label)
    assert not (tmp_path / "harbour.geojson").exists()
    assert list(tmp_path.iterdir()) == []
