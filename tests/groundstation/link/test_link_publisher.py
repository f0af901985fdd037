"""A unit's publisher on a real mosquitto: every alert arrives once and in order, through a broker
restart, and a unit that dies is marked offline by its last will.

"Once" is what the station's application sees: QoS 1 may deliver a message twice when a PUBACK
is lost with the link (the broker restart below), so the station drops repeats by ``alert_id``,
as a real station must; the first test, with no outage, checks that there are none at all.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import Broker, BrokerAddress, free_port
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus import payloads
from vision.bus.outbox import Outbox
from vision.bus.publisher import Endpoint, Publisher
from vision.bus.sink import PublishToBus
from vision.bus.topics import ROOT
from vision.bus.tracks import TrackEventKind
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import ZERO_SHA256, EvidenceLog
from vision.pipeline import FrameResult

REPO = Path(__file__).resolve().parents[3]
SITE = "algeciras"
WAIT_S = 15.0


def make_alert(n: int) -> Alert:
    return Alert(
        f"cam1:enter-anchorage-{n}", 1_750_000_000.0 + n, "2025-06-15T15:06:40.000Z", RuleKind.ENTER, "Anchorage", 4,
        AlertSeverity.HIGH, ObjectClass.VESSEL, n, 36.127, -5.4245, 1, f"vessel {n} entered Anchorage", "cam1",
    )  # fmt: skip


def endpoint(pki_dir: Path, address: BrokerAddress, name: str) -> Endpoint:
    creds = pki.client_credentials(pki_dir, ids.parse(name))
    return Endpoint(address.host, address.port, creds.ca, creds.cert, creds.key)


class Station:
    """A ground station's subscriber with a persistent session: decoded messages, in arrival order."""

    def __init__(self, pki_dir: Path, address: BrokerAddress, topic: str, client_id: str) -> None:
        where = endpoint(pki_dir, address, f"station-{SITE}")
        self.topic = topic
        self.messages: list[payloads.Message] = []
        self.malformed: list[str] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(str(where.ca), str(where.cert), str(where.key))
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # so the broker queues what arrives while we are away
        self.client.connect(where.host, where.port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), f"{client_id}: no SUBACK within {WAIT_S} s"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        # Again on every reconnect: harmless when the session kept the subscription, needed when not.
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        with self._changed:
            try:
                self.messages.append(payloads.decode(message.topic, message.payload))
            except ValueError as exc:
                self.malformed.append(str(exc))
            self._changed.notify_all()

    def wait(self, done: Callable[[list[payloads.Message]], bool], within_s: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: done(self.messages), timeout=within_s)

    def alert_ids(self) -> list[str]:
        with self._changed:
            return [m.alert.alert_id for m in self.messages if isinstance(m, payloads.AlertMessage)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def station(pki_dir: Path, request: pytest.FixtureRequest):
    made: list[Station] = []

    def make(address: BrokerAddress, topic: str = f"{ROOT}/{SITE}/+/alerts") -> Station:
        made.append(Station(pki_dir, address, topic, f"station-{request.node.name}-{time.monotonic_ns()}"))
        return made[-1]

    yield make
    for s in made:
        s.close()


def unique(ids_seen: list[str]) -> list[str]:
    return list(dict.fromkeys(ids_seen))


def test_fifty_alerts_arrive_once_and_in_order(broker, pki_dir, station, tmp_path):
    ground = station(broker.address)
    with (
        Outbox(tmp_path / "outbox") as box,
        Publisher(endpoint(pki_dir, broker.address, "unit-algeciras-1"), SITE, 1, box) as unit,
    ):
        for n in range(50):
            unit.put_alert(make_alert(n))

        assert ground.wait(lambda got: len(got) >= 50), f"{len(ground.messages)} of 50 arrived"
        assert unit.wait_drained(WAIT_S)
    time.sleep(0.2)  # room for a duplicate to show up, were there one
    assert ground.alert_ids() == [make_alert(n).alert_id for n in range(50)]
    assert all(m.unit == 1 and m.site == SITE for m in ground.messages)
    assert ground.malformed == []


def test_a_broker_restart_mid_stream_loses_nothing_and_keeps_the_order(mosquitto, pki_dir, station, tmp_path):
    state, port, total = tmp_path / "broker", free_port(), 90
    expected = [make_alert(n).alert_id for n in range(total)]
    box = Outbox(tmp_path / "outbox")
    with Broker(pki_dir, state_dir=state, port=port) as first:
        ground = station(first.address)
        unit = Publisher(endpoint(pki_dir, first.address, "unit-algeciras-1"), SITE, 1, box, reconnect_s=(1, 2))
        unit.start()
        for n in range(30):
            unit.put_alert(make_alert(n))
        assert ground.wait(lambda got: len(got) >= 10), "nothing arrived before the restart"
    # Broker down: the unit keeps raising alerts, which wait in its outbox.
    for n in range(30, 60):
        unit.put_alert(make_alert(n))
    assert len(box) >= 30, "alerts raised while the broker is down are not waiting in the outbox"
    with Broker(pki_dir, state_dir=state, port=port):
        for n in range(60, total):
            unit.put_alert(make_alert(n))
        arrived = ground.wait(lambda got: len(unique(ground.alert_ids())) >= total, within_s=30)
        drained = unit.wait_drained(WAIT_S)
        unit.close()
    box.close()

    got = ground.alert_ids()
    assert arrived, f"{len(unique(got))} of {total} arrived; missing {sorted(set(expected) - set(got))[:5]}…"
    assert unique(got) == expected, "first arrivals out of order"
    assert drained and unit.refused == 0
    print(f"{len(got) - total} duplicate(s) dropped by alert_id after the restart")


UNIT_THAT_DIES = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vision.bus.outbox import Outbox
    from vision.bus.publisher import Endpoint, Publisher
    host, port, ca, cert, key, outbox = sys.argv[1:]
    unit = Publisher(Endpoint(host, int(port), Path(ca), Path(cert), Path(key)), "algeciras", 2, Outbox(outbox))
    unit.start()
    print("connected" if unit.wait_connected(10) else "not connected", flush=True)
    time.sleep(60)
""")


def test_a_unit_killed_without_goodbye_is_marked_offline_by_its_last_will(broker, pki_dir, station, tmp_path):
    where = endpoint(pki_dir, broker.address, "unit-algeciras-2")
    args = [where.host, str(where.port), str(where.ca), str(where.cert), str(where.key), str(tmp_path / "outbox")]
    ground = station(broker.address, f"{ROOT}/{SITE}/unit-2/status")
    proc = subprocess.Popen([sys.executable, "-c", UNIT_THAT_DIES, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], WAIT_S)
        assert ready and proc.stdout.readline().strip() == "connected"
        assert ground.wait(lambda got: any(m.state == "online" for m in got))

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
        assert ground.wait(lambda got: got[-1].state == "offline"), "no last will within the wait"
    finally:
        proc.kill()
        proc.wait()
    latecomer = station(broker.address, f"{ROOT}/{SITE}/unit-2/status")
    assert latecomer.wait(lambda got: len(got) >= 1)
    assert latecomer.messages[-1].state == "offline", "the offline status is not retained"
    assert latecomer.messages[-1].evidence_head is None, "a last will cannot know the evidence head"


def test_a_unit_that_closes_says_offline_itself(broker, pki_dir, station, tmp_path):
    ground = station(broker.address, f"{ROOT}/{SITE}/unit-2/status")
    with Outbox(tmp_path / "outbox") as box:
        unit = Publisher(endpoint(pki_dir, broker.address, "unit-algeciras-2"), SITE, 2, box).start()
        assert ground.wait(lambda got: any(m.state == "online" for m in got))
        unit.close()
    assert ground.wait(lambda got: got[-1].state == "offline")


def test_evidence_arrives_as_the_same_hash_chain_as_the_onboard_log(broker, pki_dir, station, tmp_path):
    ground = station(broker.address, f"{ROOT}/{SITE}/unit-1/evidence")
    with (
        EvidenceLog.open(tmp_path / "evidence") as log,
        Outbox(tmp_path / "outbox") as box,
        Publisher(endpoint(pki_dir, broker.address, "unit-algeciras-1"), SITE, 1, box) as unit,
    ):
        sink = PublishToBus(unit, tmp_path / "evidence")
        for n in range(5):
            log.append("alert", {"alert": make_alert(n).to_json_dict()}, snapshot_jpeg=b"\xff\xd8%d" % n, time_s=n)
            sink(FrameResult(n, n, Detections("cam1", float(n), n), (), None, 0, 0, 0, evidence_records=1), None)

        assert ground.wait(lambda got: len(got) >= 5)
        head = log.last_sha256
    records = [m.record for m in ground.messages]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [r.prev_sha256 for r in records] == [ZERO_SHA256] + [r.sha256 for r in records[:-1]]
    assert records[-1].sha256 == head
    assert [m.snapshot_jpeg for m in ground.messages] == [b"\xff\xd8%d" % n for n in range(5)]


def test_tracks_arrive_new_update_end_and_the_status_reports_the_evidence_head(broker, pki_dir, station, tmp_path):
    tracks = station(broker.address, f"{ROOT}/{SITE}/unit-1/tracks")
    status = station(broker.address, f"{ROOT}/{SITE}/unit-1/status")
    with (
        EvidenceLog.open(tmp_path / "evidence") as log,
        Outbox(tmp_path / "outbox") as box,
        Publisher(endpoint(pki_dir, broker.address, "unit-algeciras-1"), SITE, 1, box, status_every_s=0.2) as unit,
    ):
        assert unit.wait_connected(WAIT_S)
        for n in range(2):
            log.append("alert", {"alert": make_alert(n).to_json_dict()}, time_s=n)
        sink = PublishToBus(unit, tmp_path / "evidence")
        for i in range(15):  # east at 5 m/s: an update at 1 s
            t = 1_750_000_000 + i / 10
            boat = Detection(ObjectClass.VESSEL, 0.9, (1, 2, 3, 4), 7, x_m=0.5 * i, y_m=0.0, lat_deg=36.1, lon_deg=-5.4)
            sink(FrameResult(i, t, Detections("cam1", t, i, (boat,)), (), None, 0, 0, 0), None)
        sink.close()

        assert tracks.wait(lambda got: any(m.event.kind is TrackEventKind.END for m in got))
        assert status.wait(lambda got: any(m.evidence_seq == 2 for m in got))
        assert unit.wait_drained(WAIT_S)
        head = (log.last_seq, log.last_sha256)
    events = sorted((m.event for m in tracks.messages), key=lambda e: e.time_s)
    assert [(e.kind, e.track_id) for e in events] == [
        (TrackEventKind.NEW, 7),
        (TrackEventKind.UPDATE, 7),
        (TrackEventKind.END, 7),
    ]
    assert events[1].speed_mps == pytest.approx(5.0, abs=0.01)
    assert next(m for m in status.messages if m.evidence_seq == 2).evidence_head == head
    assert status.wait(lambda got: got[-1].state == "offline" and got[-1].evidence_head == head), "goodbye without head"
