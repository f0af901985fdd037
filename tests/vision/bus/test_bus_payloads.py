"""What a station reads back is what the unit sent; anything else is one ValueError naming the topic."""

from __future__ import annotations

import base64
import json
import re

import pytest

from vision.bus import payloads
from vision.bus.topics import UNIT_CHANNELS, parse_unit_topic, unit_topic
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.camera import CameraPose
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import ZERO_SHA256
from vision.evidence_verify import read_records

SITE, UNIT = "algeciras", 2
ALERTS = unit_topic(SITE, UNIT, "alerts")
EVIDENCE = unit_topic(SITE, UNIT, "evidence")
STATUS = unit_topic(SITE, UNIT, "status")
TRACKS = unit_topic(SITE, UNIT, "tracks")
HEAD = (3, "ab" * 32)


def track_event(kind: TrackEventKind = TrackEventKind.UPDATE, **changes) -> TrackEvent:
    fields = {
        "kind": kind,
        "track_id": 7,
        "source": "cam1",
        "object_class": ObjectClass.VESSEL,
        "time_s": 1_750_000_012.5,
        "lat_deg": 36.127,
        "lon_deg": -5.4245,
        "error_m": 2.5,
        "course_deg": 271.3,
        "speed_mps": 4.25,
        "confidence": 0.912,
        "first_seen_s": 1_750_000_001.0,
        "last_seen_s": 1_750_000_012.5,
    }
    return TrackEvent(**{**fields, **changes})


def test_topics_follow_the_scheme_and_parse_back():
    assert unit_topic("tarifa-coast", 3, "alerts") == "borderwatch/v1/tarifa-coast/unit-3/alerts"
    for channel in UNIT_CHANNELS:
        parsed = parse_unit_topic(unit_topic(SITE, UNIT, channel))
        assert (parsed.site, parsed.unit, parsed.channel) == (SITE, UNIT, channel)
    with pytest.raises(ValueError, match="channel 'commands'"):
        unit_topic(SITE, UNIT, "commands")


def test_an_alert_round_trips_with_version_and_unit(alert):
    data = payloads.alert_payload(SITE, UNIT, alert(5))

    doc = json.loads(data)
    assert (doc["v"], doc["site"], doc["unit"], doc["alert_id"]) == (1, SITE, UNIT, alert(5).alert_id)
    assert payloads.decode(ALERTS, data) == payloads.AlertMessage(SITE, UNIT, alert(5))


def test_an_evidence_record_round_trips_as_written_in_the_log_with_its_snapshot(evidence_dir):
    for _, record in read_records(evidence_dir):
        snapshot = None if record.snapshot is None else (evidence_dir / "snapshots" / record.snapshot).read_bytes()
        data = payloads.evidence_payload(SITE, UNIT, record, snapshot)

        message = payloads.decode(EVIDENCE, data)
        assert message == payloads.EvidenceMessage(SITE, UNIT, record, snapshot)
        assert json.loads(data)["record"] == record.to_json()


def test_a_status_round_trips_and_a_rate_not_yet_known_is_zero():
    data = payloads.status_payload(SITE, UNIT, payloads.ONLINE, 0, float("nan"), None, 1_750_000_000.5)

    message = payloads.decode(STATUS, data)
    assert message == payloads.StatusMessage(SITE, UNIT, "online", 0, 0.0, None, 1_750_000_000.5, 0, ZERO_SHA256)
    assert json.loads(data)["evidence_seq"] == 0 and json.loads(data)["evidence_sha256"] == "0" * 64


def test_a_status_carries_the_evidence_head_and_a_last_will_none():
    data = payloads.status_payload(SITE, UNIT, payloads.ONLINE, 5, 9.5, 1.0, 2.0, HEAD)
    will = payloads.status_payload(SITE, UNIT, payloads.OFFLINE, 0, 0.0, None, 2.0, evidence_head=None)

    assert payloads.decode(STATUS, data).evidence_head == HEAD
    assert (json.loads(data)["evidence_seq"], json.loads(data)["evidence_sha256"]) == HEAD
    message = payloads.decode(STATUS, will)
    assert (message.evidence_seq, message.evidence_sha256, message.evidence_head) == (None, None, None)


@pytest.mark.parametrize("kind", list(TrackEventKind))
def test_a_track_event_round_trips(kind):
    event = track_event(kind)
    data = payloads.tracks_payload(SITE, UNIT, event)

    doc = json.loads(data)
    assert (doc["v"], doc["site"], doc["unit"], doc["type"], doc["object_class"]) == (
        1,
        SITE,
        UNIT,
        kind.value,
        "vessel",
    )
    assert set(doc) == {
        "v", "site", "unit", "type", "track_id", "source", "object_class", "time_s", "lat_deg", "lon_deg",
        "error_m", "course_deg", "speed_mps", "confidence", "first_seen_s", "last_seen_s",
    }  # fmt: skip
    assert payloads.decode(TRACKS, data) == payloads.TrackMessage(SITE, UNIT, event)


