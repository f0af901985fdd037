"""AIS in the video pipeline: a sink that binds vessel tracks to MMSIs and raises the two AIS alerts.

It comes after the alert rules and before the evidence: each frame's geolocated vessel tracks
become :class:`TrackFix` es, the :class:`Matcher` binds them to the feed's targets, and then

* every alert of the frame about a bound track carries that vessel's MMSI and name,
* a vessel tracked inside a watch zone longer than the zone's limit with no MMSI bound to it
  raises a DARK_VESSEL alert (the limit by the zone's risk: :data:`DARK_AFTER_S_BY_RISK`),
* an AIS target whose dead-reckoned position lies well inside the camera's footprint for long
  enough with nothing seen near it raises AIS_NOT_SEEN,

and the AIS reports each alert rests on go to ``FrameResult.ais_reports`` for the evidence record.
A dead feed pauses dark-vessel alerts (said once, in one line) rather than calling every vessel dark.

The feed's clock must be the frames' (the run's clock): targets are dead-reckoned to the frame's time.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import shapely

from missions.site import DEFAULT_WATCH_RISK, Site
from vision.ais.findings import AisNotSeen, AisNotSeenWatch, DarkVessel, DarkVesselWatch
from vision.ais.matching import MatchConfig, Matcher
from vision.ais.model import AisTarget, PositionReport, TrackFix
from vision.ais.sources import FeedState, FeedStatus
from vision.alerts import Alert, RuleKind, iso_time, severity, slug
from vision.camera import Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.footprint import ground_footprint
from vision.frames import Frame
from vision.pipeline import FrameResult

# How long a vessel may stay in a watch zone unnamed by AIS before it is called dark: the higher the
# zone's risk, the sooner. A vessel crossing an anchorage at 5 kn spends minutes in it; one that
# lingers in the highest-risk zone for half a minute without a transponder is the one to look at.
DARK_AFTER_S_BY_RISK = {5: 30.0, 4: 60.0, 3: 120.0, 2: 240.0, 1: 480.0}
# The geolocation error, about 2 sigma: 1 m of GPS and pixel error plus 1° of attitude error over the
# slant range (as vision.geolocate's smoother models it).
GEO_BASE_SIGMA_M = 1.0
GEO_SIGMA_PER_RANGE = math.radians(1.0)
# A track's velocity: a least-squares line through its fixes of the last VELOCITY_WINDOW_S, once they
# span VELOCITY_MIN_SPAN_S. With 3 m of noise at 2 fixes a second the speed is then good to about
# 0.5 m/s; over 2 s it would be 2 m/s, enough to gate a slow ship off its own AIS course.
VELOCITY_WINDOW_S = 6.0
VELOCITY_MIN_SPAN_S = 3.0
# No vessel is called dark before the feed has been heard this long: AIS's longest reporting interval
# (a class A ship at anchor, a class B craft below 2 kn: every 3 minutes), so that a vessel that
# reports is in the table before its silence counts against it.
WARM_UP_S = 180.0
# The AIS targets a dark-vessel alert names as near (what AIS said was around, and none matched).
NEAR_TARGETS_M = 500.0
NEAR_TARGETS_MAX = 3


class AisTargets(Protocol):
    """What the watch reads: vision.ais.feed.AisFeed, or anything that answers the same."""

    url: str

    def targets(self, now_s: float) -> tuple[AisTarget, ...]: ...

    def status(self, now_s: float) -> FeedStatus: ...


class AisWatch:
    """The pipeline sink; ``source`` names the video source in alert ids, as the alert rules do."""

    def __init__(
        self,
        site: Site,
        feed: AisTargets,
        intrinsics: Intrinsics,
        *,
        config: MatchConfig = MatchConfig(),  # noqa: B008 (frozen)
        warm_up_s: float = WARM_UP_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.site = site
        self.feed = feed
        self.intrinsics = intrinsics
        self._say = say
        self.matcher = Matcher(config)
        zones = {z.name: site.local(z) for z in site.watch}
        limits = {z.name: DARK_AFTER_S_BY_RISK[_risk(z.risk)] for z in site.watch}
        self._risk = {z.name: _risk(z.risk) for z in site.watch}
        self.dark = DarkVesselWatch(zones, limits)
        self.unseen = AisNotSeenWatch()
        self._history: dict[str, deque[tuple[float, float, float]]] = {}
        self._paused_said = False
        self.warm_up_s = warm_up_s
        self._live_since: float | None = None
        self._unseen_count: dict[int, int] = {}

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        now = result.frame_time_s
        source = result.detections.source
        fixes, vessels = self._fixes(result)
        targets = self.feed.targets(now)
        update = self.matcher.update(fixes, targets, now)
        by_mmsi = {t.mmsi: t for t in targets}
        live = self._live(now)
        alerts = list(result.alerts)
        reports: dict[str, tuple[Mapping[str, Any], ...]] = dict(result.ais_reports)
        for i, alert in enumerate(alerts):
            mmsi = update.bound.get(f"{source}#{alert.track_id}") if alert.track_id is not None else None
            if mmsi is not None and alert.mmsi is None:
                target = by_mmsi.get(mmsi)
                alerts[i] = dataclasses.replace(alert, mmsi=mmsi, vessel_name=target.name if target else None)
                reports[alert.alert_id] = _reports_of([target] if target else [])
        detections = self._named(result, update.bound, by_mmsi)
        for finding in self.dark.update(fixes, update.bound, now, live):
            alert = self._dark_alert(finding, source, vessels[finding.key])
            alerts.append(alert)
            reports[alert.alert_id] = _reports_of(_near(targets, finding.x_m, finding.y_m))
        footprint = None if result.pose is None else ground_footprint(result.pose, self.intrinsics, self.site.frame)
        footprints = [] if footprint is None or footprint.is_empty else [footprint]
        for finding in self.unseen.update(targets, footprints, fixes, now):
            target = by_mmsi.get(finding.mmsi)
            alert = self._unseen_alert(finding, source, target)
            alerts.append(alert)
            reports[alert.alert_id] = _reports_of([target] if target else [])
        if detections is result.detections and alerts == list(result.alerts):
            return result
        return dataclasses.replace(result, detections=detections, alerts=tuple(alerts), ais_reports=reports)

    # ------------------------------------------------------------------------------------ internals
    def _fixes(self, result: FrameResult) -> tuple[list[TrackFix], dict[str, Detection]]:
        """The frame's located, tracked vessels as fixes, keyed "source#track"."""
        fixes: list[TrackFix] = []
        vessels: dict[str, Detection] = {}
        camera = None if result.pose is None else result.pose.position_m(self.site.frame)
        now = result.frame_time_s
        for d in result.detections.items:
            if d.object_class is not ObjectClass.VESSEL or d.track_id is None or not d.has_local_position:
                continue
            key = f"{result.detections.source}#{d.track_id}"
            x, y = float(d.x_m), float(d.y_m)  # type: ignore[arg-type]
            range_m = 0.0 if camera is None else math.dist((x, y, 0.0), tuple(camera))
            error_m = 2.0 * (GEO_BASE_SIGMA_M + GEO_SIGMA_PER_RANGE * range_m)
            vx, vy = self._velocity(key, now, x, y)
            fixes.append(TrackFix(key, now, x, y, error_m, vx, vy))
            vessels[key] = d
        for key in [k for k, h in self._history.items() if now - h[-1][0] > 30.0]:
            del self._history[key]
        return fixes, vessels

    def _named(self, result: FrameResult, bound: Mapping[str, int], by_mmsi: Mapping[int, AisTarget]) -> Detections:
        """The frame's detections, each bound track's with its vessel's MMSI and name (the map labels them)."""
        source = result.detections.source
        items = list(result.detections.items)
        changed = False
        for i, d in enumerate(items):
            mmsi = bound.get(f"{source}#{d.track_id}") if d.track_id is not None else None
            if mmsi is not None:
                target = by_mmsi.get(mmsi)
                items[i] = dataclasses.replace(d, mmsi=mmsi, vessel_name=target.name if target else None)
                changed = True
        return dataclasses.replace(result.detections, items=tuple(items)) if changed else result.detections

    def _velocity(self, key: str, now: float, x: float, y: float) -> tuple[float | None, float | None]:
        history = self._history.setdefault(key, deque(maxlen=256))
        history.append((now, x, y))
        while now - history[0][0] > VELOCITY_WINDOW_S:
            history.popleft()
        if now - history[0][0] < VELOCITY_MIN_SPAN_S:
            return None, None
        t, xs, ys = np.array(history).T
        t = t - t.mean()
        scale = float(t @ t)
        return float(t @ (xs - xs.mean())) / scale, float(t @ (ys - ys.mean())) / scale

    def _live(self, now: float) -> bool:
        """Whether silence on AIS can count against a vessel now: the feed heard, for long enough."""
        status = self.feed.status(now)
        live = status.state in (FeedState.LIVE, FeedState.SILENT)
        if status.state is FeedState.WAITING:
            return False  # nothing heard yet: no vessel can be called dark, and there is nothing to say yet
        if not live and not self._paused_said:
            self._tell(f"AIS {self.feed.url}: {status}; dark-vessel alerts paused until it comes back")
        elif live and self._paused_said:
            self._tell(f"AIS {self.feed.url}: live again; dark-vessel alerts resume")
        self._paused_said = not live
        if not live:
            self._live_since = None
            return False
        if self._live_since is None:
            self._live_since = now
        return now - self._live_since >= self.warm_up_s

    def _dark_alert(self, finding: DarkVessel, source: str, vessel: Detection) -> Alert:
        risk = self._risk[finding.zone]
        lon, lat = self.site.frame.lonlat(finding.x_m, finding.y_m)
        waited = finding.time_s - finding.since_s
        return Alert(
            alert_id=f"{source}:dark-vessel-{slug(finding.zone)}-{vessel.track_id}",
            time_s=finding.time_s,
            iso_time=iso_time(finding.time_s),
            rule=RuleKind.DARK_VESSEL,
            zone=finding.zone,
            risk=risk,
            severity=severity(risk),
            object_class=ObjectClass.VESSEL,
            track_id=vessel.track_id,
            lat_deg=lat,
            lon_deg=lon,
            count=1,
            message=f"dark vessel: vessel #{vessel.track_id} in {finding.zone} for {waited:.0f} s, no AIS names it",
            source=source,
        )

    def _unseen_alert(self, finding: AisNotSeen, source: str, target: AisTarget | None) -> Alert:
        zone = next((z for z in self.site.watch if self.site.local(z).covers(_point(finding))), None)
        risk = _risk(zone.risk) if zone is not None else DEFAULT_WATCH_RISK
        lon, lat = self.site.frame.lonlat(finding.x_m, finding.y_m)
        n = self._unseen_count[finding.mmsi] = self._unseen_count.get(finding.mmsi, 0) + 1
        return Alert(
            alert_id=f"{source}:ais-not-seen-{finding.mmsi}-{n}",
            time_s=finding.time_s,
            iso_time=iso_time(finding.time_s),
            rule=RuleKind.AIS_NOT_SEEN,
            zone=zone.name if zone is not None else "camera view",
            risk=risk,
            severity=severity(risk),
            object_class=ObjectClass.VESSEL,
            track_id=None,
            lat_deg=lat,
            lon_deg=lon,
            count=1,
            message=f"AIS not seen: {finding.label} reports a position in view for {finding.inside_s:.0f} s "
            "and no vessel is there",
            source=source,
            mmsi=finding.mmsi,
            vessel_name=target.name if target is not None else None,
        )

    def _tell(self, line: str) -> None:
        if self._say is not None:
            self._say(line)


