"""The app sends its picture to TAK: a real window, a real CoT receiver on the loopback.

The fleet's drones and the site's zones arrive as TAK shows them; the destinations are a setting
(Run → Send to TAK…) that refuses a bad URL naming it, persists across a restart, and that
``--cot`` overrides for one session; changing them moves the link, and the streams, to the new
ones; the status bar says how sending goes; and what units publish on the bus goes to TAK too.

Screenshot: out/screenshots/app-cot.png (the status bar's TAK at the right).
"""

from __future__ import annotations

import json
import re
import socket

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction

from groundstation.app.main_window import MainWindow
from groundstation.app.settings import RUNS_DIR_KEY, TAK_URLS_KEY, app_settings
from groundstation.app.station_link import BusConfig
from groundstation.app.tak_dialog import TakDialog
from groundstation.app.tiles import TileSource
from groundstation.app.video_panel import StreamConfig
from groundstation.commands.cli import main as borderwatch
from groundstation.link import identity as ids
from groundstation.link import pki
from missions.formats import load_site
from missions.geo import haversine_m
from missions.site import Role
from sitl.tak import ReceivedCot, TakReceiver
from sitl.testdata import SITES_DIR
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus.address import parse_broker_url
from vision.bus.outbox import Outbox
from vision.bus.publisher import Endpoint, Publisher
from vision.cot.events import alert_uid, zone_uid
from vision.cot.link import cot_site_name
from vision.detections import ObjectClass

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]

SITE = SITES_DIR / "algeciras-port.geojson"
NAME = "algeciras-port"  # the site as its events' uid atom
DRONE_1 = f"borderwatch.{NAME}.drone-1"
WAIT_MS = 20000


@pytest.fixture
def tak():
    receivers: list[TakReceiver] = []

    def make() -> TakReceiver:
        receivers.append(TakReceiver.udp())
        return receivers[-1]

    yield make
    for receiver in receivers:
        receiver.close()


@pytest.fixture
def make_window(qtbot, tmp_path):
    """`make_window(cot_urls=None, bus=None)`: the operator's window on tmp_path's settings file, map ready;
    `cot_urls` as `borderwatch gui --cot` gives them. Each window runs its own fleet loop."""
    made: list[MainWindow] = []

    def make(cot_urls=None, bus=None) -> MainWindow:
        settings = app_settings(tmp_path / "settings.ini")
        settings.setValue(RUNS_DIR_KEY, str(tmp_path / "runs"))
        w = MainWindow(settings, tiles=TileSource.none(), bus=bus, cot_urls=cot_urls)
        qtbot.addWidget(w)
        made.append(w)
        w.show()
        qtbot.waitUntil(lambda: w.map.is_ready, timeout=WAIT_MS)
        return w

    yield make
    for w in made:
        w.close()
        assert w.tak.wait_closed(4.0), "closing the window flushes and ends its link to TAK within seconds"


def latest(received: list[ReceivedCot], uid: str) -> ReceivedCot | None:
    return next((r for r in reversed(received) if r.uid == uid), None)


def drone_with_battery(received: list[ReceivedCot]):
    found = latest(received, DRONE_1)
    return found.event if found is not None and found.event.find("detail/status") is not None else None


def zones(received: list[ReceivedCot], name: str = NAME) -> dict[str, str]:
    """uid: type of every zone event received for the site `name`."""
    return {r.uid: r.event.get("type", "") for r in received if r.uid.startswith(f"borderwatch.{name}.zone.")}


