"""A .pt model (ultralytics, torch) loaded after the map's web view has started must not crash the app.

Chromium inside Qt WebEngine and triton's native library crash a process that loads triton
after a web view started; map_view keeps torch from importing triton. This runs in a fresh
process, since the crash takes the whole interpreter with it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SCRIPT = """
import sys
import numpy as np
from PyQt6.QtWidgets import QApplication
from groundstation.app.map_view import MapView
from vision.detectors import load_detector
from vision.detectors.base import detect_image
app = QApplication(sys.argv[:1])
view = MapView()
view.show()
for _ in range(50):
    app.processEvents()
detector = load_detector(sys.argv[1], "ultralytics")
found = detect_image(detector, np.full((256, 416, 3), 90, np.uint8))
print("detected", len(found))
"""


def test_a_pt_model_loads_after_the_map_has_started():
    from vision.detectors import DEFAULT_MODEL

    pt = DEFAULT_MODEL.with_suffix(".pt")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(pt)], capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # ultralytics may print a line of its own first (creating its settings file in a fresh checkout).
    assert any(line.startswith("detected ") for line in done.stdout.splitlines()), "the detector ran"
