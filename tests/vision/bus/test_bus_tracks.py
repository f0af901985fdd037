"""TrackEvents: a new per track, an update a second at most and only when it moved, an end when it is gone."""

from __future__ import annotations

import dataclasses
import math

import pytest

from vision.bus.tracks import TrackEvent, TrackEventKind, TrackEvents
from vision.detections import Detection, Detections, ObjectClass

NEW, UPDATE, END = TrackEventKind.NEW, TrackEventKind.UPDATE, TrackEventKind.END
ORIGIN_LAT, ORIGIN_LON = 36.13, -5.43
M_PER_DEG_LAT = 6_371_008.8 * math.pi / 180.0
T0 = 1_750_000_000.0


def thing(
    track_id: int | None,
    x_m: float | None = 0.0,
    y_m: float | None = 0.0,
    object_class: ObjectClass = ObjectClass.VESSEL,
    confidence: float = 0.87654,
    local: bool = True,
) -> Detection:
    """A detection at site metres (x east, y north), with the degrees a geolocator would give it too."""
    if x_m is None or y_m is None:
        return Detection(object_class, confidence, (10.0, 10.0, 20.0, 20.0), track_id)
    lat = ORIGIN_LAT + y_m / M_PER_DEG_LAT
    lon = ORIGIN_LON + x_m / (M_PER_DEG_LAT * math.cos(math.radians(ORIGIN_LAT)))
    return Detection(
        object_class,
        confidence,
        (10.0, 10.0, 20.0, 20.0),
        track_id,
        x_m=x_m if local else None,
        y_m=y_m if local else None,
        lat_deg=lat,
        lon_deg=lon,
    )


def frame(t: float, *items: Detection, source: str = "cam1") -> Detections:
    return Detections(source, T0 + t, round(t * 10), tuple(items))


def run(events: TrackEvents, frames) -> list[TrackEvent]:
    out: list[TrackEvent] = []
    for f in frames:
        out.extend(events.update(f))
    return out


def times(events: list[TrackEvent], kind: TrackEventKind | None = None) -> list[float]:
    return [round(e.time_s - T0, 3) for e in events if kind is None or e.kind is kind]


def test_the_first_frame_of_a_track_is_its_new_with_what_is_known_of_it():
    events = TrackEvents().update(frame(0.0, thing(7, 30.0, 40.0), thing(None, 5.0, 5.0)))

    assert len(events) == 1
    new = events[0]
    assert (new.kind, new.track_id, new.source, new.object_class) == (NEW, 7, "cam1", ObjectClass.VESSEL)
    assert new.time_s == new.first_seen_s == new.last_seen_s == T0
    assert (new.lat_deg, new.lon_deg) == (thing(7, 30.0, 40.0).lat_deg, thing(7, 30.0, 40.0).lon_deg)
    assert new.confidence == 0.877
    assert (new.course_deg, new.speed_mps, new.error_m) == (None, None, None), "one fix says nothing of motion"


def test_an_object_that_does_not_move_costs_nothing_after_its_new():
    # A minute at 10 frames a second, the fixes jittering by a metre.
    jitter = [((i * 37) % 11 - 5) / 10.0 for i in range(600)]
    frames = [frame(i / 10, thing(1, 100.0 + j, 50.0 - j)) for i, j in enumerate(jitter)]

    events = run(TrackEvents(), frames)

    assert [e.kind for e in events] == [NEW]


def test_a_moving_object_is_updated_once_a_second_with_its_course_and_speed():
    tracks = TrackEvents()
    # East at 5 m/s for 5.5 s, 10 frames a second.
    events = run(tracks, [frame(i / 10, thing(3, 5.0 * i / 10, 0.0)) for i in range(56)])

    assert times(events) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [e.kind for e in events] == [NEW] + [UPDATE] * 5
    for update in events[1:]:
        assert update.speed_mps == pytest.approx(5.0, abs=0.01)
        assert update.course_deg == 90.0
        assert update.first_seen_s == T0 and update.last_seen_s == update.time_s


