from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from missions.formats import load_site
from sitl.testdata import SITES_DIR
from vision.alerts import DEFAULT_RULES, AlertEngine, Rule, RuleKind, severity
from vision.detections import Detection, Detections, ObjectClass

VESSEL, VEHICLE, PERSON, OTHER = ObjectClass.VESSEL, ObjectClass.VEHICLE, ObjectClass.PERSON, ObjectClass.OTHER
T0 = 1_750_000_000.0  # a capture time in June 2025

# (lon, lat) inside and outside the Algeciras watch zones.
ANCHORAGE = (-5.4245, 36.127)  # 'Eastern anchorage', risk 4
ANCHORAGE_2 = (-5.4235, 36.1255)
QUAY = (-5.436, 36.116)  # 'Container quay', risk 2
OUTSIDE = (-5.432, 36.125)
OUTSIDE_2 = (-5.438, 36.128)


@pytest.fixture(scope="module")
def site():
    return load_site(SITES_DIR / "algeciras-port.geojson")


def det(cls, track, lonlat, site=None, confidence=0.9):
    """A located detection: in degrees, or in the site's local metres when a site is given."""
    if site is None:
        return Detection(cls, confidence, (0, 0, 10, 10), track, lon_deg=lonlat[0], lat_deg=lonlat[1])
    x, y = site.frame.xy(*lonlat)
    return Detection(cls, confidence, (0, 0, 10, 10), track, x_m=x, y_m=y)


def frame(t, *items, source="cam1", index=0):
    return Detections(source, T0 + t, index, tuple(items))


def run(engine, frames):
    return [a for f in frames for a in engine.process(f)]


@pytest.mark.parametrize("in_metres", [False, True], ids=["degrees", "metres"])
def test_vessel_entering_anchorage_raises_one_high_enter(site, in_metres):
    engine = AlertEngine(site)
    where = site if in_metres else None
    path = [OUTSIDE, OUTSIDE, ANCHORAGE, ANCHORAGE, ANCHORAGE_2, ANCHORAGE]
    alerts = run(engine, [frame(t, det(VESSEL, 7, p, where)) for t, p in enumerate(path)])

    assert [(a.rule, a.zone, a.track_id) for a in alerts] == [(RuleKind.ENTER, "Eastern anchorage", 7)]
    alert = alerts[0]
    assert (alert.risk, alert.severity, alert.object_class) == (4, "high", VESSEL)
    assert alert.time_s == T0 + 2
    assert alert.iso_time.startswith("2025-06-15T") and alert.iso_time.endswith("Z")
    assert alert.lon_deg == pytest.approx(ANCHORAGE[0], abs=1e-7)
    assert alert.lat_deg == pytest.approx(ANCHORAGE[1], abs=1e-7)
    assert alert.source == "cam1" and "entered Eastern anchorage" in alert.message


def test_leaving_and_reentering_raises_no_second_enter(site):
    engine = AlertEngine(site)
    path = [ANCHORAGE, ANCHORAGE, OUTSIDE, OUTSIDE, ANCHORAGE, OUTSIDE, ANCHORAGE]
    alerts = run(engine, [frame(t, det(VESSEL, 3, p)) for t, p in enumerate(path)])
    assert [a.rule for a in alerts] == [RuleKind.ENTER]


def test_alert_ids_are_stable_and_distinct_per_track_and_source(site):
    alerts = []
    for source in ("cam1", "cam2"):
        engine = AlertEngine(site)
        alerts += run(engine, [frame(0, det(VESSEL, 1, ANCHORAGE), det(VESSEL, 2, ANCHORAGE_2), source=source)])
    ids = [a.alert_id for a in alerts]
    assert ids[0] == "cam1:enter-eastern-anchorage-1"
    assert len(set(ids)) == 4


@pytest.mark.parametrize("dwell_s", [5.0, 10.0, 12.5])
def test_dwell_fires_once_after_the_limit(site, dwell_s):
    engine = AlertEngine(site, rules=(Rule(RuleKind.DWELL, frozenset({VESSEL}), dwell_s=dwell_s),))
    frames = [frame(0, det(VESSEL, 5, OUTSIDE))]
    frames += [frame(1 + 0.5 * k, det(VESSEL, 5, ANCHORAGE if k % 2 else ANCHORAGE_2)) for k in range(80)]
    alerts = run(engine, frames)

    assert len(alerts) == 1
    assert alerts[0].rule is RuleKind.DWELL and alerts[0].track_id == 5
    assert alerts[0].time_s == pytest.approx(T0 + 1 + dwell_s)
    assert alerts[0].alert_id == f"cam1:dwell{dwell_s:g}s-eastern-anchorage-5"


