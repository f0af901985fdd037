"""The operator's window: the map in the middle, the panels docked around it, wired together.

Each panel is a thin widget over its own model or controller and knows nothing of the
others; this module is the only place that connects them. The window also owns the run
being recorded (plans, telemetry, video frames, alerts, evidence) and the report of it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from PyQt6.QtCore import QObject, QSettings, Qt, QUrl, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PyQt6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QWidget

from groundstation.app.alerts_panel import AlertsModel, AlertsPanel
from groundstation.app.async_loop import AsyncLoop
from groundstation.app.fleet_controller import FleetController
from groundstation.app.fleet_panel import FleetPanel
from groundstation.app.map_view import MapView
from groundstation.app.planner_panel import PlannerPanel
from groundstation.app.settings import (
    DEFAULT_RUNS_DIR,
    GEOMETRY_KEY,
    RUNS_DIR_KEY,
    STATE_KEY,
    WINDOW_STATE_VERSION,
    text_value,
)
from groundstation.app.site_model import SiteModel
from groundstation.app.site_panel import SitePanel
from groundstation.app.tiles import TileSource
from groundstation.app.video_panel import StreamConfig, VideoPanel
from groundstation.fleet import FleetEvent, Severity, VehicleState
from groundstation.runfolder import RunRecorder, new_run_directory
from missions.errors import UserError

log = logging.getLogger(__name__)

ONLINE_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
ONLINE_ATTRIBUTION = "© OpenStreetMap contributors"
_ONLINE_PROBE = ("tile.openstreetmap.org", 443)


class _Signals(QObject):
    online = pyqtSignal(bool)


class MainWindow(QMainWindow):
    """The whole ground station in one window; `close()` stops everything it started."""

    run_started = pyqtSignal(object)  # Path of the run folder
    run_finished = pyqtSignal(object)  # Path of the run folder
    report_written = pyqtSignal(object)  # Path of report.html

    def __init__(
        self,
        settings: QSettings,
        *,
        loop: AsyncLoop | None = None,
        tiles: TileSource | None = None,
        probe_online_tiles: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.setWindowTitle("borderwatch")
        self.resize(1500, 950)
        self.loop = loop or AsyncLoop()
        self._own_loop = loop is None
        if self._own_loop:
            self.loop.start()
        self.recorder: RunRecorder | None = None
        self.last_run: Path | None = None
        self._closed = False

        self.site_model = SiteModel()
        self.map = MapView()
        self.setCentralWidget(self.map)
        self.site_panel = SitePanel(self.site_model, settings)
        self.planner_panel = PlannerPanel(self.site_model, settings)
        self.fleet = FleetController(self.loop)
        self.fleet_panel = FleetPanel(self.fleet, settings)
        self.video_panel = VideoPanel(lambda: self.site_model.site, lambda: self.recorder, settings)
        self.alerts_model = AlertsModel()
        self.alerts_panel = AlertsPanel(self.alerts_model)

        self.docks = {
            "site": self._dock("Site", self.site_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "planner": self._dock("Planner", self.planner_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            "fleet": self._dock("Fleet", self.fleet_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "video": self._dock("Video", self.video_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "alerts": self._dock("Alerts", self.alerts_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["site"], self.docks["planner"])
        self.docks["site"].raise_()
        # The map gets what is left; the video gets more height than the fleet table needs.
        self.resizeDocks([self.docks["site"], self.docks["fleet"]], [360, 560], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["fleet"], self.docks["video"]], [400, 360], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["alerts"]], [200], Qt.Orientation.Vertical)
        self._status = QLabel("no fleet connected")
        self.statusBar().addPermanentWidget(self._status)
        self._menus()
        self._wire()
        self._restore_layout()

        self._signals = _Signals()
        self._signals.online.connect(self._online_answer)
        if tiles is not None:
            self.map.set_tiles(tiles)
        elif probe_online_tiles:
            threading.Thread(target=self._probe_online, name="tile-probe", daemon=True).start()

    # --- building -------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        self._action(file, "&Open site…", self._open_site_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "&Save site", lambda: self.site_panel.save_file(), QKeySequence.StandardKey.Save)
        file.addSeparator()
        self._action(file, "Write &report of the last run…", self.write_report_dialog)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        site = self.menuBar().addMenu("&Site")
        self.edit_shapes_action = self._action(site, "&Edit zone shapes on the map", self._site_changed)
        self.edit_shapes_action.setCheckable(True)
        self._action(site, "Draw a &polygon zone", lambda: self.map.start_drawing("polygon"))
        self._action(site, "Draw a &circle zone", lambda: self.map.start_drawing("circle"))
        run = self.menuBar().addMenu("&Run")
        self.start_recording_action = self._action(run, "Start &recording", lambda: self.start_recording())
        self.stop_recording_action = self._action(run, "S&top recording", self.stop_recording)
        self.stop_recording_action.setEnabled(False)
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _wire(self) -> None:
        self.site_model.changed.connect(self._site_changed)
        self.site_panel.draw_requested.connect(self.map.start_drawing)
        self.map.zone_drawn.connect(self.site_panel.add_drawn)
        self.map.zone_edited.connect(self.site_model.replace_geometry)
        self.map.zone_clicked.connect(self.site_panel.select_zone)
        self.planner_panel.planned.connect(self._planned)
        self.planner_panel.failed.connect(lambda _message: self.map.set_routes([]))
        self.fleet.connected.connect(self._fleet_connected)
        self.fleet.disconnected.connect(self._fleet_disconnected)
        self.fleet.states.connect(self._states)
        self.fleet.event.connect(self._event)
        self.fleet.failed.connect(lambda message: self.statusBar().showMessage(message, 10000))
        self.video_panel.detections.connect(self.map.add_detections)
        self.video_panel.alert.connect(self._alert)
        self.video_panel.error.connect(lambda message: self.statusBar().showMessage(message, 10000))
        self.alerts_panel.alert_selected.connect(lambda a: self.map.centre_on(a.lat_deg, a.lon_deg, 17))
        self.map.alert_clicked.connect(self.alerts_panel.select)

    # --- what the operator does -----------------------------------------------------------------

    def open_site(self, path: str | Path) -> bool:
        """Opens a site file; a bad one leaves the current site and says why in the site panel."""
        return self.site_panel.open_file(path)

    def connect_fleet(self, urls: Sequence[str]) -> concurrent.futures.Future:
        """Connects the fleet; the Future fails when the vehicles cannot be reached (the status bar says why)."""
        self.fleet_panel.set_urls(urls)
        return self.fleet.connect_fleet(list(urls))

    def add_stream(self, config: StreamConfig) -> None:
        self.video_panel.add_stream(config)

    def start_recording(self, directory: str | Path | None = None, *, time_scale: float = 1.0) -> Path | None:
        """Starts a run folder (plans, telemetry, frames, alerts, evidence); None, with a message, without a site.

        `time_scale`: simulated seconds per second, for a simulator running faster than real time.
        """
        if self.recorder is not None:
            return self.recorder.directory
        site = self.site_model.site
        if site is None:
            self.statusBar().showMessage("open a site before recording a run", 10000)
            return None
        if directory is None:
            root = Path(text_value(self.settings, RUNS_DIR_KEY, str(DEFAULT_RUNS_DIR)))
            directory = new_run_directory(root, site.name)
        urls = self.fleet_panel.urls()
        vehicles = [(f"vehicle {i + 1}", url) for i, url in enumerate(urls)]
        try:
            self.recorder = RunRecorder.create(directory, site, vehicles, time_scale=time_scale)
        except (OSError, UserError) as exc:
            self.statusBar().showMessage(f"cannot record the run in {directory}: {exc}", 15000)
            return None
        planned = self.planner_panel.result
        for vehicle, plans in (planned.plans if planned is not None else {}).items():
            for number, plan in enumerate(plans, start=1):
                self.recorder.add_plan(vehicle, plan, number)
        self.fleet.set_recorder(self.recorder)
        self._restart_streams()
        self.start_recording_action.setEnabled(False)
        self.stop_recording_action.setEnabled(True)
        self.statusBar().showMessage(f"recording the run in {self.recorder.directory}", 10000)
        self.run_started.emit(self.recorder.directory)
        return self.recorder.directory

    def stop_recording(self) -> Path | None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        self.fleet.set_recorder(None)
        # A stream writes into the run's evidence log until its worker ends: stop them before closing it.
        self._restart_streams()
        recorder.close()
        self.last_run = recorder.directory
        self.start_recording_action.setEnabled(True)
        self.stop_recording_action.setEnabled(False)
        self.statusBar().showMessage(f"run recorded in {recorder.directory}", 10000)
        self.run_finished.emit(recorder.directory)
        return recorder.directory

    def _restart_streams(self) -> None:
        """Each stream's pipeline holds the recorder it was built with; rebuild them for the new one."""
        configs = self.video_panel.streams()
        for config in configs:
            self.video_panel.remove_stream(config.name)
        self.video_panel.stop_all()  # waits, bounded, for the removed streams' threads
        for config in configs:
            self.video_panel.add_stream(config)

    def write_report(self, run_dir: str | Path, out_html: str | Path | None = None) -> Path:
        from groundstation.report import default_report_path, write_report
        from groundstation.run_data import read_run

        run_dir = Path(run_dir)
        out = Path(out_html) if out_html is not None else default_report_path(run_dir)
        written = write_report(read_run(run_dir), out)
        self.report_written.emit(written)
        return written

    def write_report_dialog(self) -> None:
        run_dir = self.last_run or (self.recorder.directory if self.recorder else None)
        if run_dir is None:
            chosen = QFileDialog.getExistingDirectory(self, "Run folder to report on", str(DEFAULT_RUNS_DIR))
            if not chosen:
                return
            run_dir = Path(chosen)
        try:
            written = self.write_report(run_dir)
        except (OSError, UserError) as exc:
            QMessageBox.warning(self, "Report", f"cannot write the report of {run_dir}: {exc}")
            return
        self.statusBar().showMessage(f"report written to {written}", 10000)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(written)))

    def _open_site_dialog(self) -> None:
        self.site_panel.open_file()

    # --- reactions -------------------------------------------------------------------------------

    def _site_changed(self) -> None:
        # Vertex handles on every zone hide the map: shapes are editable only when asked for.
        self.map.set_site(self.site_model.site, editable=self.edit_shapes_action.isChecked())

    def _planned(self, planned) -> None:
        self.map.set_routes(planned.routes)
        self.fleet_panel.set_plans(planned.plans)

    def _fleet_connected(self, urls) -> None:
        self._status.setText(f"{len(urls)} vehicle(s) connected")
        self.map.clear_trails()
        if self.recorder is None:
            self.start_recording()

    def _fleet_disconnected(self) -> None:
        self._status.setText("no fleet connected")

    def _states(self, states: tuple[VehicleState, ...]) -> None:
        self.map.update_vehicles(states)
        flying = sum(1 for s in states if s.armed)
        lost = sum(1 for s in states if not s.link_ok)
        text = f"{len(states)} vehicle(s), {flying} armed"
        if lost:
            text += f", {lost} link(s) lost"
        self._status.setText(text)

    def _event(self, event: FleetEvent) -> None:
        if event.severity >= Severity.WARNING:
            self.statusBar().showMessage(event.message, 10000)

    def _alert(self, alert, snapshot_jpeg) -> None:
        self.alerts_model.add(alert, snapshot_jpeg)
        self.map.add_alert(alert)

    # --- tiles ---------------------------------------------------------------------------------------

    def _probe_online(self) -> None:
        try:
            with socket.create_connection(_ONLINE_PROBE, timeout=1.5):
                reachable = True
        except OSError:
            reachable = False
        self._signals.online.emit(reachable)

    def _online_answer(self, reachable: bool) -> None:
        if reachable and not self._closed:
            self.map.set_tiles(TileSource.online(ONLINE_TILES, ONLINE_ATTRIBUTION))

    # --- layout and shutdown --------------------------------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self.settings.value(GEOMETRY_KEY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value(STATE_KEY)
        if state is not None:
            self.restoreState(state, WINDOW_STATE_VERSION)

    def save_layout(self) -> None:
        self.settings.setValue(GEOMETRY_KEY, self.saveGeometry())
        self.settings.setValue(STATE_KEY, self.saveState(WINDOW_STATE_VERSION))
        # The site panel keeps its last folder as it changes; these keep theirs on request.
        for panel in (self.planner_panel, self.fleet_panel, self.video_panel, self.alerts_panel):
            panel.save_state(self.settings)
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closed:
            self._closed = True
            self.save_layout()
            self.video_panel.stop_all()
            self.fleet.shutdown()
            recorder, self.recorder = self.recorder, None
            if recorder is not None:
                recorder.close()
            if self._own_loop:
                self.loop.stop()
        super().closeEvent(event)
