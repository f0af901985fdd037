"""How well the AIS watch does against the synthetic world's ground truth (issue 16's scoring).

A scene: the site's world (vessels crossing every watch zone), an AIS scenario (some vessels dark,
some spoofing), the world's AIS sent over real UDP to an :class:`AisFeed`, and one camera hovering
over each watch zone. The cameras "see" each vessel inside their footprint with probability
``detect_p`` per frame, placed where the world has it with Gaussian noise (``noise_m``), its track
id the vessel's: the detector and tracker are left out on purpose, so that the figures measure the
matching and the AIS rules alone. Each camera's frames go through the real sinks: the alert rules,
then :class:`AisWatch`.

The figures:

* right bindings: of the fixes of vessels that report normally and have been heard, taken after the
  vessel has been in view for ``settle_s``, the share whose track is bound to the vessel's own MMSI;
* dark recall: of the vessels with no true AIS (dark, or spoofing: where they are, AIS says nothing)
  that stayed in a watch zone in one camera's view, after the warm-up, for longer than the zone's
  limit plus ``settle_s``, the share alerted; dark precision: of the dark-vessel alerts, the share
  about such a vessel (an alert on a vessel that reports truly is a false one);
* spoof recall: of the spoofing vessels whose false position lay well inside a footprint for longer
  than the AIS-not-seen rule needs (plus ``settle_s``), the share alerted;
* time to a dark alert: from the moment the vessel could first have been called dark (in the zone,
  in view, the warm-up over) to its alert, minus the zone's limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely

from missions.site import Site
from sitl.synthetic.ais import AisBroadcaster, AisScenario, Role, udp_sender
from sitl.synthetic.world import World
from vision.ais.feed import AisFeed
from vision.ais.findings import MARGIN_M, MIN_INSIDE_S
from vision.ais.watch import DARK_AFTER_S_BY_RISK, WARM_UP_S, AisWatch
from vision.alerts import AlertEngine, RuleKind
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.footprint import ground_footprint
from vision.frames import Frame
from vision.pipeline import FrameResult
from vision.sinks import RaiseAlerts

T0 = 1_760_000_000.0
FRAME_DT_S = 0.5
CAMERA_ALT_M = 400.0


@dataclass
class AisScore:
    seed: int
    vessels: int
    dark: int
    spoof: int
    fixes_scored: int = 0
    fixes_right: int = 0
    fixes_wrong: int = 0  # bound to another vessel's MMSI
    dark_expected: int = 0
    dark_alerted: int = 0  # of the expected
    dark_alerts: int = 0
    dark_alerts_right: int = 0
    spoof_expected: int = 0
    spoof_alerted: int = 0
    dark_delays_s: list[float] = field(default_factory=list)  # alert − (in zone and view) − the zone's limit
    dark_times_s: list[float] = field(default_factory=list)  # alert − in zone and view (after the warm-up)
    dark_due: set[int] = field(default_factory=set)  # dark vessels that stayed long enough to be alerted
    frames: int = 0
    watch_s: float = 0.0  # CPU time in the AIS watch
    rules_s: float = 0.0  # CPU time in the alert rules, the baseline

    @property
    def right_bindings(self) -> float:
        return self.fixes_right / self.fixes_scored if self.fixes_scored else float("nan")

    @property
    def dark_recall(self) -> float:
        return self.dark_alerted / self.dark_expected if self.dark_expected else float("nan")

    @property
    def dark_precision(self) -> float:
        return self.dark_alerts_right / self.dark_alerts if self.dark_alerts else float("nan")

    @property
    def spoof_recall(self) -> float:
        return self.spoof_alerted / self.spoof_expected if self.spoof_expected else float("nan")

    def lines(self) -> list[str]:
        delays, times = self.dark_delays_s, self.dark_times_s
        delay = (
            f"{np.mean(times):.1f} s mean, {max(times):.1f} s max from entering a zone in view; "
            f"{np.mean(delays):.1f} s mean, {max(delays):.1f} s max after the zone's limit"
            if delays
            else "none alerted"
        )
        return [
            f"scenario seed {self.seed}: {self.vessels} vessels, {self.dark} dark, {self.spoof} spoofing",
            f"right bindings: {self.right_bindings:.1%} of {self.fixes_scored} fixes "
            f"({self.fixes_wrong} bound to another MMSI)",
            f"dark vessels: recall {self.dark_recall:.0%} ({self.dark_alerted}/{self.dark_expected}), "
            f"precision {self.dark_precision:.0%} ({self.dark_alerts_right}/{self.dark_alerts})",
            f"spoofed positions: recall {self.spoof_recall:.0%} ({self.spoof_alerted}/{self.spoof_expected})",
            f"dark vessel to its alert: {delay}",
            f"AIS watch {1e3 * self.watch_s / max(self.frames, 1):.2f} ms a frame, "
            f"{self.watch_s / max(self.rules_s, 1e-9):.1f}× the alert rules "
            f"({1e3 * self.rules_s / max(self.frames, 1):.2f} ms)",
        ]


def score_ais(
    site: Site,
    *,
    seed: int,
    minutes: float,
    dark: int = 3,
    spoof: int = 2,
    detect_p: float = 0.9,
    noise_m: float = 3.0,
    settle_s: float = 30.0,
    dark_slack_s: float = 10.0,
    density: float = 1.0,
) -> AisScore:
    """Run the scene for ``minutes`` of simulated time (as fast as it computes) and score it."""
    world = World.for_site(site, seed=seed, density=density)
    scenario = AisScenario.random(world, seed=seed, dark=dark, spoof=spoof)
    rng = np.random.default_rng(seed)
    intrinsics = Intrinsics()
    zones = {z.name: site.local(z) for z in site.watch}
    limits = {z.name: DARK_AFTER_S_BY_RISK[min(max(z.risk or 3, 1), 5)] for z in site.watch}
    cameras = []
    for name, shape in zones.items():
        for x, y in _tiles(shape, intrinsics):
            lon, lat = site.frame.lonlat(x, y)
            pose = CameraPose(lat, lon, CAMERA_ALT_M)
            cameras.append((f"camera-{len(cameras) + 1}", pose, ground_footprint(pose, intrinsics, site.frame), name))
    zone_of = {name: zone_name for name, _, _, zone_name in cameras}
    now = [T0]
    broadcaster = AisBroadcaster(world, scenario, site.frame, None, world_time=lambda t: t - T0, start_s=T0)
    roles = {i: scenario.of(i).role for i in range(len(broadcaster.vessels))}
    mmsi_of = {v.id: broadcaster.identities[i].mmsi for i, v in enumerate(broadcaster.vessels)}
    index_of = {v.id: i for i, v in enumerate(broadcaster.vessels)}
    score = AisScore(seed, len(broadcaster.vessels), dark, spoof)
    in_view_since: dict[tuple[str, int], float] = {}
    # (camera, vessel id) → when it could first be called dark: tracks are each camera's own, so a vessel
    # that passes into the next camera's view is a new track there, and its time starts again
    dark_since: dict[tuple[str, int], float] = {}
    spoof_inside: dict[int, float] = {}
    alerted_dark: dict[int, float] = {}
    alerted_spoof: set[int] = set()
    with AisFeed("udp://127.0.0.1:0", site.frame, clock=lambda: now[0]) as feed:
        host, port = feed.source.address
        send = udp_sender(f"udp://{host}:{port}")
        broadcaster.send = send
        rules = {name: RaiseAlerts(AlertEngine(site)) for name, *_ in cameras}
        watches = {name: AisWatch(site, feed, intrinsics) for name, *_ in cameras}
        sent = 0
        try:
            for step in range(int(minutes * 60 / FRAME_DT_S)):
                now[0] = T0 + step * FRAME_DT_S
                sent += len(broadcaster.step(now[0]))
                _wait_for(lambda want=sent: feed.source.lines >= want, 2.0)
                warm = now[0] - T0 >= WARM_UP_S + 15.0  # + the first report's phase
                for name, pose, footprint, zone_name in cameras:
                    items = []
                    for vessel in (o for o in world.objects if o.object_class is ObjectClass.VESSEL):
                        x, y, _, _ = vessel.pose_at(now[0] - T0)
                        if not footprint.buffer(-10.0).covers(_point(x, y)):
                            in_view_since.pop((name, vessel.id), None)
                            dark_since.pop((name, vessel.id), None)
                            continue
                        in_view_since.setdefault((name, vessel.id), now[0])
                        inside_zone = zones[zone_name].covers(_point(x, y))
                        if roles[index_of[vessel.id]] is not Role.NORMAL and inside_zone and warm:
                            dark_since.setdefault((name, vessel.id), now[0])
                        elif not inside_zone:
                            dark_since.pop((name, vessel.id), None)
                        if rng.random() > detect_p:
                            continue
                        fx, fy = x + rng.normal(0, noise_m), y + rng.normal(0, noise_m)
                        lon, lat = site.frame.lonlat(fx, fy)
                        items.append(Detection(ObjectClass.VESSEL, 0.9, (0, 0, 10, 10), vessel.id, fx, fy, lat, lon))
                    detections = Detections(name, now[0], step, tuple(items), pose)
                    result = FrameResult(step, now[0], detections, (), pose, 0.0, 0.0, now[0])
                    frame = Frame(_IMAGE, now[0], step, name, now[0])
                    started = time.process_time()
                    result = rules[name](result, frame)
                    middle = time.process_time()
                    result = watches[name](result, frame)
                    score.watch_s += time.process_time() - middle
                    score.rules_s += middle - started
                    score.frames += 1
                    heard = {t.mmsi for t in feed.targets(now[0])}
                    _score_bindings(score, watches[name], name, items, in_view_since, roles, index_of, mmsi_of,
                                    heard, now[0], settle_s)  # fmt: skip
                    for alert in result.alerts:
                        if alert.rule is RuleKind.DARK_VESSEL:
                            score.dark_alerts += 1
                            vessel_index = index_of.get(alert.track_id or -1)
                            if vessel_index is not None and roles[vessel_index] is not Role.NORMAL:
                                score.dark_alerts_right += 1
                                alerted_dark.setdefault(alert.track_id, alert.time_s)  # type: ignore[arg-type]
                                since = dark_since.get((name, alert.track_id))  # type: ignore[arg-type]
                                if since is not None:
                                    score.dark_delays_s.append(alert.time_s - since - limits[alert.zone])
                                    score.dark_times_s.append(alert.time_s - since)
                        elif alert.rule is RuleKind.AIS_NOT_SEEN and alert.mmsi is not None:
                            alerted_spoof.add(alert.mmsi)
                _spoof_in_view(broadcaster, roles, cameras, now[0], spoof_inside)
                _dark_due(dark_since, zone_of, limits, now[0], dark_slack_s, score)
        finally:
            send.close()
    score.dark_expected = len(score.dark_due)
    score.dark_alerted = len(score.dark_due & set(alerted_dark))
    due_spoof = {mmsi for mmsi, inside_s in spoof_inside.items() if inside_s >= MIN_INSIDE_S + settle_s}
    score.spoof_expected = len(due_spoof)
    score.spoof_alerted = len(due_spoof & alerted_spoof)
    return score


def _tiles(zone: shapely.Geometry, intrinsics: Intrinsics) -> list[tuple[float, float]]:
    """Where cameras hover so that their footprints tile the zone (those whose centre lies in it)."""
    half_w = CAMERA_ALT_M * math.tan(math.radians(intrinsics.hfov_deg) / 2)
    half_h = half_w * intrinsics.height_px / intrinsics.width_px
    x0, y0, x1, y1 = zone.bounds
    xs = np.arange(x0 + half_w, max(x1 - half_w, x0 + half_w) + 1e-6, 2 * half_w)
    ys = np.arange(y0 + half_h, max(y1 - half_h, y0 + half_h) + 1e-6, 2 * half_h)
    return [(float(x), float(y)) for y in ys for x in xs if zone.covers(shapely.Point(x, y))]


def _score_bindings(score, watch, name, items, in_view_since, roles, index_of, mmsi_of, heard, now, settle_s) -> None:
    for item in items:
        index = index_of[item.track_id]
        if roles[index] is not Role.NORMAL or now - in_view_since[(name, item.track_id)] < settle_s:
            continue
        if mmsi_of[item.track_id] not in heard:  # not reporting yet (at anchor: every 3 minutes)
            continue
        score.fixes_scored += 1
        bound = watch.matcher.binding(f"{name}#{item.track_id}")
        if bound == mmsi_of[item.track_id]:
            score.fixes_right += 1
        elif bound is not None:
            score.fixes_wrong += 1


def _spoof_in_view(broadcaster, roles, cameras, now: float, inside: dict[int, float]) -> None:
    """Add a step's time for each spoofer whose false position lies well inside a footprint."""
    for index, role in roles.items():
        if role is not Role.SPOOF:
            continue
        x, y = broadcaster.reported_xy(index, now)
        if any(fp.buffer(-2 * MARGIN_M).covers(_point(x, y)) for _, _, fp, _ in cameras):
            mmsi = broadcaster.identities[index].mmsi
            inside[mmsi] = inside.get(mmsi, 0.0) + FRAME_DT_S


def _dark_due(dark_since, zone_of, limits, now: float, slack_s: float, score: AisScore) -> None:
    for (camera, vessel), since in dark_since.items():
        if now - since >= limits[zone_of[camera]] + slack_s:
            score.dark_due.add(vessel)


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.0005)


def _point(x: float, y: float) -> shapely.Point:
    return shapely.Point(x, y)


_IMAGE = np.zeros((8, 8, 3), np.uint8)
