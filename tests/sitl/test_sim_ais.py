"""The synthetic world's vessels on AIS: rates, positions, dark and spoofing vessels, files, UDP, `sim --ais`."""

from __future__ import annotations

import itertools
import json
import socket
from contextlib import nullcontext as does_not_raise

import pyais
import pytest
import shapely

from groundstation.commands.cli import main
from missions.errors import InputError, UserError
from missions.formats import BUNDLED_SITES, load_site
from sitl.ports import free_port_block
from sitl.synthetic.ais import (
    AisBroadcaster,
    AisScenario,
    Role,
    VesselAis,
    udp_sender,
    world_vessels,
)
from sitl.synthetic.world import VESSEL_KINDS, World, WorldObject
from vision.ais.model import AisClass

KN = 1852.0 / 3600.0
KINDS = {k.name: k for k in VESSEL_KINDS}
OFFSET_M = (300.0, -400.0)
PLACE_DEG = (36.10, -5.40)


@pytest.fixture(scope="module")
def site():
    return load_site(BUNDLED_SITES / "algeciras-port.geojson")


@pytest.fixture(scope="module")
def world(site):
    """Vessels on long straight runs (none turns in ten minutes), one per behaviour under test."""

    def boat(n: int, kind: str, speed_kn: float) -> WorldObject:
        path = shapely.LineString([(-8000.0, 200.0 * n), (8000.0, 200.0 * n + 3000.0)])
        return WorldObject(n + 1, KINDS[kind], (200, 200, 200), path, speed_kn * KN, phase_m=1000.0)

    vessels = (
        boat(0, "fishing boat", 10.0),  # class A under way
        boat(1, "coaster", 0.0),  # class A at anchor
        boat(2, "rib", 8.0),  # class B
        boat(3, "fishing boat", 10.0),  # spoofs an offset
        boat(4, "fast boat", 17.0),  # dark
        boat(5, "patrol boat", 12.0),  # spoofs a place
        boat(6, "patrol boat", 18.0),  # class A at 14-23 kn
    )
    return World.for_site(site).with_objects(vessels)


@pytest.fixture(scope="module")
def scenario():
    return AisScenario(
        {
            3: VesselAis(Role.SPOOF, offset_m=OFFSET_M),
            4: VesselAis(Role.DARK),
            5: VesselAis(Role.SPOOF, AisClass.A, place_deg=PLACE_DEG),
        },
        seed=5,
    )


@pytest.fixture(scope="module")
def twelve_minutes(world, scenario, site):
    """Every report of twelve simulated minutes (two static reports each), decoded: {vessel: [(time_s, message)]}."""
    broadcaster = AisBroadcaster(world, scenario, site.frame)
    heard: dict[int, list] = {}
    for t in range(0, 721, 5):
        for report in broadcaster.reports_until(float(t)):
            message = pyais.decode(*report.sentences)
            assert message.mmsi == report.mmsi and message.msg_type == report.msg_type
            heard.setdefault(report.vessel, []).append((report.time_s, message))
    return heard


def _times(heard: list, *msg_types: int) -> list[float]:
    return [t for t, m in heard if m.msg_type in msg_types]


@pytest.mark.parametrize(
    ("vessel", "msg_type", "interval_s"),
    [(0, 1, 10.0), (1, 1, 180.0), (2, 18, 30.0), (6, 1, 6.0), (5, 1, 180.0)],
    ids=["A 10 kn", "A anchored", "B", "A 18 kn", "A spoofing a mooring"],
)
def test_position_reports_come_at_ais_rates_from_a_random_phase(twelve_minutes, vessel, msg_type, interval_s):
    times = _times(twelve_minutes[vessel], msg_type)
    assert 0 <= times[0] < interval_s
    assert all(b - a == pytest.approx(interval_s) for a, b in itertools.pairwise(times))
    assert len(times) == pytest.approx(720 / interval_s, abs=1)


def test_statics_every_six_minutes_type_5_for_a_type_24_a_and_b_for_b(twelve_minutes):
    class_a = _times(twelve_minutes[0], 5)
    assert len(class_a) == 2 and class_a[0] < 360 and class_a[1] - class_a[0] == pytest.approx(360.0)
    parts = [(t, m.partno) for t, m in twelve_minutes[2] if m.msg_type == 24]
    assert len(parts) == 4 and {p for _, p in parts} == {0, 1}
    assert parts[2][0] - parts[0][0] == pytest.approx(360.0)
    name = next(m for _, m in twelve_minutes[2] if m.msg_type == 24 and m.partno == 0).shipname
    statics = next(m for _, m in twelve_minutes[2] if m.msg_type == 24 and m.partno == 1)
    assert name and statics.callsign and statics.ship_type == 37 and statics.to_bow + statics.to_stern == 8


