"""Shared by the app's tests: where screenshots go, and how a widget is saved as one."""

from __future__ import annotations

from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[3] / "out" / "screenshots"


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
