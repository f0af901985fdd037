"""The app's map: Leaflet in a QWebEngineView, showing the site, routes, vehicles, detections and alerts.

The page (web/map.html, map.js, map.css) links Leaflet and leaflet-geoman where npm installed
them (``groundstation.maps.web_modules_dir()``), so the map needs no network. Python talks to
it by calling ``bw.<function>(…)`` with arguments encoded by ``json.dumps``; the page answers
through a QWebChannel object. Calls made before the page is ready are queued and sent, in
order, once it is.

Importing this module registers the ``mbtiles:`` URL scheme (see :mod:`.tiles`), which Qt
only allows before the QApplication exists: import it at the top of the app's modules.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import json
import logging
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import Any

import shapely
from PyQt6.QtCore import QEventLoop, QObject, Qt, QTimer, QUrl, pyqtSignal, pyqtSlot
from PyQt6.QtWebChannel import QWebChannel
from PyQt6.QtWebEngineCore import QWebEnginePage, QWebEngineSettings
from PyQt6.QtWebEngineWidgets import QWebEngineView
from shapely.geometry.base import BaseGeometry

from groundstation.app.tiles import (
    MBTiles,
    MBTilesSchemeHandler,
    TileKind,
    TileLayerSpec,
    TileSource,
    folder_layer_spec,
)
from groundstation.fleet.state import VehicleState, vehicle_name
from groundstation.maps import (
    BACKGROUND_COLOR,
    COASTLINE_COLOR,
    LAUNCH_COLOR,
    NO_FLY_COLOR,
    NO_FLY_DASH,
    OPERATING_AREA_COLOR,
    RISK_COLORS,
    SETUP_COMMAND,
    SEVERITY_COLORS,
    WEB_DIR,
    MapRoute,
    WebAssetsMissing,
    leaflet_dist_dir,
    route_color,
    web_modules_dir,
)
from missions.site import Role, Site, Zone
from vision.alerts import Alert
from vision.detections import Detections, ObjectClass

# Chromium (inside Qt WebEngine) and triton's native library cannot share a process: importing
# triton once a web view has started crashes it (SIGSEGV in triton._C). torch imports triton only
# to offer GPU kernel compilation, which detection never uses, and treats a triton it cannot
# import as absent — so a .pt model can still be loaded by the app after the map is up.
sys.modules.setdefault("triton", None)

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).resolve().parent / "web"
GEOMAN_DIST = Path("@geoman-io") / "leaflet-geoman-free" / "dist"

TRAIL_POINTS = 300
DETECTION_LIFETIME_S = 5.0
# Grey for a vehicle whose link is down: its position is the last one heard, not where it is.
LOST_COLOR = "#9e9e9e"
DRAW_COLOR = "#1976d2"
# Bright, and outlined in black on the map, so they stand out from the zone fills beneath.
DETECTION_COLORS = {
    ObjectClass.VESSEL: "#00e5ff",
    ObjectClass.VEHICLE: "#e040fb",
    ObjectClass.PERSON: "#76ff03",
    ObjectClass.OTHER: "#bdbdbd",
}
UNKNOWN_SEVERITY_COLOR = "#616161"

_ROLE_NAMES = {
    Role.OPERATING_AREA: "Operating area",
    Role.NO_FLY: "No-fly zone",
    Role.WATCH: "Watch zone",
    Role.LAUNCH: "Launch point",
    Role.COASTLINE: "Coastline",
}
# Drawn bottom to top, as the preview maps draw them: outlines first, launch points on top.
_ROLE_ORDER = {Role.OPERATING_AREA: 0, Role.WATCH: 1, Role.NO_FLY: 2, Role.COASTLINE: 3, Role.LAUNCH: 4}
_START_RING_SIZES = 5


class _Bridge(QObject):
    """The object the page sees as ``bridge``: its slots are the page's only way back into Python."""

    page_ready = pyqtSignal()
    drawn = pyqtSignal(object)
    edited = pyqtSignal(int, object)
    zone_clicked = pyqtSignal(int)
    alert_clicked = pyqtSignal(str)

    @pyqtSlot()
    def pageReady(self) -> None:
        self.page_ready.emit()

    @pyqtSlot(str)
    def zoneDrawn(self, feature: str) -> None:
        self.drawn.emit(json.loads(feature))

    @pyqtSlot(int, str)
    def zoneEdited(self, index: int, feature: str) -> None:
        self.edited.emit(index, json.loads(feature))

    @pyqtSlot(int)
    def zoneClicked(self, index: int) -> None:
        self.zone_clicked.emit(index)

    @pyqtSlot(str)
    def alertClicked(self, alert_id: str) -> None:
        self.alert_clicked.emit(alert_id)


