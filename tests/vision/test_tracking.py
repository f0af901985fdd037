"""Tracking scenes built from ground truth: objects move in the site's metres, a drone's
camera flies and turns over them, `vision.camera.project` draws their boxes (with pixel
noise, missed frames and mixed confidences) and `vision.geolocate.Geolocator` turns the
boxes back into positions from a slightly wrong pose, as the onboard pipeline would."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest

from missions.geo import LocalFrame
from vision.camera import CameraPose, Intrinsics, project, rotation_world_from_camera
from vision.detections import Detection, Detections, ObjectClass
from vision.geolocate import Geolocator
from vision.tracking import Tracker, assign

FRAME = LocalFrame(36.128, -5.438)
INTRINSICS = Intrinsics()
GEOLOCATOR = Geolocator(FRAME, INTRINSICS)
FPS = 10.0
VESSEL, VEHICLE = ObjectClass.VESSEL, ObjectClass.VEHICLE
SIZES_M = {VESSEL: (9.0, 3.0, 2.5), VEHICLE: (4.5, 1.9, 1.6), ObjectClass.PERSON: (0.5, 0.5, 1.8)}


@dataclass(frozen=True)
class Mover:
    """One object: where it is at t = 0, its constant velocity, and when the detector misses it."""

    object_class: ObjectClass
    start_m: tuple[float, float]
    velocity_m_s: tuple[float, float]
    hidden: tuple[tuple[float, float], ...] = ()  # [start, end) frame times with no detection
    appears_s: float = 0.0

    def at(self, t: float) -> tuple[float, float]:
        return (self.start_m[0] + self.velocity_m_s[0] * t, self.start_m[1] + self.velocity_m_s[1] * t)

    def seen(self, t: float) -> bool:
        return t >= self.appears_s and not any(a <= t < b for a, b in self.hidden)

    def corners(self, t: float) -> np.ndarray:
        """The 8 corners of its box in ENU metres, long axis along its course."""
        length, beam, height = SIZES_M[self.object_class]
        vx, vy = self.velocity_m_s
        heading = math.atan2(vy, vx) if math.hypot(vx, vy) > 0.1 else 0.0
        along = np.array([math.cos(heading), math.sin(heading)])
        across = np.array([-along[1], along[0]])
        x, y = self.at(t)
        return np.array(
            [
                [*(np.array([x, y]) + a * length / 2 * along + b * beam / 2 * across), z]
                for a, b, z in itertools.product((-1, 1), (-1, 1), (0.0, height))
            ]
        )


# t → (x, y, alt), yaw, roll, gimbal pitch
CameraPath = Callable[[float], tuple[tuple[float, float, float], float, float, float]]


def orbit(centre=(0.0, 0.0), radius_m=30.0, speed_m_s=12.0, alt_m=120.0, drift_m_s=(0.0, 0.0)) -> CameraPath:
    """A drone circling at `speed_m_s` around a centre that drifts, nose along its course, banking into the turn."""
    rate = speed_m_s / radius_m
    bank_deg = math.degrees(math.atan(speed_m_s**2 / radius_m / 9.81))

    def path(t):
        cx, cy = centre[0] + drift_m_s[0] * t, centre[1] + drift_m_s[1] * t
        angle = rate * t
        x, y = cx + radius_m * math.cos(angle), cy + radius_m * math.sin(angle)
        course_east, course_north = -math.sin(angle), math.cos(angle)  # anticlockwise seen from above
        yaw_deg = math.degrees(math.atan2(course_east, course_north))
        return (x, y, alt_m), yaw_deg, -bank_deg, -90.0

    return path


def panning(position=(0.0, -70.0, 60.0), yaw_amplitude_deg=25.0, period_s=12.0, gimbal_pitch_deg=-40.0) -> CameraPath:
    """A hovering drone swinging its nose (and camera) left and right."""

    def path(t):
        yaw_deg = yaw_amplitude_deg * math.sin(2 * math.pi * t / period_s)
        return position, yaw_deg, 0.0, gimbal_pitch_deg

    return path


@dataclass(frozen=True)
class Noise:
    """What the detector and the telemetry get wrong: attitude and GPS err mostly by slowly
    drifting biases (held constant here) plus a little jitter from frame to frame."""

    pixel_sigma: float = 2.0
    attitude_bias_deg: tuple[float, float, float] = (0.8, -1.0, 0.7)  # roll, yaw, gimbal pitch
    attitude_jitter_deg: float = 0.2
    gps_bias_m: tuple[float, float] = (1.0, -0.8)
    gps_jitter_m: float = 0.3
    miss_rate: float = 0.1
    confidence: tuple[float, float] = (0.3, 0.95)


def pose_of(path: CameraPath, t: float, stabilized: bool = True) -> CameraPose:
    (x, y, alt), yaw, roll, gimbal_pitch = path(t)
    lon, lat = FRAME.lonlat(x, y)
    return CameraPose(
        lat, lon, alt, roll_deg=roll, yaw_deg=yaw, gimbal_pitch_deg=gimbal_pitch, gimbal_stabilized=stabilized
    )


def film(
    movers: list[Mover],
    path: CameraPath,
    duration_s: float,
    noise: Noise = Noise(),
    located: bool = True,
    seed: int = 0,
) -> list[tuple[Detections, list[int]]]:
    """Each frame's detections, and for each detection the index of the mover it shows."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(round(duration_s * FPS)):
        t = index / FPS
        pose = pose_of(path, t)
        rotation, camera_m = rotation_world_from_camera(pose), pose.position_m(FRAME)
        boxes, truth, classes = [], [], []
        for k, mover in enumerate(movers):
            if not mover.seen(t) or rng.random() < noise.miss_rate:
                continue
            pixels, in_front = project(mover.corners(t), camera_m, rotation, INTRINSICS)
            if not in_front.all():
                continue
            box = np.array([*pixels.min(axis=0), *pixels.max(axis=0)]) + rng.normal(0.0, noise.pixel_sigma, 4)
            clipped = np.clip(box, 0.0, [INTRINSICS.width_px, INTRINSICS.height_px] * 2)
            if clipped[2] - clipped[0] < 3 or clipped[3] - clipped[1] < 3:
                continue  # out of the picture
            boxes.append(clipped)
            truth.append(k)
            classes.append(mover.object_class)
        (x, y, _), _, _, _ = path(t)
        gps_x = x + noise.gps_bias_m[0] + rng.normal(0.0, noise.gps_jitter_m)
        gps_y = y + noise.gps_bias_m[1] + rng.normal(0.0, noise.gps_jitter_m)
        lon, lat = FRAME.lonlat(gps_x, gps_y)
        jitter = np.array(noise.attitude_bias_deg) + rng.normal(0.0, noise.attitude_jitter_deg, 3)
        telemetry = replace(
            pose,
            lat_deg=lat,
            lon_deg=lon,
            roll_deg=pose.roll_deg + jitter[0],
            yaw_deg=pose.yaw_deg + jitter[1],
            gimbal_pitch_deg=pose.gimbal_pitch_deg + jitter[2],
        )
        fixes = GEOLOCATOR.locate_boxes(np.array(boxes).reshape(-1, 4), telemetry) if located else [None] * len(boxes)
        items = tuple(
            Detection(
                object_class=cls,
                confidence=float(rng.uniform(*noise.confidence)),
                box_px=tuple(float(v) for v in box),
                x_m=None if fix is None else fix.x_m,
                y_m=None if fix is None else fix.y_m,
            )
            for cls, box, fix in zip(classes, boxes, fixes, strict=True)
        )
        frames.append((Detections("cam0", 1_700_000_000.0 + t, index, items), truth))
    return frames


