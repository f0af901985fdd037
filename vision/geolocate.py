"""Pixel to ground: intersect viewing rays with the sea/ground plane, then smooth per track.

A detection's pixel becomes a ray through the camera model in `vision.camera`; the ray
meets the horizontal plane z = ground_alt_m of the site's ENU frame; the point goes to
lat/lon only at the edge, through the site's `LocalFrame`. As pipeline stages: `Geolocate`
(before tracking) and `SmoothTracks` (after it).

Error budget at 60 m, looking straight down (h = height above the plane, θ = angle of
the ray from vertical, d = ground distance from the point below the drone):

- roll, pitch or gimbal pitch error δ: h·tan δ at the image centre, ≈ 1.05 m per degree,
  growing as h·δ/cos²θ off nadir (≈ 1.8 m per degree at the 40° image edge);
- yaw error δ: turns the footprint about the point below, d·δ: 0 at the centre,
  ≈ 0.9 m per degree at the left/right edge (d ≈ 50 m);
- height error Δh: scales the offset from nadir, Δh·tan θ: 0 at the centre,
  ≈ 0.84 m per metre at the edge (a barometer drifts by metres over a flight);
- GPS horizontal error: passes through 1:1 (1–2 m single-frequency, zero in the
  synthetic world);
- pixel error: h/fx ≈ 8 cm per pixel at the centre with the 80°, 1280 px camera;
- frame/telemetry latency: vehicle speed × latency, 0.5 m at 10 m/s and 50 ms.

Summed in quadrature with 1.5 m GPS, 1° attitude, 0.5 m height and 0.5 m latency this
is about 2 m, inside the 3 m median the issue asks for; looking obliquely the attitude
term dominates, which is why the track smoother weights far fixes less.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import shapely

from missions.geo import LocalFrame
from vision.camera import CameraPose, Intrinsics, pixel_rays, rotation_world_from_camera
from vision.detections import Detections
from vision.frames import Frame

# A ray must descend at least this steeply (sine of the angle below horizontal) to hit the
# plane; grazing rays would land kilometres away with unbounded error.
_MIN_DESCENT = 1e-6
# Where a box's ground anchor moves from its centre to its bottom edge (see `locate_boxes`).
_CENTRE_UP_TO_DEG = 30.0
_BOTTOM_FROM_DEG = 75.0


# One fix's error (one sigma, metres): the GPS, height and latency terms of the budget above
# summed in quadrature, plus the attitude term, 1° of the slant range.
FIX_BASE_ERROR_M = 1.0
FIX_ERROR_PER_RANGE = math.radians(1.0)


def fix_error_m(range_m: float) -> float:
    """The error radius of a fix seen from `range_m` away: the measurement noise `TrackSmoother` assumes."""
    return FIX_BASE_ERROR_M + FIX_ERROR_PER_RANGE * max(range_m, 0.0)


@dataclass(frozen=True)
class GroundFix:
    """Where a pixel meets the ground: site metres, degrees, and slant range from the camera."""

    x_m: float
    y_m: float
    lat_deg: float
    lon_deg: float
    range_m: float


def box_ground_point(box_px: np.ndarray) -> np.ndarray:
    """The bottom-centre (N, 2) of detection boxes (N, 4) given as x1, y1, x2, y2.

    Only the waterline or the wheels of a boat or vehicle lie on the plane we intersect;
    the box centre is metres above it, and its ray meets the plane beyond the object (by
    about half the object's height over the tangent of the depression angle, so worse the
    flatter we look). The bottom edge of the box is where the hull meets the water.
    """
    boxes = np.asarray(box_px, dtype=float).reshape(-1, 4)
    return np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, np.maximum(boxes[:, 1], boxes[:, 3])])


@dataclass(frozen=True)
class Geolocator:
    """Pixels of one camera → ground fixes in one site frame."""

    frame: LocalFrame
    intrinsics: Intrinsics
    max_range_m: float = 2000.0

    def locate(self, pixels: np.ndarray, pose: CameraPose, ground_alt_m: float = 0.0) -> list[GroundFix | None]:
        """One fix per pixel (N, 2), or None where the ray does not reach the plane in range.

        `ground_alt_m` is the height of the intersected plane above the same reference as
        `pose.alt_m` (a quay a few metres above the sea, say).
        """
        pixels = np.asarray(pixels, dtype=float).reshape(-1, 2)
        if len(pixels) == 0:
            return []
        camera_m = pose.position_m(self.frame)
        rays = pixel_rays(pixels, rotation_world_from_camera(pose), self.intrinsics)
        height_m = camera_m[2] - ground_alt_m
        descending = rays[:, 2] < -_MIN_DESCENT
        # Distance along the unit ray; only descending rays from above the plane are kept,
        # so there is no division by zero and no hit behind the camera.
        range_m = np.where(descending, height_m / -np.where(descending, rays[:, 2], -1.0), np.inf)
        ok = descending & (height_m > 0.0) & np.isfinite(range_m) & (range_m <= self.max_range_m)
        if not ok.any():
            return [None] * len(pixels)
        ground_xy = camera_m[None, :2] + rays[ok, :2] * range_m[ok, None]
        lonlat = shapely.get_coordinates(self.frame.to_geo(shapely.points(ground_xy)))
        fixes: list[GroundFix | None] = [None] * len(pixels)
        for slot, (x_m, y_m), (lon_deg, lat_deg), r_m in zip(
            np.flatnonzero(ok), ground_xy.tolist(), lonlat.tolist(), range_m[ok].tolist(), strict=True
        ):
            fixes[slot] = GroundFix(x_m=x_m, y_m=y_m, lat_deg=lat_deg, lon_deg=lon_deg, range_m=r_m)
        return fixes

    def locate_boxes(self, boxes_px: np.ndarray, pose: CameraPose, ground_alt_m: float = 0.0) -> list[GroundFix | None]:
        """One fix per detection box (N, 4: x1, y1, x2, y2), from the point of the box that touches the plane.

        Looking straight down, a hull's outline fills the box and its centre is the centre of
        the footprint; looking at the horizon only the bottom edge touches the water. In between,
        the anchor slides from the box centre (ray within 30° of vertical) to the bottom-centre
        (75° and flatter), linearly in the ray's angle from vertical.
        """
        boxes = np.asarray(boxes_px, dtype=float).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        centres = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0])
        rays = pixel_rays(centres, rotation_world_from_camera(pose), self.intrinsics)
        from_vertical_deg = np.degrees(np.arccos(np.clip(-rays[:, 2], -1.0, 1.0)))
        weight = np.clip((from_vertical_deg - _CENTRE_UP_TO_DEG) / (_BOTTOM_FROM_DEG - _CENTRE_UP_TO_DEG), 0.0, 1.0)
        anchors = centres + weight[:, None] * (box_ground_point(boxes) - centres)
        return self.locate(anchors, pose, ground_alt_m)


class PoseSource(Protocol):
    """Where a camera was at a time: `vision.pose.MavlinkPose` from telemetry, `StaticPose` on a mast."""

    def pose_at(self, time_s: float) -> CameraPose | None: ...


@dataclass(frozen=True)
class Geolocate:
    """The stage that says where the camera was when each frame was taken and, given a
    `geolocator`, where each detection is on the site.

    The pose comes from `poses` at the frame's capture time; a frame with no pose (no
    telemetry yet, or too old) passes unlocated. Without a geolocator (no site to place them
    on) the detections keep only the pose, which is what a run records of the camera's view.
    """

    poses: PoseSource
    geolocator: Geolocator | None = None

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        pose = self.poses.pose_at(frame.time_s)
        if pose is None:
            return detections
        items = detections.items
        if self.geolocator is not None and items:
            fixes = self.geolocator.locate_boxes(np.array([d.box_px for d in items]), pose)
            items = tuple(
                d
                if fix is None
                else dataclasses.replace(
                    d,
                    x_m=fix.x_m,
                    y_m=fix.y_m,
                    lat_deg=fix.lat_deg,
                    lon_deg=fix.lon_deg,
                    error_m=fix_error_m(fix.range_m),
                )
                for d, fix in zip(items, fixes, strict=True)
            )
        return dataclasses.replace(detections, items=items, pose=pose)


class SmoothedPosition(NamedTuple):
    x_m: float
    y_m: float
    vx_m_s: float
    vy_m_s: float
    error_m: float  # one sigma along the position's least certain axis


@dataclass
class _TrackState:
    time_s: float
    state: np.ndarray  # x, y, vx, vy
    covariance: np.ndarray  # 4×4


@dataclass
class TrackSmoother:
    """A constant-velocity Kalman filter per track id, in site metres.

    The measurement noise grows with slant range because an attitude error of δ moves a
    fix by about range·δ. Tracks not updated for `forget_after_s` are dropped, and at most
    `max_tracks` are kept (the least recently updated go first), so memory stays bounded
    however long the patrol.
    """

    accel_sigma_m_s2: float = 1.0
    base_sigma_m: float = FIX_BASE_ERROR_M
    sigma_per_range: float = FIX_ERROR_PER_RANGE
    initial_speed_sigma_m_s: float = 10.0
    forget_after_s: float = 10.0
    max_tracks: int = 1000
    _tracks: OrderedDict[object, _TrackState] = field(default_factory=OrderedDict, init=False, repr=False)
    _now_s: float = field(default=-math.inf, init=False, repr=False)

    def __len__(self) -> int:
        return len(self._tracks)

    def update(
        self,
        track_id: object,
        time_s: float,
        x_m: float,
        y_m: float,
        range_m: float = 0.0,
        sigma_m: float | None = None,
    ) -> SmoothedPosition:
        """Fold one fix into its track; returns the smoothed position, velocity and error.

        The fix's noise is `sigma_m` when the geolocator gave it, else the model's for `range_m`.
        """
        self._now_s = max(self._now_s, time_s)
        self._forget_stale()
        if sigma_m is None:
            sigma_m = self.base_sigma_m + self.sigma_per_range * max(range_m, 0.0)
        measurement_var = sigma_m * sigma_m
        track = self._tracks.get(track_id)
        if track is None:
            track = _TrackState(
                time_s=time_s,
                state=np.array([x_m, y_m, 0.0, 0.0]),
                covariance=np.diag([measurement_var, measurement_var, *[self.initial_speed_sigma_m_s**2] * 2]),
            )
        else:
            self._predict(track, time_s)
            self._correct(track, np.array([x_m, y_m]), measurement_var)
        self._tracks[track_id] = track
        self._tracks.move_to_end(track_id)
        while len(self._tracks) > self.max_tracks:
            self._tracks.popitem(last=False)
        x, y, vx, vy = track.state.tolist()
        error_m = math.sqrt(max(float(np.linalg.eigvalsh(track.covariance[:2, :2])[-1]), 0.0))
        return SmoothedPosition(x, y, vx, vy, error_m)

    def _forget_stale(self) -> None:
        # Ordered by last update, so the stale ones are all at the front.
        while self._tracks:
            oldest_id, oldest = next(iter(self._tracks.items()))
            if self._now_s - oldest.time_s <= self.forget_after_s:
                break
            del self._tracks[oldest_id]

    def _predict(self, track: _TrackState, time_s: float) -> None:
        # A fix older than the track's last one (out of order) is folded in without moving time back.
        dt = max(time_s - track.time_s, 0.0)
        transition = np.eye(4)
        transition[0, 2] = transition[1, 3] = dt
        q = self.accel_sigma_m_s2**2
        # Discrete white-noise acceleration, per axis: [[dt⁴/4, dt³/2], [dt³/2, dt²]]·q.
        process = np.zeros((4, 4))
        for pos, vel in ((0, 2), (1, 3)):
            process[pos, pos] = dt**4 / 4.0 * q
            process[pos, vel] = process[vel, pos] = dt**3 / 2.0 * q
            process[vel, vel] = dt**2 * q
        track.state = transition @ track.state
        track.covariance = transition @ track.covariance @ transition.T + process
        track.time_s = max(track.time_s, time_s)

    @staticmethod
    def _correct(track: _TrackState, measurement: np.ndarray, measurement_var: float) -> None:
        innovation = measurement - track.state[:2]
        innovation_cov = track.covariance[:2, :2] + np.eye(2) * measurement_var
        gain = track.covariance[:, :2] @ np.linalg.inv(innovation_cov)
        track.state = track.state + gain @ innovation
        track.covariance = (np.eye(4) - gain @ np.eye(2, 4)) @ track.covariance
        track.covariance = (track.covariance + track.covariance.T) / 2.0


@dataclass
class SmoothTracks:
    """The stage after tracking: each tracked, located detection moved to its track's smoothed
    position (a `TrackSmoother`), in the metres of `site_frame` and back to degrees."""

    site_frame: LocalFrame
    smoother: TrackSmoother = field(default_factory=TrackSmoother)

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        items = []
        for d in detections:
            if d.track_id is None or not d.has_local_position:
                items.append(d)
                continue
            smoothed = self.smoother.update(d.track_id, detections.frame_time_s, d.x_m, d.y_m, sigma_m=d.error_m)
            lon_deg, lat_deg = self.site_frame.lonlat(smoothed.x_m, smoothed.y_m)
            items.append(
                dataclasses.replace(
                    d,
                    x_m=smoothed.x_m,
                    y_m=smoothed.y_m,
                    lat_deg=lat_deg,
                    lon_deg=lon_deg,
                    error_m=round(smoothed.error_m, 2),
                )
            )
        return dataclasses.replace(detections, items=tuple(items))
