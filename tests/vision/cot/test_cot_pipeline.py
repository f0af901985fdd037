"""A simulated drone over the anchorage, the whole pipeline, and its picture on a TAK receiver.

The camera streams H.264 over RTP, telemetry places each detection, the tracker follows the
vessels, the alert rules and the evidence log run, and `SendCot` sends through a real sender to
a receiver on loopback that decodes every message (XML over UDP, TAK protobuf over TCP).
Checked against the run's own results: every event valid CoT, each track one uid, positions
within 1 m of the detections they came from, a new track on TAK within 1 s of its first
located detection, at most one event a second per object, and no live track's marker stale.
"""

from __future__ import annotations

import itertools
import math
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime

import pytest

from missions.formats import load_site
from sitl.synthetic.scenarios import hover_over_zone
from sitl.tak import TakReceiver, cot_schema_problems
from sitl.testdata import SITES_DIR
from vision.alerts import AlertEngine, RuleKind
from vision.camera import Intrinsics
from vision.cot.destinations import parse_destination
from vision.cot.feed import CotFeed
from vision.cot.sender import CotSender
from vision.cot.sink import SendCot
from vision.detectors import DEFAULT_MODEL, load_detector
from vision.evidence import EvidenceLog
from vision.geolocate import Geolocate, Geolocator, SmoothTracks
from vision.pipeline import Pipeline
from vision.pose import MavlinkPose
from vision.sinks import KeepEvidence, RaiseAlerts
from vision.sources import open_source
from vision.tracking import Tracker

pytestmark = pytest.mark.slow

ZONE = "Eastern anchorage"
WATCH_S = 15.0
M_PER_DEG = 111_320.0


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def metres(lat_a: float, lon_a: float, lat_b: float, lon_b: float) -> float:
    east = (lon_b - lon_a) * M_PER_DEG * math.cos(math.radians(lat_a))
    return math.hypot(east, (lat_b - lat_a) * M_PER_DEG)


def test_a_patrols_picture_reaches_tak_as_the_pipeline_sees_it(tmp_path):
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    results = []
    with (
        TakReceiver.udp() as udp,
        TakReceiver.tcp() as tcp,
        hover_over_zone(site, ZONE, tmp_path / "video", 60.0) as hover,
    ):
        destinations = [parse_destination(udp.url), parse_destination(tcp.url + "?format=protobuf")]
        sender = CotSender(destinations)
        sender.start()
        feed = CotFeed("algeciras", sender.send, zones=site.zones)
        cot = SendCot(feed, drone=1, intrinsics=Intrinsics(), site_frame=site.frame)
        with (
            MavlinkPose(hover.onboard_url) as poses,
            open_source(str(hover.sdp_path), "drone-1") as source,
            EvidenceLog.open(tmp_path / "evidence") as evidence,
        ):
            pipeline = Pipeline(
                load_detector(DEFAULT_MODEL),
                [Geolocate(poses, Geolocator(site.frame, Intrinsics())), Tracker(), SmoothTracks(site.frame)],
                [RaiseAlerts(AlertEngine(site)), KeepEvidence(evidence), cot],
                source_name="drone-1",
            )
            stop_at = time.monotonic() + WATCH_S
            while time.monotonic() < stop_at:
                frame = source.read(0.5)
                if frame is not None:
                    results.append(pipeline.process(frame))
            cot.close()
        sender.close(flush_s=3.0)
        assert udp.wait_for(lambda got: any(r.event.get("stale") == r.event.get("time") for r in got), 3.0)
        assert tcp.wait_for(len(udp.received), 5.0)
        stats = sender.stats()

    assert len(results) > 60
    assert all(s.dropped == 0 for s in stats.values()), stats
    # TCP in protobuf and UDP in XML carry the same events.
    assert [r.event.get("uid") for r in tcp.received] == [r.event.get("uid") for r in udp.received]
    events = [(r.arrival_s, r.event) for r in udp.received]
    problems = [(ET.tostring(e)[:200], cot_schema_problems(e)) for _, e in events if cot_schema_problems(e)]
    assert not problems, problems[:3]

    # Where the run's own results say each track was, by frame time; and when it was first located.
    seen: dict[tuple[int, float], tuple[float, float]] = {}
    first_located_s: dict[int, float] = {}
    for result in results:
        for d in result.detections:
            if d.track_id is not None and d.has_geo_position:
                seen[(d.track_id, result.frame_time_s)] = (d.lat_deg, d.lon_deg)
                first_located_s.setdefault(d.track_id, result.done_s)
    tracks = [(t, e) for t, e in events if ".track-" in e.get("uid")]
    assert tracks, "no track reached TAK"
    by_uid: dict[str, list[tuple[float, ET.Element]]] = defaultdict(list)
    for arrival_s, e in tracks:
        by_uid[e.get("uid")].append((arrival_s, e))
    for uid, history in by_uid.items():
        ids = {e.find("detail/borderwatch").get("track_id") for _, e in history}
        assert len(ids) == 1 and uid.endswith(f"drone-1.track-{ids.pop()}"), f"{uid}: one uid, one track"
        types = {e.get("type") for _, e in history}
        assert types <= {"a-u-S", "a-u-G"}, types
        track_id = int(uid.rsplit("-", 1)[1])
        first_arrival = history[0][0]
        assert first_arrival - first_located_s[track_id] <= 1.0, f"{uid} reached TAK late"
        live = [(t, e) for t, e in history if e.get("stale") != e.get("time")]
        for (_, a), (_, b) in itertools.pairwise(live):
            assert seconds(b.get("time")) - seconds(a.get("time")) >= 0.99, f"{uid}: more than 1 Hz"
            assert seconds(a.get("stale")) >= seconds(b.get("time")), f"{uid}: stale between two updates"
        for _, e in history:
            frame_time = seconds(e.find("detail/borderwatch").get("last_seen"))
            truth = next((p for (i, t), p in seen.items() if i == track_id and abs(t - frame_time) < 0.0015), None)
            assert truth is not None, f"{uid}: no detection at {frame_time}"
            point = e.find("point")
            assert metres(*truth, float(point.get("lat")), float(point.get("lon"))) <= 1.0
            assert 0.0 < float(point.get("ce")) < 20.0  # the geolocation's own error radius

    drones = [e for _, e in events if e.get("uid") == "borderwatch.algeciras.drone-1"]
    assert drones and drones[0].get("type") == "a-f-A-M-F-Q" and drones[0].get("how") == "m-g"
    assert any(e.get("uid") == "borderwatch.algeciras.drone-1.footprint" for _, e in events)
    alerts = [a for r in results for a in r.alerts if a.rule is RuleKind.ENTER]
    assert alerts, "the scenario raised no alert"
    markers = {e.get("uid"): e for _, e in events if ".alert." in e.get("uid")}
    assert len(markers) == len({a.alert_id for r in results for a in r.alerts})
    links = [link.get("url") for e in markers.values() for link in e.iter("link") if link.get("url")]
    assert links and all(u.startswith("file://") and u.endswith(".jpg") for u in links)
    zones = [e for _, e in events if ".zone." in e.get("uid")]
    assert {z.find("detail/borderwatch").get("name") for z in zones} >= {ZONE}
