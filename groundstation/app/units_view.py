"""The onboard units on the event bus, in the Fleet panel: where they publish, and how each is doing.

A thin view over a :class:`StationLink`: a line saying which broker the station is on (and,
for the app's own broker, what a unit must be given to join it), and one row per unit heard:
its state, frame rate, how long since its last message, its alerts and how much of its
evidence the station holds. The ages move on by themselves, once a second.
"""

from __future__ import annotations

import html
import time

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from groundstation.app.station_link import BusInfo, StationLink
from groundstation.link.receiver import UnitView

COLUMNS = ("Unit", "State", "FPS", "Last message", "Alerts", "Evidence")
REFRESH_MS = 1000
_STATE_COLOURS = {"silent": QColor("#fbe6a8"), "offline": QColor("#e4e4e4"), "unknown": QColor("#e4e4e4")}


class UnitsView(QWidget):
    def __init__(self, link: StationLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self._views: dict[int, UnitView] = {}

        self.bus_line = QLabel()
        self.bus_line.setWordWrap(True)
        self.bus_line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        for column, width in enumerate((70, 70, 55, 105, 55)):
            self.table.setColumnWidth(column, width)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bus_line)
        layout.addWidget(self.table, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        link.started.connect(self._started)
        link.stopped.connect(self._stopped)
        link.unit.connect(self._unit)
        self._show_bus(link.info)

    def rows(self) -> list[tuple[str, ...]]:
        """What the table shows, row by row (for a test, or a status line)."""
        return [
            tuple(self.table.item(row, column).text() for column in range(len(COLUMNS)))
            for row in range(self.table.rowCount())
        ]

    def refresh(self) -> None:
        for view in self.link.unit_views():
            self._views[view.unit] = view
        self._show_bus(self.link.info)
        self._show_rows(time.time())

    # ------------------------------------------------------------ reactions

    def _started(self, info: BusInfo) -> None:
        self._views.clear()
        self.refresh()

    def _stopped(self) -> None:
        self._views.clear()
        self.refresh()

    def _unit(self, view: UnitView) -> None:
        self._views[view.unit] = view
        self._show_rows(time.time())

    # ------------------------------------------------------------ drawing

    def _show_bus(self, info: BusInfo | None) -> None:
        if info is None:
            text = "Event bus: starts when a site is open" if self.link.enabled else "Event bus: off"
            self.bus_line.setText(text)
            self.bus_line.setToolTip("")
            return
        link = "station connected" if self.link.is_connected() else "station not connected, see the log"
        if info.embedded:
            units = f"unit-{info.site}-1…{info.units}" if info.units > 1 else info.unit_identity(1)
            text = (
                f"Event bus <b>{html.escape(info.url)}</b>, the app's own mosquitto · {link}<br>"
                f"units: <code>--broker {html.escape(info.url)} --pki {html.escape(str(info.pki_dir))} "
                f"--unit {html.escape(units)}</code>"
            )
        else:
            text = f"Event bus <b>{html.escape(info.url)}</b> · site {html.escape(info.site)} · {link}"
        self.bus_line.setText(text)
        self.bus_line.setToolTip(f"{info}\nunit 1: borderwatch onboard … {info.onboard_args(1)}")

    def _show_rows(self, now_s: float) -> None:
        views = [self._views[u] for u in sorted(self._views)]
        self.table.setRowCount(len(views))
        for row, view in enumerate(views):
            heard = "—" if view.last_heard_s is None else f"{max(0.0, now_s - view.last_heard_s):.0f} s ago"
            copied, head = view.evidence_copied[0], view.evidence_head[0]
            if head < copied:  # the unit's status, every few seconds, has not caught up with its records yet
                evidence = f"{copied}"
            else:
                evidence = f"{copied}/{head}" + (" ✓" if view.evidence_copied == view.evidence_head and head else "")
            cells = (view.name, view.state, f"{view.fps:.1f}", heard, str(view.alerts), evidence)
            background = _STATE_COLOURS.get(view.state)
            for column, text in enumerate(cells):
                item = self.table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, column, item)
                item.setText(text)
                item.setBackground(QBrush(background) if background is not None else QBrush())
            self.table.item(row, COLUMNS.index("Evidence")).setToolTip(
                f"the station holds {copied} of the {head} record(s) {view.name} says it has"
            )
