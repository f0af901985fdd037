"""Where the test data lives: real port sites and QGroundControl plans.

The project's shared data beside the checkout (`../shared/data`) when it is there, or where
`BORDERWATCH_SHARED_DATA` points; otherwise the copies in the checkout — the sites shipped
with the package (`missions/data/sites`) and the plans in `tests/data/qgc` — so a clone
anywhere runs every test.
"""

from __future__ import annotations

import os
from pathlib import Path

from missions.formats import BUNDLED_SITES

_CHECKOUT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    override = os.environ.get("BORDERWATCH_SHARED_DATA")
    if override:
        return Path(override)
    beside = _CHECKOUT.parent / "shared" / "data"
    return beside if beside.is_dir() else None


SHARED_DATA = shared_data_dir()
SITES_DIR = SHARED_DATA / "sites" if SHARED_DATA is not None else BUNDLED_SITES
QGC_DIR = SHARED_DATA / "qgc" if SHARED_DATA is not None else _CHECKOUT / "tests" / "data" / "qgc"
