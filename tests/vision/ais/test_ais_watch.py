"""The AIS watch in the pipeline's sinks: the simulated world's AIS over UDP, vessel tracks placed where the
world has them, the real alert rules before it and the evidence log after it."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
import shapely

from missions.formats import load_site
from sitl.synthetic.ais import AisBroadcaster, AisScenario, Role, VesselAis, udp_sender
from sitl.synthetic.world import VESSEL_KINDS, World, WorldObject
from sitl.testdata import SITES_DIR
from vision.ais.feed import AisFeed
from vision.ais.watch import DARK_AFTER_S_BY_RISK, WARM_UP_S, AisWatch
from vision.alerts import AlertEngine, RuleKind
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import EvidenceLog
from vision.frames import Frame
from vision.pipeline import FrameResult
from vision.sinks import KeepEvidence, RaiseAlerts

T0 = 1_760_000_000.0
ZONE = "Eastern anchorage"  # risk 4
SOURCE = "camera-1"
FISHING = next(k for k in VESSEL_KINDS if k.name == "fishing boat")


@pytest.fixture
def scene():
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    cx, cy = site.local(next(z for z in site.watch if z.name == ZONE)).centroid.coords[0]

    def vessel(n: int, a: tuple[float, float], b: tuple[float, float], speed_m_s: float) -> WorldObject:
        path = shapely.LineString([(cx + a[0], cy + a[1]), (cx + b[0], cy + b[1])])
        return WorldObject(n, FISHING, (200, 200, 200), path, speed_m_s, phase_m=10.0)  # not at a path end at 0

    world = World.for_site(site, seed=1).with_objects(
        (
            vessel(1, (-100, 0), (100, 0), 2.0),  # dark: in the zone, in view, and silent
            vessel(2, (-100, 60), (100, 60), 3.0),  # names itself
            vessel(3, (3000, -20), (3000, 20), 1.0),  # far away, but says it lies in the middle of the view
        )
    )
    scenario = AisScenario({0: VesselAis(Role.DARK), 2: VesselAis(Role.SPOOF, offset_m=(-3000.0, -100.0))})
    pose = CameraPose(*site.frame.lonlat(cx, cy)[::-1], alt_m=400.0)
    return site, world, scenario, pose


def fly(site, world, scenario, pose, tmp_path, *, seconds: float, ais_on: bool = True):
    """Frames every 0.5 s over the anchorage: the two vessels really there tracked, the AIS as the world sends it."""
    rng = np.random.default_rng(0)
    now = [T0]
    said: list[str] = []
    log = EvidenceLog.open(tmp_path / "evidence")
    alerts = []
    with AisFeed("udp://127.0.0.1:0", site.frame, clock=lambda: now[0], say=said.append) as feed:
        host, port = feed.source.address
        send = udp_sender(f"udp://{host}:{port}") if ais_on else (lambda _sentences: None)
        broadcaster = AisBroadcaster(world, scenario, site.frame, send, world_time=lambda t: t - T0, start_s=T0)
        sinks = [RaiseAlerts(AlertEngine(site)), AisWatch(site, feed, Intrinsics(), say=said.append), KeepEvidence(log)]
        sent = 0
        for step in range(int(seconds * 2)):
            now[0] = T0 + step * 0.5
            sent += len(broadcaster.step(now[0]))
            deadline = time.monotonic() + 2.0
            while ais_on and feed.source.lines < sent and time.monotonic() < deadline:
                time.sleep(0.001)
            items = []
            for obj in world.objects[:2]:
                x, y, _heading, _speed = obj.pose_at(now[0] - T0)
                x, y = x + rng.normal(0, 2.0), y + rng.normal(0, 2.0)
                lon, lat = site.frame.lonlat(x, y)
                items.append(Detection(ObjectClass.VESSEL, 0.9, (0, 0, 10, 10), 10 + obj.id, x, y, lat, lon))
            detections = Detections(SOURCE, now[0], step, tuple(items), pose)
            result = FrameResult(step, now[0], detections, (), pose, 0.0, 0.0, now[0])
            frame = Frame(np.zeros((72, 128, 3), np.uint8), now[0], step, SOURCE, now[0])
            for sink in sinks:
                result = sink(result, frame)
            alerts += result.alerts
        if ais_on:
            send.close()
    log.close()
    records = [json.loads(line) for line in (tmp_path / "evidence" / "evidence.jsonl").read_text().splitlines()]
    return alerts, records, said, broadcaster.ground_truth()["vessels"]


def test_dark_vessels_and_lying_positions_are_alerted_with_what_ais_said(scene, tmp_path):
    site, world, scenario, pose = scene
    limit_s = DARK_AFTER_S_BY_RISK[4]
    alerts, records, said, truth = fly(site, world, scenario, pose, tmp_path, seconds=WARM_UP_S + limit_s + 30)
    by_rule = {kind: [a for a in alerts if a.rule is kind] for kind in RuleKind}

    # The silent vessel, and only it, is dark: once, in its zone, after the zone's limit.
    [dark] = by_rule[RuleKind.DARK_VESSEL]
    assert dark.track_id == 11 and dark.zone == ZONE and dark.mmsi is None
    # The timers start once AIS has been heard for its longest reporting interval: before, a vessel
    # at anchor that reports every 3 minutes would be called dark.
    assert WARM_UP_S + limit_s <= dark.time_s - T0 <= WARM_UP_S + limit_s + 12.0
    assert "dark vessel: vessel #11 in Eastern anchorage" in dark.message

    # The vessel that names itself: its dwell alert (after it was bound) carries its MMSI and name.
    named = truth[1]
    [dwell] = [a for a in by_rule[RuleKind.DWELL] if a.track_id == 12]
    # (its name once it has sent it: static reports come every 6 minutes)
    assert dwell.mmsi == named["mmsi"] and dwell.vessel_name in (None, named["name"])

    # The position that lies: nothing is where it says, in the middle of the view.
    liar = truth[2]
    [unseen] = by_rule[RuleKind.AIS_NOT_SEEN]
    assert unseen.mmsi == liar["mmsi"] and unseen.vessel_name in (None, liar["name"]) and unseen.zone == ZONE
    assert f"MMSI {liar['mmsi']}" in unseen.message
    assert "reports a position in view for 15 s and no vessel is there" in unseen.message

    # Each alert's evidence record holds the AIS reports it rests on, with their sentences.
    evidence = {r["payload"]["alert"]["alert_id"]: r["payload"] for r in records}
    assert [r["mmsi"] for r in evidence[unseen.alert_id]["ais"]] == [liar["mmsi"]]
    assert evidence[unseen.alert_id]["ais"][0]["sentences"][0].startswith("!AIVDM")
    assert [r["mmsi"] for r in evidence[dwell.alert_id]["ais"]] == [named["mmsi"]]
    assert named["mmsi"] in [r["mmsi"] for r in evidence[dark.alert_id]["ais"]]  # it was near, and not it
    assert "ais" not in evidence[by_rule[RuleKind.ENTER][0].alert_id]  # before anything was bound
    assert said == []


def test_a_dead_feed_pauses_dark_vessel_alerts_and_says_so_once(scene, tmp_path):
    site, world, scenario, pose = scene
    alerts, _records, said, _truth = fly(site, world, scenario, pose, tmp_path, seconds=90, ais_on=False)
    assert not [a for a in alerts if a.rule in (RuleKind.DARK_VESSEL, RuleKind.AIS_NOT_SEEN)]
    assert [a.rule for a in alerts if a.track_id == 11][:1] == [RuleKind.ENTER]  # the other rules go on
    paused = [line for line in said if "dark-vessel alerts paused" in line]
    assert len(paused) == 1 and paused[0].startswith("AIS udp://127.0.0.1:0: dead: no line")


def test_the_feed_is_a_real_udp_socket(scene):
    site = scene[0]
    with AisFeed("udp://127.0.0.1:0", site.frame) as feed:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.sendto(b"\r\n", feed.source.address)
        assert feed.source.address[0] == "127.0.0.1" and feed.source.address[1] > 0
