"""The ground station's side of TAK: its drones from telemetry, and the bus's picture, into a CotFeed.

`drone_report` turns a fleet `VehicleState` into what TAK shows of a drone (battery included,
which a camera's pose does not know). `BusToCot` is a receiver's `Handlers` that put what the
units publish on TAK screens: their track events as they come, their alerts (again with the
snapshot link once the alert's evidence record arrives), and each unit's drone and camera view
from the poses its detections carry. `borderwatch cot` is one of these on its own connection.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

from groundstation.fleet.state import VehicleState
from groundstation.link.receiver import Handlers
from missions.geo import LocalFrame
from vision.alerts import Alert
from vision.bus.payloads import TrackMessage
from vision.camera import CameraPose, Intrinsics
from vision.cot.events import DroneReport
from vision.cot.feed import CotFeed
from vision.cot.sink import DroneFromPoses, snapshot_file_url
from vision.evidence import SNAPSHOTS, EvidenceRecord

TICK_S = 0.25


def drone_report(state: VehicleState) -> DroneReport | None:
    """A vehicle's telemetry as TAK shows it; None before it has a position."""
    if not (math.isfinite(state.lat_deg) and math.isfinite(state.lon_deg)):
        return None

    def known(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return DroneReport(
        number=state.vehicle + 1,
        time_s=time.time(),
        lat_deg=state.lat_deg,
        lon_deg=state.lon_deg,
        alt_m=known(state.abs_alt_m),
        course_deg=None if known(state.heading_deg) is None else state.heading_deg % 360.0,
        speed_mps=known(state.ground_speed_m_s),
        battery_pct=known(state.battery_pct),
    )


def report_states(feed: CotFeed, states: tuple[VehicleState, ...], clock: Callable[[], float] = time.time) -> None:
    """A fleet's telemetry snapshot into the feed, then a tick."""
    now_s = clock()
    for state in states:
        report = drone_report(state)
        if report is not None:
            feed.drone(report, now_s)
    feed.tick(now_s)


class Ticker:
    """Ticks a feed on a daemon thread, for feeds that no pipeline ticks (a gateway)."""

    def __init__(self, feed: CotFeed, clock: Callable[[], float] = time.time, every_s: float = TICK_S) -> None:
        self.feed, self.clock, self.every_s = feed, clock, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cot-ticker", daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.feed.tick(self.clock())


class BusToCot:
    """What units publish, onto TAK. ``handlers(then)`` chains them before another set (an app's, a recorder's).

    ``evidence_dir`` is the receiver's (its copies hold the snapshots the alert markers link to);
    ``snapshots_url``, when given, links them there by file name instead of as ``file://``.
    """

    def __init__(
        self,
        feed: CotFeed,
        *,
        site_frame: LocalFrame | None = None,
        intrinsics: Intrinsics | None = None,
        evidence_dir: str | Path | None = None,
        snapshots_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.feed = feed
        self.site_frame = site_frame
        self.intrinsics = intrinsics
        self.evidence_dir = None if evidence_dir is None else Path(evidence_dir)
        self.link = snapshot_file_url(snapshots_url)
        self.clock = clock
        self._drones: dict[int, DroneFromPoses] = {}

    def handlers(self, then: Handlers | None = None) -> Handlers:
        then = then or Handlers()

        def alert(unit: int, a: Alert) -> None:
            self.feed.alert(a, self.clock())
            if then.alert:
                then.alert(unit, a)

        def evidence(unit: int, record: EvidenceRecord, jpeg: bytes | None) -> None:
            self._evidence(unit, record)
            if then.evidence:
                then.evidence(unit, record, jpeg)

        def detections(unit: int, doc: dict) -> None:
            self._pose(unit, doc)
            if then.detections:
                then.detections(unit, doc)

        def track(unit: int, message: object) -> None:
            if isinstance(message, TrackMessage):
                self.feed.track(message.event, self.clock())
            if then.track:
                then.track(unit, message)

        return Handlers(alert=alert, evidence=evidence, detections=detections, track=track, status=then.status,
                        problem=then.problem)  # fmt: skip

    def _evidence(self, unit: int, record: EvidenceRecord) -> None:
        alert = record.payload.get("alert") if record.kind == "alert" else None
        if alert is None or record.snapshot is None or self.evidence_dir is None:
            return
        path = self.evidence_dir / f"unit-{unit}" / SNAPSHOTS / record.snapshot
        self.feed.alert(Alert.from_json_dict(alert), self.clock(), self.link(path))

    def _pose(self, unit: int, doc: dict) -> None:
        pose = doc.get("pose")
        if pose is None:
            return
        drone = self._drones.get(unit)
        if drone is None:
            drone = self._drones[unit] = DroneFromPoses(unit, self.intrinsics, self.site_frame)
        self.feed.drone(drone.report(float(doc["frame_time_s"]), CameraPose(**pose)), self.clock())
