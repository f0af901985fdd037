"""Which AIS target each vessel track is: per update an assignment, over updates a binding.

Each update compares every track fix with every target of the vessel table. Their distance is
normalised by the combined error, ``d / sqrt(fix.error_m² + target.error_m²)``: both radii are
about 2 sigma, so the combined radius is about 2 sigma of the difference and a normalised
distance of 1.5 is about 3 sigma. A pair further apart than ``MatchConfig.gate`` cannot match;
nor can a pair whose speeds differ too much, or, when both move, whose courses do. The
assignment that minimises the summed squared normalised distance (scipy's Hungarian solver,
``linear_sum_assignment``) gives this update's ``matches``.

One update proves little: two vessels may pass within each other's error. A track becomes
*bound* to an MMSI after ``bind_after`` consecutive updates in which it matched that MMSI (an
update in which the track has no fix neither counts nor breaks the run), and a bound pair costs
less in the next assignments, so that two vessels crossing keep their names. A binding is
released after ``release_after`` consecutive updates in which the track and its target were both
present and did not match, or after ``release_after_s`` without a match at all (the target left
the table, the track left the camera). An MMSI is bound to one track at a time: a second track
matching it waits until the first is released. A track without a fix for ``forget_after_s`` is
forgotten, and its binding released.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy.optimize import linear_sum_assignment

from vision.ais.model import KNOT_M_S, AisTarget, TrackFix

# Stands for "cannot match" in the cost matrix: more than any sum of real costs (each at most
# gate², a few hundred pairs), so the solver never trades a real pair for a gated one.
_GATED_COST = 1e9
# No position is known better than this: keeps the normalised distance finite for error-free input.
_MIN_COMBINED_ERROR_M = 1.0


@dataclass(frozen=True)
class MatchConfig:
    """The thresholds of the matcher; each default with the reason for it."""

    # Normalised distance beyond which a fix and a target cannot be the same vessel. 1.5 of the
    # combined 2-sigma radius is about 3 sigma: a true pair falls outside about 1 % of the time
    # (Rayleigh, exp(-9/2)), where 1.0 (2 sigma) would lose one update in seven.
    gate: float = 1.5
    # Below this the tracker's velocity is mostly noise and its course meaningless; AisTarget.moving
    # (SOG ≥ 1 kn, 0.51 m/s) is the same bar on the AIS side.
    moving_m_s: float = 0.5
    # GPS COG above 1 kn and a tracker's course are each good to 10-20°; 45° passes both errors and
    # still keeps apart vessels crossing (90°) or meeting (180°) at one spot.
    course_gate_deg: float = 45.0
    # Speeds may differ by the larger of these: 2 m/s (4 kn) of tracker noise on a slow boat, half
    # the faster speed on a fast one (SOG lags a vessel that speeds up or slows down).
    speed_gate_m_s: float = 2.0
    speed_gate_ratio: float = 0.5
    # A bound pair's cost is multiplied by this: where two vessels pass within each other's error,
    # their history is better evidence than one update's positions, so the binding holds until the
    # positions speak against it four times as strongly. It acts only inside the gate, so it never
    # keeps a wrong binding whose target is clearly elsewhere. (Two vessels crossing at 20°: 3 % of
    # updates match them the wrong way round with it, 15 % without.)
    bound_cost_factor: float = 0.25
    # Consecutive matches to one MMSI before binding: one update can be a coincidence of two
    # vessels in each other's error; three (a few seconds at the pipeline's 1-2 Hz) rarely are.
    bind_after: int = 3
    # A true pair misses the gate about 1 % of updates, so five misses in a row is next to
    # impossible for it, while a wrong binding (a neighbour's MMSI) fails within a few updates.
    release_after: int = 5
    # Without any match for this long the binding says nothing of now: the target went stale or
    # the track left the camera. Longer than a class A ship's 2-10 s reporting interval, short
    # enough that the MMSI is free for the next camera's track within half a minute.
    release_after_s: float = 20.0
    # The tracker drops a track it has not seen for a few seconds; a key without a fix for this long
    # will not come back, and the vessel returns under a new key.
    forget_after_s: float = 15.0


@dataclass(frozen=True)
class MatchUpdate:
    """What one update found: this update's pairs, the bindings after it, and what changed."""

    matches: Mapping[str, int]
    bound: Mapping[str, int]
    newly_bound: tuple[tuple[str, int], ...] = ()
    released: tuple[tuple[str, int], ...] = ()


@dataclass
class _Track:
    last_seen_s: float
    candidate: int | None = None
    streak: int = 0
    bound: int | None = None
    last_match_s: float = 0.0
    misses: int = 0


