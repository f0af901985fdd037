"""A simulated drone over the Algeciras anchorage, its synthetic camera streaming H.264 over RTP,
and the whole pipeline — decode, detect, geolocate from MAVLink telemetry, track, alert, keep
evidence — scored against the camera's ground-truth sidecar.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import shapely

from missions.formats import load_site
from sitl.synthetic.scenarios import hover_over_zone
from sitl.testdata import SITES_DIR
from vision.alerts import AlertEngine, RuleKind
from vision.camera import Intrinsics
from vision.detections import ObjectClass
from vision.detectors import DEFAULT_MODEL, load_detector
from vision.evidence import EvidenceLog
from vision.evidence_verify import verify
from vision.geolocate import Geolocate, Geolocator, SmoothTracks
from vision.pipeline import Pipeline
from vision.pose import MavlinkPose
from vision.sinks import KeepEvidence, RaiseAlerts
from vision.sources import open_source
from vision.tracking import Tracker

pytestmark = pytest.mark.slow

ZONE = "Eastern anchorage"
CAMERA_ALT_M = 60.0  # above the sea; the simulated pad is 10 m above it
WATCH_S = 25.0


def load_truth(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return np.array([r["time_s"] for r in records]), records


def truth_at(truth, time_s: float, tolerance_s: float = 0.002):
    """The ground-truth record of the frame captured at `time_s` (RTP carries it at 90 kHz)."""
    times, records = truth
    i = int(np.argmin(np.abs(times - time_s)))
    return records[i] if abs(times[i] - time_s) <= tolerance_s else None


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_drone_over_anchorage_detects_locates_and_alerts(tmp_path):
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    evidence_dir = tmp_path / "evidence"
    results = []
    with hover_over_zone(site, ZONE, tmp_path / "video", CAMERA_ALT_M) as hover:
        detector = load_detector(DEFAULT_MODEL)
        with (
            MavlinkPose(hover.onboard_url) as poses,
            open_source(str(hover.sdp_path), "drone-1") as source,
            EvidenceLog.open(evidence_dir) as evidence,
        ):
            pipeline = Pipeline(
                detector,
                [Geolocate(poses, Geolocator(site.frame, Intrinsics())), Tracker(), SmoothTracks(site.frame)],
                [RaiseAlerts(AlertEngine(site)), KeepEvidence(evidence)],
                source_name="drone-1",
            )
            stop_at = time.monotonic() + WATCH_S
            while time.monotonic() < stop_at:
                frame = source.read(0.5)
                if frame is not None:
                    results.append(pipeline.process(frame))
        cameras = hover.cameras
        zone_m = hover.zone_m

    assert cameras.stats[0].error is None
    truth = load_truth(cameras.truth_path(0))
    positives = matched_truth = predictions = correct = 0
    errors_m = []
    misses = []
    for result in results[5:]:  # the first frames come before the sender's clock is known
        rec = truth_at(truth, result.frame_time_s)
        assert rec is not None, (
            f"frame at {result.frame_time_s:.4f} has no ground truth (nearest "
            f"{truth[0][np.argmin(np.abs(truth[0] - result.frame_time_s))]:.4f}): capture times must survive RTP"
        )
        # Recall over the vessels wholly in view and in the zone; precision against every vessel in view,
        # cut by the image edge or not.
        all_vessels = [o for o in rec["objects"] if o["class"] == "vessel"]
        in_zone = [o for o in all_vessels if o["visible"] > 0.99 and ZONE in o["zones"]]
        vessels = [d for d in result.detections if d.object_class is ObjectClass.VESSEL and d.is_located]
        predicted = [d for d in vessels if zone_m.contains(shapely.Point(d.x_m, d.y_m))]
        positives += len(in_zone)
        for o in in_zone:
            if any(box_iou(d.box_px, o["box_px"]) > 0.3 for d in vessels):
                matched_truth += 1
        predictions += len(predicted)
        for d in predicted:
            best = max(all_vessels, key=lambda o: box_iou(d.box_px, o["box_px"]), default=None)
            if best is not None and box_iou(d.box_px, best["box_px"]) > 0.3:
                correct += 1
                if best["visible"] > 0.99:  # a cut box's centre is not the hull's
                    errors_m.append(math.hypot(d.x_m - best["x_m"], d.y_m - best["y_m"]))
            else:
                misses.append((result.frame_index, d.box_px, d.confidence))
    assert len(results) > 100, f"only {len(results)} frames processed in {WATCH_S} s"
    assert positives > 100, f"only {positives} vessel sightings inside {ZONE}: the scenario is too thin"
    recall, precision = matched_truth / positives, correct / max(predictions, 1)
    median_error_m = float(np.median(errors_m))
    print(f"recall {recall:.3f} precision {precision:.3f} median error {median_error_m:.2f} m, {len(results)} frames")
    print("false positives (frame, box, confidence):", misses[:10])
    assert recall >= 0.9
    assert precision >= 0.9
    assert median_error_m <= 3.0

    alerts = [a for r in results for a in r.alerts]
    vessel = ObjectClass.VESSEL
    entered = [a for a in alerts if a.rule is RuleKind.ENTER and a.zone == ZONE and a.object_class is vessel]
    assert entered, f"no vessel entered {ZONE}: {alerts}"
    report = verify(evidence_dir)
    assert report.ok and report.records >= len(alerts) and report.snapshots_verified >= len(entered)
