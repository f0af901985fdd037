"""AIS in the operator's window: real sentences over UDP to the window's feed, its vessels on the map, its
state in the status line, the AIS alerts' pins and rows, and bound tracks named on the map."""

from __future__ import annotations

import socket

import pyais
import pytest
from PyQt6.QtCore import Qt

from groundstation.app.alerts_panel import AlertsModel
from groundstation.app.map_payload import ais_target_payload, alert_payload, detections_payload, ship_type_text
from groundstation.app.video_panel import StreamConfig
from sitl.testdata import SITES_DIR
from vision.ais.model import AisClass, AisTarget
from vision.alerts import Alert, RuleKind, severity
from vision.detections import Detection, Detections, ObjectClass

pytestmark = pytest.mark.gui

SITE = SITES_DIR / "algeciras-port.geojson"
T0 = 1_760_000_000.0
WITNESS, DRIFTER = 224000001, 224000002  # in the Eastern anchorage: a named cargo ship, and one giving no heading


def sentences(data: dict) -> list[str]:
    return pyais.encode_dict(data, radio_channel="A", talker_id="AI", sentence_type="VDM")


def harbour_traffic() -> list[str]:
    position = {"type": 1, "speed": 8.0, "lat": 36.127, "lon": -5.426, "course": 85.0, "heading": 90}
    static = {"type": 5, "mmsi": WITNESS, "callsign": "EA1234", "shipname": "SEA WITNESS", "ship_type": 70,
              "to_bow": 80, "to_stern": 40, "to_port": 8, "to_starboard": 8}  # fmt: skip
    drifter = {"type": 1, "mmsi": DRIFTER, "speed": 3.0, "lat": 36.125, "lon": -5.421, "course": 45.0, "heading": 511}
    return sentences({**position, "mmsi": WITNESS}) + sentences(static) + sentences(drifter)


