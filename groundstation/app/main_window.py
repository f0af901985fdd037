"""The operator's window: the map in the middle, the panels docked around it, wired together.

Each panel is a thin widget over its own model or controller and knows nothing of the
others; this module is the only place that connects them. The window also owns the run
being recorded (plans, telemetry, video frames, alerts, evidence) and the report of it, and
the station's place on the event bus: what onboard units send goes to the same panels, map
and run folder as what the ground's own video pipeline finds. An AIS feed, when one is open, is
the station's too: its vessels on the map, its state in the status bar, and every stream with a
pose matching its vessels against it. So is its link to TAK, when destinations are set: the fleet's
telemetry, every stream's tracks, alerts and view, and what units publish, as Cursor on Target.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PyQt6.QtCore import QSettings, Qt, QUrl, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PyQt6.QtWidgets import QDockWidget, QFileDialog, QInputDialog, QLabel, QLineEdit, QMainWindow, QMessageBox, QWidget

from groundstation.app.ais_link import AisLink
from groundstation.app.alerts_panel import AlertsModel, AlertsPanel
from groundstation.app.async_loop import AsyncLoop
from groundstation.app.fleet_controller import FleetController
from groundstation.app.fleet_panel import FleetPanel
from groundstation.app.map_view import MapView
from groundstation.app.planner_panel import PlannerPanel
from groundstation.app.settings import (
    AIS_URL_KEY,
    DEFAULT_RUNS_DIR,
    GEOMETRY_KEY,
    RUNS_DIR_KEY,
    STATE_KEY,
    WINDOW_STATE_VERSION,
    text_value,
)
from groundstation.app.site_model import SiteModel
from groundstation.app.site_panel import SitePanel
from groundstation.app.station_link import BusConfig, BusInfo, StationLink
from groundstation.app.tak_link import TakLink
from groundstation.app.tiles import ONLINE_ATTRIBUTION, ONLINE_TILES, OnlineProbe, TileSource
from groundstation.app.units_view import UnitsView
from groundstation.app.video_panel import StreamConfig, VideoPanel
from groundstation.fleet import FleetEvent, Severity, VehicleState
from groundstation.runs.recorder import RunRecorder, new_run_directory
from missions.errors import UserError
from vision.ais.sources import FeedState
from vision.alerts import Alert
from vision.detections import Detections
from vision.frames import StreamClock

log = logging.getLogger(__name__)

AIS_DEAD_STYLE = "color: #c62828; font-weight: bold"
AIS_SILENT_STYLE = "color: #ef6c00"


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
        bus: BusConfig | None = None,
        cot_urls: Sequence[str] | None = None,
    ) -> None:
        """`bus`: the event bus onboard units publish on (None: the station hears no units); `cot_urls`:
        where to send CoT this session instead of the saved TAK setting (None: the setting)."""
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
        self.ais = AisLink(self)
        self.tak = TakLink(settings, cot_urls, self)
        self.video_panel = VideoPanel(
            lambda: self.site_model.site,
            lambda: self.recorder,
            settings,
            ais_provider=lambda: self.ais.feed,
            cot_provider=lambda: self.tak.link,
        )
        self.alerts_model = AlertsModel()
        self.alerts_panel = AlertsPanel(self.alerts_model)
        self.link = StationLink(bus, self, cot_feed=lambda: self.tak.feed)
        self.units_view: UnitsView | None = None
        if self.link.enabled:
            self.units_view = UnitsView(self.link)
            self.fleet_panel.add_section(self.units_view)

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
        self.ais_status = QLabel()
        self.ais_status.hide()
        self.statusBar().addPermanentWidget(self.ais_status)
        self.statusBar().addPermanentWidget(self.tak.label)
        self.statusBar().addPermanentWidget(self._status)
        self._menus()
        self._wire()
        self._restore_layout()

        self._online = OnlineProbe()
        self._online.answered.connect(self._online_answer)
        if tiles is not None:
            self.map.set_tiles(tiles)
        elif probe_online_tiles:
            self._online.start()

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
        self._action(file, "Open recorded r&un…", self._open_run_dialog)
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
        run.addSeparator()
        self._action(run, "Open an &AIS feed…", self._open_ais_dialog)
        self.close_ais_action = self._action(run, "&Close the AIS feed", self.close_ais)
        self.close_ais_action.setEnabled(False)
        self._action(run, "Send to &TAK…", lambda: self.tak.edit(self))
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
        self.link.started.connect(self._bus_started)
        self.link.alert.connect(self._onboard_alert)
        self.link.snapshot.connect(self._onboard_alert)
        self.link.detections.connect(self._onboard_detections)
        self.link.problem.connect(self._bus_problem)
        self.ais.targets.connect(self.map.set_ais_targets)
        self.ais.status.connect(self._ais_status)
        self.ais.said.connect(lambda line: self.statusBar().showMessage(line, 10000))
        # Each stream's pipeline holds the feed it was built with: rebuild them around the new one.
        self.ais.feed_changed.connect(lambda: self._closed or self._restart_streams())
        self.tak.said.connect(self._tak_said)
        self.tak.feed_changed.connect(self._tak_changed)

    # --- what the operator does -----------------------------------------------------------------

    def open_site(self, path: str | Path) -> bool:
        """Opens a site file; a bad one leaves the current site and says why in the site panel."""
        return self.site_panel.open_file(path)

    def connect_fleet(self, urls: Sequence[str]) -> concurrent.futures.Future:
        """Connects the fleet; the Future fails when the vehicles cannot be reached (the status bar says why)."""
        self.fleet_panel.set_urls(urls)
        return self.fleet.connect_fleet(list(urls))

    def open_ais(self, url: str, *, clock: Callable[[], float] = time.time) -> bool:
        """Read AIS from `url` (udp://, tcp://, a .nmea log) over the open site's map, on `clock` (wall time),
        until the window closes or another feed is opened; opened again when the site changes. Its vessels
        go on the map, its state in the status bar, and every stream with a pose matches its vessels against
        it. False, said in the status bar, when it cannot open or no site is open yet (it opens with one)."""
        self.settings.setValue(AIS_URL_KEY, url.strip())
        self.close_ais_action.setEnabled(True)
        site = self.site_model.site
        return self.ais.open(url, site.frame if site is not None else None, clock=clock)

    def close_ais(self) -> None:
        """Stop reading AIS: its vessels leave the map and the streams go on without it."""
        self.ais.close()
        self.close_ais_action.setEnabled(False)
        self.ais_status.hide()

    def add_stream(self, config: StreamConfig, clock: StreamClock | None = None) -> None:
        self.video_panel.add_stream(config, clock)

    def start_recording(
        self,
        directory: str | Path | None = None,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        speed_factor: float | None = None,
    ) -> Path | None:
        """Starts a run folder (plans, telemetry, frames, alerts, evidence); None, with a message, without a site.

        `time_scale`: simulated seconds per second, for a simulator running faster than real time;
        `clock`: what the run is stamped by (a simulation's own clock, see vision.frames.StreamClock),
        and `speed_factor` how fast that simulation may run, for the report to say.
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
            self.recorder = RunRecorder.create(
                directory, site, vehicles, clock=clock, time_scale=time_scale, speed_factor=speed_factor
            )
        except (OSError, UserError) as exc:
            self.statusBar().showMessage(f"cannot record the run in {directory}: {exc}", 15000)
            return None
        planned = self.planner_panel.result
        for vehicle, plans in (planned.plans if planned is not None else {}).items():
            for number, plan in enumerate(plans, start=1):
                self.recorder.add_plan(vehicle, plan, number)
        self.fleet.set_recorder(self.recorder)
        self.link.set_recorder(self.recorder)
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
        self.link.set_recorder(None)  # its evidence copies are the run's until the receiver lets go of them
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
        """Each stream's pipeline holds the recorder, AIS feed and TAK link it was built with."""
        self.video_panel.restart_all()

    def write_report(self, run_dir: str | Path, out_html: str | Path | None = None) -> Path:
        from groundstation.runs.reader import read_run
        from groundstation.runs.report import default_report_path, write_report

        run_dir = Path(run_dir)
        out = Path(out_html) if out_html is not None else default_report_path(run_dir)
        written = write_report(read_run(run_dir), out)
        self.report_written.emit(written)
        return written

    def open_run(self, run_dir: str | Path) -> bool:
        """Show a recorded run's alerts, each as its verified evidence says it (unverified ones in red,
        with the reason), on the map and in the Alerts panel. A folder that is not a run is said under
        the alerts, and what was shown stays."""
        from groundstation.app.recorded_run import recorded_alerts, run_verdict
        from groundstation.runs.reader import read_run

        try:
            run = read_run(run_dir)
        except (OSError, UserError) as exc:
            self.alerts_panel.show_error(f"cannot open the run {run_dir}: {exc}")
            self.statusBar().showMessage(f"cannot open the run {run_dir}: {exc}", 10000)
            return False
        entries = recorded_alerts(run)
        verdict, ok = run_verdict(run)
        self.alerts_panel.show_recorded(entries, verdict, ok)
        self.map.clear_alerts()
        for entry in entries:
            self.map.add_alert(entry.alert, entry.evidence, unverified=not entry.verified)
        self.last_run = Path(run_dir)
        self.statusBar().showMessage(verdict, 10000)
        return True

    def _open_run_dialog(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Recorded run to open", str(DEFAULT_RUNS_DIR))
        if chosen:
            self.open_run(chosen)

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

    def _open_ais_dialog(self) -> None:
        url, ok = QInputDialog.getText(
            self,
            "AIS feed",
            "AIS source: udp://HOST:PORT (listen), tcp://HOST:PORT (connect) or an .nmea log",
            QLineEdit.EchoMode.Normal,
            self.ais.url or text_value(self.settings, AIS_URL_KEY, "udp://0.0.0.0:10110"),
        )
        if ok and url.strip():
            self.open_ais(url)

    # --- reactions -------------------------------------------------------------------------------

    def _site_changed(self) -> None:
        # Vertex handles on every zone hide the map: shapes are editable only when asked for.
        site = self.site_model.site
        self.map.set_site(site, editable=self.edit_shapes_action.isChecked())
        frame = site.frame if site is not None else None
        with self.video_panel.restarts_held():
            self.tak.set_site(site)  # another site's events are named by it: another link, before the bus's
            # Vessels are placed in the site's metres: another site (another frame) needs the feed opened again.
            self.ais.set_frame(frame)
        self.link.open_site(site.name if site is not None else None, frame)

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
        self.tak.report(states)
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

    def _onboard_alert(self, unit: int, alert: Alert, snapshot_jpeg: bytes | None = None) -> None:
        """An alert a unit raised, or its snapshot when its evidence record comes (whichever comes first
        adds the row): shown as a ground stream's, its source naming the unit."""
        shown = dataclasses.replace(alert, source=f"unit-{unit} {alert.source}")
        if self.alerts_model.add(shown, snapshot_jpeg):
            self.map.add_alert(shown)

    def _onboard_detections(self, unit: int, detections: Detections) -> None:
        # Every unit calls its camera camera-1: named by the unit, one unit's track is not another's marker.
        self.map.add_detections(dataclasses.replace(detections, source=f"unit-{unit} {detections.source}"))

    def _bus_started(self, info: BusInfo) -> None:
        self.fleet_panel.note(str(info), Severity.NOTICE)
        if info.embedded:
            self.fleet_panel.note(f"a unit joins with: borderwatch onboard … {info.onboard_args(1)}")
        self.statusBar().showMessage(str(info), 10000)

    def _ais_status(self, text: str, state: FeedState | None, summary: str) -> None:
        self.ais_status.setText(text)
        self.ais_status.setToolTip(summary)
        styles = {FeedState.DEAD: AIS_DEAD_STYLE, FeedState.SILENT: AIS_SILENT_STYLE, FeedState.ENDED: AIS_SILENT_STYLE}
        self.ais_status.setStyleSheet(styles.get(state, ""))
        self.ais_status.setVisible(self.ais.url is not None)

    def _tak_said(self, line: str) -> None:
        self.fleet_panel.note(line, Severity.NOTICE)
        self.statusBar().showMessage(line, 10000)

    def _tak_changed(self) -> None:
        # Each stream's pipeline holds the link it was built with, as the receiver its feed's presence.
        if not self._closed:
            self._restart_streams()
            self.link.cot_changed()

    def _bus_problem(self, line: str) -> None:
        self.fleet_panel.note(line, Severity.WARNING)
        self.statusBar().showMessage(line, 10000)

    # --- tiles ---------------------------------------------------------------------------------------

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
            self.ais.close()  # after the streams: their pipelines read it until they stop
            self.tak.close()  # likewise; it flushes on a thread of its own
            self.fleet.shutdown()
            self.link.close()  # the receiver writes into the run's onboard copies until it stops
            recorder, self.recorder = self.recorder, None
            if recorder is not None:
                recorder.close()
            if self._own_loop:
                self.loop.stop()
        super().closeEvent(event)
