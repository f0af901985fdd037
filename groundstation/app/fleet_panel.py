"""The Fleet panel: the connection, one row per vehicle, the commands, and the fleet's event log.

A thin view over a :class:`FleetController`: it shows the snapshots the controller emits and
calls its commands; it never talks to a vehicle itself. Dangerous commands (start, return,
land, anything sent to every vehicle) ask first through :attr:`FleetPanel.confirm`, a
`(question) -> bool` callable that tests replace.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from PyQt6.QtCore import QByteArray, QSettings, Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from groundstation.app.fleet_controller import FleetController
from groundstation.fleet import FleetCommand, FleetEvent, FlightMode, LandedState, Severity, VehicleState
from groundstation.fleet.state import vehicle_name
from missions.plan import MissionPlan

DEFAULT_PORT = 14540
STALE_AFTER_S = 1.0  # a row turns amber this long after the vehicle's last message, red once the link is lost
LOG_LINES = 2000
COLUMNS = ("Vehicle", "Link", "Mode", "Armed", "Battery", "Altitude", "Speed", "Mission")
_MISSION_COLUMN = COLUMNS.index("Mission")

_LOST = QColor("#f6c6c6")
_STALE = QColor("#fbe6a8")
_GREY = QColor("#888888")
_SEVERITY_COLOURS = {
    Severity.DEBUG: "#8a8a8a",
    Severity.INFO: "#202020",
    Severity.NOTICE: "#1f6f3f",
    Severity.WARNING: "#b35c00",
    Severity.ERROR: "#c01818",
    Severity.CRITICAL: "#c01818",
}


def default_urls(count: int, start: int = 0) -> list[str]:
    return [f"udpin://0.0.0.0:{DEFAULT_PORT + i}" for i in range(start, count)]


@dataclass(frozen=True)
class _Action:
    name: FleetCommand  # also the busy/done action
    label: str
    dangerous: bool
    question: str  # "{who}" is replaced by the vehicles named


_ACTIONS = (
    _Action(FleetCommand.UPLOAD, "Upload", False, "Upload the plan to {who}?"),
    _Action(FleetCommand.START, "Start", True, "Start {who}? It arms, takes off and flies its plan."),
    _Action(FleetCommand.PAUSE, "Pause", False, "Pause {who}? It holds where it is."),
    _Action(FleetCommand.RESUME, "Resume", False, "Resume the mission of {who}?"),
    _Action(FleetCommand.RETURN, "Return", True, "Send {who} back to launch?"),
    _Action(FleetCommand.LAND, "Land", True, "Land {who} where it is now?"),
)
_ACTIONS_BY_NAME = {a.name: a for a in _ACTIONS}


class FleetPanel(QWidget):
    vehicle_selected = pyqtSignal(int)
    _connect_settled = pyqtSignal()
    _command_settled = pyqtSignal(int, str, bool)  # vehicle, action, succeeded

    def __init__(self, controller: FleetController, settings: QSettings | None = None, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.confirm: Callable[[str], bool] = self._ask
        self.connect_timeout_s = 30.0
        self._settings = settings
        self._plans: dict[int, tuple[MissionPlan, ...]] = {}
        self._states: dict[int, VehicleState] = {}
        self._busy: dict[int, set[str]] = {}
        self._sorties: dict[int, tuple[int, int]] = {}
        self._connecting = False

        self.count = QSpinBox(minimum=1, maximum=32, value=1)
        self.count.setToolTip("vehicles in the fleet")
        self.urls_edit = QLineEdit(" ".join(default_urls(1)))
        self.urls_edit.setToolTip("one MAVLink connection per vehicle, separated by spaces")
        self.connect_button = QPushButton("Connect")
        row = QHBoxLayout()
        row.addWidget(QLabel("Vehicles"))
        row.addWidget(self.count)
        row.addWidget(self.urls_edit, 1)
        row.addWidget(self.connect_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(_MISSION_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(False)
        for column, width in enumerate((75, 70, 120, 145, 70, 75, 75)):
            self.table.setColumnWidth(column, width)

        self.buttons: dict[str, QPushButton] = {}
        self.all_buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        grid.addWidget(QLabel("Selected"), 0, 0)
        grid.addWidget(QLabel("All vehicles"), 1, 0)
        for column, action in enumerate(_ACTIONS, start=1):
            one, every = QPushButton(action.label), QPushButton(f"{action.label} all")
            one.clicked.connect(lambda _=False, a=action.name: self.run_selected(a))
            every.clicked.connect(lambda _=False, a=action.name: self.run_all(a))
            self.buttons[action.name], self.all_buttons[action.name] = one, every
            grid.addWidget(one, 0, column)
            grid.addWidget(every, 1, column)

        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.log.setPlaceholderText("fleet events and the vehicles' messages appear here")

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.log)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(grid)

        self.count.valueChanged.connect(self._count_changed)
        self.urls_edit.textEdited.connect(self._urls_edited)
        self.connect_button.clicked.connect(self._toggle_connection)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self._connect_settled.connect(self._on_connect_settled, Qt.ConnectionType.QueuedConnection)
        self._command_settled.connect(self._on_command_settled, Qt.ConnectionType.QueuedConnection)
        controller.connected.connect(self._on_connected)
        controller.disconnected.connect(self._on_disconnected)
        controller.states.connect(self.update_states)
        controller.event.connect(self.add_event)
        controller.failed.connect(lambda line: self._log_line(time.time(), Severity.ERROR, line))
        controller.busy.connect(self._on_busy)
        controller.done.connect(self._on_done)
        controller.sortie.connect(self._on_sortie)

        if settings is not None:
            self.restore_state(settings)
        self._set_rows(len(self.urls()))
        self._refresh_connection()

    # -- public --------------------------------------------------------------------------------

    def urls(self) -> list[str]:
        return self.urls_edit.text().replace(",", " ").split()

    def set_urls(self, urls: Sequence[str]) -> None:
        self.urls_edit.setText(" ".join(urls))
        self._urls_edited()

    def set_plans(self, plans: Mapping[int, Sequence[MissionPlan]]) -> None:
        """The sorties each vehicle (index from 0) flies when started."""
        self._plans = {int(v): tuple(p) for v, p in plans.items() if p}
        self._refresh_buttons()

    def selected_vehicle(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def select_vehicle(self, vehicle: int) -> None:
        self.table.selectRow(vehicle)

    def update_states(self, states: Sequence[VehicleState]) -> None:
        if len(states) != self.table.rowCount():
            self._set_rows(len(states))
        now = time.monotonic()
        for state in states:
            self._states[state.vehicle] = state
            self._show(state, now)
        self._refresh_buttons()

    def add_event(self, event: FleetEvent) -> None:
        wall = time.time() - (time.monotonic() - event.monotonic_s)
        self._log_line(wall, event.severity, event.message)

    def note(self, text: str, severity: Severity = Severity.INFO) -> None:
        """A line in the log from elsewhere in the station (the event bus)."""
        self._log_line(time.time(), severity, text)

    def add_section(self, widget: QWidget) -> None:
        """Another view of the fleet (the onboard units), between the vehicles and the log."""
        self.splitter.insertWidget(1, widget)
        self.splitter.setStretchFactor(1, 2)
        saved = self._settings.value("fleet/splitter") if self._settings is not None else None
        if isinstance(saved, QByteArray | bytes) and self.splitter.count() == 3:
            self.splitter.restoreState(QByteArray(saved))  # the layout saved with this section in it

    def save_state(self, settings: QSettings) -> None:
        settings.setValue("fleet/urls", " ".join(self.urls()))
        widths = [self.table.columnWidth(c) for c in range(len(COLUMNS))]
        settings.setValue("fleet/column_widths", ",".join(map(str, widths)))
        settings.setValue("fleet/splitter", self.splitter.saveState())

    def restore_state(self, settings: QSettings) -> None:
        urls = str(settings.value("fleet/urls", "") or "").split()
        if urls:
            self.set_urls(urls)
        widths = str(settings.value("fleet/column_widths", "") or "")
        for column, width in enumerate(widths.split(",") if widths else ()):
            if width.isdigit() and column < len(COLUMNS) and column != _MISSION_COLUMN:
                self.table.setColumnWidth(column, int(width))
        splitter = settings.value("fleet/splitter")
        if isinstance(splitter, QByteArray | bytes):
            self.splitter.restoreState(QByteArray(splitter))

    # -- connection ------------------------------------------------------------------------------

    def _count_changed(self, count: int) -> None:
        urls = self.urls()[:count]
        self.urls_edit.setText(" ".join(urls + default_urls(count, len(urls))))
        if not self.controller.is_connected:
            self._set_rows(count)

    def _urls_edited(self, *_: object) -> None:
        count = max(len(self.urls()), 1)
        self.count.blockSignals(True)
        self.count.setValue(count)
        self.count.blockSignals(False)
        if not self.controller.is_connected:
            self._set_rows(count)

    def _toggle_connection(self) -> None:
        if self.controller.is_connected:
            self.controller.disconnect_fleet()
            self.connect_button.setEnabled(False)
            return
        urls = self.urls()
        if self._settings is not None:
            self._settings.setValue("fleet/urls", " ".join(urls))
        self._connecting = True
        self._log_line(time.time(), Severity.INFO, f"connecting to {len(urls)} vehicles: {' '.join(urls)}")
        future = self.controller.connect_fleet(urls, self.connect_timeout_s)
        future.add_done_callback(lambda _f: self._connect_settled.emit())
        self._refresh_connection()

    def _on_connected(self, urls: tuple[str, ...]) -> None:
        self._connecting = False
        self._set_rows(len(urls))
        if self.selected_vehicle() is None:
            self.table.selectRow(0)
        self._log_line(time.time(), Severity.NOTICE, f"connected to {len(urls)} vehicles")
        self._refresh_connection()

    def _on_disconnected(self) -> None:
        self._busy.clear()
        self._sorties.clear()
        now = time.monotonic()
        self._states = {v: VehicleState(vehicle=v) for v in self._states}
        for state in self._states.values():
            self._show(state, now, connected=False)
        self._log_line(time.time(), Severity.NOTICE, "disconnected")
        self._refresh_connection()

    def _on_connect_settled(self) -> None:
        self._connecting = False
        self._refresh_connection()

    def _refresh_connection(self) -> None:
        connected = self.controller.is_connected
        self.connect_button.setText("Disconnect" if connected else "Connecting…" if self._connecting else "Connect")
        self.connect_button.setEnabled(not self._connecting)
        self.count.setEnabled(not connected and not self._connecting)
        self.urls_edit.setEnabled(not connected and not self._connecting)
        self._refresh_buttons()

    # -- the table -------------------------------------------------------------------------------

    def _set_rows(self, count: int) -> None:
        if count == self.table.rowCount():
            return
        self.table.setRowCount(count)
        for row in range(count):
            state = self._states.setdefault(row, VehicleState(vehicle=row))
            if self.table.cellWidget(row, _MISSION_COLUMN) is None:
                bar = QProgressBar()
                bar.setTextVisible(True)
                self.table.setCellWidget(row, _MISSION_COLUMN, bar)
            self._show(state, time.monotonic(), connected=self.controller.is_connected)
        for vehicle in [v for v in self._states if v >= count]:
            del self._states[vehicle]

    def _show(self, s: VehicleState, now: float, connected: bool = True) -> None:
        row = s.vehicle
        if row >= self.table.rowCount():
            return
        silent_s = now - s.monotonic_s if s.monotonic_s else math.inf
        if not connected:
            link, background = "—", None
        elif not s.link_ok:
            link, background = "LOST", _LOST
        elif silent_s > STALE_AFTER_S:
            link, background = f"stale {silent_s:.0f} s", _STALE
        else:
            link, background = "ok", None
        armed = "armed" if s.armed else "disarmed"
        if s.landed_state is not LandedState.UNKNOWN:
            armed += f", {s.landed_state.value.replace('_', ' ')}"
        cells = (
            vehicle_name(s.vehicle),
            link,
            s.flight_mode.replace("_", " ") if connected and s.flight_mode != FlightMode.UNKNOWN else "—",
            armed if connected else "—",
            _num(s.battery_pct, "%", 0),
            _num(s.rel_alt_m, "m"),
            _num(s.ground_speed_m_s, "m/s"),
        )
        urls = self.urls()
        for column, text in enumerate(cells):
            item = self.table.item(row, column)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, column, item)
            item.setText(text)
            item.setBackground(QBrush(background) if background is not None else QBrush())
            item.setForeground(QBrush(_GREY) if not connected else QBrush())
            if row < len(urls):
                item.setToolTip(urls[row])
        battery = self.table.item(row, COLUMNS.index("Battery"))
        if connected and not math.isnan(s.battery_pct) and s.battery_pct < 20:
            battery.setForeground(QBrush(QColor("#c01818")))
        self._show_progress(s)

    def _show_progress(self, s: VehicleState) -> None:
        bar = self.table.cellWidget(s.vehicle, _MISSION_COLUMN)
        if not isinstance(bar, QProgressBar):
            return
        sortie = self._sorties.get(s.vehicle)
        prefix = f"sortie {sortie[0]}/{sortie[1]} · " if sortie and sortie[1] > 1 else ""
        if s.mission_total > 0:
            bar.setRange(0, s.mission_total)
            bar.setValue(min(s.mission_reached, s.mission_total))
            bar.setFormat(f"{prefix}{min(s.mission_reached, s.mission_total)}/{s.mission_total}")
        else:
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat(f"{prefix}no mission")

    def _selection_changed(self) -> None:
        vehicle = self.selected_vehicle()
        if vehicle is not None:
            self.vehicle_selected.emit(vehicle)
        self._refresh_buttons()

    # -- commands --------------------------------------------------------------------------------

    def can(self, action: str, vehicle: int) -> bool:
        """Whether `action` makes sense for `vehicle` now (what enables its button): the fleet's rules."""
        return self.controller.allowed(
            FleetCommand(action), self._states.get(vehicle), has_plan=vehicle in self._plans,
            busy=self._busy.get(vehicle, set()),
        )  # fmt: skip

    def _refresh_buttons(self) -> None:
        selected = self.selected_vehicle()
        for action in _ACTIONS:
            self.buttons[action.name].setEnabled(selected is not None and self.can(action.name, selected))
            self.all_buttons[action.name].setEnabled(any(self.can(action.name, v) for v in self._states))

    def run_selected(self, action: str) -> bool:
        """What the selected vehicle's `action` button does (asking first when it is dangerous);
        False when it makes no sense now or the operator said no."""
        vehicle = self.selected_vehicle()
        if vehicle is None or not self.can(action, vehicle):
            return False
        return self._send(_ACTIONS_BY_NAME[action], [vehicle], ask=_ACTIONS_BY_NAME[action].dangerous)

    def run_all(self, action: str) -> bool:
        """What the `action` button for all vehicles does: every vehicle it makes sense for, after asking."""
        vehicles = [v for v in sorted(self._states) if self.can(action, v)]
        return bool(vehicles) and self._send(_ACTIONS_BY_NAME[action], vehicles, ask=True)

    def fly_selected(self) -> bool:
        """Start: the selected vehicle flies its sorties (or the mission it holds), after asking."""
        return self.run_selected(FleetCommand.START)

    def _send(self, action: _Action, vehicles: list[int], ask: bool) -> bool:
        who = _names(vehicles)
        question = action.question.format(who=who)
        if action.name == FleetCommand.START:
            question += "".join(f"\n{vehicle_name(v)}: {self._plan_summary(v)}" for v in vehicles)
        if ask and not self.confirm(question):
            self._log_line(time.time(), Severity.INFO, f"{who}: {action.name} cancelled")
            return False
        for vehicle in vehicles:
            self._log_line(time.time(), Severity.INFO, f"{vehicle_name(vehicle)}: {action.name} sent")
            self._command(action.name, vehicle)
        return True

    def _command(self, action: str, vehicle: int) -> None:
        c = self.controller
        plans = self._plans.get(vehicle, ())
        if action == FleetCommand.UPLOAD:
            future = c.upload(vehicle, plans[0])
        elif action == FleetCommand.START:
            future = c.fly(vehicle, plans) if plans else c.start_mission(vehicle)
        else:
            commands = {
                FleetCommand.PAUSE: c.pause, FleetCommand.RESUME: c.resume,
                FleetCommand.RETURN: c.return_to_launch, FleetCommand.LAND: c.land,
            }  # fmt: skip
            future = commands[FleetCommand(action)](vehicle)
        # Busy from now, not from when the controller's busy signal comes back: no double start.
        self._busy.setdefault(vehicle, set()).add(action)
        self._refresh_buttons()
        # Failures arrive as the controller's `failed` lines; here only the successes are logged.
        future.add_done_callback(
            lambda f: self._command_settled.emit(vehicle, action, not f.cancelled() and f.exception() is None)
        )

    def _on_command_settled(self, vehicle: int, action: str, succeeded: bool) -> None:
        self._busy.get(vehicle, set()).discard(action)
        self._refresh_buttons()
        if succeeded:
            what = "all sorties flown" if action == FleetCommand.START and vehicle in self._plans else "done"
            self._log_line(time.time(), Severity.NOTICE, f"{vehicle_name(vehicle)}: {action} {what}")

    def _plan_summary(self, vehicle: int) -> str:
        plans = self._plans.get(vehicle)
        if not plans:
            return "the mission it holds"
        items = sum(len(p.items) for p in plans)
        return f"{len(plans)} sortie{'s' if len(plans) > 1 else ''}, {items} mission items"

    def _on_busy(self, vehicle: int, action: str) -> None:
        self._busy.setdefault(vehicle, set()).add(action)
        self._refresh_buttons()

    def _on_done(self, vehicle: int, action: str) -> None:
        self._busy.get(vehicle, set()).discard(action)
        if action == FleetCommand.FLY:
            self._sorties.pop(vehicle, None)
        self._refresh_buttons()

    def _on_sortie(self, vehicle: int, number: int, count: int) -> None:
        self._sorties[vehicle] = (number, count)
        if vehicle in self._states:
            self._show_progress(self._states[vehicle])

    def _ask(self, question: str) -> bool:
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        answer = QMessageBox.question(self, "Confirm", question, buttons, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- the log -----------------------------------------------------------------------------------

    def _log_line(self, wall_s: float, severity: Severity, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(wall_s))
        colour = _SEVERITY_COLOURS.get(severity, "#202020")
        weight = "font-weight:600;" if severity >= Severity.ERROR else ""
        self.log.appendHtml(
            f'<span style="color:#777">{stamp}</span> <span style="color:{colour};{weight}">{html.escape(text)}</span>'
        )


def _num(value: float, unit: str, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f} {unit}"


def _names(vehicles: Sequence[int]) -> str:
    if len(vehicles) == 1:
        return vehicle_name(vehicles[0])
    return "vehicles " + ", ".join(str(v + 1) for v in vehicles)