class _MapPage(QWebEnginePage):
    """Logs the page's console, and keeps links in the map (attributions) from navigating away from it."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.errors: list[str] = []

    def javaScriptConsoleMessage(self, level, message, line, source) -> None:
        text = f"{source}:{line}: {message}"
        if level == QWebEnginePage.JavaScriptConsoleMessageLevel.ErrorMessageLevel:
            self.errors.append(text)
            log.warning("map page: %s", text)
        else:
            log.debug("map page: %s", text)

    def acceptNavigationRequest(self, url, kind, is_main_frame) -> bool:
        return kind != QWebEnginePage.NavigationType.NavigationTypeLinkClicked


class MapView(QWebEngineView):
    """The map widget. Everything can be called before ``ready``: calls wait for the page."""

    ready = pyqtSignal()
    zone_drawn = pyqtSignal(object)  # a GeoJSON Feature: a Polygon, or a Point with properties.radius_m
    zone_edited = pyqtSignal(int, object)  # index of the zone in the current site, its new Feature
    zone_clicked = pyqtSignal(int)
    alert_clicked = pyqtSignal(str)

    def __init__(self, parent=None, *, modules_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self._page = _MapPage(self)
        self.setPage(self._page)
        settings = self._page.settings()
        settings.setAttribute(QWebEngineSettings.WebAttribute.LocalContentCanAccessFileUrls, True)
        # Online tiles are images from the network drawn into a local page.
        settings.setAttribute(QWebEngineSettings.WebAttribute.LocalContentCanAccessRemoteUrls, True)
        self._bridge = _Bridge(self)
        self._bridge.page_ready.connect(self._on_page_ready)
        self._bridge.drawn.connect(self.zone_drawn)
        self._bridge.edited.connect(self.zone_edited)
        self._bridge.zone_clicked.connect(self.zone_clicked)
        self._bridge.alert_clicked.connect(self.alert_clicked)
        self._channel = QWebChannel(self._page)
        self._channel.registerObject("bridge", self._bridge)
        self._page.setWebChannel(self._channel)
        self._page.renderProcessTerminated.connect(self._on_renderer_gone)

        self._tiles = MBTilesSchemeHandler.of(self._page.profile())
        self._tiles_url: str | None = None
        self._is_ready = False
        self._ready_emitted = False
        self._pending: list[tuple[str, tuple]] = []
        # What a reloaded page needs to be drawn again.
        self._kept: dict[str, tuple] = {}
        self._fitted: tuple[str, str] | None = None
        self._untracked = itertools.count()
        self.load_error: str | None = None
        self._modules_dir = modules_dir or web_modules_dir()
        self._load()

    # ---- public API ----------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        return self._is_ready

    def set_tiles(self, source: TileSource) -> None:
        """Draw the source's tiles under everything; raises InputError for a bad file or folder."""
        spec, url = self._open_tiles(source)
        if self._tiles_url is not None:
            self._tiles.remove(self._tiles_url)
        self._tiles_url = url
        self._call("setTiles", spec.to_json_dict() if spec else None, keep=True)

    def set_site(self, site: Site | None, *, editable: bool = False) -> None:
        """Draw the site's zones; the map fits the site the first time it is shown."""
        zones = [] if site is None else [_zone_payload(i, z, editable) for i, z in _drawing_order(site)]
        fit = None
        if site is not None and self._fitted != (site.name, site.source):
            fit = _bounds(site)
            if fit is not None:
                self._fitted = (site.name, site.source)
        self._call("setSite", zones, fit, keep=True)

    def set_routes(self, routes: Sequence[MapRoute]) -> None:
        self._call("setRoutes", _routes_payload(routes), keep=True)

    def update_vehicles(self, states: Sequence[VehicleState]) -> None:
        """Move the vehicles (one call for the whole fleet); vehicles not in ``states`` lose their marker."""
        self._call("updateVehicles", [_vehicle_payload(s) for s in states])

    def clear_trails(self) -> None:
        self._call("clearTrails")

    def add_detections(self, detections: Detections) -> None:
        """Show the geolocated detections for a few seconds; a track's next detection moves its marker."""
        items = [self._detection_payload(detections.source, d) for d in detections if d.has_geo_position]
        if items:
            self._call("addDetections", items)

    def add_alert(self, alert: Alert) -> None:
        self._call("addAlert", _alert_payload(alert))

    def centre_on(self, lat_deg: float, lon_deg: float, zoom: int | None = None) -> None:
        self._call("centreOn", lat_deg, lon_deg, zoom)

    def start_drawing(self, kind: str) -> None:
        """Let the user draw a "polygon" or a "circle"; ``zone_drawn`` says when it is done."""
        if kind not in ("polygon", "circle"):
            raise ValueError(f"cannot draw a {kind!r}: polygon or circle")
        self._call("startDrawing", kind)

    def cancel_drawing(self) -> None:
        self._call("cancelDrawing")

    def js(self, expression: str, timeout_s: float = 5.0) -> Any:
        """Evaluate a JavaScript expression in the page and wait for its value (for tests)."""
        loop = QEventLoop()
        answer: list[Any] = []

        def done(value: Any) -> None:
            answer.append(value)
            loop.quit()

        self._page.runJavaScript(expression, 0, done)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        if not answer:
            loop.exec()
        if not answer:
            raise TimeoutError(f"the map page did not answer {expression!r} within {timeout_s} s")
        return answer[0]

    # ---- the page ------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            leaflet = leaflet_dist_dir(self._modules_dir)
            geoman = _geoman_dist_dir(self._modules_dir)
        except WebAssetsMissing as exc:
            self.load_error = str(exc)
            log.error("%s", exc)
            self.setHtml(f"<body style='font: 14px sans-serif; margin: 2em'>{html.escape(str(exc))}</body>")
            return
        config = {
            "background": BACKGROUND_COLOR,
            "centre": [20.0, 0.0],
            "zoom": 2,
            "trailPoints": TRAIL_POINTS,
            "detectionLifetimeS": DETECTION_LIFETIME_S,
            "lostColor": LOST_COLOR,
            "drawColor": DRAW_COLOR,
        }
        page = Template((PAGE_DIR / "map.html").read_text(encoding="utf-8")).substitute(
            leaflet_css=_file_url(leaflet / "leaflet.css"),
            leaflet_js=_file_url(leaflet / "leaflet.js"),
            geoman_css=_file_url(geoman / "leaflet-geoman.css"),
            geoman_js=_file_url(geoman / "leaflet-geoman.min.js"),
            config=json.dumps(config).replace("</", "<\\/"),
        )
        self.setHtml(page, QUrl.fromLocalFile(f"{PAGE_DIR}/"))

    def _call(self, function: str, *args: Any, keep: bool = False) -> None:
        if keep:
            self._kept[function] = args
        if self._is_ready:
            self._run(function, args)
            return
        if function == "updateVehicles":
            # Telemetry at 10 Hz must not pile up behind a page that is slow to start.
            self._pending = [p for p in self._pending if p[0] != function]
        self._pending.append((function, args))

    def _run(self, function: str, args: tuple) -> None:
        encoded = ", ".join(json.dumps(a, allow_nan=False) for a in args)
        self._page.runJavaScript(f"bw.{function}({encoded})")

    def _on_page_ready(self) -> None:
        self._is_ready = True
        pending, self._pending = self._pending, []
        for function, args in pending:
            self._run(function, args)
        # Once: a page reloaded after its renderer died gets its drawing back from _kept instead.
        if not self._ready_emitted:
            self._ready_emitted = True
            self.ready.emit()

    def _on_renderer_gone(self, status, code) -> None:
        if status == QWebEnginePage.RenderProcessTerminationStatus.NormalTerminationStatus:
            return
        log.warning("the map's renderer stopped (%s, %s); reloading it", status, code)
        self._is_ready = False
        self._pending = list(self._kept.items())
        self._load()

    def _open_tiles(self, source: TileSource) -> tuple[TileLayerSpec | None, str | None]:
        """The layer to draw, and the ``mbtiles:`` URL it is served under (None for other sources)."""
        if source.kind is TileKind.NONE:
            return None, None
        if source.kind is TileKind.ONLINE:
            return TileLayerSpec(source.url_template, _plain(source.attribution)), None
        if source.kind is TileKind.FOLDER:
            spec = folder_layer_spec(source)
            return dataclasses.replace(spec, attribution=_plain(spec.attribution)), None
        mbtiles = MBTiles(source.path)
        url = self._tiles.add(mbtiles)
        spec = mbtiles.layer_spec(url, source.attribution)
        return dataclasses.replace(spec, attribution=_plain(spec.attribution)), url

    def _detection_payload(self, source: str, d) -> dict:
        if d.track_id is not None:
            key = f"{source}#{d.track_id}"
            title = f"{d.object_class.value} #{d.track_id}"
        else:
            key = f"{source}@{next(self._untracked)}"
            title = d.object_class.value
        return {
            "key": key,
            "lat": d.lat_deg,
            "lon": d.lon_deg,
            "color": DETECTION_COLORS[d.object_class],
            "tooltip": [title, f"{d.confidence:.0%} — {source}"],
        }