def run(tracker: Tracker, frames) -> dict[int, list[int | None]]:
    """For each mover, the track id its detections got, frame after frame (None: no id)."""
    ids: dict[int, list[int | None]] = {}
    for detections, truth in frames:
        tracked = tracker.update(detections)
        assert [d.box_px for d in tracked] == [d.box_px for d in detections], "same detections, same order"
        for detection, mover in zip(tracked, truth, strict=True):
            ids.setdefault(mover, []).append(detection.track_id)
    return ids


def switches(ids: list[int | None]) -> int:
    given = [i for i in ids if i is not None]
    return sum(a != b for a, b in itertools.pairwise(given))


def assert_one_id_each(ids: dict[int, list[int | None]], min_coverage: float = 0.8) -> None:
    seen: dict[int, int] = {}
    for mover, sequence in ids.items():
        given = [i for i in sequence if i is not None]
        assert switches(sequence) == 0, f"mover {mover} switched ids: {sequence}"
        assert len(given) >= min_coverage * len(sequence), f"mover {mover} mostly untracked: {sequence}"
        for track_id in set(given):
            owner = seen.setdefault(track_id, mover)
            assert owner == mover, f"id {track_id} shared by movers {owner} and {mover}"


# Four objects in lanes at least 14 m apart, moving the same general way, and a drone
# circling over them as it follows.
SEPARATED = [
    Mover(VESSEL, (-30.0, -30.0), (4.0, 0.3)),
    Mover(VESSEL, (-15.0, -10.0), (2.5, -0.2)),
    Mover(VEHICLE, (-35.0, 10.0), (5.0, 0.0)),
    Mover(VESSEL, (-20.0, 30.0), (3.0, -0.3)),
]
FOLLOW = {"centre": (-25.0, 0.0), "radius_m": 20.0, "alt_m": 150.0, "drift_m_s": (3.6, 0.0)}


