"""A recorded run opened in the app: the Alerts panel and the map show each alert as its verified
evidence record says it, with who signed it; what the evidence does not bear out is in red, with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor

from groundstation.app.alerts_panel import UNVERIFIED_COLOR, AlertsModel
from groundstation.runs.recorder import ALERTS, EVIDENCE, RunRecorder
from missions.formats import load_site
from sitl.testdata import SITES_DIR
from vision.alerts import Alert, RuleKind
from vision.camera import Intrinsics
from vision.detections import ObjectClass
from vision.evidence import canonical_json, record_sha256

ZONE = "Eastern anchorage"
START_S = 1_760_000_000.0
EDITED = "nothing to see here"


def _snapshot(text: str) -> bytes:
    image = np.full((180, 320, 3), 70, np.uint8)
    cv2.putText(image, text, (20, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 255), 3)
    return cv2.imencode(".jpg", image)[1].tobytes()


def record_run(run_dir: Path, n: int = 3) -> list[Alert]:
    """A closed run whose station raised `n` alerts in the anchorage, each with a signed evidence record."""
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    zone = next(z for z in site.watch if z.name == ZONE)
    now = [START_S]
    recorder = RunRecorder.create(run_dir, site, [("vehicle 1", "udp://")], Intrinsics(), clock=lambda: now[0])
    alerts = []
    for track in range(1, n + 1):
        now[0] += 10.0
        centre = site.local(zone).centroid
        lon, lat = site.frame.lonlat(centre.x + 40.0 * track, centre.y)
        alert = Alert(
            alert_id=f"drone-1:enter-{track}", time_s=now[0], iso_time="2025-10-09T08:53:20.000Z",
            rule=RuleKind.ENTER, zone=ZONE, risk=zone.risk or 3, severity="high", object_class=ObjectClass.VESSEL,
            track_id=track, lat_deg=lat, lon_deg=lon, count=1, message=f"vessel {track} entered {ZONE}",
            source="drone-1",
        )  # fmt: skip
        recorder.emit(alert)
        recorder.evidence.append("alert", {"alert": alert.to_json_dict()}, _snapshot(f"TRACK {track}"), time_s=now[0])
        alerts.append(alert)
    recorder.close()
    return alerts


def _rows(model: AlertsModel) -> dict[str, int]:
    return {model.entry(row).alert.alert_id: row for row in range(model.rowCount())}


def test_a_recorded_run_shows_its_alerts_as_the_evidence_says_them(window, qtbot, tmp_path, screenshot):
    run_dir = tmp_path / "runs" / "patrol"
    alerts = record_run(run_dir)
    lines = [json.loads(line) for line in (run_dir / ALERTS).read_text().splitlines()]
    lines[1]["message"] = EDITED  # someone edits what alerts.jsonl says of the second alert
    forged = {**lines[0], "alert_id": "drone-1:enter-99", "message": "vessel 99 entered Eastern anchorage",
              "lat_deg": lines[0]["lat_deg"] - 0.0004}  # fmt: skip
    (run_dir / ALERTS).write_text("".join(json.dumps(a) + "\n" for a in [*lines, forged]))

    assert window.open_run(run_dir)
    model = window.alerts_model
    rows = _rows(model)
    assert set(rows) == {a.alert_id for a in alerts} | {"drone-1:enter-99"}
    key = json.loads((run_dir / EVIDENCE / "evidence.jsonl").read_text().splitlines()[0])["signer"]

    # The edited alert is shown as its signed record says it, and the edit is told beside it.
    edited = model.entry(rows[alerts[1].alert_id])
    assert edited.verified and edited.alert.message == alerts[1].message
    assert f"signed by key {key}: signature verified (evidence record 2)" in edited.evidence
    assert "alerts.jsonl line 2 differs from it in message" in edited.evidence
    # The alert with no record is red, with the reason.
    row = rows["drone-1:enter-99"]
    entry = model.entry(row)
    assert entry.verified is False and entry.evidence == "UNVERIFIED (alerts.jsonl line 4): no evidence record"
    evidence_cell = model.index(row, AlertsModel.EVIDENCE)
    assert model.data(evidence_cell) == entry.evidence
    assert model.data(model.index(row, AlertsModel.MESSAGE), Qt.ItemDataRole.ForegroundRole).color() == QColor(
        UNVERIFIED_COLOR
    )
    verified_row = rows[alerts[0].alert_id]
    assert model.data(model.index(verified_row, AlertsModel.MESSAGE), Qt.ItemDataRole.ForegroundRole) != QColor(
        UNVERIFIED_COLOR
    )

    panel = window.alerts_panel
    assert "4 alert(s), 3 verified, 1 UNVERIFIED (in red)" in panel.message.text()
    assert f"signed by key {key}" in panel.message.text() and "intact" in panel.message.text()
    assert "c62828" in panel.message.styleSheet()

    # A verified alert's snapshot is the one its record holds.
    panel.select(alerts[2].alert_id)
    qtbot.waitUntil(lambda: panel.preview.pixmap() is not None and not panel.preview.pixmap().isNull())
    third = json.loads((run_dir / EVIDENCE / "evidence.jsonl").read_text().splitlines()[2])
    held = (run_dir / EVIDENCE / "snapshots" / third["snapshot"]).read_bytes()
    assert model.entry(rows[alerts[2].alert_id]).snapshot_jpeg == held

    # The map has every alert; the unverified one has its dashed red ring.
    qtbot.waitUntil(lambda: len(window.map.js("bw.inspect.alerts()") or []) == 4, timeout=10000)
    assert window.map.js("bw.inspect.alertUnverified('drone-1:enter-99')") is True
    assert window.map.js(f"bw.inspect.alertUnverified('{alerts[0].alert_id}')") is False
    window.resize(1400, 900)
    qtbot.wait(300)
    screenshot(window, "app-recorded-run")


def test_a_forged_record_turns_its_alert_and_those_after_it_red(window, qtbot, tmp_path):
    run_dir = tmp_path / "runs" / "patrol"
    alerts = record_run(run_dir)
    log = run_dir / EVIDENCE / "evidence.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    # The forgery of the issue: edit the second alert's record and recompute every hash after it.
    records[1]["payload"]["alert"]["message"] = EDITED
    for i, record in enumerate(records):
        if i:
            record["prev_sha256"] = records[i - 1]["sha256"]
        record["sha256"] = record_sha256(record)
    log.write_text("".join(canonical_json(r) + "\n" for r in records))

    assert window.open_run(run_dir)
    model = window.alerts_model
    rows = _rows(model)
    assert model.entry(rows[alerts[0].alert_id]).verified
    forged = model.entry(rows[alerts[1].alert_id])
    assert forged.verified is False and forged.alert.message == alerts[1].message  # as alerts.jsonl says it
    assert "record 2" in forged.evidence and "signature" in forged.evidence
    assert model.entry(rows[alerts[2].alert_id]).verified is False
    assert "TAMPERED" in window.alerts_panel.message.text()


def test_a_folder_that_is_no_run_is_said_and_what_was_shown_stays(window, qtbot, tmp_path):
    run_dir = tmp_path / "runs" / "patrol"
    record_run(run_dir, n=2)
    assert window.open_run(run_dir)
    assert window.alerts_model.rowCount() == 2
    (tmp_path / "empty").mkdir()
    assert not window.open_run(tmp_path / "empty")
    message = window.alerts_panel.message.text()
    assert f"cannot open the run {tmp_path / 'empty'}" in message and "run.json" in message
    assert window.alerts_model.rowCount() == 2
