"""Cursor on Target: what one event costs, how much a port's picture is, and how fast it reaches TAK.

Printed, each against a baseline measured in the same run:
- building a track's CoT XML event, and its TAK protobuf, against the JSON the bus sends of it;
- the feed deciding and building a busy port's picture (10 drones, 200 live tracks), as simulated
  minutes per wall second;
- the same picture through the sender over TCP to a TAK receiver that decodes every event, as
  events a second, against the feed alone;
- a new track's time from its event to the receiver's decoded copy, over UDP and TCP.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings

from missions.formats import BUNDLED_SITES, load_site
from sitl.synthetic.tak_soak import SoakWorld
from sitl.tak import TakReceiver
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.cot import events
from vision.cot.destinations import parse_destination
from vision.cot.feed import CotFeed
from vision.cot.sender import CotSender
from vision.detections import ObjectClass

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import takproto

N = 5000


def _per_event_us(make, n: int = N) -> float:
    started = time.perf_counter()
    for i in range(n):
        make(i)
    return (time.perf_counter() - started) / n * 1e6


def main() -> int:
    site = load_site(BUNDLED_SITES / "algeciras-port.geojson")
    track = TrackEvent(TrackEventKind.UPDATE, 7, "cam1", ObjectClass.VESSEL, 1.8e9, 36.12, -5.42, 2.5, 45.0, 3.2,
                       0.87, 1.8e9 - 30, 1.8e9)  # fmt: skip
    json_us = _per_event_us(lambda i: json.dumps(track.to_json_dict()).encode())
    xml_us = _per_event_us(lambda i: events.track_event("algeciras", track, 1.8e9 + i, 1.8e9 + i + 8))
    xml = events.track_event("algeciras", track, 1.8e9, 1.8e9 + 8).xml
    proto_us = _per_event_us(lambda i: takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))
    print(f"track event as bus JSON (baseline): {json_us:.1f} µs, {len(json.dumps(track.to_json_dict()))} bytes")
    print(f"  as CoT XML: {xml_us:.1f} µs ({xml_us / json_us:.1f}×), {len(xml)} bytes")
    print(f"  XML to TAK protobuf: {proto_us:.1f} µs more ({proto_us / json_us:.1f}×), "
          f"{len(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))} bytes")  # fmt: skip

    minutes = 3.0
    made: list[int] = [0]
    feed = CotFeed("algeciras", lambda m: made.__setitem__(0, made[0] + 1), zones=site.zones)
    started = time.perf_counter()
    SoakWorld(site.frame, seed=1).drive(feed, minutes)
    feed_s = time.perf_counter() - started
    feed_rate = made[0] / feed_s
    print(f"feed alone (baseline), 10 drones and 200 tracks: {made[0]} events for {minutes:g} simulated min in "
          f"{feed_s:.1f} s: {feed_rate:.0f} events/s, {minutes * 60 / feed_s:.1f}× real time")  # fmt: skip

    with TakReceiver.tcp() as tak:
        sender = CotSender([parse_destination(tak.url)])
        sender.start()
        count = [0]

        def send(message) -> None:
            count[0] += 1
            sender.send(message)

        feed = CotFeed("algeciras", send, zones=site.zones)
        started = time.perf_counter()
        SoakWorld(site.frame, seed=1).drive(feed, minutes)
        sender.close(flush_s=30.0)
        stats = next(iter(sender.stats().values()))
        tak.wait_for(stats.sent, 30.0)
        tcp_s = time.perf_counter() - started
        arrived = len(tak.received)
    tcp_rate = arrived / tcp_s
    print(f"  through the sender over TCP to a decoding receiver: {arrived}/{count[0]} arrived "
          f"({stats.coalesced} coalesced: a newer state came before their turn) in {tcp_s:.1f} s: "
          f"{tcp_rate:.0f} events/s, "
          f"{tcp_rate / feed_rate:.2f}× the feed alone")  # fmt: skip

    for scheme in ("udp", "tcp"):
        receiver = TakReceiver.udp() if scheme == "udp" else TakReceiver.tcp()
        with receiver as tak:
            sender = CotSender([parse_destination(tak.url)])
            sender.start()
            feed = CotFeed("algeciras", sender.send)
            for i in range(200):
                now = time.time()
                event = TrackEvent(TrackEventKind.NEW, i, "cam1", ObjectClass.VESSEL, now, 36.12, -5.42, 2.0, None,
                                   None, 0.9, now, now)  # fmt: skip
                feed.track(event, now)  # the event's time is when it was made: arrival − time is the latency
                time.sleep(0.005)
            tak.wait_for(200, 5.0)
            sender.close()
            latencies_ms = [1000.0 * (r.arrival_s - _event_time(r.event)) for r in tak.received]
        latencies_ms.sort()
        p95 = latencies_ms[int(0.95 * (len(latencies_ms) - 1))]
        print(f"new track to the receiver over {scheme.upper()}: p50 {statistics.median(latencies_ms):.2f} ms, "
              f"p95 {p95:.2f} ms ({len(latencies_ms)} tracks; goal: within 1 s)")  # fmt: skip
    return 0


def _event_time(event) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event.get("time").replace("Z", "+00:00")).timestamp()
