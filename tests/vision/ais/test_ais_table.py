"""The vessel table: reports merged per MMSI, dead-reckoned in the site frame, stale ones dropped."""

from __future__ import annotations

import math
import threading

import pyais
import pytest

from missions.geo import LocalFrame
from vision.ais.decode import AisDecoder
from vision.ais.model import KNOT_M_S, AisClass, PositionReport, StaticReport
from vision.ais.table import BASE_ERROR_M, VesselTable

T0 = 1_750_000_000.0
FRAME = LocalFrame(36.13, -5.42)


def position(mmsi: int = 244123456, time_s: float = T0, x_m: float = 0.0, y_m: float = 0.0, **kw) -> PositionReport:
    lon, lat = FRAME.lonlat(x_m, y_m)
    fields = {"sog_kn": 10.0, "cog_deg": 90.0, "heading_deg": 90.0, "ais_class": AisClass.A, "msg_type": 1} | kw
    return PositionReport(mmsi=mmsi, time_s=time_s, lat_deg=lat, lon_deg=lon, **fields)


def test_a_10_kn_vessel_is_308_m_along_its_course_after_a_minute_with_a_larger_error() -> None:
    table = VesselTable(FRAME)
    table.update(position(cog_deg=45.0))
    at_once = table.target(244123456, T0)
    later = table.target(244123456, T0 + 60.0)
    assert at_once is not None and later is not None
    assert (at_once.x_m, at_once.y_m) == pytest.approx((0.0, 0.0), abs=0.01)
    assert at_once.error_m == BASE_ERROR_M[AisClass.A]
    travelled = math.hypot(later.x_m, later.y_m)
    assert travelled == pytest.approx(10.0 * KNOT_M_S * 60.0, abs=0.5)
    assert travelled == pytest.approx(308.7, abs=0.5)
    assert later.x_m == pytest.approx(later.y_m, abs=0.1)  # north-east
    assert later.error_m > at_once.error_m + 30.0
    assert later.age_s == 60.0 and later.time_s == T0 + 60.0
    lon, lat = FRAME.lonlat(later.x_m, later.y_m)
    assert (later.lon_deg, later.lat_deg) == pytest.approx((lon, lat))


def test_without_course_the_vessel_stays_put_and_its_error_still_grows() -> None:
    table = VesselTable(FRAME)
    table.update(position(sog_kn=None, cog_deg=None, ais_class=AisClass.B, msg_type=18))
    target = table.target(244123456, T0 + 60.0)
    assert target is not None
    assert (target.x_m, target.y_m) == pytest.approx((0.0, 0.0), abs=0.01)
    assert target.error_m > BASE_ERROR_M[AisClass.B] + 60.0


def test_a_stale_target_is_dropped() -> None:
    table = VesselTable(FRAME, stale_after_s=360.0)
    table.update(position(mmsi=1))
    table.update(position(mmsi=2, time_s=T0 + 300.0, x_m=5000.0))
    assert [t.mmsi for t in table.targets(T0 + 300.0)] == [1, 2]
    assert [t.mmsi for t in table.targets(T0 + 400.0)] == [2]
    assert table.target(1, T0 + 400.0) is None


def test_static_and_position_reports_merge_per_mmsi() -> None:
    table = VesselTable(FRAME)
    table.update(StaticReport(mmsi=7, time_s=T0, msg_type=24, name="BOATY"))
    assert table.targets(T0) == ()  # nothing to place yet
    table.update(StaticReport(mmsi=7, time_s=T0 + 1, msg_type=24, callsign="AB12", ship_type=36, length_m=8.0))
    table.update(position(mmsi=7, time_s=T0 + 2, ais_class=AisClass.B, msg_type=18))
    (target,) = table.targets(T0 + 2)
    assert (target.name, target.callsign, target.ship_type, target.length_m) == ("BOATY", "AB12", 36, 8.0)
    assert target.label == "BOATY (MMSI 7)"
    assert target.last_report is not None and target.last_report.time_s == T0 + 2


def test_decoded_sentences_feed_the_table() -> None:
    decoder = AisDecoder()
    table = VesselTable(FRAME)
    lon, lat = FRAME.lonlat(100.0, 200.0)
    lines = pyais.encode_dict(
        {"msg_type": 19, "mmsi": 244123458, "lat": lat, "lon": lon, "speed": 0.0, "course": 0.0, "shipname": "LITTLE"},
        talker_id="AI",
        sentence_type="VDM",
    )
    for report in decoder.feed(lines[0], T0):
        table.update(report)
    (target,) = table.targets(T0)
    assert target.name == "LITTLE" and target.ais_class == AisClass.B
    assert (target.x_m, target.y_m) == pytest.approx((100.0, 200.0), abs=2.0)


def test_an_mmsi_in_two_places_at_once_is_counted_and_named_once() -> None:
    said: list[str] = []
    table = VesselTable(FRAME, say=said.append)
    table.update(position(mmsi=244123456, time_s=T0, x_m=0.0, sog_kn=8.0))
    table.update(position(mmsi=244123456, time_s=T0 + 5, x_m=12_000.0, sog_kn=8.0))
    table.update(position(mmsi=244123456, time_s=T0 + 10, x_m=0.0, sog_kn=8.0))
    assert table.conflicts == 2
    assert table.conflicting_mmsis == {244123456}
    assert len(said) == 1 and "244123456" in said[0] and "two places" in said[0]


@pytest.mark.parametrize(
    ("dx_m", "dt_s", "sog_kn"),
    [
        (150.0, 30.0, 10.0),  # a 10 kn ship moving 150 m in 30 s
        (800.0, 20.0, 40.0),  # a fast boat doing what it says
        (20_000.0, 3600.0, 10.0),  # far apart but long apart: a gap, not a clone
    ],
)
def test_plausible_moves_are_not_conflicts(dx_m: float, dt_s: float, sog_kn: float) -> None:
    table = VesselTable(FRAME, stale_after_s=7200.0)
    table.update(position(time_s=T0, sog_kn=sog_kn))
    table.update(position(time_s=T0 + dt_s, x_m=dx_m, sog_kn=sog_kn))
    assert table.conflicts == 0 and table.conflicting_mmsis == frozenset()


def test_updates_from_several_threads() -> None:
    table = VesselTable(FRAME)

    def feed(first: int) -> None:
        for n in range(200):
            table.update(position(mmsi=first + n % 20, time_s=T0 + n * 0.1, x_m=n * 0.5))

    threads = [threading.Thread(target=feed, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(table.targets(T0 + 20.0)) == 80
    assert table.conflicts == 0