def test_normal_vessels_report_where_the_world_has_them(twelve_minutes, world, site):
    vessels = world_vessels(world)
    for index in (0, 1, 2, 6):
        for t, m in twelve_minutes[index]:
            if m.msg_type not in (1, 18):
                continue
            x_m, y_m, heading_deg, speed_m_s = vessels[index].pose_at(t)
            assert site.frame.xy(m.lon, m.lat) == pytest.approx((x_m, y_m), abs=2.0)
            assert m.speed == pytest.approx(speed_m_s / KN, abs=0.15)
            assert m.heading == round(heading_deg) % 360
            if speed_m_s > 0:
                assert (m.course - heading_deg + 180) % 360 - 180 == pytest.approx(0, abs=0.2)
    assert {m.status for t, m in twelve_minutes[1] if m.msg_type == 1} == {1}  # at anchor
    assert {m.status for t, m in twelve_minutes[0] if m.msg_type == 1} == {0}  # under way using engine


def test_spoofers_report_the_offset_or_the_false_place_and_dark_vessels_nothing(twelve_minutes, world, site):
    offset_vessel = world_vessels(world)[3]
    positions = [(t, m) for t, m in twelve_minutes[3] if m.msg_type == 1]
    assert len(positions) >= 70
    for t, m in positions:
        x_m, y_m, _, _ = offset_vessel.pose_at(t)
        assert site.frame.xy(m.lon, m.lat) == pytest.approx((x_m + OFFSET_M[0], y_m + OFFSET_M[1]), abs=2.0)
    for _, m in twelve_minutes[5]:
        if m.msg_type == 1:
            assert (m.lat, m.lon, m.speed, m.status) == (pytest.approx(PLACE_DEG[0]), pytest.approx(PLACE_DEG[1]), 0, 5)
    assert 4 not in twelve_minutes


def test_mmsis_are_stable_unique_and_spanish(world, scenario, site, twelve_minutes):
    a = AisBroadcaster(world, scenario, site.frame).identities
    b = AisBroadcaster(world, AisScenario(), site.frame).identities
    assert [i.mmsi for i in a] == [i.mmsi for i in b]
    assert len({i.mmsi for i in a}) == len(a) and all(str(i.mmsi).startswith("224") for i in a)
    heard = {m.mmsi for reports in twelve_minutes.values() for _, m in reports}
    assert heard == {a[i].mmsi for i in (0, 1, 2, 3, 5, 6)}


def test_ground_truth_says_who_is_dark_and_who_lies(world, scenario, site):
    broadcaster = AisBroadcaster(world, scenario, site.frame)
    truth = json.loads(json.dumps(broadcaster.ground_truth()))
    vessels = truth["vessels"]
    assert [v["index"] for v in vessels] == list(range(7))
    assert [v["role"] for v in vessels] == ["normal", "normal", "normal", "spoof", "dark", "spoof", "normal"]
    assert [v["class"] for v in vessels] == ["A", "A", "B", "A", "B", "A", "A"]
    assert vessels[3]["offset_m"] == list(OFFSET_M) and vessels[5]["place_deg"] == list(PLACE_DEG)
    assert [v["mmsi"] for v in vessels] == [i.mmsi for i in broadcaster.identities]
    assert all(v["name"] for v in vessels)


def test_step_hands_each_message_to_send_and_returns_the_sentences(world, scenario, site):
    sent: list = []
    broadcaster = AisBroadcaster(world, scenario, site.frame, sent.append)
    sentences = broadcaster.step(60.0)
    assert sentences == [s for message in sent for s in message]
    assert all(s.startswith("!AIVDM,") for s in sentences)
    assert broadcaster.step(60.0) == []  # nothing is said twice


def test_a_random_scenario_round_trips_through_its_file(site, tmp_path):
    world = World.for_site(site, seed=3)
    scenario = AisScenario.random(world, seed=9, dark=2, spoof=2)
    assert scenario == AisScenario.random(world, seed=9, dark=2, spoof=2)
    roles = [scenario.of(i).role for i in range(len(world_vessels(world)))]
    assert roles.count(Role.DARK) == 2 and roles.count(Role.SPOOF) == 2
    path = tmp_path / "ais.json"
    scenario.save(path)
    assert AisScenario.load(path) == scenario