@pytest.mark.parametrize(
    ("gap_s", "fires_at_s"),
    [(1.0, 10.0), (1.5, 10.5), (3.0, 17.0)],
    ids=["short-dropout", "dropout-under-2s", "dropout-over-2s-restarts"],
)
def test_brief_dropouts_keep_the_dwell_timer(site, gap_s, fires_at_s):
    engine = AlertEngine(site, rules=(Rule(RuleKind.DWELL, frozenset({VESSEL}), dwell_s=10.0),))
    frames = [frame(t, det(VESSEL, 9, ANCHORAGE)) for t in range(5)]
    frames += [frame(4 + gap_s + k, det(VESSEL, 9, ANCHORAGE)) for k in range(20)]
    alerts = run(engine, frames)
    assert [a.time_s - T0 for a in alerts] == [pytest.approx(fires_at_s)]


def test_leaving_resets_the_dwell_timer(site):
    engine = AlertEngine(site, rules=(Rule(RuleKind.DWELL, frozenset({VESSEL}), dwell_s=5.0),))
    path = [ANCHORAGE] * 4 + [OUTSIDE] + [ANCHORAGE] * 10  # t = 0..3 in, 4 out, 5.. in
    alerts = run(engine, [frame(t, det(VESSEL, 1, p)) for t, p in enumerate(path)])
    assert [a.time_s - T0 for a in alerts] == [10.0]


def crowd_frame(t, n, tracked=True, lonlat=ANCHORAGE):
    return frame(t, *(det(VESSEL, (i if tracked else None), lonlat) for i in range(n)))


def test_crowd_fires_once_and_rearms_when_the_count_drops(site):
    engine = AlertEngine(site)
    counts = [2, 3, 4, 4, 4, 3, 3, 4, 4, 5]
    alerts = [a for t, n in enumerate(counts) for a in engine.process(crowd_frame(t, n)) if a.rule is RuleKind.CROWD]

    assert [(a.time_s - T0, a.count) for a in alerts] == [(2.0, 4), (7.0, 4)]
    assert all(a.track_id is None and a.object_class is VESSEL and a.severity == "high" for a in alerts)
    assert [a.alert_id for a in alerts] == [
        "cam1:crowd3-eastern-anchorage-vessel-1",
        "cam1:crowd3-eastern-anchorage-vessel-2",
    ]
    assert "4 vessels in Eastern anchorage" in alerts[0].message


def test_crowd_counts_a_track_leaving_the_zone_as_gone(site):
    engine = AlertEngine(site, rules=(Rule(RuleKind.CROWD, frozenset({VESSEL}), crowd_n=3),))
    four = [det(VESSEL, i, ANCHORAGE) for i in range(4)]
    three_and_one_out = [*four[:3], det(VESSEL, 3, OUTSIDE)]
    alerts = run(engine, [frame(0, *four), frame(1, *three_and_one_out), frame(2, *four)])
    assert [a.time_s - T0 for a in alerts] == [0.0, 2.0]


def test_a_crowd_member_missing_one_frame_does_not_rearm(site):
    engine = AlertEngine(site, rules=(Rule(RuleKind.CROWD, frozenset({VESSEL}), crowd_n=3),))
    alerts = run(engine, [crowd_frame(0, 4), crowd_frame(1, 3), crowd_frame(2, 4)])
    assert len(alerts) == 1


def test_crowd_counts_untracked_detections_per_frame(site):
    engine = AlertEngine(site, rules=(Rule(RuleKind.CROWD, frozenset({VESSEL}), crowd_n=3),))
    alerts = run(engine, [crowd_frame(t, n, tracked=False) for t, n in enumerate([4, 4, 3, 4])])
    assert [(a.time_s - T0, a.count) for a in alerts] == [(0.0, 4), (3.0, 4)]


