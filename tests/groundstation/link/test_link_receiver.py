"""The station's receiver on a real mosquitto: what units send arrives once, their evidence is the
same chain, and what is malformed, forged or from a stranger is dropped with one line and
reaches nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import BrokerAddress, free_port
from groundstation.link.receiver import Handlers, Receiver, station_endpoint
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus import payloads
from vision.bus.outbox import Outbox
from vision.bus.publisher import Endpoint, Publisher
from vision.bus.topics import unit_topic
from vision.detections import ObjectClass
from vision.evidence import EvidenceLog
from vision.evidence_verify import verify

SITE = "algeciras"
WAIT_S = 10.0


def make_alert(n: int, unit: int = 1) -> Alert:
    return Alert(
        f"unit{unit}:enter-anchorage-{n}", 1_750_000_000.0 + n, "2025-06-15T15:06:40.000Z", RuleKind.ENTER, "Anchorage",
        4, AlertSeverity.HIGH, ObjectClass.VESSEL, n, 36.127, -5.4245, 1, f"vessel {n} entered Anchorage", "cam1",
    )  # fmt: skip


def unit_endpoint(pki_dir: Path, address: BrokerAddress, unit: int) -> Endpoint:
    creds = pki.client_credentials(pki_dir, ids.unit(SITE, unit))
    return Endpoint(address.host, address.port, creds.ca, creds.cert, creds.key)


class Heard:
    """Everything a receiver hands on, with bounded waits."""

    def __init__(self) -> None:
        self.alerts: list[tuple[int, Alert]] = []
        self.evidence: list[tuple[int, int]] = []
        self.problems: list[str] = []
        self.statuses: list[str] = []
        self._changed = threading.Condition()
        self.handlers = Handlers(
            alert=lambda u, a: self._add(self.alerts, (u, a)),
            evidence=lambda u, r, _j: self._add(self.evidence, (u, r.seq)),
            problem=lambda line: self._add(self.problems, line),
            status=lambda v: self._add(self.statuses, f"{v.name}:{v.state}"),
        )

    def _add(self, into: list, item) -> None:
        with self._changed:
            into.append(item)
            self._changed.notify_all()

    def wait(self, done, within_s: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(done, timeout=within_s)


@pytest.fixture
def receiver(broker, pki_dir, tmp_path, request):
    made: list[Receiver] = []

    def make(heard: Heard, evidence_dir: Path | None = None, **kwargs) -> Receiver:
        endpoint = station_endpoint(pki_dir, SITE, broker.address.host, broker.address.port)
        r = Receiver(endpoint, SITE, client_id=f"station-{request.node.name}-{time.monotonic_ns()}",
                     evidence_dir=evidence_dir, handlers=heard.handlers, **kwargs)  # fmt: skip
        made.append(r.start())
        assert r.wait_connected(WAIT_S), f"receiver not connected: {heard.problems}"
        time.sleep(0.2)  # the SUBACK
        return r

    yield make
    for r in made:
        r.close()


def test_alerts_and_evidence_arrive_once_and_the_copy_is_the_same_chain(broker, pki_dir, receiver, tmp_path):
    heard = Heard()
    station = receiver(heard, evidence_dir=tmp_path / "ground")
    onboard = tmp_path / "onboard"
    with (
        EvidenceLog.open(onboard) as log,
        Outbox(tmp_path / "outbox") as box,
        Publisher(unit_endpoint(pki_dir, broker.address, 1), SITE, 1, box) as unit,
    ):
        for n in range(1, 6):
            alert = make_alert(n)
            unit.put_alert(alert)
            jpeg = b"\xff\xd8" + bytes([n]) * 100 + b"\xff\xd9" if n % 2 else None
            record = log.append("alert", {"alert": alert.to_json_dict()}, snapshot_jpeg=jpeg)
            unit.put_evidence(record, jpeg, mark=None)
        head = (log.last_seq, log.last_sha256)
        assert heard.wait(lambda: len(heard.alerts) == 5 and len(heard.evidence) == 5), (heard.alerts, heard.evidence)
        unit.put_alert(make_alert(1))  # a repeat, as QoS 1 may deliver after a lost PUBACK
        unit.put_evidence(record, jpeg, mark=None)
        assert unit.wait_drained(WAIT_S)
    time.sleep(0.3)
    assert [a.alert_id for _, a in heard.alerts] == [make_alert(n).alert_id for n in range(1, 6)]
    assert [s for _, s in heard.evidence] == [1, 2, 3, 4, 5]
    assert station.counters.repeats == 2
    copy = verify(tmp_path / "ground" / "unit-1")
    assert copy.ok and copy.records == 5 and copy.snapshots_verified == 3
    assert (tmp_path / "ground" / "unit-1" / "evidence.jsonl").read_bytes() == (onboard / "evidence.jsonl").read_bytes()
    assert station.units[1].evidence_copied == head


def test_malformed_and_forged_messages_are_counted_dropped_and_said_once(broker, pki_dir, receiver, peer):
    heard = Heard()
    station = receiver(heard)
    unit2 = peer("unit-algeciras-2")
    unit2.publish(unit_topic(SITE, 2, "alerts"), b"{not json")
    unit2.publish(unit_topic(SITE, 2, "alerts"), b"{not json either")
    # Its own topic, but a payload that says it comes from unit 1: the decoder refuses it.
    forged = payloads.alert_payload(SITE, 1, make_alert(7))
    unit2.publish(unit_topic(SITE, 2, "alerts"), forged)
    # Unit 1's topic: the broker drops it (its ACL), so it never arrives at all.
    unit2.publish(unit_topic(SITE, 1, "alerts"), forged)
    unit2.publish(unit_topic(SITE, 2, "alerts"), payloads.alert_payload(SITE, 2, make_alert(8, unit=2)))
    assert heard.wait(lambda: len(heard.alerts) == 1)
    time.sleep(0.3)
    assert [(u, a.alert_id) for u, a in heard.alerts] == [(2, make_alert(8, unit=2).alert_id)]
    assert station.counters.malformed == 3
    malformed = [p for p in heard.problems if "malformed" in p]
    assert len(malformed) == 1 and unit_topic(SITE, 2, "alerts") in malformed[0], heard.problems
    assert station.is_connected()


def test_an_unreachable_broker_is_one_line_naming_it(pki_dir):
    heard = Heard()
    port = free_port()
    endpoint = station_endpoint(pki_dir, SITE, "127.0.0.1", port)
    with Receiver(endpoint, SITE, handlers=heard.handlers, reconnect_s=(1, 1)):
        assert heard.wait(lambda: heard.problems, 8.0)
        time.sleep(2.5)  # more attempts, no more lines
    assert heard.problems == [f"broker mqtts://127.0.0.1:{port}: cannot connect as station-{SITE}; retrying"]


def test_a_refused_certificate_is_one_line_naming_the_broker(broker, foreign_pki_dir):
    heard = Heard()
    endpoint = station_endpoint(foreign_pki_dir, SITE, broker.address.host, broker.address.port)
    with Receiver(endpoint, SITE, handlers=heard.handlers, reconnect_s=(1, 1)) as station:
        assert heard.wait(lambda: heard.problems, 8.0)
        time.sleep(2.5)
        assert not station.is_connected()
    assert len(heard.problems) == 1 and broker.address.url in heard.problems[0], heard.problems


def test_a_unit_that_goes_silent_or_offline_is_one_line(broker, pki_dir, receiver, peer, tmp_path):
    heard = Heard()
    receiver(heard, silent_after_s=1.0)
    unit2 = peer("unit-algeciras-2")
    unit2.publish(unit_topic(SITE, 2, "status"), payloads.status_payload(SITE, 2, "online", 10, 5.0, None, time.time()))
    assert heard.wait(lambda: any("silent" in p for p in heard.problems), 5.0), heard.problems
    assert "unit-2:silent" in heard.statuses
    unit2.publish(unit_topic(SITE, 2, "status"), payloads.status_payload(SITE, 2, "online", 11, 5.0, None, time.time()))
    unit2.publish(unit_topic(SITE, 2, "status"), payloads.status_payload(SITE, 2, "offline", 11, 0, None, time.time()))
    assert heard.wait(lambda: heard.statuses[-1] == "unit-2:offline"), heard.statuses
    assert any(p == f"unit-2 of {SITE}: offline" for p in heard.problems)
    silent = [p for p in heard.problems if "silent" in p]
    assert len(silent) == 1 and silent[0].startswith(f"unit-2 of {SITE}: silent for")