@pytest.mark.parametrize(
    ("text", "feature", "expectation"),
    [
        ('{"vessels": [{"index": 0, "role": "dark"}]}', None, does_not_raise()),
        ("{not json", None, pytest.raises(InputError, match="not JSON")),
        ('{"seed": "x"}', "seed", pytest.raises(InputError, match="integer")),
        ('{"vessels": {}}', "vessels", pytest.raises(InputError)),
        ('{"vessels": [{"index": -1}]}', "vessels[0].index", pytest.raises(InputError)),
        ('{"vessels": [{"index": 0}, {"index": 1, "role": "ghost"}]}', "vessels[1].role", pytest.raises(InputError)),
        ('{"vessels": [{"index": 0, "class": "C"}]}', "vessels[0].class", pytest.raises(InputError)),
        ('{"vessels": [{"index": 0, "role": "spoof"}]}', "vessels[0].role", pytest.raises(InputError)),
        (
            '{"vessels": [{"index": 0, "role": "spoof", "offset_m": [1]}]}',
            "vessels[0].offset_m",
            pytest.raises(InputError),
        ),
        ('{"vessels": [{"index": 0, "offset_m": [1, 2]}]}', "vessels[0].offset_m", pytest.raises(InputError)),
        (
            '{"vessels": [{"index": 0, "role": "spoof", "place_deg": [95, 0]}]}',
            "vessels[0].place_deg",
            pytest.raises(InputError),
        ),
        ('{"vessels": [{"index": 0}, {"index": 0}]}', "vessels[1].index", pytest.raises(InputError)),
    ],
)
def test_a_broken_scenario_file_names_the_file_and_the_field(tmp_path, text, feature, expectation):
    path = tmp_path / "scenario.json"
    path.write_text(text)
    with expectation as caught:
        AisScenario.load(path)
    if caught is not None:
        assert str(path) in str(caught.value) and (feature is None or caught.value.feature == feature)


def test_a_scenario_for_a_vessel_the_world_lacks_is_refused(world, site):
    with pytest.raises(InputError, match="only 7 vessels"):
        AisBroadcaster(world, AisScenario({7: VesselAis(Role.DARK)}, source="s.json"), site.frame)


def test_the_udp_sender_sends_each_message_as_one_datagram():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2.0)
        data = {"type": 5, "mmsi": 224070100, "shipname": "ESTRELLA", "callsign": "EB0000", "ship_type": 70}
        sentences = pyais.encode_dict(data, talker_id="AI", sentence_type="VDM", seq_id=1)
        send = udp_sender(f"udp://127.0.0.1:{receiver.getsockname()[1]}")
        try:
            send(sentences)
            send(sentences[:1])
            first, second = receiver.recv(4096).decode(), receiver.recv(4096).decode()
        finally:
            send.close()
    assert first == "".join(s + "\r\n" for s in sentences) and second.count("\r\n") == 1
    assert pyais.decode(*first.split()).shipname == "ESTRELLA"


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:10110", "udp://127.0.0.1", "udp://:10110", "127.0.0.1:10110",
                                 "udp://127.0.0.1:99999", "udp://127.0.0.1:x"])  # fmt: skip
def test_a_bad_udp_address_is_named_with_what_is_expected(url):
    with pytest.raises(UserError) as caught:
        udp_sender(url)
    assert url in str(caught.value) and "udp://HOST:PORT" in str(caught.value)


def test_sim_with_cameras_broadcasts_the_worlds_ais_on_udp(tmp_path, capsys):
    base, video = free_port_block(1), free_port_block(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{receiver.getsockname()[1]}"
        args = ["sim", "--camera", "--camera-dir", str(tmp_path), "--base-port", str(base), "--camera-base-port",
                str(video), "--camera-fps", "2", "--speed-factor", "4", "--duration", "8", "--pki",
                str(tmp_path / "pki"), "--ais", url]  # fmt: skip
        assert main(args) == 0
        receiver.setblocking(False)
        datagrams = []
        for _ in range(10_000):
            try:
                datagrams.append(receiver.recv(4096).decode())
            except BlockingIOError:
                break
    assert f"AIS: 13 vessels to {url}" in capsys.readouterr().out
    truth = json.loads((tmp_path / "ais-truth.json").read_text())
    loud = {v["mmsi"] for v in truth["vessels"] if v["role"] != "dark"}
    dark = {v["mmsi"] for v in truth["vessels"] if v["role"] == "dark"}
    assert len(dark) == 1 and len(loud) == 12
    heard = {pyais.decode(*d.split()).mmsi for d in datagrams}
    # 8 s at up to 4×: at least several position reports, even when a loaded machine slows the simulation
    assert len(datagrams) >= 3 and heard <= loud
