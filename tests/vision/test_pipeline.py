"""The pipeline's parts in one shape: stages take a frame's detections and give new ones, sinks take
its result and hand it on. A drone hovering over a watch zone, a stand-in detector seeing one boat.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from missions.formats import load_site
from sitl.testdata import SITES_DIR
from vision.alerts import AlertEngine, RuleKind
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import EvidenceLog
from vision.evidence_verify import verify
from vision.frames import Frame
from vision.geolocate import Geolocate, Geolocator, SmoothTracks
from vision.pipeline import Pipeline
from vision.pose import StaticPose
from vision.sinks import KeepEvidence, RaiseAlerts, SendAlerts, SendDetections
from vision.tracking import Tracker

ZONE = "Eastern anchorage"
T0 = 1_800_000_000.0
NAMES = {0: "vessel"}
BOAT_PX = (620.0, 340.0, 660.0, 380.0)  # the middle of a 1280×720 frame, straight below the camera


@pytest.fixture(scope="module")
def site():
    return load_site(SITES_DIR / "algeciras-port.geojson")


@pytest.fixture(scope="module")
def over_the_zone(site):
    inside = site.local(next(z for z in site.watch if z.name == ZONE)).representative_point()
    lon_deg, lat_deg = site.frame.lonlat(inside.x, inside.y)
    return CameraPose(lat_deg, lon_deg, 60.0)


class OneBoat:
    name = "one boat"
    class_names = NAMES

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        boat = Detection(ObjectClass.VESSEL, 0.9, BOAT_PX)
        return dataclasses.replace(detections, items=(*detections.items, boat))


class Collect:
    def __init__(self):
        self.alerts, self.detections = [], []

    def emit(self, alert):
        self.alerts.append(alert)

    def emit_detections(self, detections):
        self.detections.append(detections)

    def close(self):
        pass


def frames(n: int):
    image = np.zeros((720, 1280, 3), np.uint8)
    return [Frame(image, T0 + i / 10, i, "cam", T0 + i / 10) for i in range(n)]


def test_stages_locate_and_track_and_sinks_alert_keep_evidence_and_send(site, over_the_zone, tmp_path):
    collected = Collect()
    with EvidenceLog.open(tmp_path / "evidence") as log:
        pipeline = Pipeline(
            OneBoat(),
            [
                Geolocate(StaticPose(over_the_zone), Geolocator(site.frame, Intrinsics())),
                Tracker(),
                SmoothTracks(site.frame),
            ],
            [RaiseAlerts(AlertEngine(site)), SendDetections([collected]), SendAlerts([collected]), KeepEvidence(log)],
            source_name="drone-1",
        )
        results = [pipeline.process(frame) for frame in frames(5)]

    assert [len(r.alerts) for r in results] == [0, 1, 0, 0, 0]  # the track is confirmed on its second frame
    (alert,) = results[1].alerts
    assert (alert.rule, alert.zone, alert.track_id, alert.source) == (RuleKind.ENTER, ZONE, 1, "drone-1")
    assert collected.alerts == [alert]
    assert [d.frame_index for d in collected.detections] == [0, 1, 2, 3, 4]
    assert all(r.pose == over_the_zone and r.detections.pose == over_the_zone for r in results)
    assert all(d.is_located for r in results for d in r.detections)
    assert [r.evidence_records for r in results] == [0, 1, 0, 0, 0]
    assert all(r.latency_s == pytest.approx(r.done_s - r.frame_time_s) and r.total_s >= r.detect_s for r in results)
    stats = pipeline.stats
    assert (stats.frames, stats.detections, stats.alerts, stats.evidence_records) == (5, 5, 1, 1)
    report = verify(tmp_path / "evidence")
    assert report.ok and report.records == 1


def test_without_a_site_geolocation_keeps_the_pose_and_nothing_is_located(over_the_zone):
    pipeline = Pipeline(OneBoat(), [Geolocate(StaticPose(over_the_zone)), Tracker()], source_name="drone-1")

    results = [pipeline.process(frame) for frame in frames(3)]

    assert all(r.pose == over_the_zone for r in results)
    assert not any(d.is_located for r in results for d in r.detections)
    assert [d.track_id for r in results for d in r.detections] == [None, 1, 1]


def test_a_frame_without_a_pose_passes_unlocated(site):
    class NoPose:
        def pose_at(self, time_s):
            return None

    stage = Geolocate(NoPose(), Geolocator(site.frame, Intrinsics()))
    (frame,) = frames(1)
    detections = OneBoat()(Detections("drone-1", frame.time_s, frame.index), frame)

    assert stage(detections, frame) == detections
