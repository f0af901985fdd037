"""The map widget in a real QWebEngineView: what it draws, and what the user's clicks and drawings send back."""

from __future__ import annotations

import dataclasses
import math

import pytest
from PyQt6.QtCore import QCoreApplication, QEvent, QPoint, Qt, QUrl
from PyQt6.QtTest import QTest

from groundstation.app import map_view
from groundstation.app.map_view import MapView
from groundstation.fleet.state import VehicleState
from groundstation.runs.maps import MapRoute
from groundstation.runs.style import (
    LAUNCH_COLOR,
    NO_FLY_COLOR,
    NO_FLY_DASH,
    OPERATING_AREA_COLOR,
    RISK_COLORS,
    ROUTE_COLORS,
    SEVERITY_COLORS,
)
from missions.formats import load_site
from missions.site import Role
from sitl.testdata import SITES_DIR
from vision.alerts import Alert, RuleKind
from vision.detections import Detection, Detections, ObjectClass

pytestmark = pytest.mark.gui

ALGECIRAS = SITES_DIR / "algeciras-port.geojson"


@pytest.fixture(scope="module")
def site():
    return load_site(ALGECIRAS)


@pytest.fixture
def open_map(qtbot):
    """`open_map()` shows a new map; each is deleted after the test, before Qt's web profile is."""
    views = []

    def show() -> MapView:
        view = MapView()
        views.append(view)
        view.resize(900, 700)
        view.show()
        return view

    yield show
    for view in views:
        view.close()
        view.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)


@pytest.fixture
def view(open_map, qtbot):
    view = open_map()
    with qtbot.waitSignal(view.ready, timeout=30_000):
        pass
    return view


@pytest.fixture
def site_view(view, site):
    view.set_site(site)
    view.js("0")  # the calls before it have run
    return view


def settle(qtbot, ms: int = 400) -> None:
    """Let Leaflet finish its animations and Chromium paint a frame."""
    qtbot.wait(ms)


def point_of(view: MapView, lat: float, lon: float) -> QPoint:
    p = view.js(f"bw.inspect.point({lat}, {lon})")
    return QPoint(round(p["x"]), round(p["y"]))


def latlng_at(view: MapView, point: QPoint) -> tuple[float, float]:
    ll = view.js(f"bw.map.containerPointToLatLng([{point.x()}, {point.y()}])")
    return ll["lat"], ll["lng"]


