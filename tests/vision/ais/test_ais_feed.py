"""An AIS feed as the station reads it: a UDP source decoded into the vessel table, its state in one line."""

from __future__ import annotations

import socket
import time

import pyais

from missions.formats import load_site
from sitl.testdata import SITES_DIR
from vision.ais.feed import AisFeed
from vision.ais.sources import FeedState

T0 = 1_760_000_000.0


def sentences(mmsi: int, lon: float, **fields) -> list[str]:
    data = {"type": 1, "mmsi": mmsi, "lat": 36.13, "lon": lon, "speed": 8.0, "course": 90.0, "heading": 90, **fields}
    return pyais.encode_dict(data, radio_channel="A", talker_id="AI", sentence_type="VDM")


def test_a_udp_feed_fills_the_table_and_says_when_it_goes_dead():
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    now = [T0]
    said: list[str] = []
    with AisFeed("udp://127.0.0.1:0", site.frame, clock=lambda: now[0], say=said.append) as feed:
        address = feed.source.address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            lines = sentences(224000001, -5.43) + sentences(224000002, -5.42) + ["!AIVDM,1,1,,A,garbage*00"]
            sender.sendto("\r\n".join(lines).encode(), address)
            deadline = time.monotonic() + 5.0
            while len(feed.targets(now[0])) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert [t.mmsi for t in feed.targets(now[0])] == [224000001, 224000002]
        line = feed.summary(now[0])
        assert line.startswith("AIS udp://127.0.0.1:0: live, 2 vessel(s), 3 sentence(s), 2 report(s); dropped: 1")
        assert len(said) == 1 and "udp://127.0.0.1:0" in said[0] and "garbage" in said[0]
        now[0] += 120.0  # two minutes without a line
        assert feed.status(now[0]).state is FeedState.DEAD
        assert feed.summary(now[0]).startswith("AIS udp://127.0.0.1:0: dead: no line for 2m")


def test_the_simulated_world_on_ais_reads_back_where_its_vessels_are():
    """sitl's broadcaster → UDP → the feed: each reporting vessel where the world has it, the spoofer off by
    its offset, the dark one absent."""
    import math

    from sitl.synthetic.ais import AisBroadcaster, AisScenario, Role, VesselAis, udp_sender, world_vessels
    from sitl.synthetic.world import World

    site = load_site(SITES_DIR / "algeciras-port.geojson")
    world = World.for_site(site, seed=3)
    vessels = world_vessels(world)
    assert len(vessels) >= 3
    scenario = AisScenario({0: VesselAis(Role.DARK), 1: VesselAis(Role.SPOOF, offset_m=(800.0, -300.0))})
    now = [T0]
    with AisFeed("udp://127.0.0.1:0", site.frame, clock=lambda: now[0]) as feed:
        host, port = feed.source.address
        send = udp_sender(f"udp://{host}:{port}")
        broadcaster = AisBroadcaster(world, scenario, site.frame, send, world_time=lambda t: t - T0, start_s=T0)
        sent = 0
        for t in range(int(T0), int(T0) + 400, 1):  # every vessel reports at least twice, even at anchor
            now[0] = float(t)
            sent += sum(1 for s in broadcaster.step(now[0]))
            deadline = time.monotonic() + 2.0
            while feed.source.lines < sent and time.monotonic() < deadline:
                time.sleep(0.001)
        send.close()
        assert feed.source.lines == sent and feed.counts.bad_checksum == feed.counts.garbage == 0
        targets = {t.mmsi: t for t in feed.targets(now[0])}
    truth = broadcaster.ground_truth()["vessels"]
    assert truth[0]["mmsi"] not in targets  # dark
    assert set(targets) == {v["mmsi"] for v in truth[1:]}
    for index, entry in enumerate(truth[1:], start=1):
        target = targets[entry["mmsi"]]
        x, y, _heading, _speed = vessels[index].pose_at(now[0] - T0)
        dx, dy = (800.0, -300.0) if index == 1 else (0.0, 0.0)
        miss_m = math.hypot(target.x_m - (x + dx), target.y_m - (y + dy))
        assert miss_m <= target.error_m, f"vessel {index}: {miss_m:.0f} m from the world, error {target.error_m:.0f} m"
        assert target.name == entry["name"]
