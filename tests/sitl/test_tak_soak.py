"""Soak: ten drones and two hundred live tracks for thirty minutes of simulated time, over TCP to a TAK receiver.

Nothing may be dropped on TCP (every event the feed made arrives, in order, and none was
coalesced or expired on the way), and no marker may go stale while its track lives: for every
track, the events that arrived cover its whole life with no gap between one's stale time and
the next one's time.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from datetime import datetime

import pytest

from missions.formats import BUNDLED_SITES, load_site
from sitl.synthetic.tak_soak import SoakWorld
from sitl.tak import TakReceiver
from vision.cot.destinations import parse_destination
from vision.cot.feed import CotFeed
from vision.cot.model import CotMessage
from vision.cot.sender import CotSender

pytestmark = pytest.mark.slow

MINUTES = 30.0
DRAIN_S = 30.0


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_ten_drones_two_hundred_tracks_thirty_minutes_nothing_dropped_nothing_stale_while_alive():
    site = load_site(BUNDLED_SITES / "algeciras-port.geojson")
    made: list[str] = []
    with TakReceiver.tcp() as tak:
        sender = CotSender([parse_destination(tak.url)])
        sender.start()
        [url] = sender.stats()

        def send(message: CotMessage) -> None:
            made.append(message.uid)
            sender.send(message)

        def drain(_now: float) -> None:
            # Each simulated step waits for the sender, as a real second would: what coalesces while
            # a link is slow is a choice for outages, not what this soak measures.
            deadline = time.monotonic() + DRAIN_S
            while sender.stats()[url].pending and time.monotonic() < deadline:
                time.sleep(0.0005)

        feed = CotFeed("algeciras", send, zones=site.zones)
        started = time.monotonic()
        truth = SoakWorld(site.frame, drones=10, tracks=200, seed=7).drive(feed, MINUTES, after_step=drain)
        feed.close(truth.end_s + 0.5)
        sender.close(flush_s=DRAIN_S)
        assert tak.wait_for(len(made), DRAIN_S), f"{len(tak.received)} of {len(made)} events arrived"
        elapsed = time.monotonic() - started
        stats = sender.stats()[url]
        received = tak.received
    print(f"{len(made)} events in {elapsed:.0f} s ({len(made) / elapsed:.0f}/s); {stats}")

    assert (stats.coalesced, stats.dropped, stats.expired) == (0, 0, 0), stats
    assert stats.sent == len(made) and not tak.undecodable
    assert [r.uid for r in received] == made, "events lost or reordered on TCP"
    assert len({r.uid for r in received if r.uid.endswith(".footprint")}) == 10
    assert max(len(truth.lives) - 200, 0) > 200, "tracks must come and go through the run"

    history: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in received:
        if ".track-" in r.uid:
            history[r.uid].append((seconds(r.event.get("time")), seconds(r.event.get("stale"))))
    assert set(history) == set(truth.lives)
    for uid, (born_s, ended_s) in truth.lives.items():
        spans = history[uid]
        assert abs(spans[0][0] - born_s) < 0.01, f"{uid}: first sent at {spans[0][0] - born_s:.2f} s after birth"
        end = min(ended_s, truth.end_s + 0.5)
        for (_, stale), (next_time, _) in itertools.pairwise(spans):
            assert next_time <= stale, f"{uid}: stale for {next_time - stale:.2f} s while alive"
        assert spans[-1][1] <= end + 1e-3 and (math.isinf(ended_s) or spans[-1][1] >= end - 1e-3)
        live = spans[:-1]  # the last is the end, sent when the track ends
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(live)]
        assert min(gaps, default=1.0) >= 1.0 - 1e-6, f"{uid}: more than one event a second"
