"""The AIS decoder on sentences pyais encodes, and on what a bad radio link makes of them."""

from __future__ import annotations

import random

import pyais
import pytest

from vision.ais.decode import FRAGMENT_TIMEOUT_S, MAX_PENDING_MESSAGES, AisDecoder, DecodeCounts
from vision.ais.model import AisClass, PositionReport, StaticReport

T0 = 1_750_000_000.0


def nmea(**fields: object) -> list[str]:
    return pyais.encode_dict(fields, radio_channel="A", talker_id="AI", sentence_type="VDM")


def only(reports: list) -> PositionReport | StaticReport:
    assert len(reports) == 1, reports
    return reports[0]


@pytest.mark.parametrize("msg_type", [1, 2, 3])
def test_class_a_position_keeps_course_speed_heading_and_nav_status(msg_type: int) -> None:
    (line,) = nmea(msg_type=msg_type, mmsi=244123456, lat=36.1, lon=-5.4, speed=10.2, course=90.0, heading=89, status=1)
    report = only(AisDecoder().feed(line, T0))
    assert isinstance(report, PositionReport)
    assert (report.mmsi, report.msg_type, report.ais_class) == (244123456, msg_type, AisClass.A)
    assert report.lat_deg == pytest.approx(36.1, abs=1e-5)
    assert report.lon_deg == pytest.approx(-5.4, abs=1e-5)
    assert (report.sog_kn, report.cog_deg, report.heading_deg, report.nav_status) == (10.2, 90.0, 89.0, 1)
    assert report.time_s == T0
    assert report.sentences == (line,)


def test_not_available_speed_course_heading_become_none() -> None:
    (line,) = nmea(msg_type=1, mmsi=244123456, lat=36.1, lon=-5.4, speed=102.3, course=360, heading=511)
    report = only(AisDecoder().feed(line, T0))
    assert (report.sog_kn, report.cog_deg, report.heading_deg) == (None, None, None)


def test_position_not_available_is_counted_and_returns_nothing() -> None:
    said: list[str] = []
    decoder = AisDecoder("udp://127.0.0.1:10110", say=said.append)
    (line,) = nmea(msg_type=1, mmsi=244123456, lat=91, lon=181, speed=0, course=0, heading=0)
    assert decoder.feed(line, T0) == []
    assert decoder.feed(line, T0 + 1) == []
    assert decoder.counts.no_position == 2
    assert len(said) == 1 and "position not available" in said[0] and "udp://127.0.0.1:10110" in said[0]


def test_type_5_two_parts_assembled_into_name_callsign_type_length() -> None:
    lines = nmea(
        msg_type=5, mmsi=244123456, shipname="SEA BIRD", callsign="PD1234", ship_type=70, to_bow=100, to_stern=20
    )
    assert len(lines) == 2
    decoder = AisDecoder()
    assert decoder.feed(lines[0], T0) == []
    report = only(decoder.feed(lines[1].encode(), T0 + 0.1))
    assert isinstance(report, StaticReport)
    assert (report.mmsi, report.msg_type, report.name, report.callsign) == (244123456, 5, "SEA BIRD", "PD1234")
    assert (report.ship_type, report.length_m) == (70, 120.0)
    assert report.sentences == tuple(lines)
    assert decoder.counts.incomplete == 0


def test_type_5_fragments_out_of_order_are_dropped_and_counted() -> None:
    lines = nmea(msg_type=5, mmsi=244123456, shipname="SEA BIRD", callsign="PD1234", ship_type=70)
    said: list[str] = []
    decoder = AisDecoder("test", say=said.append)
    assert decoder.feed(lines[1], T0) == []
    assert decoder.feed(lines[0], T0) == []
    assert decoder.counts.incomplete == 1
    # The first part waits for a second that is never coming, then is given up on.
    (later,) = nmea(msg_type=1, mmsi=244123456, lat=36.1, lon=-5.4)
    assert len(decoder.feed(later, T0 + FRAGMENT_TIMEOUT_S + 1)) == 1
    assert decoder.counts.incomplete == 2
    assert len(said) == 1 and "test" in said[0]


def test_a_missing_middle_fragment_drops_the_message_and_the_next_one_still_decodes() -> None:
    lines = nmea(msg_type=5, mmsi=244123456, shipname="SEA BIRD", callsign="PD1234", ship_type=70)
    decoder = AisDecoder()
    decoder.feed(lines[0], T0)
    decoder.feed(lines[0], T0 + 1)  # the second part of the first message was lost
    assert decoder.counts.incomplete == 1
    assert only(decoder.feed(lines[1], T0 + 1)).name == "SEA BIRD"


def test_first_fragments_that_never_finish_are_bounded_and_counted() -> None:
    decoder = AisDecoder()
    for n in range(500):
        first, _ = pyais.encode_dict(
            {"msg_type": 5, "mmsi": 244000000 + n, "shipname": "X"}, talker_id="AI", sentence_type="VDM", seq_id=n
        )
        decoder.feed(first, T0 + n * 0.001)
    assert decoder.counts.incomplete >= 500 - MAX_PENDING_MESSAGES
    assert len(decoder._pending) <= MAX_PENDING_MESSAGES


def test_class_b_position_18() -> None:
    (line,) = nmea(msg_type=18, mmsi=244123457, lat=36.1, lon=-5.4, speed=5.0, course=45.0, heading=511)
    report = only(AisDecoder().feed(line, T0))
    assert isinstance(report, PositionReport)
    assert (report.ais_class, report.msg_type, report.sog_kn, report.cog_deg) == (AisClass.B, 18, 5.0, 45.0)
    assert report.heading_deg is None and report.nav_status is None