def faster(movers: list[Mover], east_m_s: float) -> list[Mover]:
    return [replace(m, velocity_m_s=(m.velocity_m_s[0] + east_m_s, m.velocity_m_s[1])) for m in movers]


@pytest.mark.parametrize(
    ("movers", "path"),
    [
        pytest.param(SEPARATED, orbit(**FOLLOW), id="separated-orbiting-12ms"),
        pytest.param(
            faster(SEPARATED, 8.0),
            orbit(**{**FOLLOW, "radius_m": 15.0, "drift_m_s": (11.6, 0.0)}),
            id="separated-following-in-tight-turns",
        ),
        pytest.param(
            [Mover(VESSEL, (-48.0, 0.0), (8.0, 0.0)), Mover(VESSEL, (0.0, -56.0), (0.0, 8.0))],
            orbit(),
            id="crossing-paths-at-right-angles-1s-apart",
        ),
        pytest.param(
            [Mover(VESSEL, (-40.0, 2.0), (7.0, 0.0)), Mover(VESSEL, (40.0, -2.0), (-7.0, 0.0))],
            orbit(),
            id="head-on-passing-4m-apart",
        ),
        pytest.param(
            [Mover(VESSEL, (-40.0, 0.0), (10.0, 0.0)), Mover(VESSEL, (-20.0, 4.0), (5.0, 0.0))],
            orbit(),
            id="overtaking-4m-abeam",
        ),
        pytest.param(
            [Mover(VESSEL, (-40.0, 0.0), (14.0, 0.0)), Mover(VEHICLE, (30.0, -10.0), (-12.0, 2.0))],
            orbit(drift_m_s=(3.0, 0.0)),
            id="fast-vessel-and-car",
        ),
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_no_id_switches_with_world_positions(movers, path, seed):
    frames = film(movers, path, duration_s=12.0, seed=seed)
    assert_one_id_each(run(Tracker(), frames))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_boats_that_meet_at_one_point_leave_it_with_their_own_ids(seed):
    # While the two are within a few metres of each other the fixes cannot tell them apart,
    # so ids may flicker there; each must come out with the id it went in with.
    movers = [Mover(VESSEL, (-48.0, 0.0), (8.0, 0.0)), Mover(VESSEL, (-42.0, -42.0), (7.0, 7.0))]
    frames = film(movers, orbit(), duration_s=12.0, seed=seed)
    tracker = Tracker()
    before: dict[int, set[int]] = {0: set(), 1: set()}
    after: dict[int, set[int]] = {0: set(), 1: set()}
    for detections, truth in frames:
        for detection, mover in zip(tracker.update(detections), truth, strict=True):
            t = detections.frame_time_s - frames[0][0].frame_time_s
            if detection.track_id is not None and not 5.0 <= t < 7.0:
                (before if t < 6.0 else after)[mover].add(detection.track_id)
    assert before == after
    assert all(len(ids) == 1 for ids in before.values()) and before[0] != before[1]


@pytest.mark.parametrize(("gap_s", "same_id"), [(1.0, True), (1.5, True), (5.0, False)])
def test_a_dropout_keeps_the_id_for_a_second_not_for_five(gap_s, same_id):
    boat = Mover(VESSEL, (-30.0, 0.0), (5.0, 1.0), hidden=((4.0, 4.0 + gap_s),))
    ids = run(Tracker(), film([boat], orbit(), duration_s=12.0, noise=Noise(miss_rate=0.0)))[0]
    given = [i for i in ids if i is not None]
    assert switches(ids) == (0 if same_id else 1)
    if not same_id:
        assert given[-1] > given[0], "a new track gets a new, larger id"


def test_a_lost_track_is_deleted_after_max_age():
    tracker = Tracker()
    boat = Mover(VESSEL, (0.0, 0.0), (2.0, 0.0), hidden=((2.0, 99.0),))
    frames = film([boat], orbit(), duration_s=4.5, noise=Noise(miss_rate=0.0))
    run(tracker, frames[:25])
    assert len(tracker) == 1
    run(tracker, frames[25:])  # 2.5 s without it
    assert len(tracker) == 0


def test_classes_never_share_a_track():
    # A car drives along the quay past a moored boat and, later, a boat leaves the picture
    # just where a van turns up: close enough in space and time for either to continue the other.
    movers = [
        Mover(VESSEL, (-30.0, 0.0), (6.0, 0.0)),
        Mover(VEHICLE, (30.0, 0.5), (-6.0, 0.0)),
        Mover(VESSEL, (-20.0, 20.0), (5.0, 0.0), hidden=((6.0, 99.0),)),
        Mover(VEHICLE, (10.0, 20.0), (5.0, 0.0), appears_s=6.2),
    ]
    ids = run(Tracker(), film(movers, orbit(), duration_s=12.0))
    assert_one_id_each(ids)
    assert set(filter(None, ids[2])).isdisjoint(filter(None, ids[3]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pixel_fallback_with_a_panning_camera(seed):
    movers = [
        Mover(VESSEL, (-30.0, 5.0), (2.0, 0.3)),
        Mover(VESSEL, (5.0, 30.0), (-1.5, -0.2)),
        Mover(VEHICLE, (20.0, -10.0), (0.5, 1.5)),
    ]
    frames = film(movers, panning(), duration_s=12.0, located=False, seed=seed)
    assert all(not d.has_local_position for detections, _ in frames for d in detections)
    assert_one_id_each(run(Tracker(), frames))


# ------------------------------------------------------------------ the rules, one by one


def box_at(x: float, y: float, size: float = 40.0) -> tuple[float, float, float, float]:
    return (x - size / 2, y - size / 2, x + size / 2, y + size / 2)


def frame(t: float, *items: Detection, source: str = "cam0") -> Detections:
    return Detections(source, t, round(t * 10), items)


def boat(x_m: float, confidence: float = 0.9, object_class: ObjectClass = VESSEL, y_m: float = 0.0) -> Detection:
    return Detection(object_class, confidence, box_at(100 + x_m, 100), x_m=x_m, y_m=y_m)


def test_an_id_is_given_on_the_second_hit_and_ids_increase():
    tracker = Tracker()
    first = tracker.update(frame(0.0, boat(0.0), boat(100.0)))
    assert [d.track_id for d in first] == [None, None]
    second = tracker.update(frame(0.1, boat(0.5), boat(100.5)))
    assert [d.track_id for d in second] == [1, 2]
    third = tracker.update(frame(0.2, boat(1.0), boat(101.0), boat(-300.0)))
    assert [d.track_id for d in third] == [1, 2, None]
    fourth = tracker.update(frame(0.3, boat(-300.0)))
    assert [d.track_id for d in fourth] == [3]


def test_one_hit_confirms_when_asked():
    assert Tracker(confirm_hits=1).update(frame(0.0, boat(0.0))).items[0].track_id == 1


def test_low_confidence_continues_a_track_but_never_starts_one():
    tracker = Tracker()
    tracker.update(frame(0.0, boat(0.0)))
    tracker.update(frame(0.1, boat(1.0)))
    out = tracker.update(frame(0.2, boat(2.0, confidence=0.2), boat(80.0, confidence=0.2)))
    assert [d.track_id for d in out] == [1, None]
    out = tracker.update(frame(0.3, boat(80.0, confidence=0.2)))
    assert [d.track_id for d in out] == [None]
    assert len(tracker) == 1


def test_below_the_low_threshold_is_ignored():
    tracker = Tracker()
    tracker.update(frame(0.0, boat(0.0)))
    tracker.update(frame(0.1, boat(1.0)))
    assert tracker.update(frame(0.2, boat(2.0, confidence=0.05))).items[0].track_id is None


@pytest.mark.parametrize(("jump_m", "continues"), [(7.0, True), (8.0, False), (30.0, False)])
def test_the_gate_is_a_fixs_error_plus_top_speed_times_the_time_since(jump_m, continues):
    # Two fixes at one place, then one 0.1 s later: 3 σ of a fix (6 m) + 15 m/s · 0.1 s = 7.5 m.
    tracker = Tracker()
    tracker.update(frame(0.0, boat(0.0)))
    tracker.update(frame(0.1, boat(0.0)))
    out = tracker.update(frame(0.2, boat(jump_m)))
    assert (out.items[0].track_id == 1) is continues


def test_a_track_coasts_on_its_velocity():
    tracker = Tracker()
    for i in range(20):
        tracker.update(frame(i / 10, boat(12.0 * i / 10)))
    # 1.5 s later it is 18 m further on; far outside the gate around its last fix.
    out = tracker.update(frame(3.4, boat(12.0 * 3.4 + 1.0)))
    assert out.items[0].track_id == 1


def test_a_detection_of_another_class_does_not_continue():
    tracker = Tracker()
    tracker.update(frame(0.0, boat(0.0)))
    tracker.update(frame(0.1, boat(0.5)))
    out = tracker.update(frame(0.2, boat(1.0, object_class=VEHICLE)))
    assert out.items[0].track_id is None


def test_another_source_is_refused():
    tracker = Tracker()
    tracker.update(frame(0.0, boat(0.0)))
    with pytest.raises(ValueError, match="cam1"):
        tracker.update(frame(0.1, boat(0.0), source="cam1"))


def test_an_incoming_id_is_replaced():
    tracker = Tracker()
    out = tracker.update(frame(0.0, replace(boat(0.0), track_id=77)))
    assert out.items[0].track_id is None


def test_an_empty_frame_changes_nothing():
    tracker = Tracker()
    out = tracker.update(frame(0.0))
    assert len(out) == 0 and len(tracker) == 0


@pytest.mark.parametrize("bad", [{"low_confidence": 0.6}, {"confirm_hits": 0}, {"max_age_s": 0.0}])
def test_nonsense_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Tracker(**bad)


# ------------------------------------------------------------------ assignment


def brute_force(cost: np.ndarray) -> tuple[int, float]:
    """(pairs, total cost) of the best assignment that matches as many allowed pairs as possible."""
    rows, cols = cost.shape
    for k in range(min(rows, cols), -1, -1):
        totals = [
            sum(cost[r, c] for r, c in zip(chosen, perm, strict=True))
            for chosen in itertools.combinations(range(rows), k)
            for perm in itertools.permutations(range(cols), k)
            if all(np.isfinite(cost[r, c]) for r, c in zip(chosen, perm, strict=True))
        ]
        if totals:
            return k, min(totals)
    return 0, 0.0


@pytest.mark.parametrize("seed", range(40))
def test_assign_is_optimal(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 6, size=2)
    cost = rng.random((rows, cols)) * 10
    cost[rng.random((rows, cols)) < 0.35] = np.inf
    pairs = assign(cost)
    assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
    count, total = brute_force(cost)
    assert len(pairs) == count
    assert sum(cost[r, c] for r, c in pairs) == pytest.approx(total)


@pytest.mark.parametrize(
    ("cost", "pairs"),
    [
        (np.zeros((0, 3)), []),
        (np.full((2, 2), np.inf), []),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), [(0, 0), (1, 1)]),
        (np.array([[0.1, 0.9], [0.2, np.inf]]), [(0, 1), (1, 0)]),
        (np.array([[5.0], [1.0], [3.0]]), [(1, 0)]),
    ],
)
def test_assign_cases(cost, pairs):
    assert assign(cost) == pairs
