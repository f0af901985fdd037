"""Shared by the app's tests: where screenshots go, and how a widget is saved as one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import QCoreApplication, QEvent

from groundstation.app.async_loop import AsyncLoop
from groundstation.app.main_window import MainWindow
from groundstation.app.settings import RUNS_DIR_KEY, app_settings
from groundstation.app.tiles import TileSource

SCREENSHOTS = Path(__file__).resolve().parents[3] / "out" / "screenshots"


@pytest.fixture(scope="session", autouse=True)
def _windows_deleted_before_exit(qapp):
    """Every window deleted while Qt still runs: a web page that outlives WebEngine's profile at
    interpreter exit segfaults the process after the tests have passed."""
    yield
    for widget in qapp.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    qapp.processEvents()


@pytest.fixture
def screenshot():
    """`screenshot(widget, "name")` saves out/screenshots/name.png (look at them) and returns its path."""

    def save(widget, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise AssertionError(f"could not save the screenshot {path}")
        return path

    return save


@pytest.fixture
def window(qtbot, tmp_path):
    """The operator's window, its settings and runs under tmp_path, a plain map background, the map ready."""
    settings = app_settings(tmp_path / "settings.ini")
    settings.setValue(RUNS_DIR_KEY, str(tmp_path / "runs"))
    loop = AsyncLoop()
    loop.start()
    w = MainWindow(settings, loop=loop, tiles=TileSource.none())
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.map.is_ready, timeout=20000)
    yield w
    w.close()
    loop.stop()
    w.deleteLater()
