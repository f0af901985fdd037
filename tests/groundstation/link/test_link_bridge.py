"""Beyond one station: two ports' brokers bridged to headquarters' broker, three real mosquittos.

One agency PKI folder, one CA: the site brokers of ``algeciras`` and ``tarifa`` each forward
their site's alerts, tracks and status to headquarters with the certificate of
``bridge-<site>``. Units publish on their own site's broker with plain paho clients; ``hq``
listens on headquarters' broker.

Every wait is bounded. Where a test proves that something does *not* arrive, a message sent
after it on the same path does arrive, so the wait was long enough; "exactly once" is checked
the same way, after a later message of the same bridge has arrived.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from groundstation.commands.cli import main
from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.bridge import BridgeTarget, bridge_section
from groundstation.link.broker import Broker, BrokerAddress, free_port
from missions.errors import UserError
from tests.groundstation.link.conftest import Peer, client_context

ROOT = "borderwatch/v1"
SITES = ("algeciras", "tarifa")
# A site broker tries headquarters again after 1 s, backing off to at most 30 s between tries.
RECONNECT_WAIT_S = 40.0
# Everything that crosses two brokers and a bridge.
BRIDGED_WAIT_S = 10.0


class ResumingPeer(Peer):
    """A Peer whose session outlives its connection (clean start off, kept an hour), as a station's does."""

    def __init__(self, address: BrokerAddress, context: ssl.SSLContext, client_id: str) -> None:
        super().__init__(address, context, client_id)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect = functools.partial(self.client.connect, clean_start=False, properties=properties)


@pytest.fixture(scope="module")
def agency(pki_dir: Path) -> Path:
    """conftest's PKI folder (stations, units and hq of both sites) with each site broker's bridge."""
    for site in SITES:
        pki.issue(pki_dir, ids.bridge(site))
    return pki_dir


# Fresh brokers for each test: what one test leaves retained at headquarters is not the next one's.
@pytest.fixture
def hq_broker(mosquitto: Path, agency: Path) -> Iterator[Broker]:
    with Broker(agency) as running:
        yield running


@pytest.fixture
def site_brokers(hq_broker: Broker, agency: Path) -> Iterator[dict[str, Broker]]:
    with ExitStack() as stack:
        yield {
            site: stack.enter_context(Broker(agency, bridge_to=BridgeTarget(site, hq_broker.address))) for site in SITES
        }


@pytest.fixture
def connect(agency: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Peer]]:
    """``connect(broker, "unit-tarifa-1")``: a peer with that identity's certificate, connected."""
    made: list[Peer] = []

    def make(broker: Broker, name: str, client_id: str | None = None, resume: bool = False) -> Peer:
        creds = pki.client_credentials(agency, ids.parse(name))
        kind = ResumingPeer if resume else Peer
        p = kind(
            broker.address, client_context(creds.ca, creds.cert, creds.key), client_id or _client_id(request, made)
        )
        made.append(p)
        assert p.connect(), f"{name}: not let in: {p.failure}"
        return p

    yield make
    for p in made:
        p.close()


def _client_id(request: pytest.FixtureRequest, made: list[Peer]) -> str:
    return f"{request.node.name}-{len(made)}"


def publish_retained(peer: Peer, topic: str, payload: bytes) -> None:
    info = peer.client.publish(topic, payload, qos=1, retain=True)
    info.wait_for_publish(timeout=BRIDGED_WAIT_S)
    assert info.is_published(), f"{topic}: no PUBACK"


def test_hq_hears_both_sites_alerts_tracks_and_status_each_once_and_no_detections_or_evidence(
    hq_broker, site_brokers, connect
):
    hq = connect(hq_broker, "hq")
    hq.subscribe(f"{ROOT}/#")

    for site in SITES:
        unit = connect(site_brokers[site], f"unit-{site}-1")
        prefix = f"{ROOT}/{site}/unit-1"
        unit.client.publish(f"{prefix}/detections", f"{site} detections".encode(), qos=0)
        unit.publish(f"{prefix}/evidence", f"{site} evidence".encode())
        unit.publish(f"{prefix}/alerts", f"{site} alert 1".encode())
        unit.publish(f"{prefix}/tracks", f"{site} track".encode())
        unit.publish(f"{prefix}/alerts", f"{site} alert 2".encode())
        publish_retained(unit, f"{prefix}/status", f"{site} online".encode())

    for site in SITES:
        prefix = f"{ROOT}/{site}/unit-1"
        assert hq.wait_for(f"{prefix}/status", BRIDGED_WAIT_S), f"nothing of {site} reached headquarters"
        assert hq.received(f"{ROOT}/{site}/") == [
            (f"{prefix}/alerts", f"{site} alert 1".encode()),
            (f"{prefix}/tracks", f"{site} track".encode()),
            (f"{prefix}/alerts", f"{site} alert 2".encode()),
            (f"{prefix}/status", f"{site} online".encode()),
        ]


def test_a_units_status_stays_retained_at_hq(hq_broker, site_brokers, connect):
    unit = connect(site_brokers["algeciras"], "unit-algeciras-2")
    status = f"{ROOT}/algeciras/unit-2/status"
    watcher = connect(hq_broker, "hq")
    watcher.subscribe(status)
    publish_retained(unit, status, b"algeciras unit 2 online")
    assert watcher.wait_for(status, BRIDGED_WAIT_S)

    latecomer = connect(hq_broker, "hq")
    latecomer.subscribe(status)

    assert latecomer.wait_for(status), "headquarters did not keep the unit's status retained"
    assert latecomer.received(status) == [(status, b"algeciras unit 2 online")]


