"""The alerts of every stream: a table, newest first, a snapshot of the selected one, acknowledge, export.

:class:`AlertsModel` holds the alerts (one per ``alert_id``: a repeat is dropped) with their
snapshots and when each was acknowledged; :class:`AlertsPanel` is the table, the preview and
the buttons. Severity colours follow the map's risk colours, so an alert reads the same in
both places.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PyQt6.QtCore import (
    QAbstractTableModel,
    QByteArray,
    QModelIndex,
    QObject,
    QSettings,
    Qt,
    pyqtSignal,
)
from PyQt6.QtGui import QBrush, QColor, QFont, QPixmap
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from groundstation.app.map_payload import vessel_label
from groundstation.runs.style import SEVERITY_COLORS, UNKNOWN_SEVERITY_COLOR
from missions.errors import UserError
from vision.alerts import Alert, RuleKind

# Each vision.alerts.AlertSeverity, coloured as the map colours the zone risks they come from.
EXPORT_SUFFIXES = (".csv", ".geojson", ".jsonl")
CSV_FIELDS = (
    "alert_id",
    "iso_time",
    "time_s",
    "severity",
    "risk",
    "zone",
    "object_class",
    "track_id",
    "rule",
    "count",
    "lat_deg",
    "lon_deg",
    "source",
    "message",
    "acknowledged_at",
    "evidence",
)

UNVERIFIED_COLOR = "#c62828"  # as the report marks an unverified alert
# The AIS rules are about who a vessel is, not where: their rule reads white on black, as their map pin.
AIS_RULES = frozenset({RuleKind.DARK_VESSEL, RuleKind.AIS_NOT_SEEN})
AIS_RULE_BACKGROUND = "#212121"
AIS_RULE_COLOR = "#ffffff"
UNVERIFIED_BACKGROUND = "#ffebee"
VERIFIED_COLOR = "#2e7d32"

_SETTINGS_HEADER = "alerts/header"
_SETTINGS_SPLITTER = "alerts/splitter"
_SETTINGS_FOLDER = "alerts/last_folder"


@dataclass(frozen=True)
class AlertEntry:
    """One alert as the panel keeps it: with its snapshot and when (ISO UTC) it was acknowledged."""

    alert: Alert
    snapshot_jpeg: bytes | None = None
    acknowledged_at: str | None = None
    # A recorded run's alert, as its evidence bears it out: who signed it, or why it is not verified.
    evidence: str = ""
    verified: bool | None = None  # None: a live alert, not checked here

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def to_json_dict(self) -> dict[str, Any]:
        return {**self.alert.to_json_dict(), "acknowledged_at": self.acknowledged_at, "evidence": self.evidence}


class AlertsModel(QAbstractTableModel):
    """Alerts newest first, one row each; repeats of an ``alert_id`` are dropped."""

    COLUMNS = ("Severity", "Time (UTC)", "Zone", "Class", "Rule", "Source", "Message", "Acknowledged", "Evidence")
    SEVERITY, TIME, ZONE, CLASS, RULE, SOURCE, MESSAGE, ACKNOWLEDGED, EVIDENCE = range(9)

    unacknowledged_changed = pyqtSignal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._entries: list[AlertEntry] = []  # newest first
        self._keys: list[float] = []  # -time_s of each entry, ascending, for bisect
        self._rows: dict[str, AlertEntry] = {}

    # ------------------------------------------------------------ editing
    def add(
        self, alert: Alert, snapshot_jpeg: bytes | None = None, *, evidence: str = "", verified: bool | None = None
    ) -> bool:
        """Insert an alert in time order; False (and nothing changes) when its id is already here.

        A recorded run's alerts come with ``evidence`` (who signed the record, or why it is not verified)
        and ``verified``; an unverified one is shown in red."""
        known = self._rows.get(alert.alert_id)
        if known is not None:
            if known.snapshot_jpeg is None and snapshot_jpeg:
                self._replace(replace(known, snapshot_jpeg=snapshot_jpeg))
            return False
        row = bisect.bisect_left(self._keys, -alert.time_s)  # ties: the later arrival on top
        entry = AlertEntry(alert, snapshot_jpeg or None, evidence=evidence, verified=verified)
        self.beginInsertRows(QModelIndex(), row, row)
        self._entries.insert(row, entry)
        self._keys.insert(row, -alert.time_s)
        self._rows[alert.alert_id] = entry
        self.endInsertRows()
        self.unacknowledged_changed.emit(self.unacknowledged_count)
        return True

    def acknowledge(self, alert_id: str, time_s: float | None = None) -> bool:
        """Mark an alert acknowledged now (or at `time_s`); False if unknown or already acknowledged."""
        entry = self._rows.get(alert_id)
        if entry is None or entry.acknowledged:
            return False
        when = datetime.fromtimestamp(time_s, UTC) if time_s is not None else datetime.now(UTC)
        self._replace(replace(entry, acknowledged_at=when.isoformat(timespec="seconds").replace("+00:00", "Z")))
        self.unacknowledged_changed.emit(self.unacknowledged_count)
        return True

    def clear(self) -> None:
        self.beginResetModel()
        self._entries.clear()
        self._keys.clear()
        self._rows.clear()
        self.endResetModel()
        self.unacknowledged_changed.emit(0)

    # ------------------------------------------------------------ reading
    @property
    def unacknowledged_count(self) -> int:
        return sum(1 for e in self._entries if not e.acknowledged)

    def entries(self) -> tuple[AlertEntry, ...]:
        """Newest first."""
        return tuple(self._entries)

    def entry(self, row: int) -> AlertEntry:
        return self._entries[row]

    def alert(self, row: int) -> Alert:
        return self._entries[row].alert

    def find(self, alert_id: str) -> AlertEntry | None:
        return self._rows.get(alert_id)

    def row_of(self, alert_id: str) -> int | None:
        entry = self._rows.get(alert_id)
        return None if entry is None else self._entries.index(entry)

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write every alert, oldest first, as CSV, GeoJSON points or JSON lines, by the suffix of `path`."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in EXPORT_SUFFIXES:
            raise UserError(
                f"{target}: cannot export alerts as {suffix or 'a file without a suffix'}: "
                f"name it .csv, .geojson or .jsonl"
            )
        entries = list(reversed(self._entries))
        try:
            with target.open("w", encoding="utf-8", newline="") as file:
                if suffix == ".csv":
                    writer = csv.DictWriter(file, CSV_FIELDS, extrasaction="ignore")
                    writer.writeheader()
                    for e in entries:
                        writer.writerow(e.to_json_dict())
                elif suffix == ".geojson":
                    json.dump(_feature_collection(entries), file, indent=1)
                    file.write("\n")
                else:
                    for e in entries:
                        file.write(json.dumps(e.to_json_dict()) + "\n")
        except OSError as error:
            raise UserError(f"{target}: cannot write the alerts: {error.strerror or error}") from None
        return target

    # ------------------------------------------------------------ Qt model
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        alert, column = entry.alert, index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(entry, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.TIME:
                return alert.iso_time
            if column == self.ACKNOWLEDGED and entry.acknowledged_at is not None:
                return f"acknowledged {entry.acknowledged_at}"
            if column == self.EVIDENCE and entry.evidence:
                return entry.evidence
            vessel = vessel_label(alert)
            lines = [alert.message, *([f"vessel: {vessel}"] if vessel else [])]
            if column == self.RULE and alert.rule is RuleKind.DARK_VESSEL:
                lines.insert(0, "dark vessel: tracked in a watch zone and no AIS names it")
            elif column == self.RULE and alert.rule is RuleKind.AIS_NOT_SEEN:
                lines.insert(0, "AIS not seen: a vessel reports a position in view where the camera sees nothing")
            return "\n".join([*lines, f"{alert.lat_deg:.6f}, {alert.lon_deg:.6f}", alert.alert_id])
        if role == Qt.ItemDataRole.BackgroundRole and column == self.SEVERITY:
            return QBrush(QColor(SEVERITY_COLORS.get(alert.severity, UNKNOWN_SEVERITY_COLOR)))
        if role == Qt.ItemDataRole.BackgroundRole and column == self.RULE and alert.rule in AIS_RULES:
            return QBrush(QColor(AIS_RULE_BACKGROUND))
        if role == Qt.ItemDataRole.BackgroundRole and entry.verified is False:
            return QBrush(QColor(UNVERIFIED_BACKGROUND))
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == self.SEVERITY:
                return QBrush(QColor(_text_on(SEVERITY_COLORS.get(alert.severity, UNKNOWN_SEVERITY_COLOR))))
            if column == self.RULE and alert.rule in AIS_RULES:
                return QBrush(QColor(AIS_RULE_COLOR))
            if entry.verified is False:
                return QBrush(QColor(UNVERIFIED_COLOR))
            if column == self.EVIDENCE and entry.verified:
                return QBrush(QColor(VERIFIED_COLOR))
            if entry.acknowledged:
                return QBrush(QColor("#808080"))
        if role == Qt.ItemDataRole.FontRole and not entry.acknowledged:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column == self.SEVERITY:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.UserRole:
            return alert
        return None

    def _text(self, entry: AlertEntry, column: int) -> str:
        alert = entry.alert
        if column == self.SEVERITY:
            return alert.severity
        if column == self.TIME:
            return datetime.fromtimestamp(alert.time_s, UTC).strftime("%H:%M:%S")
        if column == self.ZONE:
            return alert.zone
        if column == self.CLASS:
            return alert.object_class.value if alert.count <= 1 else f"{alert.count} × {alert.object_class.value}"
        if column == self.RULE:
            return alert.rule.value
        if column == self.SOURCE:
            return alert.source
        if column == self.MESSAGE:
            vessel = vessel_label(alert)
            # An entry or dwell of a vessel AIS names says which; an ais-not-seen message names it already.
            return (
                alert.message if vessel is None or str(alert.mmsi) in alert.message else f"{alert.message} — {vessel}"
            )
        if column == self.EVIDENCE:
            return entry.evidence
        if entry.acknowledged_at is None:
            return ""
        return "✓ " + entry.acknowledged_at.partition("T")[2].removesuffix("Z")

    def _replace(self, entry: AlertEntry) -> None:
        old = self._rows[entry.alert.alert_id]
        row = self._entries.index(old)
        self._entries[row] = entry
        self._rows[entry.alert.alert_id] = entry
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))


class AlertsPanel(QWidget):
    """The alerts table with a snapshot of the selected alert, Acknowledge and Export….

    A click (or Enter) on a row emits ``alert_selected`` with its Alert, for the map to
    centre on; ``unacknowledged_changed`` carries how many await an operator.
    """

    alert_selected = pyqtSignal(object)  # Alert
    unacknowledged_changed = pyqtSignal(int)

    def __init__(self, model: AlertsModel, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if model.parent() is None:
            model.setParent(self)  # a model the table outlives would leave it selecting in a void
        self.model = model
        self._settings = settings
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold")

        self.table = QTableView()
        self.table.setModel(model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(AlertsModel.MESSAGE, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 64), (1, 84), (2, 144), (3, 80), (4, 96), (5, 120), (7, 100), (8, 260)):
            self.table.setColumnWidth(column, width)

        self.preview = QLabel("Select an alert to see its snapshot")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(240, 135)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.preview.setStyleSheet("background: #202020; color: #bbb")
        self._preview_pixmap: QPixmap | None = None

        self.acknowledge_button = QPushButton("Acknowledge")
        self.acknowledge_button.setToolTip("Mark the selected alerts as seen")
        self.acknowledge_button.setEnabled(False)
        self.acknowledge_button.clicked.connect(self.acknowledge_selected)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save every alert as .csv, .geojson or .jsonl")
        self.export_button.clicked.connect(self._export_with_dialog)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        buttons = QHBoxLayout()
        buttons.addWidget(self.acknowledge_button)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.message, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(buttons)

        self.table.clicked.connect(self._emit_selected)
        self.table.activated.connect(self._emit_selected)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        model.unacknowledged_changed.connect(self._count_changed)
        model.dataChanged.connect(self._selection_changed)
        self._count_changed(model.unacknowledged_count)
        if settings is not None:
            self.restore_state(settings)

    # ------------------------------------------------------------ for the lead's wiring
    def add(self, alert: Alert, snapshot_jpeg: bytes | None = None) -> bool:
        return self.model.add(alert, snapshot_jpeg)

    def show_error(self, text: str) -> None:
        self._show_message(text, error=True)

    def show_recorded(self, entries: list[AlertEntry], verdict: str, ok: bool) -> None:
        """Replace the alerts with a recorded run's, and say under the table what its evidence is worth."""
        self.model.clear()
        for entry in entries:
            self.model.add(entry.alert, entry.snapshot_jpeg, evidence=entry.evidence, verified=entry.verified)
        self._show_message(verdict, error=not ok)

    def acknowledge(self, alert_id: str) -> bool:
        return self.model.acknowledge(alert_id)

    def selected_entries(self) -> tuple[AlertEntry, ...]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return tuple(self.model.entry(row) for row in rows)

    def select(self, alert_id: str) -> bool:
        """Select an alert's row and emit ``alert_selected`` as a click would (the map's alert_clicked comes here)."""
        row = self.model.row_of(alert_id)
        if row is None:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        self.alert_selected.emit(self.model.alert(row))
        return True

    def acknowledge_selected(self) -> int:
        done = sum(self.model.acknowledge(e.alert.alert_id) for e in self.selected_entries())
        if done:
            self._show_message(f"{done} alert{'s' if done != 1 else ''} acknowledged")
        return done

    def export(self, path: str | os.PathLike[str]) -> Path | None:
        """Export to `path` and say so under the table; a bad name or folder is said there too, not raised."""
        try:
            written = self.model.export(path)
        except UserError as error:
            self._show_message(str(error), error=True)
            return None
        count = self.model.rowCount()
        self._show_message(f"{count} alert{'s' if count != 1 else ''} exported to {written}")
        if self._settings is not None:
            self._settings.setValue(_SETTINGS_FOLDER, str(written.parent))
        return written

    def save_state(self, settings: QSettings) -> None:
        settings.setValue(_SETTINGS_HEADER, self.table.horizontalHeader().saveState())
        settings.setValue(_SETTINGS_SPLITTER, self.splitter.saveState())

    def restore_state(self, settings: QSettings) -> None:
        header = settings.value(_SETTINGS_HEADER)
        if isinstance(header, QByteArray):
            self.table.horizontalHeader().restoreState(header)
        splitter = settings.value(_SETTINGS_SPLITTER)
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    # ------------------------------------------------------------ internals
    def _export_with_dialog(self) -> None:
        folder = str(self._settings.value(_SETTINGS_FOLDER, "")) if self._settings is not None else ""
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export alerts",
            str(Path(folder or Path.home()) / "alerts.csv"),
            "CSV (*.csv);;GeoJSON points (*.geojson);;JSON lines (*.jsonl)",
        )
        if path:
            self.export(path)

    def _emit_selected(self, index: QModelIndex) -> None:
        if index.isValid():
            self.alert_selected.emit(self.model.entry(index.row()).alert)

    def _selection_changed(self, *_: object) -> None:
        entries = self.selected_entries()
        self.acknowledge_button.setEnabled(any(not e.acknowledged for e in entries))
        current = self.table.selectionModel().currentIndex()
        shown = self.model.entry(current.row()) if current.isValid() and entries else (entries[0] if entries else None)
        self._show_snapshot(shown)

    def _show_snapshot(self, entry: AlertEntry | None) -> None:
        self._preview_pixmap = None
        if entry is None:
            self.preview.setText("Select an alert to see its snapshot")
            return
        if not entry.snapshot_jpeg:
            self.preview.setText(f"No snapshot for\n{entry.alert.message}")
            return
        pixmap = QPixmap()
        if not pixmap.loadFromData(entry.snapshot_jpeg, "JPEG"):
            self.preview.setText("The snapshot cannot be read")
            return
        self._preview_pixmap = pixmap
        self._fit_preview()
        self.preview.setToolTip(entry.alert.message + (f"\n{entry.evidence}" if entry.evidence else ""))

    def _fit_preview(self) -> None:
        if self._preview_pixmap is not None:
            self.preview.setPixmap(
                self._preview_pixmap.scaled(
                    self.preview.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_preview()

    def _count_changed(self, count: int) -> None:
        total = self.model.rowCount()
        text = f"Alerts: {count} unacknowledged of {total}" if total else "Alerts: none yet"
        self.title.setText(text)
        self.setWindowTitle(f"Alerts ({count})" if count else "Alerts")
        self.unacknowledged_changed.emit(count)

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c62828" if error else "color: #2e7d32")


def _feature_collection(entries: list[AlertEntry]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [e.alert.lon_deg, e.alert.lat_deg]},
                "properties": e.to_json_dict(),
            }
            for e in entries
        ],
    }


def _text_on(background: str) -> str:
    """Black or white, whichever reads better on `background` (#rrggbb)."""
    r, g, b = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"
