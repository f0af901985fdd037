"""CotFeed: what reaches TAK and when, on a clock the test drives."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
import shapely

from missions.site import Role, Zone
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.cot.events import DroneReport, iso
from vision.cot.feed import CotFeed
from vision.cot.model import CotMessage
from vision.detections import ObjectClass

T0 = 1_750_000_000.0
LAT, LON = 36.13, -5.43
M_PER_DEG_LAT = 111_000.0


class Screen:
    """What a TAK screen holds: the newest event per uid, and everything that arrived."""

    def __init__(self) -> None:
        self.messages: list[CotMessage] = []

    def __call__(self, message: CotMessage) -> None:
        self.messages.append(message)

    def events(self, uid_part: str = "") -> list[ET.Element]:
        return [ET.fromstring(m.xml) for m in self.messages if uid_part in m.uid]

    def count(self, uid_part: str = "") -> int:
        return len(self.events(uid_part))


def track(kind=TrackEventKind.NEW, track_id=7, t=T0, north_m=0.0, **kw) -> TrackEvent:
    values = dict(
        kind=kind,
        track_id=track_id,
        source="cam1",
        object_class=ObjectClass.VESSEL,
        time_s=t,
        lat_deg=LAT + north_m / M_PER_DEG_LAT,
        lon_deg=LON,
        error_m=2.0,
        course_deg=0.0,
        speed_mps=1.0,
        confidence=0.9,
        first_seen_s=T0,
        last_seen_s=t,
    )
    values.update(kw)
    return TrackEvent(**values)


def alert(rule=RuleKind.ENTER, track_id=7) -> Alert:
    return Alert(
        alert_id=f"cam1:{rule.value}-anchorage-{track_id}",
        time_s=T0,
        iso_time=iso(T0),
        rule=rule,
        zone="Anchorage",
        risk=4,
        severity=AlertSeverity.HIGH,
        object_class=ObjectClass.VESSEL,
        track_id=track_id,
        lat_deg=LAT,
        lon_deg=LON,
        count=1,
        message=f"vessel {track_id} entered Anchorage",
        source="cam1",
    )


def test_a_new_track_is_sent_at_once_with_its_type_uid_error_and_stale() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.track(track(), T0 + 0.1)
    [event] = screen.events("track")
    assert event.get("uid") == "borderwatch.algeciras.cam1.track-7"
    assert event.get("type") == "a-u-S"
    assert float(event.find("point").get("ce")) == 2.0
    assert event.get("time") == iso(T0 + 0.1) and event.get("stale") == iso(T0 + 0.1 + feed.track_stale_s)


def test_updates_at_most_once_a_second_and_none_for_an_unmoved_object() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.track(track(), T0)
    # Ten updates in 0.9 s, each 3 m further: rate-limited to none until the second is up.
    for i in range(1, 10):
        feed.track(track(TrackEventKind.UPDATE, t=T0 + i / 10, north_m=3.0 * i), T0 + i / 10)
    assert screen.count("track") == 1
    feed.tick(T0 + 1.0)
    assert screen.count("track") == 2
    last = screen.events("track")[-1]
    assert float(last.find("point").get("lat")) == pytest.approx(LAT + 27.0 / M_PER_DEG_LAT, abs=1e-7)
    # Not moving any more: nothing, however often it is told and ticked, until the refresh is due.
    for i in range(11, 40):
        feed.track(track(TrackEventKind.UPDATE, t=T0 + i / 10, north_m=27.0), T0 + i / 10)
        feed.tick(T0 + i / 10)
    assert screen.count("track") == 2


def test_a_live_unmoving_track_is_refreshed_before_it_goes_stale_and_ends_stale_at_once() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.track(track(), T0)
    now = T0
    while now < T0 + 60.0:
        now += 0.25
        feed.tick(now)
        newest = screen.events("track")[-1]
        assert newest.get("stale") > iso(now), f"the marker went stale at {now - T0:.2f} s while its track lives"
    refreshes = screen.count("track") - 1
    # One per (stale - margin) = 5 s: 12 in a minute, not one per tick.
    assert 11 <= refreshes <= 12
    assert feed.stats.refreshes == refreshes
    feed.track(track(TrackEventKind.END, t=now), now)
    end = screen.events("track")[-1]
    assert end.get("stale") == end.get("time") == iso(now)
    feed.tick(now + 30.0)
    assert screen.count("track") == refreshes + 2  # nothing after the end


def test_dark_vessel_alert_makes_its_track_suspect_and_names_it() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.track(track(), T0)
    feed.alert(alert(RuleKind.DARK_VESSEL), T0 + 2.0, snapshot_url="file:///evidence/snapshots/1.jpg")
    marker = screen.events("alert")[-1]
    assert marker.get("type") == "b-m-p-s-m"
    bw = marker.find("detail/borderwatch")
    assert (bw.get("rule"), bw.get("zone"), bw.get("severity")) == ("dark-vessel", "Anchorage", "high")
    links = [link.get("url") for link in marker.iter("link") if link.get("url")]
    assert links == ["file:///evidence/snapshots/1.jpg"]
    assert screen.events("track")[-1].get("type") == "a-s-S"


def test_ais_name_is_sent_when_it_binds_even_without_moving() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.track(track(), T0)
    feed.track(track(TrackEventKind.UPDATE, t=T0 + 1.5, mmsi=224_000_001, vessel_name="MAR AZUL"), T0 + 1.5)
    named = screen.events("track")[-1]
    assert named.find("detail/contact").get("callsign") == "MAR AZUL 224000001"
    assert named.find("detail/borderwatch").get("mmsi") == "224000001"


def test_drone_at_one_hertz_with_battery_and_view_merged_from_two_reporters() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    view = ((LAT, LON), (LAT + 0.001, LON), (LAT + 0.001, LON + 0.001), (LAT, LON + 0.001))
    now = T0
    for i in range(50):  # 10 Hz telemetry flying north at 10 m/s for 5 s, and the camera's view
        now = T0 + i / 10
        north = LAT + 1.0 * i / M_PER_DEG_LAT
        feed.drone(DroneReport(1, now, north, LON, alt_m=60.0, course_deg=0.0, speed_mps=10.0, battery_pct=90.0), now)
        feed.drone(DroneReport(1, now, north, LON, footprint_deg=view), now)
        feed.tick(now)
    drones = screen.events("drone-1")
    positions = [e for e in drones if e.get("type") == "a-f-A-M-F-Q"]
    assert len(positions) == 5
    assert positions[-1].find("detail/status").get("battery") == "90"
    assert positions[-1].get("how") == "m-g"
    shapes = [e for e in drones if e.get("type") == "u-d-f"]
    # The first position went before the camera's view was known; each after carries it, a closed ring.
    assert len(shapes) == 4 and len(shapes[0].findall("detail/link[@point]")) == 5


def test_a_drone_no_longer_heard_is_left_to_go_stale() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.drone(DroneReport(2, T0, LAT, LON, battery_pct=50.0), T0)
    for i in range(1, 200):
        feed.tick(T0 + i / 10)
    # Refreshed while heard recently, then let go: no marker kept alive for a drone that is lost.
    assert 2 <= screen.count("drone-2") <= 4


def test_zones_as_shapes_once_a_minute() -> None:
    zones = (
        Zone(Role.WATCH, "Anchorage", shapely.box(LON, LAT, LON + 0.01, LAT + 0.01), risk=4),
        Zone(Role.NO_FLY, "Heliport", shapely.Point(LON + 0.02, LAT), radius_m=150.0),
        Zone(Role.OPERATING_AREA, "Port", shapely.box(LON - 0.1, LAT - 0.1, LON + 0.1, LAT + 0.1)),
    )
    screen = Screen()
    feed = CotFeed("algeciras", screen, zones=zones)
    for second in range(0, 181):
        feed.tick(T0 + second)
    assert screen.count("zone.Anchorage") == 4  # at 0, 60, 120 and 180 s
    assert screen.count("zone.Port") == 0  # the operating area is not a zone agencies watch
    [circle, *_] = screen.events("zone.Heliport")
    assert circle.get("type") == "u-d-c-c"
    assert float(circle.find("detail/shape/ellipse").get("major")) == 150.0
    square = screen.events("zone.Anchorage")[0]
    assert square.get("type") == "u-d-f" and len(square.findall("detail/link[@point]")) == 5
    assert square.find("detail/borderwatch").get("risk") == "4"


def test_a_track_without_position_waits_for_one() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    feed.track(track(lat_deg=None, lon_deg=None), T0)
    feed.tick(T0 + 0.5)
    assert screen.count("track") == 0
    feed.track(replace(track(TrackEventKind.UPDATE, t=T0 + 0.6)), T0 + 0.6)
    assert screen.count("track") == 1


def test_close_ends_every_live_track() -> None:
    screen = Screen()
    feed = CotFeed("algeciras", screen)
    for i in range(5):
        feed.track(track(track_id=i), T0)
    feed.close(T0 + 3.0)
    ends = screen.events("track")[5:]
    assert len(ends) == 5 and all(e.get("stale") == iso(T0 + 3.0) for e in ends)
    assert feed.live_tracks() == 0


def test_vehicle_is_a_ground_track() -> None:
    screen = Screen()
    CotFeed("algeciras", screen).track(track(object_class=ObjectClass.VEHICLE), T0)
    assert screen.events("track")[0].get("type") == "a-u-G"


def test_bad_settings_refused() -> None:
    with pytest.raises(ValueError, match="refresh_margin_s"):
        CotFeed("x", Screen(), refresh_margin_s=math.inf)
