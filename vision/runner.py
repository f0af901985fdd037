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
from typing import TextIO

from missions.errors import UserError
from missions.site import Site
from vision.alerts import AlertEngine
from vision.camera import Intrinsics
from vision.evidence import EvidenceLog
from vision.geolocate import Geolocator
from vision.pipeline import DetectionSink, FrameResult, Pipeline, RunStats
from vision.sinks import AlertSink, ConsoleSink, JsonLinesSink, UdpJsonSink
from vision.sources import Source, open_source
from vision.tracking import Tracker


@dataclass(frozen=True)
class RunOptions:
    source: str
    model: str | None = None
    backend: str = "auto"
    conf: float = 0.25
    tile: bool = False
    site: str | None = None
    pose_url: str | None = None
    ground_amsl_m: float = 0.0
    evidence_dir: str | None = None
    alerts_file: str | None = None
    udp: tuple[str, int] | None = None  # the ground station: alerts and detections as JSON datagrams
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
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                closer()
        self.closers.clear()


def assemble(
    options: RunOptions,
    console: TextIO | None = None,
    *,
    site: Site | None = None,
    evidence: EvidenceLog | None = None,
    alert_sinks: Iterable[AlertSink] = (),
    detection_sinks: Iterable[DetectionSink] = (),
) -> Assembly:
    """Open the source, load the model, site, pose and sinks; raise InputError naming any bad one.

    A caller running several streams (the ground station) passes what they share: a `site`
    already loaded (instead of ``options.site``), one `evidence` log (instead of
    ``options.evidence_dir``), and sinks of its own; the assembly closes none of those.
    """
    from vision.detectors import load_detector

    closers: list = []
    try:
        detector = load_detector(options.model, options.backend, conf=options.conf, tile=options.tile)
        if site is None and options.site:
            from missions.formats import load_site

            site = load_site(options.site)
        poses = None
        if options.pose_url:
            from vision.pose import MavlinkPose

            poses = MavlinkPose(options.pose_url, ground_amsl_m=options.ground_amsl_m)
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
            evidence = EvidenceLog.open(Path(options.evidence_dir))
            closers.append(evidence.close)
        source = open_source(options.source, options.name)
        closers.append(source.close)
        intrinsics = Intrinsics(hfov_deg=options.hfov_deg)
        geolocator = Geolocator(site.frame, intrinsics) if site is not None and poses is not None else None
        pipeline = Pipeline(
            detector,
            source_name=options.name or Path(options.source).stem or options.source,
            geolocator=geolocator,
            poses=poses,
            tracker=Tracker(),
            alerts=AlertEngine(site) if site is not None else None,
            alert_sinks=alert_sinks,
            detection_sinks=detection_sinks,
            evidence=evidence,
        )
        return Assembly(source, pipeline, closers)
    except BaseException:
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                closer()
        raise


def run(
    options: RunOptions, stop: threading.Event | None = None, on_result=None, console: TextIO | None = None
) -> RunStats:
    """Assemble, run until the source ends or `stop` is set, close everything; the stats of the run."""
    assembly = assemble(options, console)
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