def send(address: tuple[str, int], lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto("\r\n".join(lines).encode(), address)


def ais_alert(rule: RuleKind, n: int, **fields) -> Alert:
    base = dict(alert_id=f"vehicle 1:{rule.value}-{n}", time_s=T0 + n, iso_time="", rule=rule,
                zone="Eastern anchorage", risk=4, severity=severity(4), object_class=ObjectClass.VESSEL, track_id=n,
                lat_deg=36.126 + n * 2e-4, lon_deg=-5.424, count=1, message=f"{rule.value} {n}",
                source="vehicle 1")  # fmt: skip
    return Alert(**{**base, **fields})


@pytest.fixture
def ais_window(window, qtbot):
    """The window on the Algeciras port with a UDP feed on a clock the test moves."""
    assert window.open_site(SITE)
    now = [T0]
    assert window.open_ais("udp://127.0.0.1:0", clock=lambda: now[0])
    yield window, now


def test_vessels_on_ais_show_on_the_map_with_their_symbol_name_and_heading_and_go_when_stale(
    ais_window, qtbot, screenshot
):
    window, now = ais_window
    assert window.ais_status.isVisible()
    assert window.ais_status.text().startswith("AIS waiting for the first line")
    send(window.ais.feed.source.address, harbour_traffic())
    # The window's timer (once a second) sends the table to the map.
    qtbot.waitUntil(lambda: sorted(window.map.js("bw.inspect.aisTargets()")) == [WITNESS, DRIFTER], timeout=10000)
    qtbot.waitUntil(lambda: window.map.js(f"bw.inspect.aisTarget({WITNESS})")["label"] == "SEA WITNESS", timeout=10000)

    witness = window.map.js(f"bw.inspect.aisTarget({WITNESS})")
    assert witness["symbol"] and witness["onMap"] and witness["rotation"] == "rotate(90deg)"
    assert witness["lat"] == pytest.approx(36.127, abs=1e-4) and witness["lon"] == pytest.approx(-5.426, abs=1e-4)
    assert witness["popup"][:5] == [
        "SEA WITNESS",
        f"MMSI {WITNESS}, class A",
        "call sign EA1234",
        "type 70 (cargo)",
        "length 120 m",
    ]
    assert witness["popup"][5] == "SOG 8.0 kn, COG 85°, heading 90°"
    assert witness["popup"][6].startswith("report 0 s old, position ±")
    drifter = window.map.js(f"bw.inspect.aisTarget({DRIFTER})")
    # No heading given: turned to its course; no name: its MMSI.
    assert drifter["rotation"] == "rotate(45deg)" and drifter["label"] == str(DRIFTER)
    assert window.ais_status.text() == "AIS live, 2 vessel(s)"
    assert window.ais_status.styleSheet() == ""
    assert window.ais_status.toolTip().startswith("AIS udp://127.0.0.1:0: live, 2 vessel(s)")

    window.map.centre_on(36.126, -5.4235, 16)
    qtbot.wait(600)
    path = screenshot(window, "app-ais-targets")
    assert path.stat().st_size > 10_000

    # Ten minutes of silence: the vessels leave the table and the map, and the feed is dead, in red.
    now[0] += 600.0
    qtbot.waitUntil(lambda: window.map.js("bw.inspect.aisTargets()") == [], timeout=10000)
    assert window.ais_status.text() == "AIS dead: no line for 10m00s, 0 vessel(s)"
    assert "c62828" in window.ais_status.styleSheet()


def test_a_new_site_opens_the_feed_again_and_closing_it_clears_the_map(ais_window, qtbot):
    window, _now = ais_window
    first = window.ais.feed
    send(first.source.address, harbour_traffic())
    qtbot.waitUntil(lambda: len(window.map.js("bw.inspect.aisTargets()")) == 2, timeout=10000)

    assert window.open_site(SITES_DIR / "tarifa-coast.geojson")
    assert window.ais.feed is not None and window.ais.feed is not first
    # The old feed's vessels leave the map with it; the new one starts empty.
    qtbot.waitUntil(lambda: window.map.js("bw.inspect.aisTargets()") == [], timeout=10000)
    window.close_ais()
    assert window.ais.feed is None and not window.ais_status.isVisible()


def test_streams_with_a_pose_get_the_feed_and_get_the_new_one_when_it_is_opened_again(ais_window, qtbot, tmp_path):
    window, _now = ais_window
    missing = str(tmp_path / "no-such-video.mp4")  # the stream keeps trying: its pipeline is what matters here
    window.add_stream(StreamConfig("vehicle 1", missing, "udpin://127.0.0.1:0", vehicle=0))
    window.add_stream(StreamConfig("no pose", missing))
    first = window.ais.feed
    assert window.video_panel.worker("vehicle 1").ais is first
    assert window.video_panel.worker("no pose").ais is None  # AIS is placed by the camera's pose
    assert window.open_site(SITES_DIR / "tarifa-coast.geojson")
    assert window.ais.feed is not first and window.video_panel.worker("vehicle 1").ais is window.ais.feed
    window.close_ais()
    assert window.video_panel.worker("vehicle 1").ais is None


def test_a_feed_that_cannot_open_is_said_in_the_status_line(window, qtbot):
    assert window.open_site(SITE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        host, port = taken.getsockname()
        assert not window.open_ais(f"udp://{host}:{port}")
    assert window.ais.feed is None
    assert window.ais_status.text().startswith(f"AIS: udp://{host}:{port}: cannot listen for AIS there")
    assert "c62828" in window.ais_status.styleSheet()


def test_without_a_site_the_feed_waits_for_one(window, qtbot):
    assert not window.open_ais("udp://127.0.0.1:0")
    assert window.ais_status.text() == "AIS udp://127.0.0.1:0: waiting for a site to place its vessels"
    assert window.open_site(SITE)
    assert window.ais.feed is not None
    assert window.ais_status.text().startswith("AIS waiting for the first line")


def test_dark_vessel_and_ais_not_seen_alerts_stand_out_on_the_map_and_in_the_panel(window, qtbot, screenshot):
    assert window.open_site(SITE)
    dark = ais_alert(RuleKind.DARK_VESSEL, 1)
    unseen = ais_alert(RuleKind.AIS_NOT_SEEN, 2, mmsi=WITNESS, vessel_name="SEA WITNESS", track_id=None)
    entry = ais_alert(RuleKind.ENTER, 3, mmsi=DRIFTER, vessel_name=None)
    for alert in (dark, unseen, entry):
        window.video_panel.alert.emit(alert, None)  # as a stream's pipeline raises it
    qtbot.waitUntil(lambda: len(window.map.js("bw.inspect.alerts()")) == 3, timeout=10000)

    pins = {a.alert_id: window.map.js(f"bw.inspect.alertPin({a.alert_id!r})") for a in (dark, unseen, entry)}
    assert (pins[dark.alert_id]["mark"], pins[dark.alert_id]["ais"]) == ("D", True)
    assert pins[dark.alert_id]["background"] == "rgb(33, 33, 33)"
    assert (pins[unseen.alert_id]["mark"], pins[unseen.alert_id]["ais"]) == ("?", True)
    assert (pins[entry.alert_id]["mark"], pins[entry.alert_id]["ais"]) == ("!", False)
    assert f"vessel: SEA WITNESS (MMSI {WITNESS})" in pins[unseen.alert_id]["popup"]
    assert pins[dark.alert_id]["popup"][1].startswith("rule: dark-vessel, zone: Eastern anchorage")

    model = window.alerts_model
    rows = {model.alert(r).alert_id: r for r in range(model.rowCount())}

    def cell(alert: Alert, column: int, role=Qt.ItemDataRole.DisplayRole):
        return model.data(model.index(rows[alert.alert_id], column), role)

    assert cell(dark, AlertsModel.RULE) == "dark-vessel" and cell(unseen, AlertsModel.RULE) == "ais-not-seen"
    assert cell(dark, AlertsModel.RULE, Qt.ItemDataRole.BackgroundRole).color().name() == "#212121"
    assert cell(entry, AlertsModel.RULE, Qt.ItemDataRole.BackgroundRole) is None
    assert cell(unseen, AlertsModel.MESSAGE) == f"ais-not-seen 2 — SEA WITNESS (MMSI {WITNESS})"
    assert cell(entry, AlertsModel.MESSAGE) == f"enter 3 — MMSI {DRIFTER}"
    assert cell(dark, AlertsModel.MESSAGE) == "dark-vessel 1"
    assert "no AIS names it" in cell(dark, AlertsModel.RULE, Qt.ItemDataRole.ToolTipRole)
    assert f"vessel: SEA WITNESS (MMSI {WITNESS})" in cell(unseen, AlertsModel.MESSAGE, Qt.ItemDataRole.ToolTipRole)
    assert cell(dark, AlertsModel.EVIDENCE) == ""  # the recorded-run column is still there, empty when live

    window.map.centre_on(36.1265, -5.424, 17)
    qtbot.wait(600)
    screenshot(window, "app-ais-alerts")


def test_detections_of_tracks_ais_has_bound_are_labelled_with_the_vessel(window, qtbot, screenshot):
    bound = Detection(ObjectClass.VESSEL, 0.9, (0, 0, 1, 1), track_id=7, lat_deg=36.127, lon_deg=-5.425,
                      mmsi=WITNESS, vessel_name="SEA WITNESS")  # fmt: skip
    unnamed = Detection(ObjectClass.VESSEL, 0.8, (0, 0, 1, 1), track_id=8, lat_deg=36.126, lon_deg=-5.424)
    window.video_panel.detections.emit(Detections("vehicle 1", T0, 1, (bound, unnamed)))
    qtbot.waitUntil(lambda: len(window.map.js("bw.inspect.detections()")) == 2, timeout=10000)
    named = window.map.js("bw.inspect.detection('vehicle 1#7')")
    assert named["label"] == f"SEA WITNESS (MMSI {WITNESS})" and named["permanent"]
    assert named["text"] == f"SEA WITNESS (MMSI {WITNESS})"
    assert named["popup"] == [f"SEA WITNESS (MMSI {WITNESS})", "vessel #7", "90% — vehicle 1"]
    other = window.map.js("bw.inspect.detection('vehicle 1#8')")
    assert other["label"] is None and not other["permanent"]
    window.map.centre_on(36.1265, -5.4245, 17)
    qtbot.wait(300)
    screenshot(window.map, "app-ais-bound-detection")


# ---- the payloads, without a window -----------------------------------------------------------


def target(**fields) -> AisTarget:
    base = dict(mmsi=WITNESS, time_s=T0, lat_deg=36.127, lon_deg=-5.426, x_m=0.0, y_m=0.0, error_m=12.0, age_s=75.0,
                sog_kn=None, cog_deg=None, heading_deg=None, ais_class=AisClass.B)  # fmt: skip
    return AisTarget(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "heading", "label", "motion"),
    [
        ({}, None, str(WITNESS), "SOG not available, COG not available"),
        ({"cog_deg": 200.0, "sog_kn": 0.4}, 200.0, str(WITNESS), "SOG 0.4 kn, COG 200°"),
        ({"cog_deg": 200.0, "heading_deg": 190.0, "name": "MAR"}, 190.0, "MAR",
         "SOG not available, COG 200°, heading 190°"),
    ],
)  # fmt: skip
def test_an_ais_target_is_turned_to_its_heading_else_its_course(fields, heading, label, motion):
    payload = ais_target_payload(target(**fields))
    assert (payload["heading"], payload["label"], payload["lines"][5]) == (heading, label, motion)
    assert payload["lines"][6] == "report 1 min 15 s old, position ±12 m"
    assert payload["lines"][2:5] == ["call sign —", "type —", "length —"]


@pytest.mark.parametrize(
    ("ship_type", "text"), [(None, "—"), (0, "—"), (37, "37 (pleasure craft)"), (84, "84 (tanker)"), (12, "12")]
)
def test_ship_types_are_named(ship_type, text):
    assert ship_type_text(ship_type) == text


def test_alert_and_detection_payloads_carry_the_vessel():
    assert alert_payload(ais_alert(RuleKind.DARK_VESSEL, 1))["mark"] == "D"
    assert alert_payload(ais_alert(RuleKind.AIS_NOT_SEEN, 1))["mark"] == "?"
    assert alert_payload(ais_alert(RuleKind.DWELL, 1))["mark"] is None
    bound = Detection(ObjectClass.VESSEL, 0.9, (0, 0, 1, 1), track_id=7, lat_deg=36.1, lon_deg=-5.4, mmsi=WITNESS)
    [item] = detections_payload(Detections("cam", T0, 1, (bound,)), iter(range(10)))
    assert item["label"] == f"MMSI {WITNESS}" and item["tooltip"][:2] == [f"MMSI {WITNESS}", "vessel #7"]