def report_json(report: PositionReport) -> dict[str, Any]:
    """An AIS position report as evidence keeps it: what was decoded, and the sentences it came in."""
    return {
        "mmsi": report.mmsi,
        "time_s": report.time_s,
        "lat_deg": report.lat_deg,
        "lon_deg": report.lon_deg,
        "sog_kn": report.sog_kn,
        "cog_deg": report.cog_deg,
        "heading_deg": report.heading_deg,
        "class": report.ais_class.value,
        "msg_type": report.msg_type,
        "sentences": list(report.sentences),
    }


def _reports_of(targets: list[AisTarget]) -> tuple[Mapping[str, Any], ...]:
    return tuple(_target_json(t) for t in targets if t.last_report is not None)


def _target_json(target: AisTarget) -> dict[str, Any]:
    assert target.last_report is not None
    dead_reckoned = {"x_m": target.x_m, "y_m": target.y_m, "error_m": target.error_m, "time_s": target.time_s}
    return {**report_json(target.last_report), "name": target.name, "dead_reckoned": dead_reckoned}


def _near(targets: tuple[AisTarget, ...], x_m: float, y_m: float) -> list[AisTarget]:
    near = sorted((math.hypot(t.x_m - x_m, t.y_m - y_m), t.mmsi, t) for t in targets)
    return [t for d, _, t in near if d <= NEAR_TARGETS_M][:NEAR_TARGETS_MAX]


def _risk(risk: int | None) -> int:
    return min(max(risk if risk is not None else DEFAULT_WATCH_RISK, 1), 5)


def _point(finding: AisNotSeen) -> shapely.Point:
    return shapely.Point(finding.x_m, finding.y_m)
