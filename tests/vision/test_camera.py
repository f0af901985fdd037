import math

import numpy as np
import pytest

from missions.planners.camera import Camera
from vision.camera import CameraPose, Intrinsics, pixel_rays, project, rotation_world_from_camera

HALF_TAN = math.tan(math.radians(40.0))


def test_intrinsics_match_the_planner_camera():
    planner = Camera()
    intrinsics = Intrinsics.from_sensor(planner.sensor_width_mm, planner.focal_length_mm, planner.image_width_px, 720)
    assert intrinsics.hfov_deg == pytest.approx(planner.horizontal_fov_deg)
    assert intrinsics.fx_px == pytest.approx(1280 * 3.67 / 6.17)


@pytest.mark.parametrize(
    ("intrinsics", "fx_px", "vfov_deg"),
    [
        (Intrinsics(), 640.0 / HALF_TAN, math.degrees(2 * math.atan(360.0 * HALF_TAN / 640.0))),
        (Intrinsics(1000, 1000, 90.0), 500.0, 90.0),
    ],
)
def test_intrinsics_derived_values(intrinsics, fx_px, vfov_deg):
    assert intrinsics.fx_px == pytest.approx(fx_px)
    assert intrinsics.fy_px == pytest.approx(fx_px)
    assert (intrinsics.cx_px, intrinsics.cy_px) == (intrinsics.width_px / 2, intrinsics.height_px / 2)
    assert intrinsics.vfov_deg == pytest.approx(vfov_deg)


@pytest.mark.parametrize("bad", [{"width_px": 0}, {"hfov_deg": 0.0}, {"hfov_deg": 180.0}])
def test_intrinsics_reject_nonsense(bad):
    with pytest.raises(ValueError):
        Intrinsics(**bad)


@pytest.mark.parametrize(("k1", "k2"), [(0.0, 0.0), (-0.2, 0.05), (0.1, 0.01)])
def test_undistort_inverts_distort(k1, k2):
    intrinsics = Intrinsics(k1=k1, k2=k2)
    normalized = np.random.default_rng(1).uniform(-0.9, 0.9, size=(500, 2))
    assert np.allclose(intrinsics.undistort(intrinsics.distort(normalized)), normalized, atol=1e-12)


@pytest.mark.parametrize(
    ("pose", "right_enu", "down_enu", "forward_enu"),
    [
        # Nadir, nose north: image right east, image bottom south.
        (CameraPose(0, 0, 60), (1, 0, 0), (0, -1, 0), (0, 0, -1)),
        # Nadir, nose east: image right points south, image top east.
        (CameraPose(0, 0, 60, yaw_deg=90), (0, -1, 0), (-1, 0, 0), (0, 0, -1)),
        # Gimbal forward, nose north: looking north, image right east, image down is down.
        (CameraPose(0, 0, 60, gimbal_pitch_deg=0), (1, 0, 0), (0, 0, -1), (0, 1, 0)),
        # Gimbal turned 90° right of a west-facing nose, looking forward: looking north.
        (CameraPose(0, 0, 60, yaw_deg=-90, gimbal_yaw_deg=90, gimbal_pitch_deg=0), (1, 0, 0), (0, 0, -1), (0, 1, 0)),
        # Nadir with right wing 90° down (an extreme roll): the camera looks west.
        (CameraPose(0, 0, 60, roll_deg=90), (0, 0, -1), (0, -1, 0), (-1, 0, 0)),
        # A stabilised gimbal ignores the same roll.
        (CameraPose(0, 0, 60, roll_deg=90, gimbal_stabilized=True), (1, 0, 0), (0, -1, 0), (0, 0, -1)),
    ],
)
def test_rotation_conventions(pose, right_enu, down_enu, forward_enu):
    rotation = rotation_world_from_camera(pose)
    assert np.allclose(rotation @ [1, 0, 0], right_enu, atol=1e-12)
    assert np.allclose(rotation @ [0, 1, 0], down_enu, atol=1e-12)
    assert np.allclose(rotation @ [0, 0, 1], forward_enu, atol=1e-12)
    assert np.allclose(rotation.T @ rotation, np.eye(3))
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def random_poses(count, seed=7):
    rng = np.random.default_rng(seed)
    return [
        CameraPose(
            0,
            0,
            float(rng.uniform(20, 150)),
            roll_deg=float(rng.uniform(-15, 15)),
            pitch_deg=float(rng.uniform(-15, 15)),
            yaw_deg=float(rng.uniform(-180, 180)),
            gimbal_pitch_deg=float(rng.uniform(-90, -30)),
            gimbal_yaw_deg=float(rng.uniform(-30, 30)),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("intrinsics", [Intrinsics(), Intrinsics(k1=-0.15, k2=0.03)])
@pytest.mark.parametrize("pose", random_poses(10))
def test_pixel_rays_and_project_are_inverses(pose, intrinsics):
    rotation = rotation_world_from_camera(pose)
    rng = np.random.default_rng(3)
    pixels = rng.uniform([0, 0], [intrinsics.width_px, intrinsics.height_px], size=(200, 2))
    camera_m = np.array([5.0, -3.0, pose.alt_m])
    rays = pixel_rays(pixels, rotation, intrinsics)
    points = camera_m + rays * rng.uniform(1, 500, size=(200, 1))
    back, in_front = project(points, camera_m, rotation, intrinsics)
    assert in_front.all()
    assert np.allclose(back, pixels, atol=1e-6)
    assert np.allclose(np.linalg.norm(rays, axis=1), 1.0)


def test_points_behind_the_camera_are_masked():
    pose = CameraPose(0, 0, 60)
    rotation = rotation_world_from_camera(pose)
    camera_m = np.array([0.0, 0.0, 60.0])
    pixels, in_front = project([[0, 0, 0], [0, 0, 100], [10, 0, 60]], camera_m, rotation, Intrinsics())
    assert in_front.tolist() == [True, False, False]
    assert np.allclose(pixels[0], [640, 360])
    assert np.isnan(pixels[1:]).all()
