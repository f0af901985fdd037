"""Where a frame's detections and alerts go: alert rules, evidence, the console, a JSON Lines
file, the ground station over UDP.

A pipeline's sinks share one shape (`vision.pipeline.Sink`): a frame's result and the frame
in, the result out, with whatever the sink added. :class:`RaiseAlerts` (the alert rules) adds
the frame's alerts; :class:`KeepEvidence` keeps an evidence record of each; :class:`SendAlerts`
and :class:`SendDetections` hand them to the sinks below, which have one method that matters,
``emit`` (an alert) or ``emit_detections`` (a frame's detections). :class:`FanOut` makes
several alert sinks look like one. The ground station reads the UDP stream back with
:class:`AlertListener`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TextIO

from vision.alerts import Alert, AlertEngine
from vision.detections import Detections
from vision.evidence import SNAPSHOTS, EvidenceLog, EvidenceRecord
from vision.frames import Frame
from vision.pipeline import FrameResult, snapshot_jpeg

MAX_DATAGRAM_BYTES = 65_507  # the most an IPv4 UDP payload can carry


class AlertSink(Protocol):
    def emit(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class DetectionSink(Protocol):
    def emit_detections(self, detections: Detections) -> None: ...


# ------------------------------------------------------------ a pipeline's sinks


@dataclasses.dataclass(frozen=True)
class RaiseAlerts:
    """The alert rules as a sink: the frame's alerts, raised by `engine` from its detections, added to the result."""

    engine: AlertEngine

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        raised = tuple(self.engine.process(result.detections))
        return dataclasses.replace(result, alerts=result.alerts + raised) if raised else result


@dataclasses.dataclass(frozen=True)
class KeepEvidence:
    """An evidence record of every alert of the frame in `log`: the alert, the detection it is
    about, the camera's pose and a JPEG of the frame with that detection boxed."""

    log: EvidenceLog

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        if not result.alerts:
            return result
        snapshots = dict(result.snapshots)
        for alert in result.alerts:
            record = self._keep(alert, result, frame)
            if record.snapshot is not None:
                snapshots[alert.alert_id] = self.log.directory / SNAPSHOTS / record.snapshot
        kept = result.evidence_records + len(result.alerts)
        return dataclasses.replace(result, evidence_records=kept, snapshots=snapshots)

    def _keep(self, alert: Alert, result: FrameResult, frame: Frame) -> EvidenceRecord:
        subject = next(
            (d for d in result.detections if alert.track_id is not None and d.track_id == alert.track_id), None
        )
        payload = {
            "alert": alert.to_json_dict(),
            "frame_index": frame.index,
            "frame_time_s": frame.time_s,
            "detection": None
            if subject is None
            else {
                "box_px": list(subject.box_px),
                "confidence": subject.confidence,
                "class": subject.object_class.value,
            },
            "pose": None if result.pose is None else dataclasses.asdict(result.pose),
        }
        ais = result.ais_reports.get(alert.alert_id)
        if ais is not None:
            payload["ais"] = list(ais)  # what AIS said of the vessel (or around it) when the alert was raised
        label = f"{alert.object_class.value} {alert.track_id or ''} {alert.zone}".strip()
        jpeg = snapshot_jpeg(frame.image, None if subject is None else subject.box_px, label)
        return self.log.append("alert", payload, snapshot_jpeg=jpeg, time_s=alert.time_s)


class SendAlerts:
    """Every alert of the frame to each of `sinks`, in order."""

    def __init__(self, sinks: Iterable[AlertSink]) -> None:
        self.sinks = tuple(sinks)

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        for alert in result.alerts:
            for sink in self.sinks:
                sink.emit(alert)
        return result


class SendDetections:
    """The frame's detections to each of `sinks`, in order."""

    def __init__(self, sinks: Iterable[DetectionSink]) -> None:
        self.sinks = tuple(sinks)

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        for sink in self.sinks:
            sink.emit_detections(result.detections)
        return result


# ------------------------------------------------------------ alert and detection sinks


