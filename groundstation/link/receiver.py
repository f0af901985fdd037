"""The station's end of the bus: every unit of its site, decoded, deduplicated, and handed on.

paho-mqtt 2.x, MQTT v5, TLS with the station's certificate, one subscription to
``borderwatch/v1/<site>/#`` at QoS 1. The session outlives the connection (clean start off, a
session expiry), so what the units send while the station's own link is down waits on the
broker. paho's network thread reconnects with backoff and runs the callbacks below; whoever
is handed a message (the run folder, the app) gets it on that thread.

What the station sees is what a user notices:
- a message that does not decode is counted and dropped, with one line naming its topic;
- QoS 1 repeats (a PUBACK lost with a link) are dropped by ``alert_id`` and evidence ``seq``;
- each unit's evidence is appended, record by record, to a copy of its log that is the same
  hash chain, and checked against the head the unit's status reports (:meth:`evidence_check`);
- a unit that goes offline, or stops being heard while it says it is online, is one line;
- a broker that cannot be reached or refuses the station's certificate is one line, retried.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vision.alerts import Alert
from vision.bus import payloads
from vision.bus.publisher import SESSION_EXPIRY_S, Endpoint
from vision.bus.topics import ROOT
from vision.evidence import ZERO_SHA256, EvidenceLog, EvidenceRecord

log = logging.getLogger(__name__)

SILENT_AFTER_S = 15.0  # a unit that says it is online and is not heard for this long is silent


@dataclass
class UnitView:
    """What the station knows of one unit: its last status and how much it has heard from it."""

    unit: int
    state: str = "unknown"  # online, offline, silent, or unknown before its first status
    frames: int = 0
    fps: float = 0.0
    last_heard_s: float | None = None  # time.time() of its last message of any kind
    evidence_head: tuple[int, str] = (0, ZERO_SHA256)  # the onboard log's newest record, as its status says
    evidence_copied: tuple[int, str] = (0, ZERO_SHA256)  # the newest record in the station's copy
    alerts: int = 0
    messages: int = 0

    @property
    def name(self) -> str:
        return f"unit-{self.unit}"


@dataclass(frozen=True)
class EvidenceCheck:
    """The station's copy of a unit's evidence against the head the unit reports."""

    unit: int
    copied: tuple[int, str]
    head: tuple[int, str]

    @property
    def same_chain(self) -> bool:
        return self.copied == self.head

    def __str__(self) -> str:
        seq, head_seq = self.copied[0], self.head[0]
        if self.same_chain:
            return f"unit-{self.unit}: the station's copy holds all {seq} record(s), ending at the onboard head"
        if seq < head_seq:
            return f"unit-{self.unit}: the station's copy holds {seq} of {head_seq} record(s), the rest not here yet"
        return (
            f"unit-{self.unit}: the station's copy (record {seq}) does not end at the onboard head "
            f"(record {head_seq}, {self.head[1][:12]}…)"
        )


@dataclass
class Handlers:
    """Who is told what; every callback runs on paho's network thread and must not block long."""

    alert: Callable[[int, Alert], None] | None = None
    evidence: Callable[[int, EvidenceRecord, bytes | None], None] | None = None
    detections: Callable[[int, dict], None] | None = None
    track: Callable[[int, object], None] | None = None
    status: Callable[[UnitView], None] | None = None
    problem: Callable[[str], None] | None = None


@dataclass
class Counters:
    received: int = 0
    malformed: int = 0
    repeats: int = 0  # QoS 1 repeats dropped
    evidence_refused: int = 0  # records that do not continue the unit's chain


