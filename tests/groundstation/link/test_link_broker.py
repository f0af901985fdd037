"""No one else let in: a real mosquitto on loopback, configured by borderwatch, and paho-mqtt clients.

Every wait is bounded (conftest.WAIT_S). Where a test proves that something does *not* arrive,
a control message sent after it on a path that is allowed does arrive first, so the wait was
long enough.
"""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

import pytest

from groundstation.link import broker as broker_module
from groundstation.link.broker import Broker, find_mosquitto
from missions.errors import UserError
from tests.groundstation.link.conftest import WAIT_S, client_context

ROOT = "borderwatch/v1"
ALGECIRAS = f"{ROOT}/algeciras"


def test_a_station_and_a_unit_with_certificates_connect_and_the_units_alert_reaches_the_station(peer):
    station = peer("station-algeciras")
    unit = peer("unit-algeciras-1")
    station.subscribe(f"{ALGECIRAS}/#")

    unit.publish(f"{ALGECIRAS}/unit-1/alerts", b'{"kind": "intrusion"}')

    assert station.wait_for(f"{ALGECIRAS}/unit-1/alerts")
    assert station.received(f"{ALGECIRAS}/unit-1/alerts") == [(f"{ALGECIRAS}/unit-1/alerts", b'{"kind": "intrusion"}')]


def test_a_client_without_a_certificate_is_refused(peer, pki_dir):
    anonymous = peer(None, connect=False)

    assert not anonymous.connect(), "the broker let in a client without a certificate"


def test_a_certificate_from_another_ca_is_refused_even_with_one_of_our_identities(peer, pki_dir, foreign_pki_dir):
    foreign = foreign_pki_dir / "clients"
    context = client_context(pki_dir / "ca.crt", foreign / "station-algeciras.crt", foreign / "station-algeciras.key")

    impostor = peer("station-algeciras", context=context, connect=False)

    assert not impostor.connect(), "the broker let in a certificate from another CA"


@pytest.mark.parametrize(
    ("who", "alert"),
    [("another CA's certificate", "unknown ca"), ("no certificate", "handshake failure")],
)
def test_the_refusal_is_the_tls_handshake_not_mqtt(broker, pki_dir, foreign_pki_dir, who, alert):
    # TLS 1.2 because in 1.3 the client's handshake ends before the server has judged its certificate.
    if who == "no certificate":
        context = client_context(pki_dir / "ca.crt")
    else:
        foreign = foreign_pki_dir / "clients"
        context = client_context(
            pki_dir / "ca.crt", foreign / "station-algeciras.crt", foreign / "station-algeciras.key"
        )
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    with (
        socket.create_connection((broker.address.host, broker.address.port), timeout=WAIT_S) as raw,
        pytest.raises(ssl.SSLError, match=alert),
    ):
        context.wrap_socket(raw, server_hostname="localhost").close()


def test_a_client_does_not_trust_a_broker_from_another_ca(peer, pki_dir, foreign_pki_dir):
    unit = pki_dir / "clients"
    context = client_context(foreign_pki_dir / "ca.crt", unit / "unit-algeciras-1.crt", unit / "unit-algeciras-1.key")

    fooled = peer("unit-algeciras-1", context=context, connect=False)

    assert not fooled.connect()
    assert "CERTIFICATE_VERIFY_FAILED" in (fooled.failure or "")


def test_a_unit_publishing_under_another_units_prefix_is_dropped_by_the_broker(peer):
    station = peer("station-algeciras")
    station.subscribe(f"{ALGECIRAS}/#")
    unit2 = peer("unit-algeciras-2")

    unit2.publish(f"{ALGECIRAS}/unit-1/alerts", b"forged by unit 2")
    unit2.publish(f"{ALGECIRAS}/unit-2/alerts", b"control")

    assert station.wait_for(f"{ALGECIRAS}/unit-2/alerts"), "the control message never came: the broker is not routing"
    assert station.received(f"{ALGECIRAS}/unit-1/") == []


def test_a_unit_writes_only_its_own_channels_and_commands_no_one_not_even_itself(peer):
    hq = peer("hq")
    hq.subscribe(f"{ROOT}/#")
    unit1 = peer("unit-algeciras-1")

    unit1.publish(f"{ROOT}/tarifa/unit-1/alerts", b"another site")
    unit1.publish(f"{ALGECIRAS}/unit-2/commands/land", b"a command")
    unit1.publish(f"{ALGECIRAS}/unit-1/commands/land", b"a command to itself")
    unit1.publish(f"{ALGECIRAS}/unit-1/anything-else", b"not one of its channels")
    unit1.publish(f"{ROOT}/algeciras", b"the site itself")
    unit1.publish(f"{ALGECIRAS}/unit-1/status", b"control")

    assert hq.wait_for(f"{ALGECIRAS}/unit-1/status")
    assert [topic for topic, _ in hq.received(ROOT)] == [f"{ALGECIRAS}/unit-1/status"]