def expected_zones(name: str = NAME) -> set[str]:
    return {zone_uid(name, z.name) for z in load_site(SITE).zones if z.role in (Role.WATCH, Role.NO_FLY)}


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_fleet_and_the_site_zones_reach_tak_and_the_status_bar_says_so(
    make_window, tak, qtbot, sim_fleet, screenshot
):
    receiver = tak()
    w = make_window(cot_urls=[receiver.url])
    assert w.open_site(SITE)
    vehicle = sim_fleet(1).vehicles[0]
    with qtbot.waitSignal(w.fleet.connected, timeout=60000):
        w.connect_fleet([vehicle.connect_url])

    # Telemetry brings the battery too, which a camera's pose does not.
    qtbot.waitUntil(lambda: drone_with_battery(receiver.received) is not None, timeout=WAIT_MS)
    drone = drone_with_battery(receiver.received)
    assert drone.get("type") == "a-f-A-M-F-Q"
    point = drone.find("point")
    lat, lon = float(point.get("lat")), float(point.get("lon"))
    assert haversine_m(lat, lon, *vehicle.home) < 25.0, "the drone is where the simulator has it, on its pad"

    got = zones(receiver.received)
    assert set(got) == expected_zones()
    assert set(got.values()) == {"u-d-f", "u-d-c-c"}  # the polygons, and the fuel terminal's circle

    # Refreshed once a second: the zones and at least the drone's first event.
    shown = re.compile(r"TAK: 1 destination, (\d+) sent")
    qtbot.waitUntil(lambda: int((shown.fullmatch(w.tak.label.text()) or [0, 0])[1]) > len(got), timeout=5000)
    assert w.tak.label.isVisible()
    assert f"{receiver.url}: connected" in w.tak.label.toolTip()
    assert w.settings.value(TAK_URLS_KEY) is None, "--cot is for the session: the setting is left alone"
    w.map.centre_on(*vehicle.home, 16)
    qtbot.wait(600)
    path = screenshot(w, "app-cot")
    assert path.stat().st_size > 10_000


def test_the_dialog_refuses_a_bad_url_naming_it_and_keeps_the_setting(make_window, tak, qtbot):
    receiver = tak()
    w = make_window()
    assert w.tak.urls == () and not w.tak.label.isVisible() and w.tak.link is None
    (action,) = [a for a in w.findChildren(QAction) if a.text() == "Send to &TAK…"]
    action.trigger()
    (dialog,) = w.findChildren(TakDialog)
    assert dialog.isVisible() and dialog.edit.toPlainText() == ""
    dialog.edit.setPlainText(f"{receiver.url}\nftp://x\n")
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert dialog.isVisible(), "a bad URL keeps the dialog open"
    assert dialog.error.isVisible() and dialog.error.text().startswith("ftp://x: not a CoT destination")
    assert w.tak.urls == () and w.tak.link is None
    assert w.settings.value(TAK_URLS_KEY) is None

    dialog.edit.setPlainText(f"  {receiver.url}  \n\n")
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    assert w.tak.urls == (receiver.url,) and w.tak.link is not None
    assert json.loads(w.settings.value(TAK_URLS_KEY)) == [receiver.url]
    assert w.open_site(SITE)
    qtbot.waitUntil(lambda: set(zones(receiver.received)) == expected_zones(), timeout=WAIT_MS)


def test_the_setting_persists_across_a_restart_and_cot_overrides_it_for_one_session(make_window, tak, qtbot):
    saved, session = tak(), tak()
    first = make_window()
    first.tak.set_urls([saved.url])
    first.close()

    second = make_window()
    assert second.tak.urls == (saved.url,) and not second.tak.overridden
    assert second.open_site(SITE)
    qtbot.waitUntil(lambda: set(zones(saved.received)) == expected_zones(), timeout=WAIT_MS)
    second.close()

    third = make_window(cot_urls=[session.url])
    assert third.tak.urls == (session.url,) and third.tak.overridden
    assert third.open_site(SITE)
    qtbot.waitUntil(lambda: set(zones(session.received)) == expected_zones(), timeout=WAIT_MS)
    dialog = third.tak.edit(third)
    qtbot.addWidget(dialog)
    assert dialog.urls() == (session.url,)
    dialog.reject()
    third.close()
    assert json.loads(app_settings(third.settings.fileName()).value(TAK_URLS_KEY)) == [saved.url]