def test_person_on_the_quay_is_low_severity(site):
    alerts = AlertEngine(site).process(frame(0, det(PERSON, 11, QUAY)))
    assert [(a.rule, a.zone, a.risk, a.severity, a.object_class) for a in alerts] == [
        (RuleKind.ENTER, "Container quay", 2, "low", PERSON)
    ]


@pytest.mark.parametrize("cls", [VESSEL, VEHICLE, PERSON])
@pytest.mark.parametrize("where", [OUTSIDE, OUTSIDE_2])
def test_detections_outside_every_zone_raise_nothing(site, cls, where):
    engine = AlertEngine(site)
    frames = [frame(t, *(det(cls, i, where) for i in range(6))) for t in range(0, 200, 5)]
    assert run(engine, frames) == []


@pytest.mark.parametrize(
    ("rules", "cls", "expected"),
    [
        ((Rule(RuleKind.ENTER, frozenset({PERSON})),), VESSEL, []),
        ((Rule(RuleKind.ENTER, frozenset({PERSON})),), PERSON, [RuleKind.ENTER]),
        (DEFAULT_RULES, OTHER, []),
        (DEFAULT_RULES, VEHICLE, [RuleKind.ENTER]),
        ((Rule(RuleKind.ENTER, frozenset({VESSEL}), zones=frozenset({"Container quay"})),), VESSEL, []),
    ],
    ids=["vessel-not-watched", "person-watched", "other-never-by-default", "vehicle-by-default", "zone-filter"],
)
def test_rules_filter_by_class_and_zone(site, rules, cls, expected):
    engine = AlertEngine(site, rules=rules)
    assert [a.rule for a in engine.process(frame(0, det(cls, 1, ANCHORAGE)))] == expected


def test_untracked_detections_raise_no_enter_or_dwell(site):
    engine = AlertEngine(site)
    assert run(engine, [frame(t, det(VESSEL, None, ANCHORAGE)) for t in range(0, 120, 2)]) == []


def test_unlocated_detections_are_ignored(site):
    engine = AlertEngine(site)
    assert engine.process(frame(0, Detection(VESSEL, 0.9, (0, 0, 1, 1), track_id=1))) == []


def test_tracks_unseen_for_30_s_are_forgotten(site):
    engine = AlertEngine(site)
    run(engine, [frame(0, *(det(VESSEL, i, OUTSIDE) for i in range(50)))])
    assert engine.tracked_count == 50
    engine.process(frame(29, det(VESSEL, 1, OUTSIDE)))
    assert engine.tracked_count == 50
    engine.process(frame(30, det(VESSEL, 1, OUTSIDE)))
    assert engine.tracked_count == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": RuleKind.DWELL, "classes": frozenset({VESSEL})}, "dwell_s"),
        ({"kind": RuleKind.CROWD, "classes": frozenset({VESSEL})}, "crowd_n"),
        ({"kind": RuleKind.ENTER, "classes": frozenset()}, "class"),
    ],
)
def test_incomplete_rules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rule(**kwargs)


def test_rules_naming_unknown_zones_are_refused(site):
    with pytest.raises(ValueError, match="Inner harbour"):
        AlertEngine(site, rules=(Rule(RuleKind.ENTER, frozenset({VESSEL}), zones=frozenset({"Inner harbour"})),))


def test_overlapping_rules_with_one_key_are_refused(site):
    rules = (
        Rule(RuleKind.DWELL, frozenset({VESSEL}), dwell_s=60),
        Rule(RuleKind.DWELL, frozenset({VESSEL}), dwell_s=60),
    )
    with pytest.raises(ValueError, match="dwell60s"):
        AlertEngine(site, rules=rules)
    AlertEngine(site, rules=(rules[0], Rule(RuleKind.DWELL, frozenset({VESSEL}), dwell_s=600)))


@pytest.mark.parametrize(("risk", "expected"), [(1, "low"), (2, "low"), (3, "medium"), (4, "high"), (5, "critical")])
def test_severity_from_risk(risk, expected):
    assert severity(risk) == expected


