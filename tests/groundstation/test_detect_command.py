"""`borderwatch detect` on a video file of the synthetic anchorage, its errors, and its --show window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from groundstation.commands.cli import main
from missions.formats import load_site
from sitl.synthetic.scenarios import zone_frames
from sitl.synthetic.video import write_video
from sitl.testdata import SITES_DIR
from vision.detections import Detection, Detections, ObjectClass
from vision.palette import CLASS_BGR
from vision.pipeline import annotate

# Screenshots the GUI tests save, to look at (git-ignored).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"


@pytest.fixture(scope="module")
def anchorage_video(tmp_path_factory):
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    _, frames = zone_frames(site, "Eastern anchorage", 20, fps=10)
    return write_video(tmp_path_factory.mktemp("video") / "anchorage.mp4", frames, fps=10)


def test_detect_prints_what_it_sees_in_a_file(anchorage_video, capsys):
    assert main(["detect", "--source", str(anchorage_video), "--frames"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("frame ")]
    assert len(lines) == 20
    assert sum("vessel" in line for line in lines) >= 15
    assert "detect: 20 frames" in out


def test_detect_without_pose_places_nothing_and_raises_no_alerts(anchorage_video, tmp_path, capsys):
    # Without --pose nothing can be placed on the map, so no zone rule can fire: said, not guessed.
    alerts = tmp_path / "alerts.jsonl"
    site = str(SITES_DIR / "algeciras-port.geojson")
    assert main(["detect", "--source", str(anchorage_video), "--site", site, "--alerts", str(alerts)]) == 0
    out = capsys.readouterr().out
    assert "0 alerts" in out
    assert not alerts.exists() or alerts.read_text() == ""


SITE = str(SITES_DIR / "algeciras-port.geojson")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "/nowhere/video.mp4"], "/nowhere/video.mp4: no such file"),
        (["--source", "VIDEO", "--conf", "1.5"], "--conf must be between 0 and 1"),
        (["--source", "VIDEO", "--model", "/nowhere/model.onnx"], "/nowhere/model.onnx"),
        (["--source", "VIDEO", "--site", "/nowhere/site.geojson"], "/nowhere/site.geojson"),
        (["--source", "VIDEO", "--udp", "localhost"], "expected HOST:PORT"),
        (["--source", "VIDEO", "--max-frames", "0"], "--max-frames must be at least 1"),
        (["--source", "VIDEO", "--ais", "udp://127.0.0.1:0"], "give the site and the camera's pose"),
        (["--source", "VIDEO", "--ais", "ftp://x", "--site", SITE, "--pose", "udpin:127.0.0.1:0"], "ftp://x"),
    ],
)
def test_detect_names_bad_input_and_exits_2(anchorage_video, capsys, args, message):
    args = [str(anchorage_video) if a == "VIDEO" else a for a in args]
    assert main(["detect", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.gui
def test_detect_show_opens_a_window_and_closes_with_the_stream(anchorage_video, capsys):
    assert main(["detect", "--source", str(anchorage_video), "--show"]) == 0
    assert "detect: 20 frames" in capsys.readouterr().out


@pytest.mark.gui
def test_video_view_draws_boxes_classes_and_track_ids(qtbot):
    from groundstation.app.video_window import VideoView

    site = load_site(SITES_DIR / "algeciras-port.geojson")
    _, frames = zone_frames(site, "Eastern anchorage", 1)
    boat = Detection(ObjectClass.VESSEL, 0.91, (600.0, 300.0, 700.0, 360.0), track_id=7)
    image = annotate(frames[0], Detections("drone-1", 0.0, 0, (boat,)))
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(640, 360)
    view.show()
    view.show_bgr(image)
    qtbot.waitExposed(view)
    shot = view.grab().toImage()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot.save(str(SCREENSHOTS / "detect-video-view.png"))
    assert view.frames_shown == 1
    # The box is drawn in the vessel colour where the boat is: at half scale, x 300–350, y 150–180.
    edge = shot.pixelColor(300, 165)
    blue, green, red = CLASS_BGR[ObjectClass.VESSEL]
    assert (edge.red(), edge.green(), edge.blue()) == pytest.approx((red, green, blue), abs=60)
    assert np.asarray(image[300, 600]).tolist() == list(CLASS_BGR[ObjectClass.VESSEL])
