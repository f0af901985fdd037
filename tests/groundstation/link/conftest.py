"""A PKI folder, a real mosquitto on loopback, and paho-mqtt clients that wait a bounded time."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import Broker, BrokerAddress, find_mosquitto
from missions.errors import UserError

WAIT_S = 5.0
ISSUED = ("station-algeciras", "unit-algeciras-1", "unit-algeciras-2", "hq", "station-tarifa", "unit-tarifa-1")


class Peer:
    """One MQTT v5 client over TLS, its network loop on paho's thread, every wait bounded."""

    def __init__(self, address: BrokerAddress, context: ssl.SSLContext, client_id: str) -> None:
        self.address = address
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=False
        )
        self.client.tls_set_context(context)
        self.messages: list[tuple[str, bytes]] = []
        self.failure: str | None = None
        self._changed = threading.Condition()
        self._connected: bool | None = None
        self._acks: dict[int, list[mqtt.ReasonCode]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def connect(self, within_s: float = WAIT_S) -> bool:
        """Whether the broker accepted us (a CONNACK with success) within ``within_s``."""
        try:
            self.client.connect(self.address.host, self.address.port, keepalive=10)
        except (OSError, ssl.SSLError) as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            return False
        self.client.loop_start()
        self._wait(lambda: self._connected is not None, within_s)
        return bool(self._connected)

    def subscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        """Subscribe and wait for the SUBACK: its reason codes (the broker may still filter by ACL)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert self._wait(lambda: mid in self._acks, WAIT_S), f"no SUBACK for {topic} within {WAIT_S} s"
        return self._acks[mid]

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published(), f"{topic}: no PUBACK within {WAIT_S} s"

    def wait_for(self, topic: str, within_s: float = WAIT_S) -> bool:
        return self._wait(lambda: any(t == topic for t, _ in self.messages), within_s)

    def received(self, topic_prefix: str) -> list[tuple[str, bytes]]:
        with self._changed:
            return [(t, p) for t, p in self.messages if t.startswith(topic_prefix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _wait(self, done: Callable[[], bool], within_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(done, timeout=within_s)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._changed:
            self._connected = not reason_code.is_failure
            if reason_code.is_failure:
                self.failure = f"CONNACK {reason_code}"
            self._changed.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._changed:
            if self._connected is None:
                self._connected = False
                self.failure = f"disconnected before CONNACK: {reason_code}"
            self._changed.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._changed:
            self._acks[mid] = list(reason_codes)
            self._changed.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        with self._changed:
            self.messages.append((message.topic, message.payload))
            self._changed.notify_all()


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


@pytest.fixture(scope="session")
def mosquitto() -> Path:
    try:
        return find_mosquitto()
    except UserError as exc:
        pytest.fail(f"{exc}: these tests run a real broker", pytrace=False)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    pki.init(folder)
    for name in ISSUED:
        pki.issue(folder, ids.parse(name))
    return folder


@pytest.fixture(scope="module")
def foreign_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another agency's CA, with a certificate bearing one of our identities."""
    folder = tmp_path_factory.mktemp("foreign-pki")
    pki.init(folder)
    pki.issue(folder, ids.station("algeciras"))
    return folder


@pytest.fixture(scope="module")
def broker(mosquitto: Path, pki_dir: Path) -> Iterator[Broker]:
    with Broker(pki_dir) as running:
        yield running


@pytest.fixture
def peer(broker: Broker, pki_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Peer]]:
    """``peer("unit-algeciras-1")`` connected with its certificate; ``peer(None)`` with none, unconnected."""
    made: list[Peer] = []

    def make(name: str | None, context: ssl.SSLContext | None = None, connect: bool = True) -> Peer:
        if context is None:
            if name is None:
                context = client_context(pki_dir / "ca.crt")
            else:
                creds = pki.client_credentials(pki_dir, ids.parse(name))
                context = client_context(creds.ca, creds.cert, creds.key)
        client_id = f"{name or 'anonymous'}-{request.node.name}-{len(made)}-{time.monotonic_ns()}"
        p = Peer(broker.address, context, client_id)
        made.append(p)
        if connect:
            assert p.connect(), f"{name}: not let in: {p.failure}"
        return p

    yield make
    for p in made:
        p.close()
