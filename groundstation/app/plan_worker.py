"""Planning off the Qt thread: a patrol planned into missions and map routes, on one worker
thread where a newer request makes the running one give up at its next progress report."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PyQt6.QtCore import QObject, pyqtSignal

from groundstation.runs.maps import MapRoute
from groundstation.runs.style import route_color
from missions.formats.export import sortie_label
from missions.plan import MissionPlan
from missions.planners.kpi import Kpis, compute_kpis
from missions.planners.output import PlannedSortie, sortie_plans
from missions.planners.patrol import PatrolRequest, plan_patrol
from missions.site import Site


@dataclass(frozen=True)
class Planned:
    """One finished plan: what the map draws, what the fleet flies, what the operator compares."""

    request: PatrolRequest
    site: Site
    routes: tuple[MapRoute, ...]  # one per sortie, grouped per drone
    plans: Mapping[int, tuple[MissionPlan, ...]]  # drone index from 0 → its sorties in order
    sorties: tuple[PlannedSortie, ...]
    kpis: Kpis
    warnings: tuple[str, ...] = ()

    @property
    def drones(self) -> int:
        return self.request.drones


def plan(site: Site, request: PatrolRequest, progress: Callable[[float], None] | None = None) -> Planned:
    """Plan a patrol and turn it into missions and map routes (runs on the worker)."""
    patrol = plan_patrol(site, request, progress=progress)
    sorties = tuple(sortie_plans(patrol))
    drones = request.drones
    routes = tuple(
        MapRoute(
            sortie_label(p, drones),
            tuple((lat, lon) for lon, lat, _alt in p.route_deg),
            color=route_color(p.drone - 1),
            group=f"drone {p.drone}",
        )
        for p in sorties
    )
    plans = {k: tuple(p.plan for p in sorties if p.drone == k + 1) for k in range(drones)}
    return Planned(request, site, routes, plans, sorties, compute_kpis(patrol), patrol.warnings)


class _Superseded(Exception):
    """Raised inside a running plan once a newer request is waiting."""


class Bridge(QObject):
    """Carries results from the worker thread to the Qt thread (queued signals)."""

    finished = pyqtSignal(int, object)  # generation, Planned | Exception
    progress = pyqtSignal(int, float)


class Worker:
    """One planning thread; a newer submit makes the older plan give up."""

    def __init__(self, bridge: Bridge) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
        self._bridge = bridge
        self._lock = threading.Lock()
        self.generation = 0
        self.started = 0  # plans actually run (not skipped as stale)

    def submit(self, site: Site, request: PatrolRequest) -> int:
        with self._lock:
            self.generation += 1
            generation = self.generation
        self._executor.submit(self._run, generation, site, request)
        return generation

    def stop(self) -> None:
        with self._lock:
            self.generation += 1
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self.generation

    def _run(self, generation: int, site: Site, request: PatrolRequest) -> None:
        if not self._current(generation):
            return
        self.started += 1
        last = [-1]

        def progress(fraction: float) -> None:
            if not self._current(generation):
                raise _Superseded
            percent = int(fraction * 100)
            if percent != last[0]:
                last[0] = percent
                self._send(self._bridge.progress, generation, fraction)

        try:
            outcome: object = plan(site, request, progress)
        except _Superseded:
            return
        except Exception as exc:
            outcome = exc
        self._send(self._bridge.finished, generation, outcome)

    @staticmethod
    def _send(signal, *args) -> None:
        with contextlib.suppress(RuntimeError):  # the panel was closed while planning
            signal.emit(*args)