def click(qtbot, view: MapView, point: QPoint) -> None:
    target = view.focusProxy()
    QTest.mouseMove(target, point)
    qtbot.wait(60)
    QTest.mouseClick(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    # Apart by more than a double-click interval, so that no click reads as a double click.
    qtbot.wait(600)


def drag(qtbot, view: MapView, start: QPoint, end: QPoint) -> None:
    target = view.focusProxy()
    QTest.mouseMove(target, start)
    qtbot.wait(60)
    QTest.mousePress(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    qtbot.wait(60)
    for step in range(1, 11):
        QTest.mouseMove(target, start + (end - start) * (step / 10))
        qtbot.wait(20)
    QTest.mouseRelease(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    qtbot.wait(400)


def make_state(vehicle: int, lat: float, lon: float, heading: float, link_ok: bool = True) -> VehicleState:
    return VehicleState(
        vehicle=vehicle,
        lat_deg=lat,
        lon_deg=lon,
        rel_alt_m=40.0,
        heading_deg=heading,
        ground_speed_m_s=8.0,
        battery_pct=81.0,
        flight_mode="MISSION",
        armed=True,
        link_ok=link_ok,
    )


def make_alert(alert_id: str = "cam1:enter-eastern-anchorage-7", severity: str = "high") -> Alert:
    return Alert(
        alert_id=alert_id,
        time_s=1_750_000_000.0,
        iso_time="2025-06-15T15:06:40.000Z",
        rule=RuleKind.ENTER,
        zone="Eastern anchorage",
        risk=4,
        severity=severity,
        object_class=ObjectClass.VESSEL,
        track_id=7,
        lat_deg=36.127,
        lon_deg=-5.4245,
        count=1,
        message="vessel 7 entered Eastern anchorage <b>ñ</b>",
        source="cam1",
    )


def test_the_page_loads_offline_and_draws_the_site_by_role_and_risk(site_view, site, qtbot, screenshot):
    view = site_view
    zones = {z["index"]: z for z in view.js("bw.inspect.zones()")}
    assert sorted(zones) == list(range(len(site.zones))) == list(range(6))
    expected_kind = {Role.OPERATING_AREA: "polygon", Role.WATCH: "polygon", Role.LAUNCH: "point"}
    for index, zone in enumerate(site.zones):
        drawn = zones[index]
        if zone.role is Role.OPERATING_AREA:
            assert (drawn["color"], drawn["fillColor"]) == (OPERATING_AREA_COLOR, None)
        elif zone.role is Role.NO_FLY:
            assert (drawn["color"], drawn["dashArray"]) == (NO_FLY_COLOR, NO_FLY_DASH)
            assert drawn["kind"] == ("circle" if zone.is_circle else "polygon")
        elif zone.role is Role.WATCH:
            assert drawn["color"] == drawn["fillColor"] == RISK_COLORS[zone.risk]
        elif zone.role is Role.LAUNCH:
            assert drawn["fillColor"] == LAUNCH_COLOR
        if zone.role in expected_kind:
            assert drawn["kind"] == expected_kind[zone.role]

    anchorage = next(i for i, z in enumerate(site.zones) if z.name == "Eastern anchorage")
    tooltip = view.js(f"bw.inspect.zone({anchorage}).getTooltip().getContent().textContent")
    assert "Eastern anchorage" in tooltip and "Watch zone, risk 4" in tooltip

    # Fitted to the site, and nothing was fetched from anywhere but the disk and Qt's resources.
    bounds = view.js("bw.map.getBounds().toBBoxString()").split(",")
    west, south, east, north = (float(v) for v in bounds)
    assert west < -5.444 and east > -5.418 and south < 36.108 and north > 36.137
    linked = view.js("Array.from(document.querySelectorAll('script[src], link[href]'), (e) => e.src || e.href)")
    assert len(linked) == 7 and all(url.startswith(("file:", "qrc:")) for url in linked), linked
    assert view.js("bw.inspect.tiles().url") is None
    assert view.js("document.querySelector('.leaflet-control-scale') !== null")
    assert view.js("document.querySelectorAll('.leaflet-control-layers-overlays input').length") == 6
    assert view.page().errors == []
    settle(qtbot)
    screenshot(view, "map-site")


def test_calls_made_before_the_page_is_ready_are_drawn_once_it_is(open_map, qtbot, site):
    view = open_map()
    assert not view.is_ready
    view.set_site(site)
    view.update_vehicles([make_state(0, 36.120, -5.430, 10.0)])
    view.update_vehicles([make_state(0, 36.121, -5.430, 20.0)])
    with qtbot.waitSignal(view.ready, timeout=30_000):
        pass
    assert len(view.js("bw.inspect.zones()")) == len(site.zones)
    vehicle = view.js("bw.inspect.vehicle(0)")
    assert (vehicle["lat"], vehicle["lon"]) == (36.121, -5.430)


def test_routes_are_coloured_per_drone(site_view):
    view = site_view
    view.set_routes(
        [
            MapRoute("drone 1 sortie 1", ((36.12, -5.43), (36.125, -5.43), (36.125, -5.425)), group="drone 1"),
            MapRoute("drone 1 sortie 2", ((36.125, -5.425), (36.13, -5.425)), group="drone 1"),
            MapRoute("drone 2", ((36.115, -5.44), (36.12, -5.435), (36.118, -5.43), (36.116, -5.428)), group="drone 2"),
            MapRoute("empty", ()),
        ]
    )
    routes = view.js("bw.inspect.routes()")
    assert [(r["color"], r["points"]) for r in routes] == [
        (ROUTE_COLORS[0], 3),
        (ROUTE_COLORS[0], 2),
        (ROUTE_COLORS[1], 4),
    ]
    # One start ring per drone.
    assert view.js("bw.layers.routes.getLayers().length") == 5
    view.set_routes([])
    assert view.js("bw.layers.routes.getLayers().length") == 0


def test_vehicles_move_turn_to_their_heading_and_leave_a_trail(site_view, site, qtbot, screenshot):
    view = site_view
    view.set_routes([MapRoute("drone 1", ((36.115, -5.438), (36.13, -5.43))), MapRoute("drone 2", ((36.12, -5.43),))])
    for step in range(20):
        view.update_vehicles(
            [
                make_state(0, 36.115 + step * 0.00075, -5.438 + step * 0.0004, 20.0),
                make_state(1, 36.12, -5.43 + step * 0.0003, 90.0, link_ok=step < 10),
            ]
        )
    first = view.js("bw.inspect.vehicle(0)")
    second = view.js("bw.inspect.vehicle(1)")
    assert (first["lat"], first["lon"]) == pytest.approx((36.115 + 19 * 0.00075, -5.438 + 19 * 0.0004))
    assert first["trail"] == 20
    assert (first["rotation"], first["label"], first["lost"]) == ("rotate(20deg)", "1", False)
    assert (second["rotation"], second["label"], second["lost"]) == ("rotate(90deg)", "2", True)

    # Hovering adds nothing to the trail; turning turns the arrow.
    view.update_vehicles(
        [make_state(0, first["lat"], first["lon"], 200.0), make_state(1, 36.12, -5.4243, 90.0, link_ok=False)]
    )
    first = view.js("bw.inspect.vehicle(0)")
    assert (first["trail"], first["rotation"]) == (20, "rotate(200deg)")

    view.add_detections(
        Detections(
            "cam1",
            1.0,
            1,
            (
                Detection(ObjectClass.VESSEL, 0.9, (0, 0, 1, 1), track_id=3, lat_deg=36.1262, lon_deg=-5.4232),
                Detection(ObjectClass.PERSON, 0.8, (0, 0, 1, 1), track_id=4, lat_deg=36.126, lon_deg=-5.428),
            ),
        )
    )
    view.add_alert(make_alert())
    settle(qtbot)
    screenshot(view, "map-vehicles")
    view.update_vehicles([make_state(0, first["lat"], first["lon"], 200.0), make_state(1, 36.12, -5.4243, 90.0)])
    assert view.js("bw.inspect.vehicle(1)")["lost"] is False

    # A vehicle gone from the fleet loses its marker, keeps its trail until the trails are cleared.
    view.update_vehicles([make_state(0, first["lat"], first["lon"], 200.0)])
    assert view.js("bw.inspect.vehicle(1)")["onMap"] is False
    assert view.js("bw.inspect.vehicle(1)")["trail"] > 1
    view.clear_trails()
    assert view.js("bw.inspect.vehicle(0)")["trail"] == 0


def test_the_trail_keeps_the_last_300_positions(view):
    for step in range(320):
        view.update_vehicles([make_state(0, 36.1 + step * 0.0001, -5.43, 0.0)])
    assert view.js("bw.inspect.vehicle(0)")["trail"] == map_view.TRAIL_POINTS == 300
    assert view.js("bw.inspect.vehicle(0).lat") == pytest.approx(36.1 + 319 * 0.0001)


def test_a_fleet_update_is_one_call_into_the_page(view):
    calls = []
    run = view.page().runJavaScript
    view.page().runJavaScript = lambda script, *args: (calls.append(script), run(script, *args))
    view.update_vehicles([make_state(i, 36.12, -5.43 + i * 0.001, 0.0) for i in range(5)])
    del view.page().runJavaScript
    assert len(calls) == 1 and calls[0].startswith("bw.updateVehicles(")
    assert view.js("[0, 1, 2, 3, 4].map((i) => bw.inspect.vehicle(i).onMap)") == [True] * 5


def test_unknown_numbers_reach_the_page_as_null(view):
    view.update_vehicles([VehicleState(vehicle=0)])
    view.update_vehicles([dataclasses.replace(make_state(0, 36.12, -5.43, 0.0), heading_deg=math.nan)])
    assert view.js("bw.inspect.vehicle(0)")["lat"] == 36.12
    assert view.js("bw.inspect.vehicle(0) && document.querySelector('.bw-vehicle.no-heading') !== null")


def test_detections_fade_and_go_unless_their_track_is_seen_again(monkeypatch, open_map, qtbot):
    monkeypatch.setattr(map_view, "DETECTION_LIFETIME_S", 1.5)
    view = open_map()
    with qtbot.waitSignal(view.ready, timeout=30_000):
        pass

    def frame(index, *items):
        return Detections("cam1", float(index), index, items)

    boat = Detection(ObjectClass.VESSEL, 0.9, (0, 0, 1, 1), track_id=3, lat_deg=36.127, lon_deg=-5.425)
    unplaced = Detection(ObjectClass.PERSON, 0.9, (0, 0, 1, 1), track_id=5)
    view.add_detections(frame(1, boat, unplaced))
    view.add_detections(frame(2, dataclasses.replace(boat, lat_deg=36.1272)))
    assert view.js("bw.inspect.detections()") == ["cam1#3"]
    for index in range(3, 7):
        qtbot.wait(500)
        view.add_detections(frame(index, boat))
    assert view.js("bw.inspect.detections()") == ["cam1#3"]
    qtbot.waitUntil(lambda: view.js("bw.inspect.detections()") == [], timeout=4000)


def test_an_alert_shows_a_marker_whose_click_is_reported(site_view, qtbot):
    view = site_view
    alert = make_alert()
    view.add_alert(alert)
    view.add_alert(alert)  # the same alert again is the same marker
    view.add_alert(make_alert("cam1:crowd-container-quay-1", severity="low"))
    assert view.js("bw.inspect.alerts()") == [alert.alert_id, "cam1:crowd-container-quay-1"]
    colour = view.js(
        f"bw.inspect.alert({alert.alert_id!r}).getElement().querySelector('.bw-alert-pin').style.background"
    )
    assert colour == _css_rgb(SEVERITY_COLORS["high"])

    with qtbot.waitSignal(view.alert_clicked, timeout=5000) as clicked:
        view.js(f"void bw.inspect.alert({alert.alert_id!r}).fire('click')")
    assert clicked.args == [alert.alert_id]
    popup = view.js("document.querySelector('.leaflet-popup-content').textContent")
    # Text from the alert is shown as text, never parsed as HTML.
    assert "vessel 7 entered Eastern anchorage <b>ñ</b>" in popup and "2025-06-15T15:06:40.000Z" in popup


def test_clicking_a_zone_reports_its_index(site_view, site, qtbot):
    view = site_view
    quay = next(i for i, z in enumerate(site.zones) if z.name == "Container quay")
    centre = site.zones[quay].shape_deg.centroid
    with qtbot.waitSignal(view.zone_clicked, timeout=5000) as clicked:
        click(qtbot, view, point_of(view, centre.y, centre.x))
    assert clicked.args == [quay]


def test_drawing_a_polygon_sends_its_corners(view, qtbot, screenshot):
    view.centre_on(36.12, -5.43, 15)
    corners = [QPoint(300, 250), QPoint(600, 260), QPoint(560, 480), QPoint(320, 450)]
    view.start_drawing("polygon")
    qtbot.waitUntil(lambda: view.js("bw.inspect.drawing()"), timeout=3000)
    for corner in corners:
        click(qtbot, view, corner)
    screenshot(view, "map-draw")
    with qtbot.waitSignal(view.zone_drawn, timeout=5000) as drawn:
        click(qtbot, view, corners[0])
    feature = drawn.args[0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    expected = [latlng_at(view, c) for c in [*corners, corners[0]]]
    assert len(ring) == len(expected)
    for (lon, lat), corner in zip(ring, expected, strict=True):
        assert (lat, lon) == pytest.approx(corner, abs=1e-9)
    assert not view.js("bw.inspect.drawing()")
    # The drawing is the site model's to keep: the map shows it once it is a zone of the site.
    assert view.js("bw.layers.zones.getLayers().length") == 0


def test_drawing_a_circle_sends_its_centre_and_radius(view, qtbot):
    view.centre_on(36.12, -5.43, 15)
    centre, edge = QPoint(450, 350), QPoint(570, 350)
    view.start_drawing("circle")
    qtbot.waitUntil(lambda: view.js("bw.inspect.drawing()"), timeout=3000)
    click(qtbot, view, centre)
    with qtbot.waitSignal(view.zone_drawn, timeout=5000) as drawn:
        click(qtbot, view, edge)
    feature = drawn.args[0]
    assert feature["geometry"]["type"] == "Point"
    lon, lat = feature["geometry"]["coordinates"]
    assert (lat, lon) == pytest.approx(latlng_at(view, centre), abs=1e-9)
    expected_m = view.js(
        "bw.map.distance(bw.map.containerPointToLatLng([450, 350]), bw.map.containerPointToLatLng([570, 350]))"
    )
    assert feature["properties"]["radius_m"] == pytest.approx(expected_m, rel=1e-6)
    assert 100 < expected_m < 1000


def test_cancelling_a_drawing_sends_nothing(view, qtbot):
    view.centre_on(36.12, -5.43, 15)
    view.start_drawing("polygon")
    qtbot.waitUntil(lambda: view.js("bw.inspect.drawing()"), timeout=3000)
    click(qtbot, view, QPoint(300, 300))
    view.cancel_drawing()
    assert not view.js("bw.inspect.drawing()")
    with pytest.raises(ValueError, match="rectangle"):
        view.start_drawing("rectangle")


def test_editing_a_zone_sends_its_new_shape(view, site, qtbot, screenshot):
    quay = next(i for i, z in enumerate(site.zones) if z.name == "Container quay")
    fuel = next(i for i, z in enumerate(site.zones) if z.name == "Fuel terminal")
    view.set_site(site, editable=True)
    editing = {z["index"]: z["editing"] for z in view.js("bw.inspect.zones()")}
    assert editing[quay] and editing[fuel]
    assert not editing[next(i for i, z in enumerate(site.zones) if z.role is Role.LAUNCH)]
    settle(qtbot)
    screenshot(view, "map-edit")

    lon, lat = site.zones[quay].shape_deg.exterior.coords[0]
    start = point_of(view, lat, lon)
    end = start + QPoint(30, -25)
    with qtbot.waitSignal(view.zone_edited, timeout=5000) as edited:
        drag(qtbot, view, start, end)
    index, feature = edited.args
    assert index == quay and feature["geometry"]["type"] == "Polygon"
    ring = [(y, x) for x, y in feature["geometry"]["coordinates"][0]]
    assert latlng_at(view, end) in [pytest.approx(p, abs=1e-9) for p in ring]
    assert len(ring) == len(site.zones[quay].shape_deg.exterior.coords)

    # The circle's radius handle sits on its edge, east of the centre.
    centre = site.zones[fuel].shape_deg
    handle = view.js(f"bw.map.latLngToContainerPoint(bw.inspect.zone({fuel}).pm._outerMarker.getLatLng())")
    handle = QPoint(round(handle["x"]), round(handle["y"]))
    with qtbot.waitSignal(view.zone_edited, timeout=5000) as edited:
        drag(qtbot, view, handle, handle + QPoint(40, 0))
    index, feature = edited.args
    assert index == fuel and feature["geometry"]["coordinates"] == pytest.approx([centre.x, centre.y])
    assert feature["properties"]["radius_m"] > site.zones[fuel].radius_m * 1.2


def _css_rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_without_the_web_assets_the_map_says_how_to_install_them(tmp_path, qtbot):
    view = MapView(modules_dir=tmp_path)
    qtbot.addWidget(view)
    assert "npm ci" in view.load_error and str(tmp_path) in view.load_error
    qtbot.waitUntil(lambda: "npm ci" in view.js("document.body ? document.body.textContent : ''"), timeout=10_000)
    view.set_site(None)  # queued for a page that will never be ready, harmlessly
    assert not view.is_ready


def test_a_map_whose_renderer_crashed_is_drawn_again(site_view, site, qtbot):
    view = site_view
    view.set_routes([MapRoute("drone 1", ((36.12, -5.43), (36.125, -5.43)))])
    with qtbot.waitSignal(view.page().renderProcessTerminated, timeout=10_000):
        view.page().load(QUrl("chrome://crash"))
    qtbot.waitUntil(lambda: view.is_ready, timeout=20_000)
    assert len(view.js("bw.inspect.zones()")) == len(site.zones)
    assert len(view.js("bw.inspect.routes()")) == 1
