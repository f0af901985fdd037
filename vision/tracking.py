"""Stable track ids for the detections of one video stream, however the drone moves.

The pipeline geolocates before it tracks, so a detection usually arrives with a world
position (`x_m`, `y_m`, the site's metres). Associating there makes the camera's motion
irrelevant: a boat that sweeps across the image because the drone turns has not moved.
Each track keeps a constant-velocity Kalman filter in metres and is gated by how far the
object can have gone since it was last seen (vessels up to ~15 m/s). A detection without
a world position (a ray above the horizon, a source with no telemetry) falls back to
the box centre in pixels, with a constant-velocity filter there too: good for a camera
that pans steadily, not for one that turns hard.

Association is two-stage, as ByteTrack's: confirmed tracks take the confident
detections first, then whatever low-confidence detections lie in their gates (a boat
half-hidden by spray scores low but is still the same boat), and only then do tentative
tracks take the confident leftovers. Low-confidence detections never start a track.
Assignment is optimal (the Hungarian method, `assign`) within the gates, in numpy, so
the onboard install needs no scipy. Classes must match: a vessel never continues a
vehicle's track.

Track ids are given out when a track is *confirmed* (`confirm_hits` hits, 2 by default),
in increasing order from 1, so a one-frame false positive never uses up an id and the
ids an operator sees are consecutive. The detections of a track that is not yet
confirmed come back with `track_id` None; from the confirming hit on they carry the id.
A confirmed track survives `max_age_s` (2 s) of frame time without a detection, coasting
on its velocity; a tentative one only `tentative_age_s`. Ages are measured on
`frame_time_s`, the camera's clock, not on how often `update` is called.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from vision.detections import Detection, Detections, ObjectClass
from vision.frames import Frame

# Gates are in "sigmas": 3 covers 99 % of a Gaussian prediction error per axis.
_GATE_SIGMAS = 3.0
# A detection whose box is this many times larger or smaller (in linear size) than the
# track's is a different object, however close: used only without world positions.
_MAX_SIZE_RATIO = 3.0


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Rows matched to columns at minimum total cost; np.inf marks a forbidden pair.

    The Hungarian method by shortest augmenting paths (O(n²m)), vectorised over columns.
    Forbidden pairs are replaced by a cost larger than any set of allowed ones, so the
    most pairs that can be matched are, at the least cost among such matchings; then the
    forbidden ones are dropped. Returns (row, column) pairs sorted by row.
    """
    cost = np.asarray(cost, dtype=float)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a matrix, got shape {cost.shape}")
    if cost.size == 0:
        return []
    allowed = np.isfinite(cost)
    if not allowed.any():
        return []
    finite = np.where(allowed, cost, 0.0)
    spread = float(np.abs(finite).max())
    big = (spread + 1.0) * (min(cost.shape) + 1)
    work = np.where(allowed, finite, big)
    transposed = work.shape[0] > work.shape[1]
    if transposed:
        work = work.T
    n_rows, n_cols = work.shape
    # 1-based as in the textbook formulation: column 0 is the virtual start of each path.
    u = np.zeros(n_rows + 1)
    v = np.zeros(n_cols + 1)
    row_of_col = np.zeros(n_cols + 1, dtype=int)
    way = np.zeros(n_cols + 1, dtype=int)
    for row in range(1, n_rows + 1):
        row_of_col[0] = row
        col = 0
        min_slack = np.full(n_cols + 1, np.inf)
        used = np.zeros(n_cols + 1, dtype=bool)
        while True:
            used[col] = True
            current_row = row_of_col[col]
            slack = work[current_row - 1] - u[current_row] - v[1:]
            free = ~used[1:]
            better = free & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = col
            candidates = np.where(free, min_slack[1:], np.inf)
            next_col = int(np.argmin(candidates)) + 1
            delta = candidates[next_col - 1]
            used_cols = np.flatnonzero(used)
            u[row_of_col[used_cols]] += delta
            v[used_cols] -= delta
            min_slack[1:][free] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col != 0:
            previous = way[col]
            row_of_col[col] = row_of_col[previous]
            col = previous
    pairs = [(int(row_of_col[c]) - 1, c - 1) for c in range(1, n_cols + 1) if row_of_col[c] != 0]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted((r, c) for r, c in pairs if allowed[r, c])


