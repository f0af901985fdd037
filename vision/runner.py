"""Assemble a video pipeline from what a user names on a command line, and run it.

`borderwatch detect` (on the ground) and `borderwatch onboard` (on a companion computer)
both come here; this module imports neither Qt nor torch unless the user asks for a `.pt`
model, so the onboard install stays small.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from missions.errors import UserError
from missions.site import Site
from vision.alerts import AlertEngine
from vision.bus.address import BrokerAddress, Credentials
from vision.bus.topics import parse_unit_identity
from vision.camera import Intrinsics
from vision.evidence import EvidenceLog
from vision.frames import StreamClock
from vision.geolocate import Geolocate, Geolocator, SmoothTracks
from vision.pipeline import FrameResult, Pipeline, RunStats, Sink, Stage
from vision.signing import station_key
from vision.sinks import (
    AlertSink,
    ConsoleSink,
    DetectionSink,
    JsonLinesSink,
    KeepEvidence,
    RaiseAlerts,
    SendAlerts,
    SendDetections,
    UdpJsonSink,
)
from vision.sources import Source, open_source
from vision.stamping import HeadStamper
from vision.tracking import Tracker

if TYPE_CHECKING:
    from vision.ais.watch import AisTargets
    from vision.cot.link import CotLink

WALL_CLOCK = StreamClock()


@dataclass(frozen=True)
class BusOptions:
    """Where a unit publishes: the broker, its credentials, who it is, and its outbox file."""

    broker: BrokerAddress
    credentials: Credentials
    identity: str  # unit-<site>-<n>
    outbox: Path
    drain_s: float = 10.0  # how long closing waits for the broker to take what is queued

    @property
    def site_and_unit(self) -> tuple[str, int]:
        return parse_unit_identity(self.identity)


@dataclass(frozen=True)
class RunOptions:
    source: str
    model: str | None = None
    backend: str = "auto"
    conf: float = 0.25
    tile: bool = False
    pose_url: str | None = None
    ground_amsl_m: float = 0.0
    evidence_dir: str | None = None
    alerts_file: str | None = None
    udp: tuple[str, int] | None = None  # a listener for alerts and detections as JSON datagrams
    bus: BusOptions | None = None  # the event bus: alerts, evidence, tracks, detections and status
    signing_key: str | None = None  # signs the evidence (default: vision.signing.station_key's)
    tsa_url: str | None = None  # a TSA that timestamps each signed head of the evidence
    ais_url: str | None = None  # an AIS feed (udp://, tcp://, a .nmea log): dark vessels and lying positions
    cot_urls: tuple[str, ...] = ()  # TAK destinations for Cursor on Target (vision.cot)
    cot_drone: int = 1  # the number this camera's drone goes by on TAK screens
    name: str | None = None
    hfov_deg: float = 80.0
    max_frames: int | None = None
    idle_timeout_s: float | None = None
    console: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.conf < 1:
            raise UserError(f"--conf must be between 0 and 1, not {self.conf}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UserError(f"--max-frames must be at least 1, not {self.max_frames}")
        if self.cot_urls:
            from vision.cot.destinations import parse_destinations

            parse_destinations(self.cot_urls)  # a UserError naming a bad one, before anything opens


def parse_host_port(text: str, what: str = "--udp") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:14650")
    return host or "127.0.0.1", int(port)


@dataclass
class Assembly:
    """A built pipeline and everything to close after it."""

    source: Source
    pipeline: Pipeline
    closers: list = field(default_factory=list)

    def close(self) -> None:
        # Taken before calling any: the thread that ran it and its owner may both close it, once.
        closers, self.closers = self.closers, []
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                closer()


def assemble(
    options: RunOptions,
    console: TextIO | None = None,
    *,
    site: Site | None = None,
    evidence: EvidenceLog | None = None,
    alert_sinks: Iterable[AlertSink] = (),
    detection_sinks: Iterable[DetectionSink] = (),
    clock: StreamClock = WALL_CLOCK,
    ais: AisTargets | None = None,
    cot: CotLink | None = None,
    cot_position_from_pose: bool = True,
) -> Assembly:
    """Open the source, load the model, site, pose and sinks; raise InputError naming any bad one.

    `site`, when given, places detections on its map and raises its alerts. A caller running
    several streams (the ground station) passes what they share: one `evidence` log (instead of
    ``options.evidence_dir``), one `ais` feed (instead of ``options.ais_url``), one `cot` link to TAK
    (instead of ``options.cot_urls``; with the drones' telemetry it reports their positions itself,
    ``cot_position_from_pose=False``) and sinks of its own; the assembly closes none of those.
    AIS needs the site and the camera's pose, to place vessels.
    A simulation passes its `clock` (what its cameras stamp frames by, and its vehicles' time
    stamps on it); see vision.frames.StreamClock. When that clock has a pace (the camera waits
    for the pipeline) a live source hands over every frame in order instead of the newest.
    """
    from vision.detectors import load_detector

    closers: list = []
    if (ais is not None or options.ais_url) and (site is None or not options.pose_url):
        raise UserError(f"--ais {options.ais_url or ais.url}: AIS is matched to vessels on the map: give the "  # type: ignore[union-attr]
                        "site and the camera's pose")  # fmt: skip
    try:
        detector = load_detector(options.model, options.backend, conf=options.conf, tile=options.tile)
        poses = None
        if options.pose_url:
            from vision.pose import MavlinkPose

            poses = MavlinkPose(
                options.pose_url, ground_amsl_m=options.ground_amsl_m, clock=clock.now, boot_clock=clock.boot
            )
            closers.append(poses.close)
        alert_sinks = list(alert_sinks)
        detection_sinks = list(detection_sinks)
        if options.console:
            alert_sinks.append(ConsoleSink(console))
        if options.alerts_file:
            sink = JsonLinesSink(options.alerts_file)
            alert_sinks.append(sink)
            closers.append(sink.close)
        if options.udp:
            udp = UdpJsonSink(*options.udp)
            alert_sinks.append(udp)
            detection_sinks.append(udp)
            closers.append(udp.close)
        if evidence is None and options.evidence_dir:
            signer = station_key(options.signing_key, say=lambda line: print(line, file=console))
            evidence = EvidenceLog.open(Path(options.evidence_dir), signer=signer)
            if options.tsa_url:
                stamper = evidence.on_head = HeadStamper(options.evidence_dir, options.tsa_url)
                closers.append(stamper.close)
            closers.append(evidence.close)
        if ais is None and options.ais_url and site is not None:
            from vision.ais.feed import AisFeed

            ais = AisFeed(options.ais_url, site.frame, clock=clock.now,
                          say=lambda line: print(line, file=console, flush=True)).start()  # fmt: skip
            closers.append(ais.close)
        source = open_source(options.source, options.name, clock=clock.now, every_frame=clock.pace is not None)
        closers.append(source.close)
        intrinsics = Intrinsics(hfov_deg=options.hfov_deg)
        geolocator = Geolocator(site.frame, intrinsics) if site is not None and poses is not None else None
        stages: list[Stage] = []
        if poses is not None:
            stages.append(Geolocate(poses, geolocator))
        stages.append(Tracker())
        if geolocator is not None:
            stages.append(SmoothTracks(geolocator.frame))
        sinks: list[Sink] = []
        if site is not None:
            sinks.append(RaiseAlerts(AlertEngine(site)))
        if ais is not None and site is not None:
            from vision.ais.watch import AisWatch

            sinks.append(AisWatch(site, ais, intrinsics, say=lambda line: print(line, file=console, flush=True)))
        if detection_sinks:
            sinks.append(SendDetections(detection_sinks))
        if alert_sinks:
            sinks.append(SendAlerts(alert_sinks))
        if evidence is not None:
            sinks.append(KeepEvidence(evidence))
        if options.bus is not None:
            sinks.append(_bus_sink(options.bus, evidence, closers, console))
        if cot is None and options.cot_urls:
            from vision.cot.link import cot_site_name, open_cot

            name = options.bus.site_and_unit[0] if options.bus is not None else cot_site_name(site)
            cot = open_cot(options.cot_urls, name, () if site is None else site.zones,
                           say=lambda line: print(line, file=console, flush=True))  # fmt: skip
            closers.append(cot.close)
        if cot is not None:
            from vision.cot.sink import SendCot

            cot_sink = SendCot(
                cot.feed,
                drone=options.cot_drone,
                position_from_pose=cot_position_from_pose,
                intrinsics=intrinsics,
                site_frame=None if site is None else site.frame,
            )
            sinks.append(cot_sink)
            closers.append(cot_sink.close)
        name = options.name or Path(options.source).stem or options.source
        pipeline = Pipeline(detector, stages, sinks, source_name=name, clock=clock.now)
        return Assembly(source, pipeline, closers)
    except BaseException:
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                closer()
        raise


def _bus_sink(bus: BusOptions, evidence: EvidenceLog | None, closers: list, console: TextIO | None):
    from vision.bus.outbox import Outbox
    from vision.bus.publisher import Endpoint, Publisher
    from vision.bus.sink import PublishToBus

    site, unit = bus.site_and_unit
    outbox = Outbox(bus.outbox)
    closers.append(outbox.close)
    c = bus.credentials
    publisher = Publisher(Endpoint(bus.broker.host, bus.broker.port, c.ca, c.cert, c.key), site, unit, outbox)

    def close_publisher() -> None:
        if not publisher.wait_drained(bus.drain_s):
            print(f"{bus.identity}: broker {bus.broker.url} has not taken {len(outbox)} message(s) "
                  f"within {bus.drain_s:g} s; they stay in {bus.outbox} for the next start", file=console)  # fmt: skip
        publisher.close()

    publisher.start()
    closers.append(close_publisher)
    sink = PublishToBus(publisher, None if evidence is None else evidence.directory)
    closers.append(sink.close)  # ends the tracks still alive, before the publisher drains and closes
    return sink


def run(
    options: RunOptions,
    site: Site | None = None,
    stop: threading.Event | None = None,
    on_result=None,
    console: TextIO | None = None,
) -> RunStats:
    """Assemble, run until the source ends or `stop` is set, close everything; the stats of the run."""
    assembly = assemble(options, console, site=site)
    try:
        return assembly.pipeline.run(
            assembly.source,
            stop=stop,
            max_frames=options.max_frames,
            on_result=on_result,
            idle_timeout_s=options.idle_timeout_s,
        )
    finally:
        assembly.close()


def describe(result: FrameResult) -> str:
    """One line per frame for a terminal."""
    classes: dict[str, int] = {}
    for d in result.detections:
        classes[d.object_class.value] = classes.get(d.object_class.value, 0) + 1
    seen = ", ".join(f"{n} {c}" for c, n in sorted(classes.items())) or "nothing"
    located = sum(1 for d in result.detections if d.is_located)
    return (
        f"frame {result.frame_index}: {seen}; {located} located; detect {result.detect_s * 1000:.0f} ms, "
        f"latency {result.latency_s * 1000:.0f} ms"
    )
