"""The JSON a unit publishes, version 1, and the decoder stations use to read it back.

Every payload is one UTF-8 JSON object with ``"v": 1`` and the ``site`` and ``unit`` (its
number) of the unit that published it, so that a message saved without its topic still says
whose it is; the decoder checks they agree with the topic. Per channel:

- ``alerts``: :meth:`vision.alerts.Alert.to_json_dict`, plus ``v``, ``site``, ``unit``;
- ``evidence``: ``record`` is the `EvidenceRecord` exactly as the onboard log holds it (so the
  ground's copy is the same hash chain) and ``snapshot_jpeg_b64`` its JPEG in base64, or null;
- ``status`` (retained): ``state`` online or offline, ``frames`` processed, ``fps``,
  ``last_message_s`` (Unix time of the last message sent, or null), ``time_s``, and the head
  of the onboard evidence log as far as it is queued for the bus: ``evidence_seq`` (0 when
  none) and ``evidence_sha256`` (that record's hash, 64 zeros when none), both null in the
  last will (composed at connect, it cannot know the head when the broker says it);
- ``detections``: `vision.detections.Detections.to_json_dict`, plus ``v``, ``site``, ``unit``;
- ``tracks``: one `vision.bus.tracks.TrackEvent` (``type`` new, update or end), its
  ``to_json_dict`` plus ``v``, ``site``, ``unit``.

`decode` never raises anything but ValueError, whose message starts with the topic, so a
station can count and drop a malformed message in one ``except``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from vision.alerts import Alert
from vision.bus.topics import parse_unit_topic
from vision.bus.tracks import TrackEvent
from vision.camera import CameraPose
from vision.detections import Detections
from vision.evidence import ZERO_SHA256, EvidenceRecord, record_sha256

VERSION = 1
ONLINE, OFFLINE = "online", "offline"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AlertMessage:
    site: str
    unit: int
    alert: Alert


@dataclass(frozen=True)
class EvidenceMessage:
    site: str
    unit: int
    record: EvidenceRecord
    snapshot_jpeg: bytes | None


@dataclass(frozen=True)
class StatusMessage:
    site: str
    unit: int
    state: str  # ONLINE or OFFLINE
    frames: int
    fps: float
    last_message_s: float | None
    time_s: float
    evidence_seq: int | None = 0  # the newest evidence record queued onboard; 0: none; None: not said (a last will)
    evidence_sha256: str | None = ZERO_SHA256  # its sha256

    @property
    def evidence_head(self) -> tuple[int, str] | None:
        if self.evidence_seq is None or self.evidence_sha256 is None:
            return None
        return self.evidence_seq, self.evidence_sha256


@dataclass(frozen=True)
class DetectionsMessage:
    site: str
    unit: int
    detections: dict[str, Any]  # as Detections.to_json_dict wrote it; nothing reads it back into Detections yet


@dataclass(frozen=True)
class TrackMessage:
    site: str
    unit: int
    event: TrackEvent


Message = AlertMessage | EvidenceMessage | StatusMessage | DetectionsMessage | TrackMessage


def _dump(site: str, unit: int, body: dict[str, Any]) -> bytes:
    doc = {"v": VERSION, "site": site, "unit": unit, **body}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def alert_payload(site: str, unit: int, alert: Alert) -> bytes:
    return _dump(site, unit, alert.to_json_dict())


def evidence_payload(site: str, unit: int, record: EvidenceRecord, snapshot_jpeg: bytes | None) -> bytes:
    snapshot = None if snapshot_jpeg is None else base64.b64encode(snapshot_jpeg).decode("ascii")
    return _dump(site, unit, {"record": record.to_json(), "snapshot_jpeg_b64": snapshot})


def status_payload(
    site: str,
    unit: int,
    state: str,
    frames: int,
    fps: float,
    last_message_s: float | None,
    time_s: float,
    evidence_head: tuple[int, str] | None = (0, ZERO_SHA256),
) -> bytes:
    # A NaN rate (no frame yet) is not JSON; zero says the same to a reader.
    fps = fps if math.isfinite(fps) else 0.0
    body = {
        "state": state,
        "frames": frames,
        "fps": fps,
        "last_message_s": last_message_s,
        "time_s": time_s,
        "evidence_seq": None if evidence_head is None else evidence_head[0],
        "evidence_sha256": None if evidence_head is None else evidence_head[1],
    }
    return _dump(site, unit, body)


def detections_payload(site: str, unit: int, detections: Detections, pose: CameraPose | None = None) -> bytes:
    """A frame's detections, and the camera's pose when known: what the ground draws the area seen from."""
    return _dump(site, unit, {**detections.to_json_dict(), "pose": None if pose is None else asdict(pose)})


def tracks_payload(site: str, unit: int, event: TrackEvent) -> bytes:
    return _dump(site, unit, event.to_json_dict())


def decode(topic: str, data: bytes) -> Message:
    """The message a payload on ``topic`` carries; ValueError ``"<topic>: <what is wrong>"`` otherwise."""
    where = parse_unit_topic(topic)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested a million deep
        raise ValueError(f"{topic}: not UTF-8 JSON ({type(exc).__name__}: {exc})") from None
    try:
        return _decode(where.channel, where.site, where.unit, doc)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{topic}: {what}") from None


def _decode(channel: str, site: str, unit: int, doc: Any) -> Message:
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("v") != VERSION:
        raise ValueError(f"version {doc.get('v')!r}, expected {VERSION}")
    if doc.get("site") != site or doc.get("unit") != unit:
        raise ValueError(f"says it is from site {doc.get('site')!r} unit {doc.get('unit')!r}, not the topic's")
    if channel == "alerts":
        return AlertMessage(site, unit, Alert.from_json_dict(doc))
    if channel == "evidence":
        return _evidence(site, unit, doc)
    if channel == "status":
        return _status(site, unit, doc)
    if channel == "detections":
        body = {k: v for k, v in doc.items() if k not in ("v", "site", "unit")}
        if body.get("type") != "detections" or not isinstance(body.get("items"), list):
            raise ValueError("not a frame's detections")
        pose = body.get("pose")
        if pose is not None:
            body["pose"] = asdict(_pose(pose))
        return DetectionsMessage(site, unit, body)
    if channel == "tracks":
        return TrackMessage(site, unit, TrackEvent.from_json_dict(doc))
    raise ValueError(f"no payload is defined for the {channel!r} channel in version {VERSION}")


def _pose(obj: Any) -> CameraPose:
    if not isinstance(obj, dict):
        raise ValueError("pose is not an object")
    names = {f.name for f in fields(CameraPose)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise ValueError(f"pose has unknown field(s) {', '.join(unknown)}")
    for key, value in obj.items():
        wanted = bool if key == "gimbal_stabilized" else (int, float)
        if isinstance(value, bool) != (key == "gimbal_stabilized") or not isinstance(value, wanted):
            raise ValueError(f"pose {key} {value!r} is not a {'flag' if wanted is bool else 'number'}")
        if wanted is not bool and not math.isfinite(value):
            raise ValueError(f"pose {key} is not finite")
    return CameraPose(**obj)


def _evidence(site: str, unit: int, doc: dict[str, Any]) -> EvidenceMessage:
    record = EvidenceRecord.from_json(doc["record"])
    # Checked here so that a record mangled in transit is refused at the door rather than
    # found later as a broken chain in the ground's copy.
    if record_sha256(doc["record"]) != record.sha256:
        raise ValueError(f"evidence record {record.seq}: its sha256 does not match its content")
    encoded = doc["snapshot_jpeg_b64"]
    if (encoded is None) != (record.snapshot_sha256 is None):
        raise ValueError(f"evidence record {record.seq}: snapshot present in one of record and payload only")
    if encoded is None:
        return EvidenceMessage(site, unit, record, None)
    if not isinstance(encoded, str):
        raise ValueError(f"evidence record {record.seq}: snapshot_jpeg_b64 is not a string")
    jpeg = base64.b64decode(encoded, validate=True)
    if hashlib.sha256(jpeg).hexdigest() != record.snapshot_sha256:
        raise ValueError(f"evidence record {record.seq}: the snapshot does not match its snapshot_sha256")
    return EvidenceMessage(site, unit, record, jpeg)


def _status(site: str, unit: int, doc: dict[str, Any]) -> StatusMessage:
    state, frames, fps, last, time_s = (doc[k] for k in ("state", "frames", "fps", "last_message_s", "time_s"))
    if state not in (ONLINE, OFFLINE):
        raise ValueError(f"state {state!r}, expected {ONLINE!r} or {OFFLINE!r}")
    if type(frames) is not int or frames < 0:
        raise ValueError(f"frames {frames!r} is not a count")
    for name, value in (("fps", fps), ("time_s", time_s), ("last_message_s", last)):
        if not (value is None and name == "last_message_s") and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ValueError(f"{name} {value!r} is not a number")
    seq, sha = doc["evidence_seq"], doc["evidence_sha256"]
    last = None if last is None else float(last)
    if seq is None and sha is None and state == OFFLINE:
        return StatusMessage(site, unit, state, frames, float(fps), last, float(time_s), None, None)
    if type(seq) is not int or seq < 0:
        raise ValueError(f"evidence_seq {seq!r} is not a record number")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        raise ValueError(f"evidence_sha256 {sha!r} is not 64 lowercase hex digits")
    if (seq == 0) != (sha == ZERO_SHA256):
        raise ValueError(f"evidence_seq {seq} with evidence_sha256 {sha[:12]}…: the zero hash goes with seq 0 only")
    return StatusMessage(site, unit, state, frames, float(fps), last, float(time_s), seq, sha)