def test_a_track_event_with_nothing_known_of_where_or_how_fast_round_trips_with_nulls():
    event = track_event(TrackEventKind.NEW, lat_deg=None, lon_deg=None, error_m=None, course_deg=None, speed_mps=None)
    data = payloads.tracks_payload(SITE, UNIT, event)

    assert [json.loads(data)[k] for k in ("lat_deg", "lon_deg", "error_m", "course_deg", "speed_mps")] == [None] * 5
    assert payloads.decode(TRACKS, data).event == event


def test_detections_round_trip_as_their_json():
    detections = Detections("cam1", 12.5, 3, (Detection(ObjectClass.VESSEL, 0.9, (1.0, 2.0, 3.0, 4.0), track_id=4),))
    data = payloads.detections_payload(SITE, UNIT, detections)

    message = payloads.decode(unit_topic(SITE, UNIT, "detections"), data)
    assert message.detections == {**detections.to_json_dict(), "pose": None}


def test_detections_carry_the_camera_pose_the_ground_draws_the_area_seen_from():
    pose = CameraPose(36.13, -5.43, 60.0, yaw_deg=90.0, gimbal_stabilized=True)
    data = payloads.detections_payload(SITE, UNIT, Detections("cam1", 12.5, 3, ()), pose)

    message = payloads.decode(unit_topic(SITE, UNIT, "detections"), data)
    assert CameraPose(**message.detections["pose"]) == pose


@pytest.mark.parametrize(
    ("pose", "says"),
    [
        ("north", "pose is not an object"),
        ({"lat_deg": "36", "lon_deg": -5.4, "alt_m": 60}, "pose lat_deg '36' is not a number"),
        ({"lat_deg": 36, "lon_deg": -5.4, "alt_m": 60, "zoom": 2}, "unknown field(s) zoom"),
        ({"lat_deg": 36, "lon_deg": -5.4, "alt_m": 60, "gimbal_stabilized": 1}, "is not a flag"),
        ({"lat_deg": 36, "lon_deg": -5.4}, "missing"),
    ],
)
def test_a_bad_pose_is_refused_naming_the_topic(pose, says):
    topic = unit_topic(SITE, UNIT, "detections")
    doc = json.loads(payloads.detections_payload(SITE, UNIT, Detections("cam1", 1.0, 1, ())))
    doc["pose"] = pose
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        payloads.decode(topic, json.dumps(doc).encode())
    assert str(caught.value).startswith(topic)


def _evidence_doc(evidence_dir) -> dict:
    _, record = next(iter(read_records(evidence_dir)))
    snapshot = (evidence_dir / "snapshots" / record.snapshot).read_bytes()
    return json.loads(payloads.evidence_payload(SITE, UNIT, record, snapshot))


def _alert_doc(alert) -> dict:
    return json.loads(payloads.alert_payload(SITE, UNIT, alert(1)))


def _status_doc() -> dict:
    return json.loads(payloads.status_payload(SITE, UNIT, payloads.ONLINE, 1, 1.0, None, 1.0, HEAD))


def _track_doc() -> dict:
    return json.loads(payloads.tracks_payload(SITE, UNIT, track_event()))


def _with(doc: dict, **changes) -> bytes:
    return json.dumps({**doc, **changes}).encode()