def test_class_b_extended_19_gives_position_and_static() -> None:
    (line,) = nmea(
        msg_type=19, mmsi=244123458, lat=36.1, lon=-5.4, speed=5.0, course=45.0, heading=40,
        shipname="LITTLE", ship_type=37, to_bow=8, to_stern=4,
    )  # fmt: skip
    position, static = AisDecoder().feed(line, T0)
    assert isinstance(position, PositionReport) and isinstance(static, StaticReport)
    assert (position.mmsi, position.ais_class, position.heading_deg) == (244123458, AisClass.B, 40.0)
    assert (static.mmsi, static.name, static.ship_type, static.length_m) == (244123458, "LITTLE", 37, 12.0)


def test_class_b_static_24_part_a_name_part_b_callsign_type_length() -> None:
    decoder = AisDecoder()
    (part_a,) = nmea(msg_type=24, mmsi=244123459, partno=0, shipname="BOATY")
    (part_b,) = nmea(msg_type=24, mmsi=244123459, partno=1, callsign="AB12", ship_type=36, to_bow=5, to_stern=3)
    a = only(decoder.feed(part_a, T0))
    b = only(decoder.feed(part_b, T0 + 1))
    assert (a.name, a.callsign, a.ship_type, a.length_m) == ("BOATY", None, None, None)
    assert (b.name, b.callsign, b.ship_type, b.length_m) == (None, "AB12", 36, 8.0)


def test_names_lose_at_padding_and_spaces() -> None:
    (line,) = nmea(msg_type=24, mmsi=244123459, partno=0, shipname="  SEA@@ HAWK@@@")
    assert only(AisDecoder().feed(line, T0)).name == "SEA HAWK"


def test_tag_block_and_vdo_are_tolerated() -> None:
    (line,) = pyais.encode_dict(
        {"msg_type": 1, "mmsi": 244123456, "lat": 36.1, "lon": -5.4}, talker_id="AI", sentence_type="VDO"
    )
    tagged = "\\s:rtl_ais,c:1750000000*5B\\" + line
    report = only(AisDecoder().feed(tagged, T0))
    assert report.mmsi == 244123456 and report.sentences == (tagged,)


def test_bad_checksum_counted_not_returned_and_said_once() -> None:
    (line,) = nmea(msg_type=1, mmsi=244123456, lat=36.1, lon=-5.4)
    broken = line[:-2] + ("00" if line[-2:] != "00" else "11")
    said: list[str] = []
    decoder = AisDecoder("udp://127.0.0.1:10110", say=said.append)
    assert decoder.feed(broken, T0) == []
    assert decoder.feed(broken, T0) == []
    assert decoder.counts.bad_checksum == 2
    assert len(said) == 1
    assert said[0].startswith("AIS udp://127.0.0.1:10110: bad checksum in '!AIVDM,1,1,,A,")
    assert "1 so far" in said[0]


def test_unknown_type_counted_per_type() -> None:
    decoder = AisDecoder()
    (base_station,) = nmea(msg_type=4, mmsi=2442000)
    (aton,) = nmea(msg_type=21, mmsi=992446000, name="BUOY", lat=36.1, lon=-5.4)
    for line in (base_station, base_station, aton):
        assert decoder.feed(line, T0) == []
    counts = decoder.counts
    assert counts.unknown_type == 3
    assert counts.unknown_by_type == ((4, 2), (21, 1))


def test_counts_are_a_frozen_snapshot() -> None:
    decoder = AisDecoder()
    (line,) = nmea(msg_type=1, mmsi=244123456, lat=36.1, lon=-5.4)
    before = decoder.counts
    decoder.feed(line, T0)
    decoder.feed("$GPGGA,123519,4807.038,N*47", T0)
    assert before == DecodeCounts()
    assert decoder.counts == DecodeCounts(sentences=2, reports=1, garbage=1)
    with pytest.raises(AttributeError):
        decoder.counts.reports = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello",
        "!",
        "\\",
        "\\s:x*00\\",
        "!AIVDM",
        "!AIVDM,1,1,,A,13`l7@1P1V",
        "!AIVDM,1,1,,A,,0*26",
        "!AIVDM,0,1,,A,13`l7@1P1V,0*00",
        "!AIVDM,2,3,1,A,13`l7@1P1V,0*00",
        "!AIVDM,1,1,,A,13`l7@1P1V,9*00",
        "!AIVDM,x,y,z,A,13,0*00",
        b"\xff\xfe!AIVDM",
        "!AIVDM,1,1,,A,13`l7@1P1VOWAv0Db1H3Q2j1P000,0*72\x00",
    ],
)
def test_broken_lines_never_raise(line: str | bytes) -> None:
    decoder = AisDecoder(say=lambda _: None)
    assert decoder.feed(line, T0) == []


def test_fuzz_random_bytes_and_mangled_sentences_never_raise() -> None:
    rng = random.Random(16)
    good = [
        *nmea(msg_type=1, mmsi=244123456, lat=36.1, lon=-5.4, speed=3.0),
        *nmea(msg_type=5, mmsi=244123456, shipname="SEA BIRD", callsign="PD1234"),
        *nmea(msg_type=19, mmsi=244123458, lat=36.1, lon=-5.4, shipname="LITTLE"),
    ]
    decoder = AisDecoder(say=lambda _: None)
    for n in range(600):
        kind = n % 3
        if kind == 0:
            line: str | bytes = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 90)))
        elif kind == 1:
            source = rng.choice(good)
            line = source[: rng.randrange(len(source) + 1)]
        else:
            chars = list(rng.choice(good))
            for _ in range(rng.randrange(1, 4)):
                chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
            line = "".join(chars)
        reports = decoder.feed(line, T0 + n)
        assert all(isinstance(r, PositionReport | StaticReport) for r in reports)
    assert decoder.counts.sentences > 500