def test_alert_json_round_trip(site):
    (alert,) = AlertEngine(site).process(frame(0, det(VESSEL, 4, ANCHORAGE)))
    data = alert.to_json_dict()
    assert data["rule"] == "enter" and data["object_class"] == "vessel" and data["severity"] == "high"
    assert type(alert).from_json_dict(data) == alert
    # Without AIS the keys are those every alert had before it: records signed then read the same.
    assert "mmsi" not in data and "vessel_name" not in data
    named = dataclasses.replace(alert, mmsi=224070101, vessel_name="VIRGEN DEL CARMEN")
    assert named.to_json_dict()["mmsi"] == 224070101
    assert type(alert).from_json_dict(named.to_json_dict()) == named


# --- detections -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("boat", VESSEL),
        ("Ship", VESSEL),
        ("car", VEHICLE),
        ("truck", VEHICLE),
        ("bus", VEHICLE),
        ("motorcycle", VEHICLE),
        ("person", PERSON),
        ("dog", OTHER),
        ("traffic light", OTHER),
        ("vessel", VESSEL),
    ],
)
def test_object_class_from_label(label, expected):
    assert ObjectClass.from_name(label) is expected


class FakeTensor:
    """Stands in for a torch tensor on a GPU: np.asarray works only after .cpu()."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def cpu(self):
        return self._values

    def __array__(self, *args, **kwargs):
        raise TypeError("can't convert cuda tensor to numpy; use .cpu() first")


def fake_results(with_ids, tensor=np.asarray):
    boxes = SimpleNamespace(
        xyxy=tensor([[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 9.0, 9.0]]),
        conf=tensor([0.9, 0.5, 0.25]),
        cls=tensor([8.0, 0.0, 16.0]),
        id=tensor([4.0, 5.0, 6.0]) if with_ids else None,
    )
    return SimpleNamespace(boxes=boxes, names={0: "person", 8: "boat", 16: "dog"})


@pytest.mark.parametrize("with_ids", [True, False], ids=["tracked", "untracked"])
@pytest.mark.parametrize("tensor", [np.asarray, FakeTensor], ids=["numpy", "tensor"])
@pytest.mark.parametrize("wrap", [lambda r: r, lambda r: [r]], ids=["result", "list"])
def test_from_ultralytics_duck_types_results(with_ids, tensor, wrap):
    dets = Detections.from_ultralytics(wrap(fake_results(with_ids, tensor)), "cam1", T0, 17)

    assert (dets.source, dets.frame_time_s, dets.frame_index, len(dets)) == ("cam1", T0, 17, 3)
    assert [d.object_class for d in dets] == [VESSEL, PERSON, OTHER]
    assert [d.confidence for d in dets] == pytest.approx([0.9, 0.5, 0.25])
    assert dets.items[0].box_px == (10.0, 20.0, 30.0, 40.0)
    assert [d.track_id for d in dets] == ([4, 5, 6] if with_ids else [None, None, None])
    assert all(isinstance(d.track_id, int | None) and isinstance(d.confidence, float) for d in dets)


def test_from_ultralytics_names_override_and_empty_boxes():
    dets = Detections.from_ultralytics(
        fake_results(False), "cam1", T0, 0, names=["car", "x", "y", "z", "w", "v", "u", "t", "bus"]
    )
    assert [d.object_class for d in dets] == [VEHICLE, VEHICLE, OTHER]
    empty = SimpleNamespace(boxes=SimpleNamespace(xyxy=np.zeros((0, 4)), conf=[], cls=[], id=None), names={})
    assert len(Detections.from_ultralytics(empty, "cam1", T0, 0)) == 0
    assert len(Detections.from_ultralytics(SimpleNamespace(boxes=None), "cam1", T0, 0)) == 0


def test_detections_helpers():
    dets = frame(
        0,
        det(VESSEL, 1, ANCHORAGE),
        Detection(PERSON, 0.8, (0, 0, 1, 1), track_id=2),
        Detection(VEHICLE, 0.7, (0, 0, 1, 1), x_m=1.0, y_m=2.0),
    )
    assert [d.object_class for d in dets.of_class(VESSEL, VEHICLE)] == [VESSEL, VEHICLE]
    assert [d.object_class for d in dets.located()] == [VESSEL, VEHICLE]
    assert [d.track_id for d in dets.tracked()] == [1, 2]
    assert dets.located().frame_time_s == dets.frame_time_s
