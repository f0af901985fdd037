"""The vessel table: the last thing each MMSI said, dead-reckoned to now in the site's metric frame.

Between reports a vessel is assumed to hold its course over ground at its speed over ground,
so its position at ``now`` is the last reported one moved ``SOG × age`` along COG. How far it
may really be from there (``error_m``, about 2 sigma) starts at the GPS error of its class and
grows with the age of the report::

    error_m = BASE_ERROR_M[class] + (ERROR_GROWTH_M_S + ERROR_GROWTH_PER_SPEED × speed_m_s) × age_s

with 10 m for class A, 15 m for class B, 0.5 m/s and 10 % of the speed per second: a 10 kn
(5.1 m/s) ship has 10 + (0.5 + 0.51) × 60 ≈ 71 m after a minute. A report without SOG or COG
is not moved and grows at ``UNKNOWN_SPEED_GROWTH_M_S`` instead, as if it could be making 5 kn
in any direction. A vessel whose last position is older than ``stale_after_s`` (6 minutes by
default: a class A ship at anchor reports every 3) leaves the table's targets.

Two transmitters with one MMSI (a copied or spoofed identity) show as jumps: a new position
that, within ``CONFLICT_WINDOW_S`` of the last, implies more than ``CONFLICT_SPEED_KN`` and more
than ``CONFLICT_SPEED_FACTOR`` times what the vessel claims to be making. Each is counted in
``conflicts``; the MMSI is said once and kept in ``conflicting_mmsis``.

Thread-safe: the sources call :meth:`VesselTable.update` from their threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from missions.geo import LocalFrame
from vision.ais.model import KNOT_M_S, AisClass, AisReport, AisTarget, PositionReport, StaticReport

BASE_ERROR_M = {AisClass.A: 10.0, AisClass.B: 15.0}
ERROR_GROWTH_M_S = 0.5
ERROR_GROWTH_PER_SPEED = 0.10
UNKNOWN_SPEED_GROWTH_M_S = 5.0 * KNOT_M_S

DEFAULT_STALE_AFTER_S = 360.0
# What a vessel said of itself outlives its position: class A sends it every 6 minutes, and a
# ship that went quiet and came back should keep its name meanwhile.
FORGET_AFTER_S = 3600.0

CONFLICT_WINDOW_S = 120.0
CONFLICT_SPEED_KN = 50.0
CONFLICT_SPEED_FACTOR = 3.0
# Two reports within one second are compared as if a second apart, so that GPS jitter between
# two sentences of one burst never looks like an infinite speed.
CONFLICT_MIN_DT_S = 1.0


@dataclass(frozen=True)
class _Vessel:
    mmsi: int
    last_seen_s: float
    position: PositionReport | None = None
    name: str | None = None
    callsign: str | None = None
    ship_type: int | None = None
    length_m: float | None = None


class VesselTable:
    """Merges AIS reports per MMSI and answers where each vessel is now."""

    def __init__(
        self,
        frame: LocalFrame,
        *,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._frame = frame
        self.stale_after_s = stale_after_s
        self._say = say
        self._lock = threading.Lock()
        self._vessels: dict[int, _Vessel] = {}
        self._conflicts = 0
        self._conflicting: set[int] = set()

    @property
    def conflicts(self) -> int:
        with self._lock:
            return self._conflicts

    @property
    def conflicting_mmsis(self) -> frozenset[int]:
        """MMSIs that have reported from two places at once (a snapshot)."""
        with self._lock:
            return frozenset(self._conflicting)

    def update(self, report: AisReport) -> None:
        message = None
        with self._lock:
            vessel = self._vessels.get(report.mmsi) or _Vessel(report.mmsi, report.time_s)
            vessel = replace(vessel, last_seen_s=max(vessel.last_seen_s, report.time_s))
            if isinstance(report, PositionReport):
                message = self._check_conflict(vessel.position, report)
                if vessel.position is None or report.time_s >= vessel.position.time_s:
                    vessel = replace(vessel, position=report)
            elif isinstance(report, StaticReport):
                vessel = replace(
                    vessel,
                    name=report.name or vessel.name,
                    callsign=report.callsign or vessel.callsign,
                    ship_type=report.ship_type if report.ship_type is not None else vessel.ship_type,
                    length_m=report.length_m if report.length_m is not None else vessel.length_m,
                )
            self._vessels[report.mmsi] = vessel
        if message is not None and self._say is not None:
            self._say(message)

    def targets(self, now_s: float) -> tuple[AisTarget, ...]:
        """Every vessel with a position no older than ``stale_after_s``, dead-reckoned to ``now_s``, by MMSI."""
        with self._lock:
            self._forget(now_s)
            vessels = sorted(self._vessels.values(), key=lambda v: v.mmsi)
        targets = (self._target(v, now_s) for v in vessels)
        return tuple(t for t in targets if t is not None)

    def target(self, mmsi: int, now_s: float) -> AisTarget | None:
        """One vessel dead-reckoned to ``now_s``; None when unknown or stale."""
        with self._lock:
            vessel = self._vessels.get(mmsi)
        return None if vessel is None else self._target(vessel, now_s)

    def _target(self, vessel: _Vessel, now_s: float) -> AisTarget | None:
        report = vessel.position
        if report is None:
            return None
        age_s = max(0.0, now_s - report.time_s)
        if age_s > self.stale_after_s:
            return None
        x0, y0 = self._frame.xy(report.lon_deg, report.lat_deg)
        if report.sog_kn is not None and report.cog_deg is not None:
            speed = report.sog_kn * KNOT_M_S
            course = math.radians(report.cog_deg)
            vx, vy = speed * math.sin(course), speed * math.cos(course)
            growth = ERROR_GROWTH_M_S + ERROR_GROWTH_PER_SPEED * speed
        else:
            vx = vy = None
            growth = UNKNOWN_SPEED_GROWTH_M_S
        x, y = (x0 + vx * age_s, y0 + vy * age_s) if vx is not None and vy is not None else (x0, y0)
        lon, lat = self._frame.lonlat(x, y) if (x, y) != (x0, y0) else (report.lon_deg, report.lat_deg)
        return AisTarget(
            mmsi=vessel.mmsi,
            time_s=now_s,
            lat_deg=lat,
            lon_deg=lon,
            x_m=x,
            y_m=y,
            error_m=BASE_ERROR_M[report.ais_class] + growth * age_s,
            age_s=age_s,
            sog_kn=report.sog_kn,
            cog_deg=report.cog_deg,
            heading_deg=report.heading_deg,
            ais_class=report.ais_class,
            name=vessel.name,
            callsign=vessel.callsign,
            ship_type=vessel.ship_type,
            length_m=vessel.length_m,
            last_report=report,
        )

    def _check_conflict(self, previous: PositionReport | None, report: PositionReport) -> str | None:
        """Counts a jump no ship could make; returns the line to say the first time an MMSI makes one."""
        if previous is None:
            return None
        dt_s = abs(report.time_s - previous.time_s)
        if dt_s > CONFLICT_WINDOW_S:
            return None
        x0, y0 = self._frame.xy(previous.lon_deg, previous.lat_deg)
        x1, y1 = self._frame.xy(report.lon_deg, report.lat_deg)
        distance_m = math.hypot(x1 - x0, y1 - y0)
        implied_kn = distance_m / max(dt_s, CONFLICT_MIN_DT_S) / KNOT_M_S
        claimed_kn = max(previous.sog_kn or 0.0, report.sog_kn or 0.0)
        if implied_kn <= CONFLICT_SPEED_KN or implied_kn <= CONFLICT_SPEED_FACTOR * claimed_kn:
            return None
        self._conflicts += 1
        if report.mmsi in self._conflicting:
            return None
        self._conflicting.add(report.mmsi)
        return (
            f"AIS: MMSI {report.mmsi} reports from two places at once: {distance_m / 1000.0:.2f} km apart "
            f"{dt_s:.0f} s apart ({implied_kn:.0f} kn; it claims {claimed_kn:.1f} kn); marked conflicting"
        )

    def _forget(self, now_s: float) -> None:
        gone = [m for m, v in self._vessels.items() if now_s - v.last_seen_s > max(FORGET_AFTER_S, self.stale_after_s)]
        for mmsi in gone:
            del self._vessels[mmsi]