class Receiver:
    """The station of ``site`` on the bus, from ``start`` to ``close``.

    ``evidence_dir``: where each unit's evidence copy goes (``<dir>/unit-<n>/``); None keeps none.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        site: str,
        *,
        client_id: str | None = None,
        evidence_dir: str | Path | None = None,
        handlers: Handlers | None = None,
        silent_after_s: float = SILENT_AFTER_S,
        keepalive_s: int = 10,
        reconnect_s: tuple[float, float] = (1.0, 10.0),
    ) -> None:
        self.endpoint, self.site = endpoint, site
        self.client_id = client_id or f"station-{site}"
        self.handlers = handlers or Handlers()
        self.counters = Counters()
        self.units: dict[int, UnitView] = {}
        self._evidence_dir = Path(evidence_dir) if evidence_dir is not None else None
        self._logs: dict[int, EvidenceLog] = {}
        self._alert_ids: set[str] = set()
        self._silent_after_s = silent_after_s
        self._keepalive_s = keepalive_s
        self._lock = threading.RLock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._said: set[str] = set()  # one line per kind of trouble until it clears
        self._watchdog: threading.Thread | None = None
        self.client = self._make_client(reconnect_s)

    @property
    def broker(self) -> str:
        return f"mqtts://{self.endpoint.host}:{self.endpoint.port}"

    @property
    def topic(self) -> str:
        return f"{ROOT}/{self.site}/#"

    # ------------------------------------------------------------ life cycle

    def start(self) -> Receiver:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.endpoint.host, self.endpoint.port, keepalive=self._keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()
        self._watchdog = threading.Thread(target=self._watch, name=f"bus-{self.client_id}-watch", daemon=True)
        self._watchdog.start()
        return self

    def wait_connected(self, within_s: float) -> bool:
        return self._connected.wait(within_s)

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        with self._lock:
            for evidence in self._logs.values():
                evidence.close()
            self._logs.clear()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ what the station asks

    def evidence_check(self, unit: int) -> EvidenceCheck:
        with self._lock:
            view = self.units.get(unit) or UnitView(unit)
            return EvidenceCheck(unit, view.evidence_copied, view.evidence_head)

    def unit_views(self) -> list[UnitView]:
        with self._lock:
            return [UnitView(**vars(v)) for _, v in sorted(self.units.items())]

    # ------------------------------------------------------------ paho's side

    def _make_client(self, reconnect_s: tuple[float, float]) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        client.tls_set(str(self.endpoint.ca), str(self.endpoint.cert), str(self.endpoint.key))
        client.reconnect_delay_set(min_delay=max(1, round(reconnect_s[0])), max_delay=round(reconnect_s[1]))
        client.on_connect = self._on_connect
        client.on_socket_open = _no_delay
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._problem("refused", f"broker {self.broker} refused {self.client_id}: {reason_code}")
            return
        self._cleared("refused", "unreachable", "lost")
        log.info("%s: connected to %s (session kept: %s)", self.client_id, self.broker, flags.session_present)
        client.subscribe(self.topic, qos=1)
        self._connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho says no more than that the attempt failed; the socket's error went to its logger.
        self._problem("unreachable", f"broker {self.broker}: cannot connect as {self.client_id}; retrying")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stop.is_set():
            self._problem("lost", f"broker {self.broker}: link lost ({reason_code}); reconnecting")

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            self._handle(message.topic, message.payload)
        except Exception as exc:  # a handler's own failure must not take the network thread down
            log.exception("%s: handling %s failed", self.client_id, message.topic)
            self._problem(f"handler:{message.topic}", f"{message.topic}: not handled ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------ one message

    def _handle(self, topic: str, data: bytes) -> None:
        if "/commands" in topic:
            return  # what this station (or another) sent to a unit
        self.counters.received += 1
        try:
            message = payloads.decode(topic, data)
        except ValueError as exc:
            self.counters.malformed += 1
            self._problem(f"malformed:{topic}", f"malformed message dropped: {exc}")
            return
        with self._lock:
            view = self.units.setdefault(message.unit, UnitView(message.unit))
            view.last_heard_s = time.time()
            view.messages += 1
            if view.state == "silent":
                view.state = "online"
                self._cleared(f"silent:{message.unit}")
        h = self.handlers
        if isinstance(message, payloads.AlertMessage):
            with self._lock:
                if message.alert.alert_id in self._alert_ids:
                    self.counters.repeats += 1
                    return
                self._alert_ids.add(message.alert.alert_id)
                view.alerts += 1
            if h.alert:
                h.alert(message.unit, message.alert)
        elif isinstance(message, payloads.EvidenceMessage):
            if self._copy_evidence(view, message) and h.evidence:
                h.evidence(message.unit, message.record, message.snapshot_jpeg)
        elif isinstance(message, payloads.StatusMessage):
            self._status(view, message)
        elif isinstance(message, payloads.DetectionsMessage):
            if h.detections:
                h.detections(message.unit, message.detections)
        elif h.track:
            h.track(message.unit, message)

    def _copy_evidence(self, view: UnitView, message: payloads.EvidenceMessage) -> bool:
        record = message.record
        with self._lock:
            if record.seq <= view.evidence_copied[0]:
                self.counters.repeats += 1
                return False
            try:
                if self._evidence_dir is not None:
                    self._log(view.unit).append_copy(record, message.snapshot_jpeg)
                elif record.seq != view.evidence_copied[0] + 1 or record.prev_sha256 != view.evidence_copied[1]:
                    raise ValueError(f"record {record.seq} does not follow record {view.evidence_copied[0]}")
            except (ValueError, OSError) as exc:
                self.counters.evidence_refused += 1
                self._problem(
                    f"chain:{view.unit}", f"{view.name}: evidence record {record.seq} not kept, the chain breaks: {exc}"
                )
                return False
            view.evidence_copied = (record.seq, record.sha256)
        return True

    def _log(self, unit: int) -> EvidenceLog:
        if unit not in self._logs:
            assert self._evidence_dir is not None
            evidence = EvidenceLog.open(self._evidence_dir / f"unit-{unit}")
            self._logs[unit] = evidence
            view = self.units[unit]
            view.evidence_copied = (evidence.last_seq, evidence.last_sha256)
        return self._logs[unit]

    def _status(self, view: UnitView, message: payloads.StatusMessage) -> None:
        with self._lock:
            was = view.state
            view.state, view.frames, view.fps = message.state, message.frames, message.fps
            head = getattr(message, "evidence_seq", None)
            if head is not None:
                view.evidence_head = (message.evidence_seq, message.evidence_sha256)
            if message.state == payloads.OFFLINE and was != payloads.OFFLINE:
                self._problem(f"offline:{view.unit}", f"{view.name} of {self.site}: offline")
            elif message.state == payloads.ONLINE:
                self._cleared(f"offline:{view.unit}")
            snapshot = UnitView(**vars(view))
        if self.handlers.status:
            self.handlers.status(snapshot)

    # ------------------------------------------------------------ trouble, said once

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.time()
            changed = []
            with self._lock:
                for view in self.units.values():
                    heard = view.last_heard_s
                    if view.state == payloads.ONLINE and heard is not None and now - heard > self._silent_after_s:
                        view.state = "silent"
                        changed.append(UnitView(**vars(view)))
                        self._problem(
                            f"silent:{view.unit}",
                            f"{view.name} of {self.site}: silent for {now - heard:.0f} s (it said it was online)",
                        )
            for snapshot in changed:
                if self.handlers.status:
                    self.handlers.status(snapshot)

    def _problem(self, key: str, line: str) -> None:
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        if self.handlers.problem:
            log.info("%s", line)  # the handler says it where the user looks
            self.handlers.problem(line)
        else:
            log.warning("%s", line)

    def _cleared(self, *keys: str) -> None:
        with self._lock:
            self._said.difference_update(keys)


def station_endpoint(pki_dir: str | Path, site: str, host: str, port: int) -> Endpoint:
    """The station of ``site``'s credentials in a PKI folder, for a broker at ``host:port``."""
    from groundstation.link import identity as ids
    from groundstation.link.pki import client_credentials

    creds = client_credentials(Path(pki_dir), ids.station(site))
    return Endpoint(host, port, creds.ca, creds.cert, creds.key)


def _no_delay(client, userdata, sock) -> None:
    """Each message on the wire at once: Nagle's algorithm would hold one back until the last is acked."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