# ---- what the page is sent ---------------------------------------------------------------


def _drawing_order(site: Site) -> list[tuple[int, Zone]]:
    return sorted(enumerate(site.zones), key=lambda iz: (_ROLE_ORDER.get(iz[1].role, 9), iz[1].risk or 0))


def _zone_payload(index: int, zone: Zone, editable: bool) -> dict:
    role = _ROLE_NAMES.get(zone.role, zone.role.value)
    tooltip = [zone.name or role, role]
    if zone.role is Role.WATCH:
        tooltip[1] += f", risk {zone.risk}" if zone.risk is not None else ", risk not set"
    if zone.is_circle:
        tooltip.append(f"radius {zone.radius_m:.0f} m")
    payload: dict[str, Any] = {
        "index": index,
        "role": zone.role.value,
        "tooltip": tooltip,
        "style": _zone_style(zone),
        "circle": None,
        "polygons": [],
        "lines": [],
        "points": [],
        "pointStyle": None,
    }
    shape = zone.shape_deg
    if zone.role is Role.LAUNCH:
        centres = [p if isinstance(p, shapely.Point) else p.centroid for p in _parts(shape)]
        payload["points"] = [[p.y, p.x] for p in centres]
        payload["pointStyle"] = {
            "radius": 7,
            "color": "#ffffff",
            "weight": 2,
            "fillColor": LAUNCH_COLOR,
            "fillOpacity": 1.0,
        }
    elif zone.is_circle:
        centre = shape.centroid
        payload["circle"] = {"center": [centre.y, centre.x], "radius": zone.radius_m}
    elif zone.role is Role.COASTLINE:
        payload["lines"] = [_latlon(line.coords) for line in _lines(shape, boundaries=True)]
    else:
        payload["polygons"] = [
            [_latlon(p.exterior.coords)] + [_latlon(r.coords) for r in p.interiors]
            for p in _parts(shape)
            if isinstance(p, shapely.Polygon)
        ]
        payload["lines"] = [_latlon(line.coords) for line in _lines(shape, boundaries=False)]
    # Only a single circle or polygon can be edited in place; anything else is redrawn instead.
    payload["editable"] = (
        editable
        and (payload["circle"] is not None or len(payload["polygons"]) == 1)
        and not (payload["lines"] or payload["points"])
    )
    return payload


