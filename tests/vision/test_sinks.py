from __future__ import annotations

import dataclasses
import io
import json
import socket

import pytest

from vision.alerts import Alert, RuleKind
from vision.detections import Detection, Detections, ObjectClass
from vision.sinks import AlertListener, ConsoleSink, FanOut, JsonLinesSink, UdpJsonSink


def make_alert(track_id=7, rule=RuleKind.ENTER, n=0, zone="Eastern anchorage"):
    return Alert(
        alert_id=f"cam1:{rule.value}-eastern-anchorage-{track_id}-{n}",
        time_s=1_750_000_000.0 + n,
        iso_time="2025-06-15T15:06:40.000Z",
        rule=rule,
        zone=zone,
        risk=4,
        severity="high",
        object_class=ObjectClass.VESSEL,
        track_id=track_id,
        lat_deg=36.127,
        lon_deg=-5.4245,
        count=1 if track_id is not None else 4,
        message=f"vessel {track_id} entered {zone} — ñ",
        source="cam1",
    )


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (make_alert(7), ["2025-06-15T15:06:40.000Z", "HIGH", "Eastern anchorage", "vessel", "#7", "entered"]),
        (make_alert(None, RuleKind.CROWD), ["HIGH", "Eastern anchorage", "vessel", " - "]),
        (
            dataclasses.replace(make_alert(7, RuleKind.DWELL), mmsi=224070101, vessel_name="VIRGEN DEL CARMEN"),
            ["#7", "[VIRGEN DEL CARMEN 224070101]"],
        ),
        (dataclasses.replace(make_alert(None, RuleKind.AIS_NOT_SEEN), mmsi=224070102), ["[MMSI 224070102]"]),
    ],
    ids=["track", "crowd", "named by AIS", "AIS not seen, no name yet"],
)
def test_console_sink_writes_one_readable_line(alert, expected):
    stream = io.StringIO()
    ConsoleSink(stream).emit(alert)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    for part in expected:
        assert part in text


def test_json_lines_sink_appends_complete_lines(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"earlier": true}\n', encoding="utf-8")
    alerts = [make_alert(i, n=i) for i in range(3)]
    sink = JsonLinesSink(path)
    for k, alert in enumerate(alerts):
        sink.emit(alert)
        # Read through a separate handle while the sink is still open: what a crash would leave.
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        assert len(lines) == k + 2 and all(line.endswith("\n") for line in lines)
        assert Alert.from_json_dict(json.loads(lines[-1])) == alert
    sink.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [Alert.from_json_dict(json.loads(line)) for line in lines[1:]] == alerts


@pytest.mark.timeout(10)
@pytest.mark.parametrize("count", [1, 5])
def test_udp_sink_to_listener_round_trip(count):
    with AlertListener("127.0.0.1", 0) as listener:
        sink = UdpJsonSink("127.0.0.1", listener.port)
        alerts = [make_alert(i, n=i) for i in range(count)] + [make_alert(None, RuleKind.CROWD, n=99)]
        for alert in alerts:
            sink.emit(alert)
        received = [listener.receive(timeout_s=2.0) for _ in alerts]
        sink.close()
        assert received == alerts
        assert (sink.sent, sink.send_errors) == (len(alerts), 0)
        assert listener.receive(timeout_s=0.05) is None


@pytest.mark.timeout(10)
def test_listener_drops_malformed_datagrams():
    with AlertListener("127.0.0.1", 0) as listener:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"not json", ("127.0.0.1", listener.port))
            raw.sendto(b'{"alert_id": 1}', ("127.0.0.1", listener.port))
        sink = UdpJsonSink("127.0.0.1", listener.port)
        sink.emit(make_alert())
        assert listener.receive(timeout_s=2.0) == make_alert()
        assert listener.malformed == 2
        sink.close()


@pytest.mark.timeout(10)
def test_udp_sink_sends_detections_that_the_alert_listener_passes_over():
    boat = Detection(ObjectClass.VESSEL, 0.8, (1.0, 2.0, 30.0, 40.0), track_id=3, lat_deg=36.1, lon_deg=-5.4)
    frame = Detections("drone-1", 1_800_000_000.0, 12, (boat,))
    with AlertListener("127.0.0.1", 0) as listener, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        sink = UdpJsonSink("127.0.0.1", raw.getsockname()[1])
        sink.emit_detections(frame)
        sink.emit_detections(Detections("drone-1", 1_800_000_000.1, 13))  # nothing seen: nothing sent
        message = json.loads(raw.recv(65536))
        assert message["type"] == "detections" and message["frame_index"] == 12
        assert message["items"] == [{"class": "vessel", "confidence": 0.8, "box_px": [1.0, 2.0, 30.0, 40.0],
                                     "track_id": 3, "lat_deg": 36.1, "lon_deg": -5.4}]  # fmt: skip
        assert sink.sent == 1
        to_listener = UdpJsonSink("127.0.0.1", listener.port)
        to_listener.emit_detections(frame)
        to_listener.emit(make_alert())
        assert listener.receive(timeout_s=2.0) == make_alert()
        assert listener.malformed == 0
        sink.close()
        to_listener.close()


def closed_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(10)
def test_udp_sink_to_a_closed_port_never_raises():
    sink = UdpJsonSink("127.0.0.1", closed_port())
    for i in range(20):
        sink.emit(make_alert(i))
    assert sink.sent + sink.send_errors == 20
    sink.close()


class Recorder:
    def __init__(self):
        self.alerts = []
        self.closed = False

    def emit(self, alert):
        self.alerts.append(alert)

    def close(self):
        self.closed = True


class Broken:
    def emit(self, alert):
        raise OSError("disk full")

    def close(self):
        pass


def test_fan_out_reaches_every_sink():
    a, b = Recorder(), Recorder()
    fan = FanOut([a, b])
    fan.emit(make_alert())
    fan.close()
    assert a.alerts == b.alerts == [make_alert()]
    assert a.closed and b.closed


def test_fan_out_serves_the_others_before_raising_a_failure():
    before, after = Recorder(), Recorder()
    fan = FanOut([before, Broken(), after])
    with pytest.raises(OSError, match="disk full"):
        fan.emit(make_alert())
    assert before.alerts == after.alerts == [make_alert()]