def _line(alert: Alert) -> str:
    return json.dumps(alert.to_json_dict(), ensure_ascii=False, separators=(",", ":"))


class ConsoleSink:
    """One readable line per alert: time, severity, zone, class, track, message."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    def emit(self, alert: Alert) -> None:
        track = "-" if alert.track_id is None else f"#{alert.track_id}"
        named = "" if alert.mmsi is None else f" [{alert.vessel_name or 'MMSI'} {alert.mmsi}]"
        self._stream.write(
            f"{alert.iso_time} {alert.severity.upper():<8} [{alert.zone}] {alert.object_class.value} {track} "
            f"{alert.message}{named}\n"
        )
        self._stream.flush()

    def close(self) -> None:
        # The stream belongs to the caller (often stdout): flushing is all that is ours to do.
        self._stream.flush()


class JsonLinesSink:
    """Appends one JSON object per line; each line is on disk before ``emit`` returns.

    The file is the evidence trail of a patrol: fsync per alert costs milliseconds, and
    alerts are rare, so a crash or a power cut loses nothing already emitted.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, alert: Alert) -> None:
        self._file.write(_line(alert) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UdpJsonSink:
    """One JSON datagram per alert to the ground station.

    Never blocks and never raises on a dead or unreachable receiver: the video pipeline
    must keep running while the radio link comes and goes. Failures are counted in
    ``send_errors`` for health reporting; the JSON Lines file is the record that persists.
    """

    def __init__(self, host: str, port: int) -> None:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.address = address
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self.sent = 0
        self.send_errors = 0

    def emit(self, alert: Alert) -> None:
        self._send(_line(alert))

    def emit_detections(self, detections: Detections) -> None:
        """A frame's detections (those with any), tagged ``"type": "detections"``; alerts carry no type."""
        if len(detections):
            self._send(json.dumps(detections.to_json_dict(), ensure_ascii=False, separators=(",", ":")))

    def _send(self, text: str) -> None:
        try:
            self._socket.sendto(text.encode("utf-8"), self.address)
        except OSError:  # refused (ICMP from an earlier send), no route, buffer full
            self.send_errors += 1
        else:
            self.sent += 1

    def close(self) -> None:
        self._socket.close()


class FanOut:
    """Several sinks as one: every sink gets every alert even when another one fails."""

    def __init__(self, sinks: Iterable[AlertSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, alert: Alert) -> None:
        self._each(lambda sink: sink.emit(alert))

    def close(self) -> None:
        self._each(lambda sink: sink.close())

    def _each(self, call: Callable[[AlertSink], None]) -> None:
        errors: list[Exception] = []
        for sink in self.sinks:
            try:
                call(sink)
            except Exception as exc:  # re-raised below, once every sink has been served
                errors.append(exc)
        if errors:
            # A full disk must not silence the ground station, but it must not go unnoticed either.
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"also failed: {other!r}")
            raise first


class AlertListener:
    """The ground station's end of :class:`UdpJsonSink`: receives and parses alerts.

    Bind to port 0 to get a free port, then read it back from ``port``. Datagrams that
    are not alerts are dropped and counted in ``malformed``; the sender's detection frames
    (``"type": "detections"``) are skipped without counting.
    """

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.bind(address)
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]
        self.malformed = 0

    def receive(self, timeout_s: float) -> Alert | None:
        """The next alert, or None when none arrives within the timeout."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._socket], [], [], max(remaining, 0.0))
            if not ready:
                return None
            try:
                data, _ = self._socket.recvfrom(MAX_DATAGRAM_BYTES)
            except BlockingIOError:
                continue
            except ConnectionRefusedError:  # a stale ICMP error for this socket; not ours to report
                continue
            try:
                message = json.loads(data.decode("utf-8"))
                if isinstance(message, dict) and message.get("type") == "detections":
                    continue  # the same sender's per-frame detections: not an alert, not malformed
                return Alert.from_json_dict(message)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.malformed += 1
            if remaining <= 0:
                return None

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> AlertListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
