"""The alerts panel: newest first, one row per alert id, acknowledge, export and read back, selection."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor

from groundstation.app.alerts_panel import AlertsModel, AlertsPanel
from groundstation.runs.style import SEVERITY_COLORS
from vision.alerts import Alert, RuleKind, severity
from vision.detections import ObjectClass
from vision.pipeline import snapshot_jpeg

pytestmark = pytest.mark.gui

T0 = 1_750_000_000.0


def make_alert(n: int, time_s: float, risk: int = 4, zone: str = "Eastern anchorage") -> Alert:
    return Alert(
        alert_id=f"drone-1:enter-eastern-anchorage-{n}",
        time_s=time_s,
        iso_time="",
        rule=RuleKind.ENTER,
        zone=zone,
        risk=risk,
        severity=severity(risk),
        object_class=ObjectClass.VESSEL,
        track_id=n,
        lat_deg=36.12 + n * 1e-4,
        lon_deg=-5.42 - n * 1e-4,
        count=1,
        message=f"vessel {n} entered {zone}",
        source="drone-1",
    )


def jpeg(n: int) -> bytes:
    image = np.full((180, 320, 3), (120, 80, 30), np.uint8)
    return snapshot_jpeg(image, (100.0 + n, 60.0, 180.0 + n, 110.0), f"vessel {n}")


@pytest.fixture
def panel(qtbot):
    model = AlertsModel()
    widget = AlertsPanel(model)
    qtbot.addWidget(widget)
    widget.resize(900, 300)
    widget.show()
    return widget


def test_newest_on_top_repeats_dropped_and_the_count_follows(panel, qtbot):
    model = panel.model
    counts = []
    panel.unacknowledged_changed.connect(counts.append)
    for n, t in ((1, T0 + 5), (2, T0 + 20), (3, T0 + 10)):
        assert model.add(make_alert(n, t, risk=n + 2), jpeg(n))
    assert not model.add(make_alert(2, T0 + 20), jpeg(2)), "a repeat of an alert id must be dropped"
    assert [e.alert.track_id for e in model.entries()] == [2, 3, 1]
    assert model.rowCount() == 3
    assert counts[-1] == 3 and "3 unacknowledged" in panel.title.text()
    top = model.index(0, AlertsModel.SEVERITY)
    assert model.data(top) == "high"
    assert model.data(top, Qt.ItemDataRole.BackgroundRole).color() == QColor(SEVERITY_COLORS["high"])
    assert set(SEVERITY_COLORS) == {severity(r) for r in range(1, 6)}
    assert model.data(model.index(0, AlertsModel.TIME)) == "15:07:00"


def test_acknowledge_selected_marks_time_and_lowers_the_count(panel, qtbot):
    model = panel.model
    for n in range(3):
        model.add(make_alert(n, T0 + n), jpeg(n))
    assert not panel.acknowledge_button.isEnabled()
    panel.select(model.entry(0).alert.alert_id)
    assert panel.acknowledge_button.isEnabled()
    with qtbot.waitSignal(panel.unacknowledged_changed) as blocker:
        qtbot.mouseClick(panel.acknowledge_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [2]
    acknowledged = model.entry(0)
    assert acknowledged.acknowledged and acknowledged.acknowledged_at.endswith("Z")
    assert model.data(model.index(0, AlertsModel.ACKNOWLEDGED))
    assert not panel.acknowledge_button.isEnabled()
    assert "2 unacknowledged of 3" in panel.title.text()
    assert not model.acknowledge(acknowledged.alert.alert_id), "acknowledging twice changes nothing"


@pytest.mark.parametrize("suffix", [".csv", ".geojson", ".jsonl"])
def test_export_reads_back(panel, tmp_path, suffix):
    model = panel.model
    alerts = [make_alert(n, T0 + n) for n in range(3)]
    for a in alerts:
        model.add(a, jpeg(a.track_id))
    model.acknowledge(alerts[1].alert_id, time_s=T0 + 60)
    path = panel.export(tmp_path / f"alerts{suffix}")
    assert path is not None and "3 alerts exported" in panel.message.text()
    text = path.read_text(encoding="utf-8")
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        assert [r["alert_id"] for r in rows] == [a.alert_id for a in alerts]
        assert float(rows[0]["lat_deg"]) == alerts[0].lat_deg
        assert [r["acknowledged_at"] for r in rows] == ["", "2025-06-15T15:07:40Z", ""]
    elif suffix == ".geojson":
        features = json.loads(text)["features"]
        assert [f["geometry"] for f in features] == [
            {"type": "Point", "coordinates": [a.lon_deg, a.lat_deg]} for a in alerts
        ]
        assert [Alert.from_json_dict(f["properties"]) for f in features] == alerts
        assert features[1]["properties"]["acknowledged_at"] == "2025-06-15T15:07:40Z"
    else:
        records = [json.loads(line) for line in text.splitlines()]
        assert [Alert.from_json_dict(r) for r in records] == alerts
        assert [r["acknowledged_at"] is not None for r in records] == [False, True, False]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("alerts.xlsx", "name it .csv, .geojson or .jsonl"), ("missing-folder/alerts.csv", "cannot write the alerts")],
)
def test_export_refusal_is_said_in_the_panel(panel, tmp_path, name, expected):
    panel.model.add(make_alert(1, T0), None)
    assert panel.export(tmp_path / name) is None
    assert expected in panel.message.text()
    assert not (tmp_path / name).exists()


def test_clicking_a_row_selects_the_alert_and_shows_its_snapshot(panel, qtbot):
    model = panel.model
    model.add(make_alert(1, T0), jpeg(1))
    model.add(make_alert(2, T0 + 1), None)
    table = panel.table
    rect = table.visualRect(model.index(1, AlertsModel.ZONE))
    with qtbot.waitSignal(panel.alert_selected) as blocker:
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args[0].track_id == 1
    assert panel.preview.pixmap() is not None and not panel.preview.pixmap().isNull()
    rect = table.visualRect(model.index(0, AlertsModel.ZONE))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert "No snapshot" in panel.preview.text()
    with qtbot.waitSignal(panel.alert_selected) as blocker:
        assert panel.select(make_alert(1, T0).alert_id), "the map's alert_clicked selects the row, as a click would"
    assert blocker.args[0] == model.alert(1)
    assert not panel.select("drone-9:enter-nowhere-1")
    assert not model.add(make_alert(2, T0 + 1), jpeg(2))
    assert model.find(make_alert(2, T0).alert_id).snapshot_jpeg, "a repeat brings the snapshot a first copy lacked"