class Matcher:
    """Binds track keys to MMSIs over successive updates. Not thread-safe: one caller updates it."""

    def __init__(self, config: MatchConfig = MatchConfig()) -> None:
        self.config = config
        self._tracks: dict[str, _Track] = {}
        self._owners: dict[int, str] = {}

    def binding(self, key: str) -> int | None:
        track = self._tracks.get(key)
        return track.bound if track else None

    @property
    def bindings(self) -> Mapping[str, int]:
        return MappingProxyType({key: mmsi for mmsi, key in self._owners.items()})

    def update(self, fixes: Sequence[TrackFix], targets: Sequence[AisTarget], now_s: float) -> MatchUpdate:
        cfg = self.config
        released = self._forget(now_s)
        matches = self._assign(fixes, targets)
        present = {target.mmsi for target in targets}
        for fix in fixes:
            track = self._tracks.setdefault(fix.key, _Track(last_seen_s=now_s))
            track.last_seen_s = now_s
            mmsi = matches.get(fix.key)
            track.streak = 0 if mmsi is None else track.streak + 1 if mmsi == track.candidate else 1
            track.candidate = mmsi
            if track.bound is None:
                continue
            if mmsi == track.bound:
                track.last_match_s, track.misses = now_s, 0
            elif track.bound in present:
                track.misses += 1
        for key, track in self._tracks.items():
            if track.bound is not None and (
                track.misses >= cfg.release_after or now_s - track.last_match_s >= cfg.release_after_s
            ):
                released.append((key, track.bound))
                self._unbind(track)
        newly_bound = []
        for key, mmsi in matches.items():
            track = self._tracks[key]
            if track.bound is None and track.streak >= cfg.bind_after and mmsi not in self._owners:
                track.bound, track.last_match_s, track.misses = mmsi, now_s, 0
                self._owners[mmsi] = key
                newly_bound.append((key, mmsi))
        return MatchUpdate(
            matches=MappingProxyType(matches),
            bound=self.bindings,
            newly_bound=tuple(newly_bound),
            released=tuple(released),
        )

    def _forget(self, now_s: float) -> list[tuple[str, int]]:
        released = []
        for key in [k for k, t in self._tracks.items() if now_s - t.last_seen_s > self.config.forget_after_s]:
            track = self._tracks.pop(key)
            if track.bound is not None:
                released.append((key, track.bound))
                self._unbind(track)
        return released

    def _unbind(self, track: _Track) -> None:
        self._owners.pop(track.bound, None)
        track.bound, track.misses = None, 0

    def _assign(self, fixes: Sequence[TrackFix], targets: Sequence[AisTarget]) -> dict[str, int]:
        if not fixes or not targets:
            return {}
        cost, gated = self._costs(fixes, targets)
        column = {target.mmsi: col for col, target in enumerate(targets)}
        for row, fix in enumerate(fixes):
            col = column.get(self.binding(fix.key))
            if col is not None:
                cost[row, col] *= self.config.bound_cost_factor
        rows, cols = linear_sum_assignment(np.where(gated, _GATED_COST, cost))
        return {fixes[r].key: targets[c].mmsi for r, c in zip(rows, cols, strict=True) if not gated[r, c]}

    def _costs(self, fixes: Sequence[TrackFix], targets: Sequence[AisTarget]) -> tuple[np.ndarray, np.ndarray]:
        """The squared normalised distance of each fix (rows) to each target (columns), and which pairs are gated."""
        cfg = self.config
        fx, fy, fe = (np.array([getattr(f, a) for f in fixes], dtype=float) for a in ("x_m", "y_m", "error_m"))
        tx, ty, te = (np.array([getattr(t, a) for t in targets], dtype=float) for a in ("x_m", "y_m", "error_m"))
        combined = np.maximum(np.hypot(fe[:, None], te[None, :]), _MIN_COMBINED_ERROR_M)
        normalised = np.hypot(fx[:, None] - tx[None, :], fy[:, None] - ty[None, :]) / combined
        gated = normalised > cfg.gate

        fix_speed = np.array([_or_nan(f.speed_m_s) for f in fixes])
        fix_course = np.array([_course_deg(f) for f in fixes])
        target_speed = np.array([_or_nan(t.sog_kn) * KNOT_M_S for t in targets])
        target_course = np.array([_or_nan(t.cog_deg) if t.moving else math.nan for t in targets])
        fs, ts = fix_speed[:, None], target_speed[None, :]
        with np.errstate(invalid="ignore"):
            allowed = np.maximum(cfg.speed_gate_m_s, cfg.speed_gate_ratio * np.maximum(fs, ts))
            gated |= np.abs(fs - ts) > allowed
            turn = np.abs((fix_course[:, None] - target_course[None, :] + 180.0) % 360.0 - 180.0)
            gated |= (fs >= cfg.moving_m_s) & (turn > cfg.course_gate_deg)
        return normalised**2, gated


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _course_deg(fix: TrackFix) -> float:
    if fix.vx_m_s is None or fix.vy_m_s is None:
        return math.nan
    return math.degrees(math.atan2(fix.vx_m_s, fix.vy_m_s)) % 360.0