def _zone_style(zone: Zone) -> dict:
    if zone.role is Role.OPERATING_AREA:
        return {"color": OPERATING_AREA_COLOR, "weight": 3, "fill": False}
    if zone.role is Role.NO_FLY:
        return {
            "color": NO_FLY_COLOR,
            "weight": 3,
            "dashArray": NO_FLY_DASH,
            "fillColor": NO_FLY_COLOR,
            "fillOpacity": 0.3,
        }
    if zone.role is Role.WATCH:
        color = RISK_COLORS[min(max(zone.risk or 1, 1), 5)]
        return {"color": color, "weight": 2, "fillColor": color, "fillOpacity": 0.45}
    if zone.role is Role.COASTLINE:
        return {"color": COASTLINE_COLOR, "weight": 3, "fill": False}
    return {"color": LAUNCH_COLOR, "weight": 2, "fillColor": LAUNCH_COLOR, "fillOpacity": 1.0}


def _routes_payload(routes: Sequence[MapRoute]) -> list[dict]:
    groups: dict[str, str] = {}
    payload = []
    for route in routes:
        if not route.points_deg:
            continue
        key = route.group or route.label
        start_radius = None
        if key not in groups:
            index = len(groups)
            groups[key] = route.color or route_color(index)
            # Wider for each drone, so that starts that share a pad stay visible side by side.
            start_radius = 11 + 4 * (index % _START_RING_SIZES)
        km = _length_m(route.points_deg) / 1000.0
        payload.append(
            {
                "label": route.label,
                "group": key,
                "color": route.color or groups[key],
                "points": [[lat, lon] for lat, lon in route.points_deg],
                "startRadius": start_radius,
                "tooltip": [route.label, f"{len(route.points_deg)} waypoints, {km:.1f} km"],
            }
        )
    return payload