def test_a_bridge_certificate_writes_only_its_own_sites_channels_at_hq_and_reads_nothing(
    hq_broker, site_brokers, connect
):
    hq = connect(hq_broker, "hq")
    hq.subscribe(f"{ROOT}/#")
    # Not the client id of algeciras' real bridge, which this would take over.
    impostor = connect(hq_broker, "bridge-algeciras")
    impostor.subscribe(f"{ROOT}/#")

    impostor.publish(f"{ROOT}/tarifa/unit-1/alerts", b"tarifa's alert, forged by algeciras' bridge")
    impostor.publish(f"{ROOT}/tarifa/unit-1/status", b"tarifa's status, forged by algeciras' bridge")
    impostor.publish(f"{ROOT}/algeciras/unit-1/detections", b"not a bridged channel")
    impostor.publish(f"{ROOT}/algeciras/unit-1/evidence", b"not a bridged channel")
    impostor.publish(f"{ROOT}/algeciras/unit-1/commands/land", b"a command")
    impostor.publish(f"{ROOT}/algeciras/unit-1/alerts", b"control")

    assert hq.wait_for(f"{ROOT}/algeciras/unit-1/alerts")
    assert hq.received(ROOT) == [(f"{ROOT}/algeciras/unit-1/alerts", b"control")]
    assert impostor.messages == []


def test_a_site_broker_forwards_its_own_site_only(hq_broker, site_brokers, connect):
    hq = connect(hq_broker, "hq")
    hq.subscribe(f"{ROOT}/#")
    # One agency CA: tarifa's unit is let in at algeciras' broker and writes its own topics there.
    stray = connect(site_brokers["algeciras"], "unit-tarifa-1")
    local = connect(site_brokers["algeciras"], "unit-algeciras-2")

    stray.publish(f"{ROOT}/tarifa/unit-1/alerts", b"tarifa's alert at algeciras")
    local.publish(f"{ROOT}/algeciras/unit-2/alerts", b"control")

    assert hq.wait_for(f"{ROOT}/algeciras/unit-2/alerts", BRIDGED_WAIT_S)
    assert hq.received(ROOT) == [(f"{ROOT}/algeciras/unit-2/alerts", b"control")]


def test_the_bridge_queues_while_hq_is_down_and_delivers_in_order_when_it_is_back(mosquitto, agency, tmp_path, connect):
    port = free_port()
    headquarters = Broker(agency, state_dir=tmp_path / "hq", port=port)
    site = Broker(
        agency, state_dir=tmp_path / "algeciras", bridge_to=BridgeTarget("algeciras", BrokerAddress("127.0.0.1", port))
    )
    prefix = f"{ROOT}/algeciras/unit-1"
    with site:
        unit = connect(site, "unit-algeciras-1")
        with headquarters:
            hq = connect(headquarters, "hq", client_id="hq-desk", resume=True)
            hq.subscribe(f"{ROOT}/#")
            unit.publish(f"{prefix}/alerts", b"before")
            assert hq.wait_for(f"{prefix}/alerts", BRIDGED_WAIT_S), "the bridge never came up"
            hq.close()

        for n in (1, 2, 3):
            unit.publish(f"{prefix}/alerts", f"during {n}".encode())
        unit.publish(f"{prefix}/status", b"during")

        with headquarters:
            hq = connect(headquarters, "hq", client_id="hq-desk", resume=True)
            assert hq.wait_for(f"{prefix}/status", RECONNECT_WAIT_S), (
                f"nothing queued at algeciras reached headquarters within {RECONNECT_WAIT_S:g} s after its restart"
            )
            unit.publish(f"{prefix}/tracks", b"after")
            assert hq.wait_for(f"{prefix}/tracks", BRIDGED_WAIT_S)

    assert hq.received(prefix) == [
        (f"{prefix}/alerts", b"during 1"),
        (f"{prefix}/alerts", b"during 2"),
        (f"{prefix}/alerts", b"during 3"),
        (f"{prefix}/status", b"during"),
        (f"{prefix}/tracks", b"after"),
    ]


def test_the_bridge_section_names_the_site_hq_and_the_bridge_certificate(agency):
    section = bridge_section(agency, BridgeTarget("tarifa", BrokerAddress("hq.example", 8883)))

    creds = pki.client_credentials(agency.resolve(), ids.bridge("tarifa"))
    assert "connection hq-tarifa\naddress hq.example:8883\nremote_clientid bridge-tarifa\n" in section
    assert f"bridge_certfile {creds.cert}\nbridge_keyfile {creds.key}\n" in section
    assert [line for line in section.splitlines() if line.startswith("topic ")] == [
        f"topic {ROOT}/tarifa/+/{channel}/# out 1" for channel in ("alerts", "tracks", "status")
    ]


def test_a_site_without_a_bridge_certificate_is_told_how_to_issue_it(agency):
    with pytest.raises(
        UserError, match=r"bridge-tarifa-coast\.crt: missing; run `borderwatch pki issue .* bridge-tarifa-coast`"
    ):
        bridge_section(agency, BridgeTarget("tarifa-coast", BrokerAddress("hq.example", 8883)))


def test_pki_init_with_bridge_issues_the_sites_bridge_certificate(tmp_path, capsys):
    folder = tmp_path / "pki"

    assert main(["pki", "init", str(folder), "--site", "tarifa", "--bridge"]) == 0

    assert pki.issued(folder) == ["bridge-tarifa", "station-tarifa"]
    assert main(["pki", "init", str(tmp_path / "other"), "--bridge"]) == 2
    assert (
        capsys.readouterr().err == "borderwatch: error: --bridge needs --site: a bridge forwards one site's messages\n"
    )