MALFORMED = {
    "not json": (ALERTS, lambda a, e: b"{nope", "not UTF-8 JSON"),
    "not utf-8": (ALERTS, lambda a, e: b"\xff\xfe", "not UTF-8 JSON"),
    "deeply nested": (ALERTS, lambda a, e: b"[" * 100_000 + b"]" * 100_000, "not UTF-8 JSON"),
    "a list": (ALERTS, lambda a, e: b"[1, 2]", "not a JSON object"),
    "no version": (ALERTS, lambda a, e: _with(_alert_doc(a), v=None), "version None, expected 1"),
    "version 2": (ALERTS, lambda a, e: _with(_alert_doc(a), v=2), "version 2, expected 1"),
    "another unit": (ALERTS, lambda a, e: _with(_alert_doc(a), unit=1), "unit 1, not the topic's"),
    "missing field": (ALERTS, lambda a, e: _with({k: v for k, v in _alert_doc(a).items() if k != "rule"}), "'rule'"),
    "bad enum": (ALERTS, lambda a, e: _with(_alert_doc(a), severity="apocalyptic"), "apocalyptic"),
    "bad number": (ALERTS, lambda a, e: _with(_alert_doc(a), lat_deg="north"), "north"),
    "edited record": (
        EVIDENCE,
        lambda a, e: _with(_evidence_doc(e), record={**_evidence_doc(e)["record"], "kind": "nothing to see"}),
        "its sha256 does not match",
    ),
    "swapped snapshot": (
        EVIDENCE,
        lambda a, e: _with(_evidence_doc(e), snapshot_jpeg_b64=base64.b64encode(b"\xff\xd8other").decode()),
        "does not match its snapshot_sha256",
    ),
    "snapshot not base64": (EVIDENCE, lambda a, e: _with(_evidence_doc(e), snapshot_jpeg_b64="@@@"), "evidence"),
    "snapshot dropped": (
        EVIDENCE,
        lambda a, e: _with(_evidence_doc(e), snapshot_jpeg_b64=None),
        "snapshot present in one of record and payload only",
    ),
    "record not a record": (EVIDENCE, lambda a, e: _with(_evidence_doc(e), record=[1]), "not a JSON object"),
    "unknown state": (
        STATUS,
        lambda a, e: payloads.status_payload(SITE, UNIT, "asleep", 1, 1.0, None, 1.0),
        "state 'asleep'",
    ),
    "negative frames": (
        STATUS,
        lambda a, e: payloads.status_payload(SITE, UNIT, "online", -1, 1.0, None, 1.0),
        "frames -1",
    ),
    "fps a word": (
        STATUS,
        lambda a, e: _with(json.loads(payloads.status_payload(SITE, UNIT, "online", 1, 1.0, None, 1.0)), fps="fast"),
        "fps 'fast'",
    ),
    "head seq negative": (STATUS, lambda a, e: _with(_status_doc(), evidence_seq=-1), "evidence_seq -1"),
    "head seq a float": (STATUS, lambda a, e: _with(_status_doc(), evidence_seq=3.0), "evidence_seq 3.0"),
    "head sha uppercase": (STATUS, lambda a, e: _with(_status_doc(), evidence_sha256="AB" * 32), "64 lowercase hex"),
    "head sha short": (STATUS, lambda a, e: _with(_status_doc(), evidence_sha256="ab" * 31), "64 lowercase hex"),
    "head seq without a hash": (STATUS, lambda a, e: _with(_status_doc(), evidence_sha256=ZERO_SHA256), "zero hash"),
    "head hash without a seq": (STATUS, lambda a, e: _with(_status_doc(), evidence_seq=0), "zero hash"),
    "head null while online": (
        STATUS,
        lambda a, e: _with(_status_doc(), evidence_seq=None, evidence_sha256=None),
        "evidence_seq None",
    ),
    "head missing": (
        STATUS,
        lambda a, e: _with({k: v for k, v in _status_doc().items() if k != "evidence_sha256"}),
        "missing field 'evidence_sha256'",
    ),
    "an alert on tracks": (TRACKS, lambda a, e: _with(_alert_doc(a)), "missing field 'type'"),
    "track type unknown": (TRACKS, lambda a, e: _with(_track_doc(), type="gone"), "type 'gone'"),
    "track class unknown": (TRACKS, lambda a, e: _with(_track_doc(), object_class="whale"), "object_class 'whale'"),
    "track id a string": (TRACKS, lambda a, e: _with(_track_doc(), track_id="7"), "track_id '7'"),
    "track id negative": (TRACKS, lambda a, e: _with(_track_doc(), track_id=-1), "track_id -1"),
    "track source a number": (TRACKS, lambda a, e: _with(_track_doc(), source=1), "source 1"),
    "track lat without lon": (TRACKS, lambda a, e: _with(_track_doc(), lon_deg=None), "one is null"),
    "track lat off the earth": (TRACKS, lambda a, e: _with(_track_doc(), lat_deg=91.0), "lat_deg 91.0 is outside"),
    "track speed negative": (TRACKS, lambda a, e: _with(_track_doc(), speed_mps=-1), "speed_mps -1 is outside"),
    "track course a word": (TRACKS, lambda a, e: _with(_track_doc(), course_deg="west"), "course_deg 'west'"),
    "track confidence NaN": (TRACKS, lambda a, e: _with(_track_doc(), confidence=float("nan")), "confidence nan"),
    "track confidence a bool": (TRACKS, lambda a, e: _with(_track_doc(), confidence=True), "confidence True"),
    "track seen before it began": (
        TRACKS,
        lambda a, e: _with(_track_doc(), first_seen_s=1_750_000_013.0),
        "out of order",
    ),
    "track field missing": (
        TRACKS,
        lambda a, e: _with({k: v for k, v in _track_doc().items() if k != "last_seen_s"}),
        "missing field 'last_seen_s'",
    ),
    "track from another unit": (TRACKS, lambda a, e: _with(_track_doc(), unit=1), "not the topic's"),
    "not a unit topic": ("borderwatch/v1/algeciras/unit-2/commands/go", lambda a, e: b"{}", "not a unit's topic"),
}


@pytest.mark.parametrize(("topic", "make", "what"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_payload_is_one_value_error_naming_the_topic_and_the_fault(alert, evidence_dir, topic, make, what):
    with pytest.raises(ValueError) as caught:
        payloads.decode(topic, make(alert, evidence_dir))

    assert str(caught.value).startswith(f"{topic}: ")
    assert what in str(caught.value)
