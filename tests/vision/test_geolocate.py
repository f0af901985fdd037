import math
import time

import numpy as np
import pytest

from missions.geo import LocalFrame
from vision.camera import CameraPose, Intrinsics, project, rotation_world_from_camera
from vision.geolocate import Geolocator, GroundFix, TrackSmoother, box_ground_point

ORIGIN_LAT_DEG, ORIGIN_LON_DEG = 51.05, 2.35
FRAME = LocalFrame(ORIGIN_LAT_DEG, ORIGIN_LON_DEG)
INTRINSICS = Intrinsics()
HALF_W_M = 60.0 * math.tan(math.radians(40.0))  # 50.35 m: half the footprint width at 60 m
HALF_H_M = HALF_W_M * 360.0 / 640.0  # 28.32 m: square pixels, 720 of 1280


@pytest.fixture(scope="module")
def geolocator():
    return Geolocator(FRAME, INTRINSICS)


def nadir(alt_m=60.0, **attitude):
    return CameraPose(ORIGIN_LAT_DEG, ORIGIN_LON_DEG, alt_m, **attitude)


@pytest.mark.parametrize(
    ("pixel", "east_m", "north_m"),
    [
        ((640, 360), 0.0, 0.0),
        ((0, 360), -HALF_W_M, 0.0),
        ((1280, 360), HALF_W_M, 0.0),
        ((640, 0), 0.0, HALF_H_M),
        ((640, 720), 0.0, -HALF_H_M),
        ((0, 0), -HALF_W_M, HALF_H_M),
        ((1280, 720), HALF_W_M, -HALF_H_M),
        ((320, 540), -HALF_W_M / 2, -HALF_H_M / 2),
    ],
)
def test_nadir_footprint_nose_north(geolocator, pixel, east_m, north_m):
    (fix,) = geolocator.locate([pixel], nadir())
    assert (fix.x_m, fix.y_m) == pytest.approx((east_m, north_m), abs=1e-6)
    assert fix.range_m == pytest.approx(math.sqrt(60.0**2 + east_m**2 + north_m**2))


@pytest.mark.parametrize(
    ("yaw_deg", "right_edge_en", "top_edge_en"),
    [
        (0.0, (HALF_W_M, 0.0), (0.0, HALF_H_M)),
        (90.0, (0.0, -HALF_W_M), (HALF_H_M, 0.0)),  # nose east: image right is south, image top east
        (180.0, (-HALF_W_M, 0.0), (0.0, -HALF_H_M)),  # nose south: image right is west
        (-90.0, (0.0, HALF_W_M), (-HALF_H_M, 0.0)),  # nose west: image right is north
    ],
)
def test_yaw_rotates_the_footprint(geolocator, yaw_deg, right_edge_en, top_edge_en):
    right, top = geolocator.locate([(1280, 360), (640, 0)], nadir(yaw_deg=yaw_deg))
    assert (right.x_m, right.y_m) == pytest.approx(right_edge_en, abs=1e-6)
    assert (top.x_m, top.y_m) == pytest.approx(top_edge_en, abs=1e-6)


@pytest.mark.parametrize("pose_index", range(20))
def test_world_to_pixel_to_world_round_trip(geolocator, pose_index):
    rng = np.random.default_rng(pose_index)
    pose = CameraPose(
        ORIGIN_LAT_DEG + float(rng.uniform(-0.01, 0.01)),
        ORIGIN_LON_DEG + float(rng.uniform(-0.01, 0.01)),
        float(rng.uniform(30, 120)),
        roll_deg=float(rng.uniform(-15, 15)),
        pitch_deg=float(rng.uniform(-15, 15)),
        yaw_deg=float(rng.uniform(-180, 180)),
        gimbal_pitch_deg=float(rng.uniform(-90, -30)),
    )
    camera_m = pose.position_m(FRAME)
    world = np.column_stack([camera_m[:2] + rng.uniform(-600, 600, size=(4000, 2)), np.zeros(4000)])
    pixels, in_front = project(world, camera_m, rotation_world_from_camera(pose), INTRINSICS)
    inside = in_front & (pixels >= 0).all(axis=1) & (pixels <= [1280, 720]).all(axis=1)
    assert inside.sum() >= 10
    fixes = geolocator.locate(pixels[inside], pose)
    kept = [i for i, fix in enumerate(fixes) if fix is not None]
    # Only points past the 2 km limit may be dropped, and none are that far here.
    assert len(kept) == inside.sum()
    located = np.array([(fix.x_m, fix.y_m) for fix in fixes])
    assert np.abs(located - world[inside, :2]).max() < 1e-3