def test_a_slow_object_is_updated_only_once_it_has_moved_more_than_the_threshold():
    # North at 1 m/s: two metres and a bit take 2.1 s.
    events = run(TrackEvents(), [frame(i / 10, thing(4, 0.0, i / 10)) for i in range(50)])

    assert times(events, UPDATE) == [2.1, 4.2]
    assert all(e.course_deg == 0.0 and e.speed_mps == pytest.approx(1.0, abs=0.01) for e in events[1:])


@pytest.mark.parametrize(
    ("heading", "course_deg"), [((1, 1), 45.0), ((1, -1), 135.0), ((-1, -1), 225.0), ((-1, 1), 315.0), ((0, -1), 180.0)]
)
def test_the_course_is_clockwise_from_north(heading, course_deg):
    east, north = heading
    events = run(TrackEvents(), [frame(i / 10, thing(1, 3.0 * east * i / 10, 3.0 * north * i / 10)) for i in range(12)])

    assert events[-1].kind is UPDATE
    assert events[-1].course_deg == course_deg
    assert events[-1].speed_mps == pytest.approx(3.0 * math.sqrt(2) if east else 3.0, abs=0.01)


def test_course_and_speed_come_from_degrees_when_there_are_no_site_metres():
    events = run(TrackEvents(), [frame(i / 10, thing(2, 0.0, -4.0 * i / 10, local=False)) for i in range(12)])

    assert events[-1].kind is UPDATE
    assert events[-1].course_deg == 180.0
    assert events[-1].speed_mps == pytest.approx(4.0, abs=0.01)


def test_the_speed_is_over_the_last_two_seconds_not_since_the_track_began():
    # Still for 10 s, then east at 6 m/s.
    frames = [frame(i / 10, thing(5, max(0.0, 6.0 * (i / 10 - 10.0)), 0.0)) for i in range(131)]

    events = run(TrackEvents(), frames)

    assert times(events, UPDATE) == [10.4, 11.4, 12.4]
    assert events[-1].speed_mps == pytest.approx(6.0, abs=0.01)


def test_a_class_change_is_an_update_even_in_place_but_not_twice_a_second():
    tracks = TrackEvents()
    run(tracks, [frame(0.0, thing(1))])

    assert tracks.update(frame(0.5, thing(1, object_class=ObjectClass.VEHICLE))) == []
    [update] = tracks.update(frame(1.0, thing(1, object_class=ObjectClass.VEHICLE)))
    assert (update.kind, update.object_class) == (UPDATE, ObjectClass.VEHICLE)
    assert tracks.update(frame(2.0, thing(1, object_class=ObjectClass.VEHICLE))) == []


def test_a_track_unseen_for_three_seconds_ends_where_it_was_last_seen():
    tracks = TrackEvents()
    seen = [frame(i / 10, thing(1, 2.0 * i / 10, 0.0), thing(2, 500.0, 500.0)) for i in range(21)]
    gone = [frame(i / 10, thing(2, 500.0, 500.0)) for i in range(21, 60)]

    events = run(tracks, seen + gone)

    [end] = [e for e in events if e.kind is END]
    assert end.track_id == 1
    assert end.time_s == T0 + 5.0 and end.last_seen_s == T0 + 2.0 and end.first_seen_s == T0
    assert (end.lat_deg, end.lon_deg) == (thing(1, 4.0, 0.0).lat_deg, thing(1, 4.0, 0.0).lon_deg)
    assert end.speed_mps == pytest.approx(2.0, abs=0.01) and end.course_deg == 90.0
    assert len(tracks) == 1


def test_an_end_comes_first_in_its_frame_and_the_id_seen_again_is_a_new_track():
    tracks = TrackEvents()
    tracks.update(frame(0.0, thing(1)))

    events = tracks.update(frame(3.0, thing(1, 50.0, 0.0)))

    assert [(e.kind, e.track_id) for e in events] == [(END, 1), (NEW, 1)]
    assert events[1].first_seen_s == T0 + 3.0


