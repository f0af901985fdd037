"""The pipeline's end towards TAK: each frame's tracks, alerts and camera view into a `CotFeed`.

`SendCot` goes after the alert rules, the AIS watch and `KeepEvidence` in a pipeline's sinks,
so it sees the frame's alerts, the tracks AIS named, and where each alert's snapshot was kept.
Track news comes from a `vision.bus.tracks.TrackEvents` of its own (one per stream), so TAK
hears of a track on the frame it first appears with a position. With ``drone`` set it also
reports the camera's carrier from the frame's pose: position, course and speed over the last
poses, and what the camera sees of the ground; a ground station that has the drone's own
telemetry (battery too) reports the drone itself and gives only the view (``drone`` set,
``position_from_pose=False``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import shapely

from missions.geo import LocalFrame
from vision.bus.tracks import TrackEvents
from vision.camera import CameraPose, Intrinsics
from vision.cot.events import DroneReport
from vision.cot.feed import CotFeed
from vision.footprint import ground_footprint
from vision.frames import Frame
from vision.pipeline import FrameResult

FOOTPRINT_TOLERANCE_M = 2.0  # a view's outline simplified to this, a handful of vertices
FOOTPRINT_RANGE_M = 1500.0  # an oblique view is cut here on a TAK screen


class SendCot:
    def __init__(
        self,
        feed: CotFeed,
        *,
        drone: int | None = None,
        position_from_pose: bool = True,
        intrinsics: Intrinsics | None = None,
        site_frame: LocalFrame | None = None,
        snapshot_url: Callable[[Path], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.feed = feed
        self.snapshot_url = snapshot_url or snapshot_file_url(None)
        self.drone = drone
        self.position_from_pose = position_from_pose
        self.intrinsics = intrinsics
        self.site_frame = site_frame
        self.clock = clock
        self.track_events = TrackEvents()
        self._poses: DroneFromPoses | None = None

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        now_s = self.clock()
        for alert in result.alerts:
            snapshot = result.snapshots.get(alert.alert_id)
            self.feed.alert(alert, now_s, None if snapshot is None else self.snapshot_url(snapshot))
        for event in self.track_events.update(result.detections):
            self.feed.track(event, now_s)
        if self.drone is not None and result.pose is not None:
            self.feed.drone(self._report(result.frame_time_s, result.pose), now_s)
        self.feed.tick(now_s)
        return result

    def close(self) -> None:
        now_s = self.clock()
        for event in self.track_events.close():
            self.feed.track(event, now_s)

    def _report(self, time_s: float, pose: CameraPose) -> DroneReport:
        assert self.drone is not None
        if self._poses is None:
            self._poses = DroneFromPoses(self.drone, self.intrinsics, self.site_frame)
        report = self._poses.report(time_s, pose)
        if not self.position_from_pose:
            # Only the view: the position the report carries is the telemetry's, kept by the feed.
            return DroneReport(self.drone, time_s, pose.lat_deg, pose.lon_deg, footprint_deg=report.footprint_deg)
        return report


class DroneFromPoses:
    """A drone as its camera's poses tell it: position, course and speed over the last poses, and its view."""

    MIN_SPAN_S = 0.2  # poses closer in time make a speed out of jitter
    MIN_COURSE_SPEED_MPS = 0.3

    def __init__(self, number: int, intrinsics: Intrinsics | None, site_frame: LocalFrame | None) -> None:
        self.number = number
        self.intrinsics = intrinsics
        self.site_frame = site_frame
        self._last: tuple[float, CameraPose] | None = None

    def report(self, time_s: float, pose: CameraPose) -> DroneReport:
        footprint: tuple[tuple[float, float], ...] = ()
        if self.intrinsics is not None and self.site_frame is not None:
            footprint = view_deg(pose, self.intrinsics, self.site_frame)
        course = speed = None
        if self._last is not None and self.site_frame is not None and time_s - self._last[0] >= self.MIN_SPAN_S:
            then_s, then = self._last
            x0, y0 = self.site_frame.xy(then.lon_deg, then.lat_deg)
            x1, y1 = self.site_frame.xy(pose.lon_deg, pose.lat_deg)
            speed = math.hypot(x1 - x0, y1 - y0) / (time_s - then_s)
            if speed >= self.MIN_COURSE_SPEED_MPS:
                course = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360.0
        if self._last is None or time_s - self._last[0] >= self.MIN_SPAN_S:
            self._last = (time_s, pose)
        return DroneReport(
            self.number,
            time_s,
            pose.lat_deg,
            pose.lon_deg,
            alt_m=pose.alt_m,
            course_deg=course,
            speed_mps=speed,
            footprint_deg=footprint,
        )


def view_deg(pose: CameraPose, intrinsics: Intrinsics, frame: LocalFrame) -> tuple[tuple[float, float], ...]:
    """What a camera sees of the ground as (lat, lon) vertices, simplified; empty when nothing."""
    polygon = ground_footprint(pose, intrinsics, frame, max_range_m=FOOTPRINT_RANGE_M)
    if polygon.is_empty:
        return ()
    simple = shapely.simplify(polygon, FOOTPRINT_TOLERANCE_M)
    ring = list(simple.exterior.coords)[:-1]
    return tuple((lat, lon) for lon, lat in (frame.lonlat(x, y) for x, y in ring))


def snapshot_file_url(base_url: str | None) -> Callable[[Path], str]:
    """How an alert's snapshot is linked: under `base_url` (a station's evidence server) by file
    name, or as a ``file://`` URL of the station's own copy."""
    if base_url is None:
        return lambda path: path.resolve().as_uri()
    base = base_url if base_url.endswith("/") else base_url + "/"
    return lambda path: base + path.name