def test_lat_lon_go_through_the_local_frame(geolocator):
    pose = CameraPose(51.06, 2.36, 80.0, yaw_deg=30.0, gimbal_pitch_deg=-50.0)
    fixes = geolocator.locate([(100, 700), (640, 360), (1200, 600)], pose)
    for fix in fixes:
        lon_deg, lat_deg = FRAME.lonlat(fix.x_m, fix.y_m)
        assert (fix.lat_deg, fix.lon_deg) == pytest.approx((lat_deg, lon_deg), abs=1e-9)
    (below,) = geolocator.locate([(640, 360)], CameraPose(51.06, 2.36, 80.0))
    assert (below.lat_deg, below.lon_deg) == pytest.approx((51.06, 2.36), abs=1e-9)


@pytest.mark.parametrize(
    ("pose", "pixel"),
    [
        (nadir(gimbal_pitch_deg=0.0), (640, 360)),  # on the horizon
        (nadir(gimbal_pitch_deg=0.0), (640, 100)),  # above it
        (nadir(gimbal_pitch_deg=-1.0), (640, 360)),  # hits the sea 3.4 km out, past the 2 km limit
        (nadir(roll_deg=180.0), (640, 360)),  # upside down: looking at the sky
        (nadir(alt_m=-5.0), (640, 360)),  # below the plane: the hit would be behind the camera
        (nadir(), (math.nan, 360)),
    ],
)
def test_rays_that_miss_give_none(geolocator, pose, pixel):
    assert geolocator.locate([pixel, (640, 720)], pose)[0] is None


def test_mixed_hits_and_misses_keep_their_order(geolocator):
    fixes = geolocator.locate([(640, 100), (640, 700), (640, 0)], nadir(gimbal_pitch_deg=-10.0))
    assert fixes[0] is None and fixes[2] is None
    assert isinstance(fixes[1], GroundFix)
    assert geolocator.locate(np.empty((0, 2)), nadir()) == []


def test_ground_altitude_raises_the_plane(geolocator):
    (fix,) = geolocator.locate([(1280, 360)], nadir(), ground_alt_m=30.0)
    assert fix.x_m == pytest.approx(HALF_W_M / 2)


@pytest.mark.parametrize(
    ("error", "pixel", "expected_m"),
    [
        ({"roll_deg": 1.0}, (640, 360), 60.0 * math.tan(math.radians(1.0))),
        ({"pitch_deg": 1.0}, (640, 360), 60.0 * math.tan(math.radians(1.0))),
        ({"gimbal_pitch_deg": -89.0}, (640, 360), 60.0 * math.tan(math.radians(1.0))),
        ({"yaw_deg": 1.0}, (640, 360), 0.0),
        ({"yaw_deg": 1.0}, (1280, 360), 2 * HALF_W_M * math.sin(math.radians(0.5))),
    ],
)
def test_one_degree_attitude_error_budget(geolocator, error, pixel, expected_m):
    (truth,) = geolocator.locate([pixel], nadir())
    (wrong,) = geolocator.locate([pixel], nadir(**error))
    assert math.hypot(wrong.x_m - truth.x_m, wrong.y_m - truth.y_m) == pytest.approx(expected_m, abs=1e-6)


def test_roll_right_wing_down_looks_left(geolocator):
    (fix,) = geolocator.locate([(640, 360)], nadir(roll_deg=5.0))
    assert fix.x_m < -5.0 and fix.y_m == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([10, 20, 30, 60], [[20, 60]]),
        ([[10, 20, 30, 60], [100, 100, 200, 300]], [[20, 60], [150, 300]]),
    ],
)
def test_box_ground_point_is_bottom_centre(boxes, expected):
    assert box_ground_point(boxes).tolist() == expected


def test_oblique_box_bottom_is_nearer_than_its_centre(geolocator):
    pose = nadir(gimbal_pitch_deg=-30.0)
    (bottom,) = geolocator.locate_boxes([[600, 300, 680, 400]], pose)
    (centre,) = geolocator.locate([(640, 350)], pose)
    assert bottom.range_m < centre.range_m


def test_locating_100_boxes_is_fast(geolocator):
    corner = np.random.default_rng(0).uniform([0, 300], [1080, 600], size=(100, 2))
    boxes = np.column_stack([corner, corner + np.random.default_rng(1).uniform(20, 120, size=(100, 2))])
    pose = nadir(gimbal_pitch_deg=-60.0, roll_deg=3.0)
    geolocator.locate_boxes(boxes, pose)
    start = time.perf_counter()
    fixes = geolocator.locate_boxes(boxes, pose)
    elapsed_s = time.perf_counter() - start
    assert all(fix is not None for fix in fixes)
    assert elapsed_s < 0.020  # a sanity bound, a benchmark measures the real figure (< 1 ms)


def straight_track(count=300, dt_s=0.2, speed_m_s=5.0):
    # 5 Hz: the rate the onboard detector delivers fixes at.
    times_s = np.arange(count) * dt_s
    truth = np.column_stack([10.0 + speed_m_s * times_s * 0.8, -20.0 + speed_m_s * times_s * 0.6])
    return times_s, truth


def rms(errors):
    return float(np.sqrt(np.mean(np.sum(np.asarray(errors) ** 2, axis=1))))