def test_a_unit_reads_its_own_commands_and_nothing_of_another_unit(peer):
    station = peer("station-algeciras")
    station.subscribe(f"{ALGECIRAS}/#")
    unit1 = peer("unit-algeciras-1")
    unit1.subscribe(f"{ALGECIRAS}/unit-2/#")
    unit1.subscribe(f"{ROOT}/#")
    unit2 = peer("unit-algeciras-2")

    unit2.publish(f"{ALGECIRAS}/unit-2/alerts", b"unit 2's")
    assert station.wait_for(f"{ALGECIRAS}/unit-2/alerts")
    # Queued for unit 1 after anything of unit 2's the broker would have passed on.
    station.publish(f"{ALGECIRAS}/unit-1/commands/return", b"control")

    assert unit1.wait_for(f"{ALGECIRAS}/unit-1/commands/return")
    assert [topic for topic, _ in unit1.messages] == [f"{ALGECIRAS}/unit-1/commands/return"]


def test_a_station_reads_its_site_only_and_hq_reads_every_site(peer):
    hq = peer("hq")
    hq.subscribe(f"{ROOT}/#")
    algeciras = peer("station-algeciras")
    algeciras.subscribe(f"{ROOT}/#")
    tarifa = peer("station-tarifa")
    tarifa.subscribe(f"{ROOT}/#")

    peer("unit-tarifa-1").publish(f"{ROOT}/tarifa/unit-1/alerts", b"tarifa")
    peer("unit-algeciras-1").publish(f"{ALGECIRAS}/unit-1/alerts", b"algeciras")

    assert hq.wait_for(f"{ROOT}/tarifa/unit-1/alerts")
    assert hq.wait_for(f"{ALGECIRAS}/unit-1/alerts")
    assert tarifa.wait_for(f"{ROOT}/tarifa/unit-1/alerts")
    assert algeciras.wait_for(f"{ALGECIRAS}/unit-1/alerts")
    assert [t for t, _ in tarifa.messages] == [f"{ROOT}/tarifa/unit-1/alerts"]
    assert [t for t, _ in algeciras.messages] == [f"{ALGECIRAS}/unit-1/alerts"]


def test_hq_and_a_station_cannot_speak_for_a_unit(peer):
    station = peer("station-algeciras")
    station.subscribe(f"{ALGECIRAS}/#")
    hq = peer("hq")
    tarifa = peer("station-tarifa")

    hq.publish(f"{ALGECIRAS}/unit-1/alerts", b"from hq")
    tarifa.publish(f"{ALGECIRAS}/unit-1/commands/land", b"from the other site's station")
    station.publish(f"{ALGECIRAS}/unit-1/alerts", b"from the station")
    station.publish(f"{ALGECIRAS}/unit-1/commands/land", b"control")

    assert station.wait_for(f"{ALGECIRAS}/unit-1/commands/land")
    assert station.received(ALGECIRAS) == [(f"{ALGECIRAS}/unit-1/commands/land", b"control")]


def test_a_broker_that_cannot_start_names_its_port_and_what_mosquitto_said(mosquitto, pki_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(UserError, match=rf"port {port}.*(Address already in use|Error)"),
            Broker(pki_dir, port=port),
        ):
            pass


def test_the_broker_stops_on_exit_and_keeps_its_state_folder(mosquitto, pki_dir, tmp_path):
    with Broker(pki_dir, state_dir=tmp_path / "state") as running:
        address = running.address
    with pytest.raises(OSError):
        socket.create_connection((address.host, address.port), timeout=1).close()
    assert "running" in (tmp_path / "state" / "mosquitto.log").read_text()
    assert (tmp_path / "state" / "mosquitto.conf").is_file()


def test_without_mosquitto_the_error_says_to_run_the_setup(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(broker_module, "_MOSQUITTO_FALLBACKS", ())

    with pytest.raises(UserError, match="README's setup"):
        find_mosquitto()


def test_a_pki_folder_without_a_broker_certificate_is_named(mosquitto, tmp_path: Path):
    expected = re.escape(f"{tmp_path / 'ca.crt'}: missing; run `borderwatch pki init {tmp_path}` first")
    with pytest.raises(UserError, match=expected), Broker(tmp_path):
        pass
