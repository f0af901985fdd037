"""The video panel on a simulated drone's camera: boxes on the live video, an alert with its snapshot
in the alerts panel, streams that fail saying so, and an interface that stays responsive with two.

Screenshots: out/screenshots/video-panel.png, video-panel-two-streams.png, video-panel-no-video.png,
alerts-panel.png.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QImage

from groundstation.app.alerts_panel import AlertsModel, AlertsPanel
from groundstation.app.video_panel import VideoPanel, best_columns
from groundstation.app.vision_worker import StreamConfig
from groundstation.runs.reader import read_run
from groundstation.runs.recorder import RunRecorder
from missions.formats import load_site
from sitl.ports import free_port_block
from sitl.synthetic.cameras import SimCameras
from sitl.synthetic.scenarios import hover_over_zone
from sitl.testdata import SITES_DIR
from vision.alerts import RuleKind
from vision.detections import ObjectClass
from vision.palette import CLASS_BGR

pytestmark = [pytest.mark.gui, pytest.mark.slow]

ZONE = "Eastern anchorage"
VESSEL_BOX_RGB = CLASS_BGR[ObjectClass.VESSEL][::-1]  # vision.pipeline.annotate draws vessels in this colour
MAX_GAP_S = 0.25  # a pause a user notices as a freeze


@pytest.fixture(scope="module")
def site():
    return load_site(SITES_DIR / "algeciras-port.geojson")


@pytest.fixture(scope="module")
def hover(site, tmp_path_factory):
    with hover_over_zone(site, ZONE, tmp_path_factory.mktemp("video"), 60.0) as scenario:
        yield scenario


def shows_boxes(view) -> bool:
    pixmap = view.pixmap()
    if pixmap is None or pixmap.isNull():
        return False
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    rows = np.frombuffer(image.constBits().asstring(stride * height), np.uint8).reshape(height, stride)
    rgb = rows[:, : width * 3].reshape(height, width, 3).astype(int)
    near = np.abs(rgb - np.array(VESSEL_BOX_RGB)).max(axis=2) < 40
    return int(near.sum()) > 30


def make_panel(qtbot, site, recorder=None) -> VideoPanel:
    panel = VideoPanel(lambda: site, lambda: recorder)
    qtbot.addWidget(panel)
    panel.resize(1000, 640)
    panel.show()
    return panel


def test_a_stream_shows_boxes_and_raises_an_alert_with_its_snapshot(qtbot, hover, site, tmp_path, screenshot):
    recorder = RunRecorder.create(tmp_path / "run", site, [("vehicle 1", hover.onboard_url)])
    panel = make_panel(qtbot, site, recorder)
    alerts = AlertsPanel(AlertsModel())
    qtbot.addWidget(alerts)
    alerts.resize(1000, 320)
    alerts.show()
    panel.alert.connect(alerts.add)
    detections, errors = [], []
    panel.detections.connect(detections.append)
    panel.error.connect(errors.append)

    worker = panel.add_stream(StreamConfig("drone-1", str(hover.sdp_path), hover.onboard_url, vehicle=0))
    assert [c.name for c in panel.streams()] == ["drone-1"]

    def entered():
        return next(
            (e for e in alerts.model.entries() if e.alert.rule is RuleKind.ENTER and e.alert.zone == ZONE), None
        )

    qtbot.waitUntil(lambda: entered() is not None, timeout=40_000)
    view = panel.view("drone-1")
    qtbot.waitUntil(lambda: shows_boxes(view), timeout=10_000)
    qtbot.waitUntil(lambda: "live" in panel.caption("drone-1") and "fps" in panel.caption("drone-1"), timeout=5_000)
    qtbot.waitUntil(lambda: view.frames_shown > 10, timeout=5_000)
    alert = entered().alert
    assert entered().snapshot_jpeg.startswith(b"\xff\xd8")
    assert alert.source == "drone-1" and alert.severity in ("low", "medium", "high", "critical")
    assert any(d.lat_deg is not None and d.track_id is not None for batch in detections for d in batch)
    assert "unacknowledged" in alerts.title.text()

    alerts.select(alert.alert_id)
    with qtbot.waitSignal(alerts.alert_selected) as selected:
        alerts.table.activated.emit(alerts.model.index(alerts.model.row_of(alert.alert_id), 0))
    assert selected.args[0] == alert
    assert alerts.preview.pixmap() is not None and not alerts.preview.pixmap().isNull()
    screenshot(panel, "video-panel")
    screenshot(alerts, "alerts-panel")

    assert panel.remove_stream("drone-1")
    assert panel.streams() == ()
    qtbot.waitUntil(lambda: not worker.running, timeout=5_000)
    recorder.close()
    assert errors == []

    run = read_run(tmp_path / "run")  # what the stream left in the run folder
    assert run.frames and {f.vehicle for f in run.frames} == {0}
    seen = [f.footprint_deg for f in run.frames if f.footprint_deg is not None and f.footprint_deg.area > 0]
    assert seen, "frames carry the camera's ground footprint"
    assert alert.alert_id in {a.alert_id for a in run.alerts}
    assert run.detections
    assert run.evidence is not None and run.evidence.ok, "the alert's evidence is in the run's log and verifies"
    assert alert.alert_id in run.snapshots


def test_two_streams_keep_the_interface_responsive(qtbot, hover, site, tmp_path, screenshot):
    # The same drone's camera streamed a second time, to a port of its own.
    with SimCameras(hover.fleet, hover.world, tmp_path / "second", fps=10, base_port=free_port_block(4), truth=False):
        panel = make_panel(qtbot, site)
        names = ("drone-1", "drone-1 copy")
        panel.add_stream(StreamConfig(names[0], str(hover.sdp_path), hover.onboard_url))
        panel.add_stream(StreamConfig(names[1], str(tmp_path / "second" / "camera-1.sdp")))
        qtbot.waitUntil(lambda: all(panel.view(n).frames_shown >= 5 for n in names), timeout=20_000)

        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        shown_before = [panel.view(n).frames_shown for n in names]
        timer.start()
        qtbot.wait(5_000)
        timer.stop()
        shown = [panel.view(n).frames_shown - before for n, before in zip(names, shown_before, strict=True)]
        gaps = np.diff(ticks)
        print(f"ticks {len(ticks)}, max gap {gaps.max() * 1000:.0f} ms, frames shown in 5 s: {shown}")
        print(*(panel.caption(n) for n in names), sep="\n")
        screenshot(panel, "video-panel-two-streams")
        assert gaps.max() < MAX_GAP_S, f"the interface froze for {gaps.max() * 1000:.0f} ms with two streams"
        assert min(shown) >= 10, f"frames shown in 5 s per stream: {shown}"
        panel.stop_all()
        assert not any(panel.worker(n).running for n in names)


@pytest.mark.parametrize("case", ["missing SDP", "dead port", "bad model"])
def test_a_failing_stream_says_so_and_the_app_carries_on(qtbot, site, tmp_path, screenshot, case):
    panel = make_panel(qtbot, site)
    errors: list[str] = []
    panel.error.connect(errors.append)
    if case == "missing SDP":
        config = StreamConfig("camera-9", str(tmp_path / "camera-9.sdp"))
        expected, status = "camera-9.sdp: no such file", "failed"
    elif case == "dead port":
        config = StreamConfig("camera-9", f"udp://127.0.0.1:{free_port_block(2)}")
        expected, status = "no video for 3 s", "no video for"
    else:
        model = tmp_path / "model.onnx"
        model.write_bytes(b"not a model")
        config = StreamConfig("camera-9", str(tmp_path / "camera-9.sdp"), model=str(model))
        expected, status = "model.onnx", "failed"
    worker = panel.add_stream(config)

    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    qtbot.waitUntil(lambda: bool(errors), timeout=8_000)
    qtbot.waitUntil(lambda: status in panel.caption("camera-9"), timeout=2_000)
    qtbot.wait(500)
    timer.stop()
    assert errors[0].startswith("camera-9: ") and expected in errors[0], errors
    assert len(errors[0].splitlines()) == 1
    assert panel.view("camera-9").text() == errors[0], "the tile says what went wrong where the video would be"
    if case == "dead port":
        screenshot(panel, "video-panel-no-video")
    assert len(ticks) > 15 and np.diff(ticks).max() < MAX_GAP_S
    if case == "dead port":
        assert worker.running, "a dead stream keeps trying"
    else:
        qtbot.waitUntil(lambda: not worker.running, timeout=3_000)
    panel.stop_all()
    assert not worker.running


def test_the_add_control_names_streams_and_refuses_an_empty_source(qtbot, site, tmp_path):
    panel = make_panel(qtbot, site)
    panel.add_button.click()
    assert panel.message.isVisible() and "no source given" in panel.message.text()
    assert panel.streams() == ()
    sdp = str(tmp_path / "camera-2.sdp")
    for _ in range(2):
        panel.source_edit.setText(sdp)
        panel.pose_edit.setText("udpout:127.0.0.1:14581")
        panel.add_button.click()
    assert [(c.name, c.source, c.pose_url) for c in panel.streams()] == [
        ("camera-2", sdp, "udpout:127.0.0.1:14581"),
        ("camera-2 (2)", sdp, "udpout:127.0.0.1:14581"),
    ]
    assert not panel.message.isVisible()
    assert panel.remove_stream("camera-2") and [c.name for c in panel.streams()] == ["camera-2 (2)"]
    panel.stop_all()


@pytest.mark.parametrize(
    ("tiles", "size", "columns"),
    [(1, (800, 600), 1), (2, (560, 700), 1), (2, (1400, 400), 2), (4, (1200, 700), 2), (3, (400, 1200), 1)],
)
def test_tiles_stack_in_a_tall_dock_and_sit_side_by_side_in_a_wide_one(tiles, size, columns):
    assert best_columns(tiles, *size) == columns