def test_a_gap_shorter_than_three_seconds_neither_ends_nor_renews_the_track():
    tracks = TrackEvents()
    run(tracks, [frame(i / 10, thing(1)) for i in range(11)])

    assert run(tracks, [frame(i / 10, thing(None, 9.0, 9.0)) for i in range(11, 39)]) == []
    assert tracks.update(frame(3.9, thing(1))) == []


def test_close_ends_every_track_alive_at_the_newest_frame_time():
    tracks = TrackEvents()
    run(tracks, [frame(0.0, thing(1)), frame(0.5, thing(1), thing(2, 80.0, 0.0)), frame(1.5, thing(None))])

    ends = tracks.close()

    assert [(e.kind, e.track_id, e.time_s, e.last_seen_s) for e in ends] == [
        (END, 1, T0 + 1.5, T0 + 0.5),
        (END, 2, T0 + 1.5, T0 + 0.5),
    ]
    assert len(tracks) == 0 and tracks.close() == []


def test_detections_without_a_track_id_are_not_tracks_and_a_repeated_id_counts_once():
    tracks = TrackEvents()

    events = tracks.update(frame(0.0, thing(None), thing(None, 40.0, 40.0), thing(9), thing(9, 70.0, 70.0)))

    assert [(e.kind, e.track_id, e.lat_deg) for e in events] == [(NEW, 9, thing(9).lat_deg)]


def test_a_track_without_a_position_is_updated_when_it_gets_one_not_when_its_box_moves():
    tracks = TrackEvents()
    [new] = tracks.update(frame(0.0, thing(1, None, None)))
    assert (new.lat_deg, new.lon_deg) == (None, None)

    assert run(tracks, [frame(i / 10, thing(1, None, None)) for i in range(1, 20)]) == []
    [update] = tracks.update(frame(2.0, thing(1, 10.0, 10.0)))
    assert update.kind is UPDATE and update.lat_deg == thing(1, 10.0, 10.0).lat_deg
    # Losing the position again says nothing new.
    assert tracks.update(frame(3.5, thing(1, None, None))) == []


def test_a_late_frame_ends_nothing_and_updates_nothing():
    tracks = TrackEvents()
    run(tracks, [frame(0.0, thing(1)), frame(4.0, thing(2))])  # track 1 ends at 4.0

    assert tracks.update(frame(3.0, thing(2, 30.0, 0.0))) == []
    assert len(tracks) == 1


def test_the_error_radius_is_the_detections_when_it_has_one():
    base = thing(1)
    located = Detection(base.object_class, 0.9, base.box_px, 1, 0.0, 0.0, base.lat_deg, base.lon_deg, error_m=3.456)

    [new] = TrackEvents().update(frame(0.0, located))

    assert new.error_m == 3.46


def test_an_ais_name_is_an_update_even_in_place_and_travels_in_the_payload():
    named = dataclasses.replace(thing(1), mmsi=224_000_001, vessel_name="MAR AZUL")
    events = run(TrackEvents(), [frame(0.0, thing(1)), frame(1.5, named), frame(3.0, named)])

    assert [(e.kind, e.mmsi) for e in events] == [(NEW, None), (UPDATE, 224_000_001)]
    assert "mmsi" not in events[0].to_json_dict()  # a track AIS does not name keeps the payload it always had
    again = TrackEvent.from_json_dict(events[1].to_json_dict())
    assert (again.mmsi, again.vessel_name) == (224_000_001, "MAR AZUL") and again == events[1]
    with pytest.raises(ValueError, match="mmsi 'x' is not an MMSI"):
        TrackEvent.from_json_dict({**events[1].to_json_dict(), "mmsi": "x"})


def test_another_source_is_refused():
    tracks = TrackEvents()
    tracks.update(frame(0.0, thing(1)))

    with pytest.raises(ValueError, match="'cam2'"):
        tracks.update(frame(0.1, thing(1), source="cam2"))


@pytest.mark.parametrize(
    "settings", [{"end_after_s": 0.0}, {"min_move_m": -1.0}, {"update_every_s": -1.0}, {"velocity_window_s": 0.0}]
)
def test_nonsense_settings_are_refused(settings):
    with pytest.raises(ValueError):
        TrackEvents(**settings)
