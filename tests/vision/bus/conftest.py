"""Alerts and an evidence log to put on the bus, without a broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.detections import ObjectClass
from vision.evidence import EvidenceLog


def make_alert(n: int) -> Alert:
    return Alert(
        alert_id=f"cam1:enter-eastern-anchorage-{n}",
        time_s=1_750_000_000.0 + n,
        iso_time="2025-06-15T15:06:40.000Z",
        rule=RuleKind.ENTER,
        zone="Eastern anchorage",
        risk=4,
        severity=AlertSeverity.HIGH,
        object_class=ObjectClass.VESSEL,
        track_id=n,
        lat_deg=36.127,
        lon_deg=-5.4245,
        count=1,
        message=f"vessel {n} entered Eastern anchorage — ñ",
        source="cam1",
    )


def fake_jpeg(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + f"frame {n}".encode() + bytes(range(256)) + b"\xff\xd9"


@pytest.fixture
def alert() -> Callable[[int], Alert]:
    return make_alert


@pytest.fixture
def jpeg() -> Callable[[int], bytes]:
    return fake_jpeg


@pytest.fixture
def evidence_dir(tmp_path: Path) -> Path:
    """Three records, the second without a snapshot."""
    directory = tmp_path / "evidence"
    with EvidenceLog.open(directory) as log:
        for n in (1, 2, 3):
            jpeg = None if n == 2 else fake_jpeg(n)
            log.append("alert", {"alert": make_alert(n).to_json_dict()}, snapshot_jpeg=jpeg, time_s=1_750_000_000 + n)
    return directory
