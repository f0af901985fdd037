"""A unit's MQTT client: alerts, evidence and track news from the outbox at QoS 1, the rest live, status retained.

paho-mqtt 2.x, MQTT v5, TLS with the unit's certificate. The client id is the unit's identity
(``unit-<site>-<n>``) and the session outlives the connection (clean start off, a session
expiry), so the broker keeps what it owes a unit across link outages and, with persistence
on, across its own restart. paho's network thread reconnects with backoff.

Nothing lost: a message leaves the outbox only when the broker's PUBACK for it arrives. The
drain thread hands paho at most ``window`` unacknowledged entries, oldest first; paho keeps
them across reconnects and resends them in order (DUP set), and after a process restart the
outbox itself still holds them. So a message may arrive twice (its PUBACK lost with the
link) but never out of order and never not at all: a receiver drops repeats by ``alert_id``
or evidence ``seq``.

PUBACKs are paho callbacks on its network thread, run while paho holds its own lock, so they
only go on a queue; the drain thread, the one that knows which entry each mid stands for,
takes them from there.

Tracks go two ways: a track's ``new`` and ``end`` through the outbox like alerts (a station
must not keep a vessel on its map forever, nor miss one), its ``update`` live at QoS 0 like
detections (the next one, a second later, supersedes it). So after an outage a track's
updates may reach a station before its ``new`` (still in the outbox's backlog): a reader
orders a track's events by ``time_s``, not by arrival.

The retained status carries the evidence log's head as far as it is queued in the outbox
(``evidence_head``, told by whoever queues the records, `vision.bus.sink.PublishToBus`). A
status is not queued behind those records, so it may arrive first: a station compares its
copy with the head once it has received record ``evidence_seq``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vision.alerts import Alert
from vision.bus import payloads
from vision.bus.outbox import Outbox
from vision.bus.topics import unit_topic
from vision.bus.tracks import TrackEvent
from vision.camera import CameraPose
from vision.detections import Detections
from vision.evidence import ZERO_SHA256, EvidenceRecord

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600  # an outage of a whole patrol still finds its session on the broker
_WAKE = object()


@dataclass(frozen=True)
class Endpoint:
    """Where the broker is and what this unit shows it: the CA to trust, its certificate and key."""

    host: str
    port: int
    ca: Path
    cert: Path
    key: Path


class Publisher:
    """Unit ``unit`` of ``site`` on the bus; ``start`` connects, ``close`` says goodbye (offline)."""

    def __init__(
        self,
        endpoint: Endpoint,
        site: str,
        unit: int,
        outbox: Outbox,
        *,
        window: int = 32,
        keepalive_s: int = 10,
        status_every_s: float = 5.0,
        reconnect_s: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.endpoint, self.site, self.unit, self.outbox = endpoint, site, unit, outbox
        self.client_id = f"unit-{site}-{unit}"
        self._window, self._keepalive_s, self._status_every_s = window, keepalive_s, status_every_s
        self._acks: queue.Queue[object] = queue.Queue()
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox id; the drain thread's alone
        self._sent_upto = 0  # the newest outbox id handed to paho (it resends those itself)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self._frame_times: deque[float] = deque(maxlen=50)
        self.last_message_s: float | None = None
        self.acked = 0
        self.refused = 0  # PUBACKs with a failure reason: the broker will never take these
        self.detections_dropped = 0
        self.track_updates_dropped = 0
        # The newest evidence record queued in the outbox; a tuple, so that the status threads
        # read a seq and sha256 that belong together.
        self.evidence_head: tuple[int, str] = (0, ZERO_SHA256)
        self.client = self._make_client(reconnect_s)

    @property
    def broker(self) -> str:
        return f"mqtts://{self.endpoint.host}:{self.endpoint.port}"

    def topic(self, channel: str) -> str:
        return unit_topic(self.site, self.unit, channel)

    def is_connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------ what the pipeline calls

    def put_alert(self, alert: Alert) -> int:
        entry = self.outbox.put(self.topic("alerts"), payloads.alert_payload(self.site, self.unit, alert), qos=1)
        self._acks.put(_WAKE)
        return entry

    def put_evidence(self, record: EvidenceRecord, snapshot_jpeg: bytes | None, mark: tuple[str, int] | None) -> int:
        payload = payloads.evidence_payload(self.site, self.unit, record, snapshot_jpeg)
        entry = self.outbox.put(self.topic("evidence"), payload, qos=1, mark=mark)
        self._acks.put(_WAKE)
        return entry

    def put_track(self, event: TrackEvent) -> int:
        """A track's ``new`` or ``end``, queued as alerts are."""
        entry = self.outbox.put(self.topic("tracks"), payloads.tracks_payload(self.site, self.unit, event), qos=1)
        self._acks.put(_WAKE)
        return entry

    def publish_detections(self, detections: Detections, pose: CameraPose | None = None) -> None:
        """QoS 0 and only while connected: a frame's detections are stale by the next frame."""
        payload = lambda: payloads.detections_payload(self.site, self.unit, detections, pose)  # noqa: E731
        if not self._publish_live("detections", payload):
            self.detections_dropped += 1

    def publish_track(self, event: TrackEvent) -> None:
        """A track's ``update``: QoS 0 and only while connected, as detections."""
        if not self._publish_live("tracks", lambda: payloads.tracks_payload(self.site, self.unit, event)):
            self.track_updates_dropped += 1

    def _publish_live(self, channel: str, payload: Callable[[], bytes]) -> bool:
        if not self.is_connected():
            return False  # not even encoded: an outage must not cost the pipeline time
        if self.client.publish(self.topic(channel), payload(), qos=0).rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.last_message_s = time.time()
        return True

    def count_frame(self) -> None:
        self.frames += 1
        self._frame_times.append(time.monotonic())

    @property
    def fps(self) -> float:
        times = self._frame_times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    # ------------------------------------------------------------ life cycle

    def start(self) -> Publisher:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # connect_async: an unreachable broker at start is one more outage, retried with backoff.
        self.client.connect_async(
            self.endpoint.host, self.endpoint.port, keepalive=self._keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()
        self._thread = threading.Thread(target=self._drain, name=f"bus-{self.client_id}", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, within_s: float) -> bool:
        return self._connected.wait(within_s)

    def wait_drained(self, within_s: float) -> bool:
        """Whether the outbox emptied (every entry acked by the broker) within ``within_s``."""
        deadline = time.monotonic() + within_s
        while len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not len(self.outbox)

    def close(self, goodbye_s: float = 2.0) -> None:
        """Stop sending; what is not acked stays in the outbox for the next start."""
        self._stop.set()
        self._acks.put(_WAKE)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.is_connected():
            info = self.client.publish(self.topic("status"), self._status(payloads.OFFLINE), qos=1, retain=True)
            info.wait_for_publish(timeout=goodbye_s)
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ paho's side

    def _make_client(self, reconnect_s: tuple[float, float]) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        client.tls_set(str(self.endpoint.ca), str(self.endpoint.cert), str(self.endpoint.key))
        # The broker says it for us when the link dies without a DISCONNECT; retained, so a
        # station that subscribes later still learns the unit is gone.
        # Composed now, it cannot know the evidence head when it is said: it says none.
        will = self._status(payloads.OFFLINE, with_head=False)
        client.will_set(self.topic("status"), will, qos=1, retain=True)
        client.max_inflight_messages_set(self._window)
        client.reconnect_delay_set(min_delay=max(1, round(reconnect_s[0])), max_delay=round(reconnect_s[1]))
        client.on_connect = self._on_connect
        client.on_socket_open = _no_delay
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _status(self, state: str, *, with_head: bool = True) -> bytes:
        head = self.evidence_head if with_head else None
        return payloads.status_payload(
            self.site, self.unit, state, self.frames, self.fps, self.last_message_s, time.time(), head
        )

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s: broker %s refused the connection: %s", self.client_id, self.broker, reason_code)
            return
        log.info("%s: connected to %s (session kept: %s)", self.client_id, self.broker, flags.session_present)
        self._connected.set()
        client.publish(self.topic("status"), self._status(payloads.ONLINE), qos=1, retain=True)
        self._acks.put(_WAKE)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("%s: lost broker %s (%s); reconnecting", self.client_id, self.broker, reason_code)
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put((mid, reason_code))

    # ------------------------------------------------------------ the drain thread

    def _drain(self) -> None:
        next_status = time.monotonic() + self._status_every_s
        while not self._stop.is_set():
            try:
                item = self._acks.get(timeout=0.1)
            except queue.Empty:
                item = _WAKE
            if item is not _WAKE:
                self._acked(*item)  # type: ignore[misc]
            if self.is_connected():
                self._hand_over()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self._status_every_s
                    self.client.publish(self.topic("status"), self._status(payloads.ONLINE), qos=1, retain=True)

    def _hand_over(self) -> None:
        room = self._window - len(self._in_flight)
        if room <= 0:
            return
        for entry in self.outbox.peek(room, after_id=self._sent_upto):
            # Handed over even if the link just dropped: paho queues it and sends it, in order,
            # on reconnect.
            info = self.client.publish(entry.topic, entry.payload, qos=entry.qos)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("%s: paho refused %s: %s", self.client_id, entry.topic, mqtt.error_string(info.rc))
                return
            self._in_flight[info.mid] = entry.id
            self._sent_upto = entry.id

    def _acked(self, mid: int, reason_code: mqtt.ReasonCode) -> None:
        entry = self._in_flight.pop(mid, None)
        if entry is None:
            return  # a status or a detections message: not from the outbox
        if reason_code.is_failure:
            # Resending would be refused again and hold up everything behind it.
            self.refused += 1
            log.error("%s: broker %s refused outbox entry %d: %s", self.client_id, self.broker, entry, reason_code)
        else:
            self.acked += 1
        self.outbox.ack(entry)
        self.last_message_s = time.time()


def _no_delay(client, userdata, sock) -> None:
    """Each message on the wire at once: Nagle's algorithm would hold one back until the last is acked."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
