"""`borderwatch gui` as a user starts it: a real process, a real window (offscreen), a screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtGui import QImage

from sitl.testdata import SITES_DIR

pytestmark = pytest.mark.gui

SITE = SITES_DIR / "algeciras-port.geojson"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"


def borderwatch(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "groundstation.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
    )


def test_opens_a_site_in_the_window_and_keeps_its_settings(tmp_path):
    shot = SCREENSHOTS / "gui-command.png"
    settings = tmp_path / "settings.ini"
    done = borderwatch("gui", str(SITE), "--settings", str(settings), "--quit-after", "6", "--screenshot", str(shot))
    assert done.returncode == 0, done.stderr
    image = QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 600
    # The map sits between the docks; the site panel's green "valid" text must not count.
    columns = range(int(image.width() * 0.3), int(image.width() * 0.55), 2)
    pixels = np.array([[image.pixelColor(x, y).name() for x in columns] for y in range(0, image.height(), 2)])
    assert (pixels == "#2e7d32").any(), "the operating area's green outline is not drawn on the map"
    assert "window" in settings.read_text(), "the layout is kept on exit"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.geojson"], "missing.geojson"),
        (["--tiles", "nowhere.mbtiles"], "--tiles nowhere.mbtiles"),
        (["--video", "a.sdp", "--pose", "udpin://0.0.0.0:1", "udpin://0.0.0.0:2"], "2 --pose URLs for 1 --video"),
        (["--run", "out/no-such-run"], "--run out/no-such-run: not a run folder (it has no run.json)"),
        (["--ais", "ftp://nowhere:10110"], "--ais ftp://nowhere:10110: not an AIS source"),
    ],
)
def test_bad_arguments_are_one_line_before_any_window(args, says):
    done = borderwatch("gui", *args, timeout_s=60.0)
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
