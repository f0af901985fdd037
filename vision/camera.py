"""Pinhole camera on a drone: intrinsics, pose, and the two directions world ↔ pixel.

The geolocator (pixel → ground) and the synthetic camera renderer (world → pixel) share
this one model, so `project` and `pixel_rays` are exact inverses of each other.

Conventions
-----------
World: the site's `LocalFrame`, ENU metres (x east, y north, z up); z = 0 is the
sea/ground reference plane that `CameraPose.alt_m` is measured from.

Camera frame (as OpenCV): x right, y down, z forward along the optical axis.

Pixels are continuous coordinates: (0, 0) is the top-left *corner* of the image and
(width_px, height_px) the bottom-right corner, so the centre of pixel (i, j) is at
(i + 0.5, j + 0.5) and the principal point (cx_px, cy_px) is the image centre. With this
convention the left and right edges sit exactly at ±hfov/2 from the optical axis.

Vehicle attitude is given as PX4/MAVLink report it: NED Euler angles applied
yaw → pitch → roll (Z-Y-X) to a body frame that is forward/right/down. Yaw is clockwise
from north, pitch positive nose up, roll positive right wing down.

The gimbal sits on the body: it turns by `gimbal_yaw_deg` (clockwise, relative to the nose)
then tilts by `gimbal_pitch_deg` (0 = looking forward, −90 = straight down). At zero
gimbal angles the optical axis is the body's forward axis and image right is the body's
right. So looking straight down with the nose north, image top is north and image right
is east; nose east, image top is east and image right is south. A gimbal that holds the
horizon (a stabilised 3-axis gimbal) ignores the vehicle's roll and pitch: set
`gimbal_stabilized=True`.

    R_world_from_camera = R_enu_from_ned · Rz(yaw) Ry(pitch) Rx(roll)
                          · Rz(gimbal_yaw) Ry(gimbal_pitch) · R_gimbal_from_camera

Lens distortion is the radial Brown model on normalized image coordinates,
x_d = x (1 + k1 r² + k2 r⁴); the inverse is solved by Newton's method on the radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from missions.camera import field_of_view_deg, focal_length
from missions.geo import LocalFrame

# Columns are the camera axes (right, down, forward) written in the gimbal's
# forward/right/down frame.
_GIMBAL_FROM_CAMERA = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_ENU_FROM_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

# Points closer to the image plane than this (metres along the optical axis) are treated
# as behind the camera: projecting them would divide by almost zero.
_MIN_DEPTH_M = 1e-6


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera with square pixels, the principal point at the image centre."""

    width_px: int = 1280
    height_px: int = 720
    hfov_deg: float = 80.0
    k1: float = 0.0
    k2: float = 0.0

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError("image size must be positive")
        if not 0.0 < self.hfov_deg < 180.0:
            raise ValueError("horizontal field of view must be between 0° and 180°")

    @classmethod
    def from_sensor(
        cls, sensor_width_mm: float, focal_length_mm: float, width_px: int = 1280, height_px: int = 720
    ) -> Intrinsics:
        """From the datasheet numbers the mission planner's `Camera` uses."""
        if sensor_width_mm <= 0 or focal_length_mm <= 0:
            raise ValueError("sensor width and focal length must be positive")
        hfov_deg = field_of_view_deg(sensor_width_mm, focal_length_mm)
        return cls(width_px=width_px, height_px=height_px, hfov_deg=hfov_deg)

    @property
    def fx_px(self) -> float:
        return focal_length(self.width_px, self.hfov_deg)

    @property
    def fy_px(self) -> float:
        return self.fx_px

    @property
    def cx_px(self) -> float:
        return self.width_px / 2.0

    @property
    def cy_px(self) -> float:
        return self.height_px / 2.0

    @property
    def vfov_deg(self) -> float:
        return field_of_view_deg(self.height_px, self.fy_px)

    @property
    def has_distortion(self) -> bool:
        return self.k1 != 0.0 or self.k2 != 0.0

    def distort(self, normalized: np.ndarray) -> np.ndarray:
        """Ideal normalized points (N, 2) → where the lens puts them."""
        normalized = np.asarray(normalized, dtype=float)
        if not self.has_distortion:
            return normalized.copy()
        r2 = np.sum(normalized**2, axis=-1, keepdims=True)
        return normalized * (1.0 + self.k1 * r2 + self.k2 * r2 * r2)

    def undistort(self, distorted: np.ndarray, iterations: int = 20) -> np.ndarray:
        """Inverse of `distort`, to well below a micro-pixel inside the image."""
        distorted = np.asarray(distorted, dtype=float)
        if not self.has_distortion:
            return distorted.copy()
        rd = np.sqrt(np.sum(distorted**2, axis=-1))
        r = rd.copy()
        # Newton on f(r) = r (1 + k1 r² + k2 r⁴) − rd: a handful of steps converge from r = rd
        # for any lens whose distortion stays monotonic over the image.
        for _ in range(iterations):
            r2 = r * r
            f = r * (1.0 + self.k1 * r2 + self.k2 * r2 * r2) - rd
            df = 1.0 + 3.0 * self.k1 * r2 + 5.0 * self.k2 * r2 * r2
            r = r - f / df
        scale = np.divide(r, rd, out=np.ones_like(rd), where=rd > 0.0)
        return distorted * scale[..., None]

    def to_normalized(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) → undistorted normalized coordinates (x/z, y/z)."""
        pixels = np.asarray(pixels, dtype=float).reshape(-1, 2)
        distorted = np.column_stack(
            [(pixels[:, 0] - self.cx_px) / self.fx_px, (pixels[:, 1] - self.cy_px) / self.fy_px]
        )
        return self.undistort(distorted)

    def to_pixels(self, normalized: np.ndarray) -> np.ndarray:
        """Undistorted normalized coordinates (N, 2) → pixels."""
        distorted = self.distort(np.asarray(normalized, dtype=float).reshape(-1, 2))
        return np.column_stack([distorted[:, 0] * self.fx_px + self.cx_px, distorted[:, 1] * self.fy_px + self.cy_px])


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and where it looks, as telemetry reports it.

    `alt_m` is the camera's height above the sea/ground reference plane (z = 0 of the
    site frame), not above mean sea level or the take-off point.
    """

    lat_deg: float
    lon_deg: float
    alt_m: float
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    gimbal_pitch_deg: float = -90.0
    gimbal_yaw_deg: float = 0.0
    gimbal_stabilized: bool = False

    def position_m(self, frame: LocalFrame) -> np.ndarray:
        """The camera's position (3,) in the site's ENU metres."""
        x_m, y_m = frame.xy(self.lon_deg, self.lat_deg)
        return np.array([x_m, y_m, self.alt_m])


