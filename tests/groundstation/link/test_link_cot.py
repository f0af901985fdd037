"""`borderwatch cot`: a real broker, a unit publishing on it, the gateway, and a TAK receiver on loopback."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from groundstation.link.broker import Broker
from sitl.tak import TakReceiver, cot_schema_problems
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus.payloads import alert_payload, detections_payload, tracks_payload
from vision.bus.topics import unit_topic
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.camera import CameraPose
from vision.cot.events import iso
from vision.detections import Detections, ObjectClass

SITE_FILE = Path(__file__).parents[2] / "data" / "sites" / "algeciras-north.geojson"
SITE = "algeciras"
LAT, LON = 36.1320, -5.4310


def gateway(broker: Broker, pki_dir: Path, url: str, duration_s: float, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "groundstation.commands.cli", "cot", "--broker", broker.address.url,
         "--pki", str(pki_dir), "--site", str(SITE_FILE), "--bus-site", SITE, "--cot", url,
         "--duration", str(duration_s), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def is_stale(event) -> bool:
    return event.get("stale") == event.get("time")


def track(kind: TrackEventKind, t: float, north_m: float = 0.0) -> TrackEvent:
    return TrackEvent(
        kind=kind, track_id=3, source="cam1", object_class=ObjectClass.VESSEL, time_s=t,
        lat_deg=LAT + north_m / 111_000.0, lon_deg=LON, error_m=2.5, course_deg=0.0, speed_mps=2.0,
        confidence=0.8, first_seen_s=t if kind is TrackEventKind.NEW else t - 5, last_seen_s=t,
    )  # fmt: skip


def test_gateway_puts_a_units_picture_on_tak_and_nothing_a_forger_says(broker, pki_dir, peer, tmp_path):
    unit = peer("unit-algeciras-1")
    with TakReceiver.tcp() as tak:
        proc = gateway(broker, pki_dir, tak.url, 12.0)
        try:
            # The gateway is up once the zones arrive (its first tick).
            assert tak.wait_for(lambda got: any(".zone." in r.uid for r in got), 8.0), proc.stdout
            t = time.time()
            unit.publish(unit_topic(SITE, 1, "tracks"), tracks_payload(SITE, 1, track(TrackEventKind.NEW, t)))
            pose = CameraPose(LAT - 0.001, LON, 70.0)
            detections = Detections("cam1", t, 0, (), pose)
            unit.publish(unit_topic(SITE, 1, "detections"), detections_payload(SITE, 1, detections, pose))
            alert = Alert(
                f"cam1:enter-{SITE}-3", t, iso(t), RuleKind.ENTER, "Eastern anchorage", 4, AlertSeverity.HIGH,
                ObjectClass.VESSEL, 3, LAT, LON, 1, "vessel 3 entered Eastern anchorage", "cam1",
            )  # fmt: skip
            unit.publish(unit_topic(SITE, 1, "alerts"), alert_payload(SITE, 1, alert))
            # A unit speaking for another is dropped by the station's decoder, so TAK never hears it.
            forged = dataclasses.replace(track(TrackEventKind.NEW, t), track_id=99)
            unit.publish(unit_topic(SITE, 1, "tracks"), tracks_payload(SITE, 2, forged))
            assert tak.wait_for(lambda got: any(r.uid.endswith("alert.cam1-enter-algeciras-3") for r in got), 8.0)
            unit.publish(unit_topic(SITE, 1, "tracks"), tracks_payload(SITE, 1, track(TrackEventKind.END, t + 1)))
            assert tak.wait_for(lambda got: any(r.uid.endswith("track-3") and is_stale(r.event) for r in got), 8.0)
        finally:
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    events = [r.event for r in tak.received]
    assert all(not cot_schema_problems(e) for e in events), [cot_schema_problems(e) for e in events]
    uids = {e.get("uid") for e in events}
    assert f"borderwatch.{SITE}.cam1.track-3" in uids
    assert not any("track-99" in u for u in uids), "a forged track reached TAK"
    track_events = [e for e in events if e.get("uid").endswith("track-3")]
    assert track_events[0].get("type") == "a-u-S"
    point = track_events[0].find("point")
    assert math.isclose(float(point.get("lat")), LAT, abs_tol=1e-6) and float(point.get("ce")) == 2.5
    [drone] = [e for e in events if e.get("uid") == f"borderwatch.{SITE}.drone-1"][:1]
    assert drone.get("type") == "a-f-A-M-F-Q" and math.isclose(float(drone.find("point").get("lat")), LAT - 0.001)
    assert any(e.get("uid") == f"borderwatch.{SITE}.drone-1.footprint" for e in events)
    marker = next(e for e in events if ".alert." in e.get("uid"))
    assert marker.find("detail/borderwatch").get("zone") == "Eastern anchorage"
    zones = {e.get("uid") for e in events if ".zone." in e.get("uid")}
    assert zones == {f"borderwatch.{SITE}.zone.Eastern-anchorage", f"borderwatch.{SITE}.zone.Port-authority-heliport"}
    assert "CoT tcp://127.0.0.1" in out and "sent" in out


def test_gateway_with_an_unreachable_tak_server_says_so_once_and_keeps_reading(broker, pki_dir, tmp_path):
    with TakReceiver.tcp() as tak:
        dead = tak.url
    proc = gateway(broker, pki_dir, dead, 6.0)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if dead in line and "retrying" in line]
    assert len(lines) == 1, out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--cot", "ftp://tak.example"), "ftp://tak.example"),
        (("--cot", "tls://127.0.0.1:8089"), "client certificate"),
    ],
)
def test_gateway_refuses_a_bad_destination_naming_it(broker, pki_dir, args, says):
    proc = subprocess.run(
        [sys.executable, "-m", "groundstation.commands.cli", "cot", "--broker", broker.address.url,
         "--pki", str(pki_dir), "--site", str(SITE_FILE), "--bus-site", SITE, *args, "--duration", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr


def test_gateway_with_a_bad_certificate_says_so_once_and_serves_the_other_destination(broker, pki_dir, peer):
    unit = peer("unit-algeciras-1")
    bad = "tls://127.0.0.1:8089?cert=/nonexistent.p12&password=secret"
    with TakReceiver.udp() as tak:
        proc = gateway(broker, pki_dir, tak.url, 6.0, "--cot", bad)
        try:
            assert tak.wait_for(lambda got: any(".zone." in r.uid for r in got), 8.0)
            t = time.time()
            unit.publish(unit_topic(SITE, 1, "tracks"), tracks_payload(SITE, 1, track(TrackEventKind.NEW, t)))
            assert tak.wait_for(lambda got: any(r.uid.endswith("track-3") for r in got), 8.0)
        finally:
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    said = [line for line in out.splitlines() if "/nonexistent.p12" in line and "cannot read" in line]
    assert len(said) == 1, out
    assert "secret" not in out, "a password was printed"
