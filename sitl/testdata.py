"""Where the shared test data lives: real port sites and QGroundControl plans.

It sits beside the checkout (`../shared/data`); `BORDERWATCH_SHARED_DATA` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path:
    override = os.environ.get("BORDERWATCH_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA = shared_data_dir()
SITES_DIR = SHARED_DATA / "sites"
QGC_DIR = SHARED_DATA / "qgc"