def _rx(angle_deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(angle_deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(angle_deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_world_from_camera(pose: CameraPose) -> np.ndarray:
    """3×3 rotation taking camera-frame vectors (right, down, forward) to ENU."""
    if pose.gimbal_stabilized:
        ned_from_body = _rz(pose.yaw_deg)
    else:
        ned_from_body = _rz(pose.yaw_deg) @ _ry(pose.pitch_deg) @ _rx(pose.roll_deg)
    body_from_gimbal = _rz(pose.gimbal_yaw_deg) @ _ry(pose.gimbal_pitch_deg)
    return _ENU_FROM_NED @ ned_from_body @ body_from_gimbal @ _GIMBAL_FROM_CAMERA


def project(
    points_enu_m: np.ndarray, pose_enu_m: np.ndarray, rotation: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) → pixels (N, 2) and a mask of those in front of the camera.

    Pixels of points behind the camera are NaN; points in front but outside the image
    are returned as they fall, so the caller decides whether to clip.
    """
    points = np.asarray(points_enu_m, dtype=float).reshape(-1, 3)
    # Row-vector form of R^T (p − c): world → camera for all points at once.
    in_camera = (points - np.asarray(pose_enu_m, dtype=float).reshape(1, 3)) @ rotation
    in_front = in_camera[:, 2] > _MIN_DEPTH_M
    depth = np.where(in_front, in_camera[:, 2], np.nan)
    normalized = in_camera[:, :2] / depth[:, None]
    return intrinsics.to_pixels(normalized), in_front


def pixel_rays(pixels: np.ndarray, rotation: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Pixels (N, 2) → unit viewing rays (N, 3) in ENU."""
    normalized = intrinsics.to_normalized(pixels)
    rays_camera = np.column_stack([normalized, np.ones(len(normalized))])
    rays_world = rays_camera @ rotation.T
    return rays_world / np.linalg.norm(rays_world, axis=1, keepdims=True)
