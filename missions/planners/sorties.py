"""Sharing a long path out: among drones (balanced by flight time) and among batteries.

A :class:`WorkPath` samples the path by arc length and caches, lazily, the routed transit
time between the launch point and each sample, so that balancing N drones or packing
sorties into a battery costs a few hundred routed queries, not one per trial.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from missions.errors import PlanningError
from missions.planners.camera import FlightModel
from missions.planners.paths import cumulative, dedupe, flight_time_s, point_at, subpath
from missions.planners.routing import Point2, Router


@dataclass(frozen=True)
class Leg:
    """A stretch of work path flown in one sortie, between two arc lengths."""

    start_m: float
    end_m: float


class WorkPath:
    def __init__(
        self, points: Sequence[Point2], launch: Point2, router: Router, model: FlightModel, step_m: float | None = None
    ) -> None:
        self.points = dedupe(points)
        self.launch = launch
        self.router = router
        self.model = model
        self.arc = cumulative(self.points)
        self.length_m = float(self.arc[-1]) if len(self.arc) else 0.0
        # Cut where a minute of flight ends, or finer for short paths.
        step = step_m or min(model.speed_m_s * 60.0, max(self.length_m / 200.0, 1.0))
        self.samples = np.unique(np.concatenate([np.arange(0.0, self.length_m, step), [self.length_m]]))
        corners = np.zeros(len(self.points))
        xy = np.asarray(self.points)
        if len(xy) >= 3:
            d = np.diff(xy, axis=0)
            h = np.arctan2(d[:, 1], d[:, 0])
            turn = np.abs((np.diff(h) + math.pi) % (2 * math.pi) - math.pi)
            corners[1:-1] = [model.corner_s(t) for t in turn]
        self._corner_prefix = np.cumsum(corners)
        self._transit: dict[float, float] = {}

    def work_s(self, a_m: float, b_m: float) -> float:
        """Time to fly the path between two arc lengths (corners strictly inside counted)."""
        if b_m <= a_m:
            return 0.0
        ia = int(np.searchsorted(self.arc, a_m, side="right"))
        ib = int(np.searchsorted(self.arc, b_m, side="left")) - 1
        corners = float(self._corner_prefix[ib] - self._corner_prefix[ia - 1]) if ib >= ia else 0.0
        return (b_m - a_m) / self.model.speed_m_s + corners

    def transit_s(self, at_m: float) -> float:
        """One-way routed flight time between the launch point and the path at an arc length."""
        key = round(at_m, 3)
        if key not in self._transit:
            p, _ = point_at(self.points, at_m, self.arc)
            self._transit[key] = flight_time_s(self.router.path(self.launch, p), self.model)
        return self._transit[key]

    def sortie_s(self, a_m: float, b_m: float) -> float:
        """An upper bound on the flight time of the sortie flying [a, b].

        The two corners where the transits meet the path are not known until the sortie is
        routed; each is bounded by a full U-turn, so a sortie that fits here fits when flown.
        """
        joints = 2.0 * self.model.corner_s(math.pi)
        return self.transit_s(a_m) + self.work_s(a_m, b_m) + self.transit_s(b_m) + joints + self.model.takeoff_landing_s

    def farthest(self, a_m: float, budget_s: float) -> float:
        """The farthest sample b ≥ a such that a sortie from a to b fits the budget (a when none does)."""
        candidates = self.samples[self.samples > a_m + 1e-9]
        lo, hi, best = 0, len(candidates) - 1, a_m
        # Sortie time grows with b except for transit wobble; binary search, then walk on.
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.sortie_s(a_m, float(candidates[mid])) <= budget_s:
                best = float(candidates[mid])
                lo = mid + 1
            else:
                hi = mid - 1
        return best

    def flown(self, leg: Leg) -> list[Point2]:
        """The sortie for a leg: launch → path start (routed) → along the path → launch (routed)."""
        piece = subpath(self.points, leg.start_m, leg.end_m, self.arc)
        there = self.router.path(self.launch, piece[0])
        back = self.router.path(piece[-1], self.launch)
        return dedupe([*there, *piece[1:], *back[1:]])


def split_sorties(work: WorkPath, start_m: float, end_m: float, budget_s: float | None) -> list[Leg]:
    """Cut [start, end] of the work path into legs that each fit one battery."""
    if budget_s is None or work.sortie_s(start_m, end_m) <= budget_s:
        return [Leg(start_m, end_m)]
    legs: list[Leg] = []
    a = start_m
    while a < end_m - 1e-6:
        b = min(work.farthest(a, budget_s), end_m)
        if work.sortie_s(a, end_m) <= budget_s:
            b = end_m
        if b <= a + 1e-6:
            p, _ = point_at(work.points, a, work.arc)
            reach_s = 2 * work.transit_s(a) + work.model.takeoff_landing_s
            raise PlanningError(
                f"one battery cannot reach the patrol: the round trip to ({p[0]:.0f} m E, {p[1]:.0f} m N) "
                f"alone takes {reach_s / 60:.1f} min of the {budget_s / 60:.1f} min usable"
            )
        legs.append(Leg(a, b))
        a = b
    return legs


def balance(works: Sequence[WorkPath], budget_s: float | None = None) -> list[Leg]:
    """Cut one path into len(works) consecutive legs, one per drone, minimising the longest.

    Drone k flies its leg (possibly in several sorties) from its own launch point; the
    cost of a leg is its total flight time over all its sorties.
    """
    n = len(works)
    total = works[0].length_m
    if n == 1:
        return [Leg(0.0, total)]

    def cost(k: int, a: float, b: float) -> float:
        legs = split_sorties(works[k], a, b, budget_s)
        return sum(works[k].sortie_s(leg.start_m, leg.end_m) for leg in legs)

    def cuts_for(limit_s: float) -> list[float] | None:
        cuts, a = [0.0], 0.0
        for k in range(n - 1):
            samples = works[k].samples[works[k].samples > a]
            lo, hi, best = 0, len(samples) - 1, a
            while lo <= hi:
                mid = (lo + hi) // 2
                if cost(k, a, float(samples[mid])) <= limit_s:
                    best = float(samples[mid])
                    lo = mid + 1
                else:
                    hi = mid - 1
            cuts.append(best)
            a = best
        cuts.append(total)
        return cuts if cost(n - 1, a, total) <= limit_s else None

    lo_s = cost(0, 0.0, total) / n * 0.5
    hi_s = max(cost(k, 0.0, total) for k in range(n))
    best_cuts = cuts_for(hi_s) or [total * k / n for k in range(n + 1)]
    for _ in range(30):
        mid = (lo_s + hi_s) / 2
        found = cuts_for(mid)
        if found is None:
            lo_s = mid
        else:
            hi_s, best_cuts = mid, found
        if hi_s - lo_s < 0.002 * hi_s:
            break
    return [Leg(a, b) for a, b in itertools.pairwise(best_cuts)]