def test_new_destinations_move_the_link_and_the_streams_to_them(make_window, tak, qtbot, tmp_path):
    old, new = tak(), tak()
    w = make_window(cot_urls=[old.url])
    assert w.open_site(SITE)
    missing = str(tmp_path / "no-such-video.mp4")  # the stream keeps trying: its pipeline is what matters here
    w.add_stream(StreamConfig("camera-1", missing, "udpin://127.0.0.1:0", vehicle=0))
    first = w.tak.link
    assert first is not None and w.video_panel.worker("camera-1").cot is first
    qtbot.waitUntil(lambda: set(zones(old.received)) == expected_zones(), timeout=WAIT_MS)

    w.tak.set_urls([new.url])
    assert w.tak.link is not None and w.tak.link is not first
    assert w.video_panel.worker("camera-1").cot is w.tak.link
    qtbot.waitUntil(lambda: set(zones(new.received)) == expected_zones(), timeout=WAIT_MS)
    assert w.tak.wait_closed(4.0), "the old link is closed, off the interface thread"

    # Another site: its events are named by it, on a link of its own.
    assert w.open_site(SITES_DIR / "tarifa-coast.geojson")
    name = cot_site_name(load_site(SITES_DIR / "tarifa-coast.geojson"))
    qtbot.waitUntil(lambda: bool(zones(new.received, name)), timeout=WAIT_MS)
    assert w.video_panel.worker("camera-1").cot is w.tak.link

    w.tak.set_urls([])
    assert w.tak.link is None and not w.tak.label.isVisible()
    assert w.video_panel.worker("camera-1").cot is None


def test_a_destination_that_cannot_be_reached_is_said_in_the_status_bar_and_the_log(make_window, qtbot):
    url = f"tcp://127.0.0.1:{free_tcp_port()}"  # nobody listens
    w = make_window(cot_urls=[url])
    qtbot.waitUntil(lambda: w.tak.label.text() == f"TAK: {url}: retrying", timeout=WAIT_MS)
    assert "c62828" in w.tak.label.styleSheet()
    assert "last error: cannot connect" in w.tak.label.toolTip()
    qtbot.waitUntil(lambda: f"CoT {url}: cannot connect" in w.fleet_panel.log.toPlainText(), timeout=5000)


def test_the_gui_command_refuses_a_bad_destination_in_one_line_before_any_window(capsys):
    assert borderwatch(["gui", "--cot", "udp://127.0.0.1:6969", "--cot", "ftp://x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("borderwatch: error: --cot ftp://x: not a CoT destination") and err.count("\n") == 1


@pytest.mark.slow
def test_what_units_publish_on_the_bus_goes_to_tak(make_window, tak, qtbot, tmp_path):
    receiver = tak()
    w = make_window(cot_urls=[receiver.url], bus=BusConfig(units=1))
    assert w.open_site(SITE)
    qtbot.waitUntil(w.link.is_connected, timeout=WAIT_MS)
    info = w.link.info
    creds = pki.client_credentials(info.pki_dir, ids.unit(info.site, 1))
    address = parse_broker_url(info.url)
    endpoint = Endpoint(address.host, address.port, creds.ca, creds.cert, creds.key)
    again = tak()
    with Outbox(tmp_path / "outbox") as box, Publisher(endpoint, info.site, 1, box) as unit:
        unit.put_alert(unit_alert(1))
        uid = alert_uid(NAME, unit_alert(1).alert_id)
        qtbot.waitUntil(lambda: latest(receiver.received, uid) is not None, timeout=WAIT_MS)
        point = latest(receiver.received, uid).event.find("point")
        assert (float(point.get("lat")), float(point.get("lon"))) == pytest.approx((36.127, -5.4245))
        qtbot.waitUntil(lambda: w.alerts_model.rowCount() == 1, timeout=WAIT_MS)  # the app shows it as before

        # Other destinations: the station's receiver goes on as it was, into the new link.
        w.tak.set_urls([again.url])
        unit.put_alert(unit_alert(2))
        uid = alert_uid(NAME, unit_alert(2).alert_id)
        qtbot.waitUntil(lambda: latest(again.received, uid) is not None, timeout=WAIT_MS)
    assert latest(receiver.received, uid) is None


def unit_alert(n: int) -> Alert:
    return Alert(f"unit1:enter-anchorage-{n}", 1_750_000_000.0 + n, "2025-06-15T15:06:40.000Z", RuleKind.ENTER,
                 "Eastern anchorage", 4, AlertSeverity.HIGH, ObjectClass.VESSEL, n, 36.127, -5.4245, 1,
                 f"vessel {n} entered Eastern anchorage", "camera-1")  # fmt: skip
