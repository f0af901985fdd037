"""The Site panel: the open file, its zones editable in place, drawing, validation messages.

A thin view over :class:`SiteModel`. Drawing happens on the map: the panel only says what
to draw (``draw_requested``) and what the next zone is (role, name, risk); the lead hands
the drawn feature back to :meth:`SitePanel.add_drawn`.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from groundstation.app.site_model import DRAWN_ROLES, ROLE_LABELS, SAVE_SUFFIXES, SiteModel
from missions.errors import UserError
from missions.site import Role, Zone

ERROR_COLOR = "#c62828"
WARNING_COLOR = "#b26a00"
OK_COLOR = "#2e7d32"
OPEN_FILTER = "Sites (*.geojson *.json *.kml *.plan);;All files (*)"
SAVE_FILTER = "GeoJSON (*.geojson);;KML (*.kml)"
_FOLDER_KEY = "site/last_folder"
_COLUMNS = ("Name", "Role", "Risk", "Size")
_NAME, _ROLE, _RISK, _SIZE = range(4)


class SitePanel(QWidget):
    draw_requested = pyqtSignal(str)  # "polygon" | "circle"
    zone_selected = pyqtSignal(int)

    def __init__(self, model: SiteModel, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._settings = settings
        self._filling = False

        self.file_label = QLabel()
        self.file_label.setWordWrap(True)
        self.file_label.setTextFormat(Qt.TextFormat.RichText)
        self.open_button = QPushButton("Open…")
        self.save_button = QPushButton("Save")
        self.save_as_button = QPushButton("Save as…")
        files = QHBoxLayout()
        for button in (self.open_button, self.save_button, self.save_as_button):
            files.addWidget(button)

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_NAME, QHeaderView.ResizeMode.Stretch)
        for column in (_ROLE, _RISK, _SIZE):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

        self.role_choice = QComboBox()
        for role in DRAWN_ROLES:
            self.role_choice.addItem(ROLE_LABELS[role], role)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("name (optional)")
        self.risk_choice = QSpinBox()
        self.risk_choice.setRange(1, 5)
        self.risk_choice.setValue(3)
        self.risk_choice.setPrefix("risk ")
        self.draw_polygon_button = QPushButton("Draw polygon")
        self.draw_circle_button = QPushButton("Draw circle")
        self.delete_button = QPushButton("Delete zone")
        draw = QGroupBox("Next zone")
        chooser = QHBoxLayout()
        chooser.addWidget(self.role_choice)
        chooser.addWidget(self.risk_choice)
        buttons = QHBoxLayout()
        buttons.addWidget(self.draw_polygon_button)
        buttons.addWidget(self.draw_circle_button)
        draw_layout = QVBoxLayout(draw)
        draw_layout.addLayout(chooser)
        draw_layout.addWidget(self.name_edit)
        draw_layout.addLayout(buttons)

        self.messages_label = QLabel()
        self.messages_label.setWordWrap(True)
        self.messages_label.setTextFormat(Qt.TextFormat.RichText)
        self.messages_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_error = ""  # the last refused action (a file that would not open, a shape that is no zone)

        layout = QVBoxLayout(self)
        layout.addWidget(self.file_label)
        layout.addLayout(files)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.delete_button)
        layout.addWidget(draw)
        layout.addWidget(self.messages_label)

        self.open_button.clicked.connect(lambda: self.open_file())
        self.save_button.clicked.connect(lambda: self.save_file())
        self.save_as_button.clicked.connect(lambda: self.save_file_as())
        self.draw_polygon_button.clicked.connect(lambda: self.draw_requested.emit("polygon"))
        self.draw_circle_button.clicked.connect(lambda: self.draw_requested.emit("circle"))
        self.delete_button.clicked.connect(self.delete_selected)
        self.role_choice.currentIndexChanged.connect(self._update_chooser)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemChanged.connect(self._item_changed)
        model.changed.connect(self._refresh)
        self._refresh()
        self._update_chooser()

    # ---- what the lead and the tests drive -------------------------------------------

    @property
    def next_role(self) -> Role:
        return self.role_choice.currentData()

    def set_next_zone(self, role: Role, name: str = "", risk: int | None = None) -> None:
        self.role_choice.setCurrentIndex(self.role_choice.findData(role))
        self.name_edit.setText(name)
        if risk is not None:
            self.risk_choice.setValue(risk)

    def add_drawn(self, feature: dict) -> int | None:
        """Add a feature drawn on the map as the chosen kind of zone; its index, or None if refused."""
        try:
            index = self.model.add_drawn(feature, self.next_role, self.name_edit.text(), self.risk_choice.value())
        except UserError as exc:
            self._refuse(self._short(str(exc)))
            return None
        self.name_edit.clear()
        self.select_zone(index)
        return index

    def select_zone(self, index: int) -> None:
        if 0 <= index < self.table.rowCount():
            self.table.selectRow(index)

    def selected_zone(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def delete_selected(self) -> None:
        index = self.selected_zone()
        if index is not None:
            self.model.remove_zone(index)

    def open_file(self, path: str | Path | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open site", self._last_folder(), OPEN_FILTER)
            if not path:
                return False
        try:
            self.model.open(path)
        except (UserError, OSError) as exc:
            self._refuse(str(exc))
            return False
        self._remember_folder(path)
        self.action_error = ""
        self._show_messages()
        return True

    def save_file(self) -> bool:
        path = self.model.path
        if path is None or path.suffix.lower() not in SAVE_SUFFIXES:
            return self.save_file_as()
        return self.save_file_as(path)

    def save_file_as(self, path: str | Path | None = None) -> bool:
        if path is None:
            start = str(Path(self._last_folder()) / f"{self.model.site.name if self.model.site else 'site'}.geojson")
            path, _ = QFileDialog.getSaveFileName(self, "Save site", start, SAVE_FILTER)
            if not path:
                return False
        try:
            written = self.model.save(path)
        except (UserError, OSError) as exc:
            self._refuse(str(exc))
            return False
        self._remember_folder(written)
        self.action_error = ""
        self._show_messages()
        return True

    # ---- view ------------------------------------------------------------------------

    def _refresh(self) -> None:
        selected = self.selected_zone()
        self._fill_table(self.model.zones)
        if selected is not None:
            self.select_zone(min(selected, self.table.rowCount() - 1))
        site = self.model.site
        if site is None:
            self.file_label.setText("<i>No site: open one, or draw an operating area.</i>")
        else:
            where = html.escape(str(self.model.path)) if self.model.path else "not saved yet"
            mark = " *" if self.model.dirty else ""
            self.file_label.setText(f"<b>{html.escape(site.name)}</b>{mark}<br><small>{where}</small>")
        self.save_button.setEnabled(site is not None)
        self.save_as_button.setEnabled(site is not None)
        self.delete_button.setEnabled(self.selected_zone() is not None)
        self.action_error = ""
        self._show_messages()

    def _fill_table(self, zones: tuple[Zone, ...]) -> None:
        self._filling = True
        try:
            self.table.setRowCount(len(zones))
            for row, zone in enumerate(zones):
                name = QTableWidgetItem(zone.name)
                self.table.setItem(row, _NAME, name)
                self.table.setCellWidget(row, _ROLE, self._role_editor(row, zone))
                self.table.setCellWidget(row, _RISK, self._risk_editor(row, zone))
                size = QTableWidgetItem(_size(self.model, zone))
                size.setFlags(size.flags() & ~Qt.ItemFlag.ItemIsEditable)
                size.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, _SIZE, size)
        finally:
            self._filling = False

    def _role_editor(self, row: int, zone: Zone) -> QWidget:
        choices = _role_choices(zone)
        if len(choices) == 1:
            label = QLabel(ROLE_LABELS[zone.role])
            label.setContentsMargins(8, 0, 8, 0)
            label.setStyleSheet("font-weight: normal")
            return label
        box = QComboBox()
        for role in choices:
            box.addItem(ROLE_LABELS[role], role)
        box.setCurrentIndex(box.findData(zone.role))
        # Deferred: the edit rebuilds the table, and with it this combobox, which must not die mid-signal.
        box.activated.connect(lambda _i, r=row, b=box: self._later(self._edit, r, role=b.currentData()))
        return box

    def _risk_editor(self, row: int, zone: Zone) -> QWidget:
        if zone.role is not Role.WATCH:
            return QLabel("")
        spin = QSpinBox()
        spin.setRange(1, 5)
        spin.setValue(zone.risk or 1)
        spin.setKeyboardTracking(False)
        spin.valueChanged.connect(lambda value, r=row: self._later(self._edit, r, risk=value))
        return spin

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != _NAME:
            return
        self._later(self._edit, item.row(), name=item.text())

    def _edit(self, row: int, **changes) -> None:
        try:
            self.model.update_zone(row, **changes)
        except UserError as exc:
            self._fill_table(self.model.zones)
            self._refuse(self._short(str(exc)))

    def _later(self, function, *args, **kwargs) -> None:
        QTimer.singleShot(0, lambda: function(*args, **kwargs))

    def _selection_changed(self) -> None:
        index = self.selected_zone()
        self.delete_button.setEnabled(index is not None)
        if index is not None:
            self.zone_selected.emit(index)

    def _update_chooser(self) -> None:
        role = self.next_role
        self.risk_choice.setEnabled(role is Role.WATCH)
        self.draw_polygon_button.setEnabled(role is not Role.LAUNCH)
        self.draw_circle_button.setText("Place point" if role is Role.LAUNCH else "Draw circle")

    def _short(self, message: str) -> str:
        """An edit's message without the site's file name, which the panel shows above."""
        site = self.model.site
        prefix = f"{site.source}: " if site is not None else ""
        return message[len(prefix) :] if prefix and message.startswith(prefix) else message

    def _refuse(self, message: str) -> None:
        self.action_error = message
        self._show_messages()

    def _show_messages(self) -> None:
        lines = []
        if self.action_error:
            lines.append((ERROR_COLOR, self.action_error))
        lines += [(ERROR_COLOR, m) for m in self.model.errors]
        lines += [(WARNING_COLOR, m) for m in self.model.warnings]
        if not lines and self.model.site is not None:
            lines.append((OK_COLOR, "The site is valid."))
        self.messages_label.setText(
            "<br>".join(f'<span style="color:{colour}">{html.escape(text)}</span>' for colour, text in lines)
        )

    # ---- settings --------------------------------------------------------------------

    def _last_folder(self) -> str:
        if self._settings is None:
            return ""
        return str(self._settings.value(_FOLDER_KEY, "", type=str))

    def _remember_folder(self, path: str | Path) -> None:
        if self._settings is not None:
            self._settings.setValue(_FOLDER_KEY, str(Path(path).resolve().parent))


def _role_choices(zone: Zone) -> tuple[Role, ...]:
    """The roles a zone's shape can take: a polygon is an area, a point a launch, a circle either."""
    kind = zone.shape_deg.geom_type
    if zone.role is Role.COASTLINE or kind == "LineString":
        return (zone.role,)
    if zone.is_circle:
        return DRAWN_ROLES
    if kind == "Point":
        return (Role.LAUNCH,)
    return (Role.OPERATING_AREA, Role.NO_FLY, Role.WATCH)


def _size(model: SiteModel, zone: Zone) -> str:
    site = model.site
    if zone.is_circle:
        return f"r {zone.radius_m:,.0f} m"
    if site is None or zone.shape_deg.geom_type not in ("Polygon", "MultiPolygon"):
        if zone.shape_deg.geom_type == "LineString" and site is not None:
            return f"{site.local(zone).length / 1000:.1f} km"
        return ""
    km2 = site.local(zone).area / 1e6
    return f"{km2:.2f} km²" if km2 >= 0.01 or km2 == 0 else f"{km2 * 1e6:,.0f} m²" if math.isfinite(km2) else ""