@dataclass
class _ConstantVelocity:
    """A 2-D constant-velocity Kalman filter: state (x, y, vx, vy) at `time_s`."""

    state: np.ndarray
    covariance: np.ndarray
    time_s: float

    @classmethod
    def start(cls, xy: tuple[float, float], time_s: float, sigma: float, speed_sigma: float) -> _ConstantVelocity:
        return cls(
            state=np.array([xy[0], xy[1], 0.0, 0.0]),
            covariance=np.diag([sigma**2, sigma**2, speed_sigma**2, speed_sigma**2]),
            time_s=time_s,
        )

    def predicted(self, time_s: float, accel_sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """State and covariance at `time_s`, leaving the filter as it is."""
        # Out-of-order frames are folded in without moving time back.
        dt = max(time_s - self.time_s, 0.0)
        transition = np.eye(4)
        transition[0, 2] = transition[1, 3] = dt
        q = accel_sigma**2
        process = np.zeros((4, 4))
        for pos, vel in ((0, 2), (1, 3)):
            process[pos, pos] = dt**4 / 4.0 * q
            process[pos, vel] = process[vel, pos] = dt**3 / 2.0 * q
            process[vel, vel] = dt**2 * q
        return transition @ self.state, transition @ self.covariance @ transition.T + process

    def update(self, xy: tuple[float, float], time_s: float, sigma: float, accel_sigma: float) -> None:
        state, covariance = self.predicted(time_s, accel_sigma)
        innovation = np.asarray(xy, dtype=float) - state[:2]
        innovation_cov = covariance[:2, :2] + np.eye(2) * sigma**2
        gain = covariance[:, :2] @ np.linalg.inv(innovation_cov)
        self.state = state + gain @ innovation
        covariance = (np.eye(4) - gain @ np.eye(2, 4)) @ covariance
        self.covariance = (covariance + covariance.T) / 2.0
        self.time_s = max(self.time_s, time_s)


@dataclass
class _Track:
    object_class: ObjectClass
    time_s: float  # frame time of the last hit
    pixel: _ConstantVelocity  # box centre, pixels
    size_px: float  # sqrt(width · height) of the last box
    world: _ConstantVelocity | None  # site metres, once a hit had a world position
    hits: int = 1
    track_id: int | None = None


@dataclass(frozen=True)
class _Prediction:
    world_xy: tuple[float, float] | None
    world_radius_m: float
    pixel_xy: tuple[float, float]
    pixel_spread_px: float  # added to the box size for the pixel gate's radius


def _box_centre_and_size(box_px: tuple[float, float, float, float]) -> tuple[tuple[float, float], float]:
    x1, y1, x2, y2 = box_px
    width, height = abs(x2 - x1), abs(y2 - y1)
    return ((x1 + x2) / 2.0, (y1 + y2) / 2.0), max(math.sqrt(width * height), 1.0)


@dataclass
class Tracker:
    """Track ids for one video stream's detections: `tracker.update(detections)` per frame.

    One Tracker per stream: frames of another `source` are refused, since their boxes
    would be matched against the wrong image. Every detection comes back, in order, with
    `track_id` set to its confirmed track's id or None (not confirmed yet, below
    `low_confidence`, or a low-confidence detection that continued no track); an id the
    input already carried (ultralytics' own tracker, say) is replaced.
    """

    high_confidence: float = 0.5
    low_confidence: float = 0.1
    confirm_hits: int = 2
    max_age_s: float = 2.0
    tentative_age_s: float = 1.0
    max_speed_m_s: float = 15.0
    position_sigma_m: float = 2.0  # a single geolocated fix's error, 1σ
    accel_m_s2: float = 2.0  # how hard objects (and the fixes' bias, as the view turns) change velocity
    max_speed_px_s: float = 600.0  # the fastest an object may cross the image, pixel fallback only
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=1, init=False, repr=False)
    _source: str | None = field(default=None, init=False, repr=False)
    _predictions: dict[int, _Prediction] = field(default_factory=dict, init=False, repr=False)  # this frame's

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_confidence <= self.high_confidence:
            raise ValueError("confidence thresholds must satisfy 0 ≤ low ≤ high")
        if self.confirm_hits < 1:
            raise ValueError("a track needs at least one hit to be confirmed")
        if self.max_age_s <= 0 or self.tentative_age_s <= 0 or self.max_speed_m_s <= 0:
            raise ValueError("ages and the speed limit must be positive")

    def __len__(self) -> int:
        """Tracks alive, confirmed or not."""
        return len(self._tracks)

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        """As a pipeline stage: `update`, which needs nothing of the frame but its detections."""
        return self.update(detections)

    def update(self, detections: Detections) -> Detections:
        if self._source is None:
            self._source = detections.source
        elif detections.source != self._source:
            raise ValueError(f"this tracker follows {self._source!r}; use another for {detections.source!r}")
        time_s = detections.frame_time_s
        self._forget(time_s)
        self._predictions.clear()
        items = detections.items
        high = [i for i, d in enumerate(items) if d.confidence >= self.high_confidence]
        low = [i for i, d in enumerate(items) if self.low_confidence <= d.confidence < self.high_confidence]
        confirmed = [t for t in self._tracks if t.track_id is not None]
        tentative = [t for t in self._tracks if t.track_id is None]

        matched: dict[int, _Track] = {}
        high_left, confirmed_left = self._match(confirmed, high, items, time_s, matched)
        self._match(confirmed_left, low, items, time_s, matched)
        high_left, _ = self._match(tentative, high_left, items, time_s, matched)

        for index, track in matched.items():
            self._hit(track, items[index], time_s)
        for index in high_left:
            track = self._start(items[index], time_s)
            matched[index] = track
        out = tuple(
            dataclasses.replace(d, track_id=matched[i].track_id if i in matched else None) for i, d in enumerate(items)
        )
        return dataclasses.replace(detections, items=out)

    # ------------------------------------------------------------ association
    def _match(
        self,
        tracks: list[_Track],
        candidates: list[int],
        items: tuple[Detection, ...],
        time_s: float,
        matched: dict[int, _Track],
    ) -> tuple[list[int], list[_Track]]:
        """Assign `candidates` (indices into items) to `tracks`; returns those of each left over."""
        if not tracks or not candidates:
            return list(candidates), list(tracks)
        cost = np.array([[self._cost(track, items[i], time_s) for i in candidates] for track in tracks])
        pairs = assign(cost)
        for row, col in pairs:
            matched[candidates[col]] = tracks[row]
        taken_rows = {r for r, _ in pairs}
        taken_cols = {c for _, c in pairs}
        return (
            [i for c, i in enumerate(candidates) if c not in taken_cols],
            [t for r, t in enumerate(tracks) if r not in taken_rows],
        )

    def _cost(self, track: _Track, detection: Detection, time_s: float) -> float:
        """Distance from the track's prediction over the gate radius, in [0, 1); inf outside the gate."""
        if detection.object_class is not track.object_class:
            return math.inf
        prediction = self._predictions.get(id(track))
        if prediction is None:
            prediction = self._predictions[id(track)] = self._predict(track, time_s)
        if prediction.world_xy is not None and detection.has_local_position:
            radius = prediction.world_radius_m
            distance = math.hypot(detection.x_m - prediction.world_xy[0], detection.y_m - prediction.world_xy[1])
        else:
            centre, size = _box_centre_and_size(detection.box_px)
            ratio = size / track.size_px
            if not 1.0 / _MAX_SIZE_RATIO <= ratio <= _MAX_SIZE_RATIO:
                return math.inf
            radius = max(track.size_px, size) + prediction.pixel_spread_px
            distance = math.hypot(centre[0] - prediction.pixel_xy[0], centre[1] - prediction.pixel_xy[1])
        return distance / radius if distance < radius else math.inf

    def _predict(self, track: _Track, time_s: float) -> _Prediction:
        """Where the track should be at `time_s`, and how far from there it may be, in metres and pixels."""
        dt = max(time_s - track.time_s, 0.0)
        world_xy, world_radius_m = None, math.inf
        if track.world is not None:
            state, covariance = track.world.predicted(time_s, self.accel_m_s2)
            spread = _GATE_SIGMAS * math.sqrt(max(np.trace(covariance[:2, :2]) / 2.0, 0.0))
            world_xy = (float(state[0]), float(state[1]))
            world_radius_m = _GATE_SIGMAS * self.position_sigma_m + min(spread, self.max_speed_m_s * dt)
        state, covariance = track.pixel.predicted(time_s, self.max_speed_px_s)
        spread = _GATE_SIGMAS * math.sqrt(max(np.trace(covariance[:2, :2]) / 2.0, 0.0))
        return _Prediction(
            world_xy=world_xy,
            world_radius_m=world_radius_m,
            pixel_xy=(float(state[0]), float(state[1])),
            pixel_spread_px=min(spread, self.max_speed_px_s * dt),
        )

    # ------------------------------------------------------------ track life
    def _pixel_sigma(self, size_px: float) -> float:
        # Box edges jitter with the object's size (a detector is a few per cent off) plus a pixel.
        return 0.05 * size_px + 1.0

    def _start(self, detection: Detection, time_s: float) -> _Track:
        centre, size = _box_centre_and_size(detection.box_px)
        world = None
        if detection.has_local_position:
            world = _ConstantVelocity.start(
                (detection.x_m, detection.y_m), time_s, self.position_sigma_m, self.max_speed_m_s / 2.0
            )
        track = _Track(
            object_class=detection.object_class,
            time_s=time_s,
            pixel=_ConstantVelocity.start(centre, time_s, self._pixel_sigma(size), self.max_speed_px_s / 2.0),
            size_px=size,
            world=world,
        )
        self._tracks.append(track)
        self._confirm_if_due(track)
        return track

    def _hit(self, track: _Track, detection: Detection, time_s: float) -> None:
        centre, size = _box_centre_and_size(detection.box_px)
        track.pixel.update(centre, time_s, self._pixel_sigma(size), self.max_speed_px_s)
        track.size_px = size
        if detection.has_local_position:
            xy = (detection.x_m, detection.y_m)
            if track.world is None:
                track.world = _ConstantVelocity.start(xy, time_s, self.position_sigma_m, self.max_speed_m_s / 2.0)
            else:
                track.world.update(xy, time_s, self.position_sigma_m, self.accel_m_s2)
        track.time_s = max(track.time_s, time_s)
        track.hits += 1
        self._confirm_if_due(track)

    def _confirm_if_due(self, track: _Track) -> None:
        if track.track_id is None and track.hits >= self.confirm_hits:
            track.track_id = self._next_id
            self._next_id += 1

    def _forget(self, time_s: float) -> None:
        self._tracks = [
            t
            for t in self._tracks
            if time_s - t.time_s <= (self.max_age_s if t.track_id is not None else self.tentative_age_s)
        ]