def _vehicle_payload(state: VehicleState) -> dict:
    placed = math.isfinite(state.lat_deg) and math.isfinite(state.lon_deg)
    details = [state.flight_mode.lower(), "armed" if state.armed else "disarmed"]
    numbers = []
    if math.isfinite(state.rel_alt_m):
        numbers.append(f"{state.rel_alt_m:.0f} m")
    if math.isfinite(state.ground_speed_m_s):
        numbers.append(f"{state.ground_speed_m_s:.1f} m/s")
    if math.isfinite(state.battery_pct):
        numbers.append(f"battery {state.battery_pct:.0f} %")
    tooltip = [vehicle_name(state.vehicle), ", ".join(details)]
    if numbers:
        tooltip.append(", ".join(numbers))
    if not state.link_ok:
        tooltip.append("link lost")
    return {
        "id": state.vehicle,
        "label": str(state.vehicle + 1),
        "lat": state.lat_deg if placed else None,
        "lon": state.lon_deg if placed else None,
        "heading": state.heading_deg if math.isfinite(state.heading_deg) else None,
        "lost": not state.link_ok,
        "color": route_color(state.vehicle),
        "tooltip": tooltip,
    }


def _alert_payload(alert: Alert) -> dict:
    what = f"{alert.object_class.value}" + (f" #{alert.track_id}" if alert.track_id is not None else "")
    return {
        "id": alert.alert_id,
        "lat": alert.lat_deg,
        "lon": alert.lon_deg,
        "color": SEVERITY_COLORS.get(alert.severity, UNKNOWN_SEVERITY_COLOR),
        "lines": [
            alert.message,
            f"zone: {alert.zone} (risk {alert.risk}, {alert.severity})",
            f"{what} — {alert.source}",
            alert.iso_time,
        ],
    }


def _bounds(site: Site) -> list[list[float]] | None:
    shapes = [site.frame.to_geo(site.local(z)) if z.is_circle else z.shape_deg for z in site.zones]
    shapes = [s for s in shapes if not s.is_empty]
    if not shapes:
        return None
    west, south, east, north = shapely.GeometryCollection(shapes).bounds
    return [[south, west], [north, east]]


def _parts(shape: BaseGeometry):
    if hasattr(shape, "geoms"):
        for part in shape.geoms:
            yield from _parts(part)
    elif not shape.is_empty:
        yield shape


def _lines(shape: BaseGeometry, *, boundaries: bool):
    for part in _parts(shape):
        if isinstance(part, shapely.LineString | shapely.LinearRing):
            yield part
        elif boundaries and isinstance(part, shapely.Polygon):
            yield from _parts(part.boundary)


def _latlon(coords) -> list[list[float]]:
    return [[float(y), float(x)] for x, y, *_ in coords]


def _length_m(points_deg: Sequence[tuple[float, float]]) -> float:
    earth_radius_m = 6_371_008.8
    total = 0.0
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(points_deg):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        dp, dl = p2 - p1, math.radians(lon2 - lon1)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        total += 2 * earth_radius_m * math.asin(math.sqrt(a))
    return total


def _plain(text: str) -> str:
    """Attribution as text: Leaflet shows it as HTML, and an MBTiles file may come from anywhere."""
    return html.escape(re.sub(r"<[^>]*>", "", text or ""))


def _file_url(path: Path) -> str:
    return html.escape(QUrl.fromLocalFile(str(path)).toString())


def _geoman_dist_dir(modules_dir: Path) -> Path:
    dist = modules_dir / GEOMAN_DIST
    for name in ("leaflet-geoman.min.js", "leaflet-geoman.css"):
        if not (dist / name).is_file():
            raise WebAssetsMissing(
                f"the map's drawing tools are not installed ({dist / name} is missing); "
                f"run `{SETUP_COMMAND}` (or `cd {WEB_DIR} && npm ci`) to install them from the npm registry"
            )
    return dist
