"""The app's map: Leaflet in a QWebEngineView: the site, routes, vehicles, AIS targets, detections and alerts.

The page (web/map.html, map.js, map.css) links Leaflet and leaflet-geoman where npm installed
them (``groundstation.runs.maps.web_modules_dir()``), so the map needs no network. Python talks to
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
import sys
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import Any

from PyQt6.QtCore import QEventLoop, QObject, Qt, QTimer, QUrl, pyqtSignal, pyqtSlot
from PyQt6.QtWebChannel import QWebChannel
from PyQt6.QtWebEngineCore import QWebEnginePage, QWebEngineSettings
from PyQt6.QtWebEngineWidgets import QWebEngineView

from groundstation.app.map_payload import (
    ais_targets_payload,
    alert_payload,
    detections_payload,
    plain_text,
    routes_payload,
    site_bounds,
    vehicle_payload,
    zones_payload,
)
from groundstation.app.tiles import (
    MBTiles,
    MBTilesSchemeHandler,
    TileKind,
    TileLayerSpec,
    TileSource,
    folder_layer_spec,
)
from groundstation.fleet.state import VehicleState
from groundstation.runs.maps import (
    SETUP_COMMAND,
    WEB_DIR,
    MapRoute,
    WebAssetsMissing,
    leaflet_dist_dir,
    web_modules_dir,
)
from groundstation.runs.style import BACKGROUND_COLOR, DRAW_COLOR, LOST_COLOR
from missions.site import Site
from vision.ais.model import AisTarget
from vision.alerts import Alert
from vision.detections import Detections

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
        zones = [] if site is None else zones_payload(site, editable=editable)
        fit = None
        if site is not None and self._fitted != (site.name, site.source):
            fit = site_bounds(site)
            if fit is not None:
                self._fitted = (site.name, site.source)
        self._call("setSite", zones, fit, keep=True)

    def set_routes(self, routes: Sequence[MapRoute]) -> None:
        self._call("setRoutes", routes_payload(routes), keep=True)

    def update_vehicles(self, states: Sequence[VehicleState]) -> None:
        """Move the vehicles (one call for the whole fleet); vehicles not in ``states`` lose their marker."""
        self._call("updateVehicles", [vehicle_payload(s) for s in states])

    def set_ais_targets(self, targets: Sequence[AisTarget]) -> None:
        """Show the AIS vessel table as it is now; a vessel not in ``targets`` leaves the map."""
        self._call("setAisTargets", ais_targets_payload(targets), keep=True)

    def clear_trails(self) -> None:
        self._call("clearTrails")

    def add_detections(self, detections: Detections) -> None:
        """Show the geolocated detections for a few seconds; a track's next detection moves its marker."""
        items = detections_payload(detections, self._untracked)
        if items:
            self._call("addDetections", items)

    def add_alert(self, alert: Alert, evidence: str | None = None, unverified: bool = False) -> None:
        self._call("addAlert", alert_payload(alert, evidence, unverified))

    def clear_alerts(self) -> None:
        self._call("clearAlerts")

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
        if function in ("updateVehicles", "setAisTargets"):
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
            return TileLayerSpec(source.url_template, plain_text(source.attribution)), None
        if source.kind is TileKind.FOLDER:
            spec = folder_layer_spec(source)
            return dataclasses.replace(spec, attribution=plain_text(spec.attribution)), None
        mbtiles = MBTiles(source.path)
        url = self._tiles.add(mbtiles)
        spec = mbtiles.layer_spec(url, source.attribution)
        return dataclasses.replace(spec, attribution=plain_text(spec.attribution)), url


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
