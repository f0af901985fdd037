"""The ground a camera sees, against geometry worked out by hand and against the geolocator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from missions.geo import LocalFrame
from vision.camera import CameraPose, Intrinsics
from vision.footprint import ground_footprint
from vision.geolocate import Geolocator

FRAME = LocalFrame(36.13, -5.43)
CAMERA = Intrinsics(width_px=1280, height_px=720, hfov_deg=80.0)
HALF_W = math.radians(40.0)
HALF_H = math.atan(math.tan(HALF_W) * 720 / 1280)


def pose(alt_m: float = 100.0, **kwargs) -> CameraPose:
    return CameraPose(FRAME.origin_lat_deg, FRAME.origin_lon_deg, alt_m, **kwargs)


def test_nadir_footprint_is_the_rectangle_below() -> None:
    footprint = ground_footprint(pose(100.0), CAMERA, FRAME)

    min_x, min_y, max_x, max_y = footprint.bounds
    width_m, height_m = 2 * 100.0 * math.tan(HALF_W), 2 * 100.0 * math.tan(HALF_H)
    assert max_x - min_x == pytest.approx(width_m, abs=0.01)  # 167.8 m
    assert max_y - min_y == pytest.approx(height_m, abs=0.01)
    assert footprint.area == pytest.approx(width_m * height_m, rel=1e-6)
    assert footprint.centroid.distance(shapely.Point(0, 0)) < 0.01


@pytest.mark.parametrize("yaw_deg", [0.0, 37.0, 90.0])
def test_yaw_turns_the_footprint_about_the_point_below(yaw_deg: float) -> None:
    footprint = ground_footprint(pose(60.0, yaw_deg=yaw_deg), CAMERA, FRAME)
    # Nose yaw_deg clockwise from north: image right, the long side, points yaw_deg clockwise from east.
    long_axis = np.array([math.cos(math.radians(-yaw_deg)), math.sin(math.radians(-yaw_deg))])
    corners = np.array(footprint.exterior.coords)
    assert (corners @ long_axis).max() == pytest.approx(60.0 * math.tan(HALF_W), abs=0.01)


def test_oblique_view_is_a_trapezoid_from_near_to_far_edge() -> None:
    tilt_deg = -45.0  # gimbal pitch; nose north
    footprint = ground_footprint(pose(100.0, gimbal_pitch_deg=tilt_deg), CAMERA, FRAME)

    near_m = 100.0 / math.tan(math.radians(-tilt_deg) + HALF_H)
    far_m = 100.0 / math.tan(math.radians(-tilt_deg) - HALF_H)
    _, min_y, _, max_y = footprint.bounds
    assert min_y == pytest.approx(near_m, abs=0.01)
    assert max_y == pytest.approx(far_m, abs=0.01)
    # Wider at the far edge: each edge's half-width is its slant distance times tan(hfov/2), over the row's depth.
    assert (
        footprint.intersection(shapely.box(-1e4, far_m - 1, 1e4, far_m)).bounds[2]
        > footprint.intersection(shapely.box(-1e4, near_m, 1e4, near_m + 1)).bounds[2]
    )


def test_corners_agree_with_the_geolocator() -> None:
    look = pose(80.0, yaw_deg=20.0, pitch_deg=5.0, roll_deg=-3.0, gimbal_pitch_deg=-60.0)
    footprint = ground_footprint(look, CAMERA, FRAME)
    corners_px = np.array([[0, 0], [1280, 0], [1280, 720], [0, 720]], dtype=float)

    fixes = Geolocator(FRAME, CAMERA).locate(corners_px, look)

    boundary = footprint.exterior
    for fix in fixes:
        assert fix is not None
        assert boundary.distance(shapely.Point(fix.x_m, fix.y_m)) < 0.05


def test_view_above_the_horizon_is_clipped_at_max_range() -> None:
    # Pitched 10° down with a 50° vertical view: the top of the image looks 15° above the horizon.
    footprint = ground_footprint(pose(100.0, gimbal_pitch_deg=-10.0), CAMERA, FRAME, max_range_m=500.0)

    _, min_y, _, max_y = footprint.bounds
    assert max_y == pytest.approx(500.0, abs=0.5)
    assert min_y == pytest.approx(100.0 / math.tan(math.radians(10.0) + HALF_H), abs=0.01)
    farthest = max(math.hypot(x, y) for x, y in footprint.exterior.coords)
    assert farthest <= 500.0 + 1e-6
    # Straight ahead, the ground is seen out to the range and no further.
    assert footprint.contains(shapely.Point(0.0, 495.0))
    assert not footprint.contains(shapely.Point(0.0, 505.0))


def test_a_longer_range_sees_more_of_a_view_over_the_horizon() -> None:
    near = ground_footprint(pose(100.0, gimbal_pitch_deg=0.0), CAMERA, FRAME, max_range_m=300.0)
    far = ground_footprint(pose(100.0, gimbal_pitch_deg=0.0), CAMERA, FRAME, max_range_m=3000.0)

    assert near.difference(far).area < 1e-3
    assert far.area > 50 * near.area


@pytest.mark.parametrize(
    "look",
    [
        pytest.param(pose(100.0, gimbal_pitch_deg=30.0), id="looking-up"),
        pytest.param(pose(0.0), id="on-the-ground"),
        pytest.param(pose(-5.0), id="under-the-plane"),
    ],
)
def test_no_ground_in_view_is_an_empty_footprint(look: CameraPose) -> None:
    assert ground_footprint(look, CAMERA, FRAME).is_empty


def test_lens_distortion_bends_the_edges_the_way_the_geolocator_does() -> None:
    lens = Intrinsics(1280, 720, 80.0, k1=-0.2, k2=0.05)
    look = pose(60.0)
    footprint = ground_footprint(look, lens, FRAME)
    mid_edges_px = np.array([[640, 0], [1280, 360], [640, 720], [0, 360]], dtype=float)

    for fix in Geolocator(FRAME, lens).locate(mid_edges_px, look):
        assert footprint.exterior.distance(shapely.Point(fix.x_m, fix.y_m)) < 0.05
    assert footprint.is_valid