def run(smoother, times_s, measured, track_id="boat", range_m=0.0):
    return np.array(
        [
            smoother.update(track_id, float(t), float(x), float(y), range_m)[:2]
            for t, (x, y) in zip(times_s, measured, strict=True)
        ]
    )


@pytest.mark.parametrize(("noise_m", "range_m"), [(2.0, 60.0), (3.0, 200.0), (1.0, 0.0)])
def test_smoother_reduces_noise_on_a_straight_track(noise_m, range_m):
    times_s, truth = straight_track()
    measured = truth + np.random.default_rng(5).normal(0, noise_m, truth.shape)
    smoothed = run(TrackSmoother(), times_s, measured, range_m=range_m)
    settled = slice(25, None)
    assert rms(smoothed[settled] - truth[settled]) <= 0.6 * rms(measured[settled] - truth[settled])


def test_smoother_estimates_velocity():
    times_s, truth = straight_track()
    measured = truth + np.random.default_rng(6).normal(0, 2.0, truth.shape)
    smoother = TrackSmoother()
    for t, (x, y) in zip(times_s, measured, strict=True):
        estimate = smoother.update(1, float(t), float(x), float(y), 60.0)
    assert (estimate.vx_m_s, estimate.vy_m_s) == pytest.approx((4.0, 3.0), abs=0.7)


def test_smoother_follows_a_turning_target():
    radius_m, speed_m_s = 40.0, 6.0
    times_s = np.arange(0, 60, 0.2)
    angle = speed_m_s / radius_m * times_s
    truth = radius_m * np.column_stack([np.cos(angle), np.sin(angle)])
    measured = truth + np.random.default_rng(8).normal(0, 2.0, truth.shape)
    smoothed = run(TrackSmoother(), times_s, measured, range_m=60.0)
    settled = slice(25, None)
    errors = np.linalg.norm(smoothed[settled] - truth[settled], axis=1)
    # A 0.9 m/s² turn makes a constant-velocity filter lag, but never by more than 3 σ of a fix.
    assert errors.max() < 6.0
    assert rms(smoothed[settled] - truth[settled]) < rms(measured[settled] - truth[settled])


def test_smoother_weights_far_fixes_less():
    near, far = TrackSmoother(), TrackSmoother()
    for smoother, range_m in ((near, 50.0), (far, 1500.0)):
        smoother.update("a", 0.0, 0.0, 0.0, range_m)
        smoother.update("a", 1.0, 0.0, 0.0, range_m)
    assert near.update("a", 2.0, 10.0, 0.0, 50.0).x_m > far.update("a", 2.0, 10.0, 0.0, 1500.0).x_m


def test_smoother_forgets_stale_tracks_and_bounds_memory():
    smoother = TrackSmoother(forget_after_s=5.0, max_tracks=50)
    smoother.update("old", 0.0, 100.0, 100.0)
    smoother.update("new", 4.0, 0.0, 0.0)
    smoother.update("new", 6.0, 0.0, 0.0)
    assert len(smoother) == 1
    # A forgotten track starts afresh at its new fix instead of being pulled to the old one.
    assert smoother.update("old", 7.0, -50.0, 0.0)[:2] == (-50.0, 0.0)
    for track_id in range(200):
        smoother.update(track_id, 8.0, 0.0, 0.0)
    assert len(smoother) == 50


def test_each_fix_carries_its_error_radius_growing_with_range(geolocator):
    from vision.detections import Detection, Detections, ObjectClass
    from vision.frames import Frame
    from vision.geolocate import Geolocate, SmoothTracks, fix_error_m

    class Still:
        def pose_at(self, time_s):
            return nadir(alt_m=60.0, pitch_deg=0.0, gimbal_pitch_deg=-45.0)

    boxes = [(620.0, 690.0, 660.0, 720.0), (620.0, 340.0, 660.0, 370.0)]  # near the bottom edge, mid-image
    items = tuple(Detection(ObjectClass.VESSEL, 0.9, box, track_id=i) for i, box in enumerate(boxes))
    image = np.zeros((720, 1280, 3), np.uint8)
    located = Geolocate(Still(), geolocator)(Detections("cam", 0.0, 0, items), Frame(image, 0.0, 0, "cam", 0.0))
    near, far = located.items
    assert near.error_m < far.error_m
    slant_m = math.hypot(far.x_m, far.y_m, 60.0)
    assert far.error_m == pytest.approx(fix_error_m(slant_m), rel=0.02)
    # The smoother's error shrinks as fixes of the same spot add up, and never below zero.
    smooth = SmoothTracks(FRAME)
    errors = []
    for k in range(20):
        frame = Detections("cam", float(k), k, (far,))
        errors.append(smooth(frame, Frame(image, float(k), k, "cam", float(k))).items[0].error_m)
    assert errors[0] == pytest.approx(far.error_m, rel=0.01) and 0.0 < errors[-1] < 0.85 * errors[0]
