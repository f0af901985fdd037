"""The Planner panel: pattern and parameters in, routes and KPIs out, as the operator types.

Every change restarts a short debounce; then the request is planned on a worker thread.
Each request carries a generation number: a newer request makes the running one stop at
its next progress report, and any result that is not the newest is dropped, so the map
never shows a plan for parameters that are no longer on screen.
"""

from __future__ import annotations

import html
from pathlib import Path

from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFontDatabase
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from groundstation.app.plan_worker import Bridge, Planned, Worker
from groundstation.app.site_model import SiteModel
from missions.errors import InputError, UserError
from missions.formats.export import export_patrol
from missions.planners.camera import Camera
from missions.planners.kpi import format_kpis
from missions.planners.patrol import PatrolRequest, Pattern

DEBOUNCE_MS = 300
ERROR_COLOR = "#c62828"
WARNING_COLOR = "#b26a00"
_CAMERA = Camera()
_DEFAULTS = PatrolRequest()


class PlannerPanel(QWidget):
    planned = pyqtSignal(object)  # Planned
    failed = pyqtSignal(str)  # the plan for the current parameters is impossible; the routes are gone
    busy = pyqtSignal(bool)

    def __init__(self, site_model: SiteModel, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.site_model = site_model
        self._settings = settings
        self._bridge = Bridge(self)
        self._worker = Worker(self._bridge)
        self._pending: int | None = None
        self.result: Planned | None = None
        self.error = ""
        self._build()
        self._restore()

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._plan_now)
        self._bridge.finished.connect(self._finished)
        self._bridge.progress.connect(self._progress)
        for widget in self._inputs():
            signal = widget.currentIndexChanged if isinstance(widget, QComboBox) else None
            signal = signal or (widget.toggled if isinstance(widget, QCheckBox) else widget.valueChanged)
            signal.connect(self.schedule)
        self.spacing_mode.currentIndexChanged.connect(self._update_enabled)
        self.endurance_on.toggled.connect(self._update_enabled)
        self.export_plan_button.clicked.connect(lambda: self.export_plans())
        self.export_geojson_button.clicked.connect(lambda: self.export_geojson())
        self.export_kml_button.clicked.connect(lambda: self.export_kml())
        site_model.changed.connect(self.schedule)
        worker = self._worker
        self.destroyed.connect(lambda _obj=None: worker.stop())
        self._update_enabled()
        self._show(None)
        self.schedule()

    # ---- widgets ---------------------------------------------------------------------

    def _build(self) -> None:
        self.pattern = QComboBox()
        for pattern in Pattern:
            self.pattern.addItem(pattern.value, pattern)
        self.altitude = _spin(" m", 1, 500, _DEFAULTS.altitude_m, 5)
        self.drones = QSpinBox()
        self.drones.setRange(1, 20)
        self.drones.setKeyboardTracking(False)
        self.speed = _spin(" m/s", 0.5, 30, _DEFAULTS.speed_m_s, 1)
        self.endurance_on = QCheckBox("Endurance")
        self.endurance = _spin(" min", 1, 600, 25, 1)
        self.reserve = _spin(" %", 0, 95, _DEFAULTS.reserve_pct, 5)
        self.margin = _spin(" m", 0, 1000, _DEFAULTS.margin_m, 5)
        self.spacing_mode = QComboBox()
        self.spacing_mode.addItem("from the camera", "camera")
        self.spacing_mode.addItem("fixed", "fixed")
        self.spacing = _spin(" m", 1, 5000, 50, 5)
        self.sensor_width = _spin(" mm", 0.1, 100, _CAMERA.sensor_width_mm, 0.1, decimals=2)
        self.focal_length = _spin(" mm", 0.1, 500, _CAMERA.focal_length_mm, 0.1, decimals=2)
        self.image_width = QSpinBox()
        self.image_width.setRange(16, 20000)
        self.image_width.setSuffix(" px")
        self.image_width.setValue(_CAMERA.image_width_px)
        self.side_overlap = _spin(" %", 0, 99, 100 * _CAMERA.side_overlap, 5)

        flight = QFormLayout()
        flight.addRow("Pattern", self.pattern)
        flight.addRow("Altitude", self.altitude)
        flight.addRow("Drones", self.drones)
        flight.addRow("Speed", self.speed)
        flight.addRow(self.endurance_on, self.endurance)
        flight.addRow("Reserve", self.reserve)
        flight.addRow("Margin", self.margin)

        camera = QGroupBox("Lane spacing")
        form = QFormLayout(camera)
        form.addRow("Spacing", self.spacing_mode)
        form.addRow("Fixed", self.spacing)
        form.addRow("Sensor width", self.sensor_width)
        form.addRow("Focal length", self.focal_length)
        form.addRow("Image width", self.image_width)
        form.addRow("Side overlap", self.side_overlap)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.kpi_values: dict[str, QLabel] = {}
        kpis = QGridLayout()
        for i, (key, title) in enumerate(
            (("path", "Path"), ("time", "Flight time"), ("seen", "Seen"), ("sorties", "Sorties"))
        ):
            caption = QLabel(title)
            caption.setStyleSheet("color: #666")
            value = QLabel("–")
            value.setStyleSheet("font-size: 15px; font-weight: 600")
            self.kpi_values[key] = value
            kpis.addWidget(caption, 0, i)
            kpis.addWidget(value, 1, i)
        self.kpi_text = QPlainTextEdit()
        self.kpi_text.setReadOnly(True)
        self.kpi_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.kpi_text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.kpi_text.setMinimumHeight(110)

        self.export_plan_button = QPushButton("Export .plan…")
        self.export_geojson_button = QPushButton("GeoJSON…")
        self.export_kml_button = QPushButton("KML…")
        exports = QHBoxLayout()
        for button in (self.export_plan_button, self.export_geojson_button, self.export_kml_button):
            exports.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(flight)
        layout.addWidget(camera)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(kpis)
        layout.addWidget(self.kpi_text, 1)
        layout.addLayout(exports)

    def _inputs(self) -> tuple[QWidget, ...]:
        return (
            self.pattern,
            self.altitude,
            self.drones,
            self.speed,
            self.endurance_on,
            self.endurance,
            self.reserve,
            self.margin,
            self.spacing_mode,
            self.spacing,
            self.sensor_width,
            self.focal_length,
            self.image_width,
            self.side_overlap,
        )

    def _update_enabled(self) -> None:
        fixed = self.spacing_mode.currentData() == "fixed"
        self.spacing.setEnabled(fixed)
        for widget in (self.sensor_width, self.focal_length, self.image_width, self.side_overlap):
            widget.setEnabled(not fixed)
        self.endurance.setEnabled(self.endurance_on.isChecked())
        self.reserve.setEnabled(self.endurance_on.isChecked())

    # ---- planning --------------------------------------------------------------------

    @property
    def plans_started(self) -> int:
        """How many plans the worker has run (a superseded request that never started is not one)."""
        return self._worker.started

    def request(self) -> PatrolRequest:
        """The request the widgets describe; InputError for a camera that cannot be."""
        try:
            camera = Camera(
                self.sensor_width.value(),
                self.focal_length.value(),
                self.image_width.value(),
                self.side_overlap.value() / 100.0,
            )
        except ValueError as exc:
            raise InputError("camera", str(exc)) from None
        return PatrolRequest(
            pattern=self.pattern.currentData(),
            altitude_m=self.altitude.value(),
            spacing_m=self.spacing.value() if self.spacing_mode.currentData() == "fixed" else None,
            camera=camera,
            drones=self.drones.value(),
            speed_m_s=self.speed.value(),
            endurance_min=self.endurance.value() if self.endurance_on.isChecked() else None,
            reserve_pct=self.reserve.value(),
            margin_m=self.margin.value(),
        )

    def set_request(self, request: PatrolRequest) -> None:
        """The widgets set to describe `request`; a plan follows, as after any edit."""
        self.pattern.setCurrentIndex(self.pattern.findData(request.pattern))
        self.altitude.setValue(request.altitude_m)
        self.drones.setValue(request.drones)
        self.speed.setValue(request.speed_m_s)
        self.endurance_on.setChecked(request.endurance_min is not None)
        if request.endurance_min is not None:
            self.endurance.setValue(request.endurance_min)
        self.reserve.setValue(request.reserve_pct)
        self.margin.setValue(request.margin_m)
        self.spacing_mode.setCurrentIndex(
            self.spacing_mode.findData("camera" if request.spacing_m is None else "fixed")
        )
        if request.spacing_m is not None:
            self.spacing.setValue(request.spacing_m)
        camera = request.camera
        self.sensor_width.setValue(camera.sensor_width_mm)
        self.focal_length.setValue(camera.focal_length_mm)
        self.image_width.setValue(camera.image_width_px)
        self.side_overlap.setValue(100 * camera.side_overlap)

    def schedule(self) -> None:
        """Plan again once the parameters have been still for DEBOUNCE_MS."""
        self._debounce.start()

    def plan_now(self) -> None:
        self._debounce.stop()
        self._plan_now()

    def _plan_now(self) -> None:
        self._save()
        site = self.site_model.site
        if site is None:
            self._fail("Open or draw a site to plan over.")
            return
        if self.site_model.errors:
            self._fail(f"Fix the site first: {self.site_model.errors[0]}")
            return
        try:
            request = self.request()
        except UserError as exc:
            self._fail(str(exc))
            return
        self._pending = self._worker.submit(site, request)
        self.progress.setValue(0)
        self._set_status("planning…", "#666")
        self.busy.emit(True)

    def _progress(self, generation: int, fraction: float) -> None:
        if generation == self._pending:
            self.progress.setValue(int(100 * fraction))

    def _finished(self, generation: int, outcome: object) -> None:
        if generation != self._pending:
            return  # stale: a newer request is planning or has planned
        self._pending = None
        self.busy.emit(False)
        self.progress.setValue(0)
        if isinstance(outcome, Planned):
            self.result = outcome
            self.error = ""
            self._show(outcome)
            self.planned.emit(outcome)
        elif isinstance(outcome, UserError):
            self._fail(str(outcome))
        else:
            self._fail(f"planning failed: {type(outcome).__name__}: {outcome}")

    def _fail(self, message: str) -> None:
        self._pending = None
        self.result = None
        self.error = message
        self._show(None)
        self.failed.emit(message)

    # ---- results ---------------------------------------------------------------------

    def _show(self, planned: Planned | None) -> None:
        for button in (self.export_plan_button, self.export_geojson_button, self.export_kml_button):
            button.setEnabled(planned is not None)
        if planned is None:
            for value in self.kpi_values.values():
                value.setText("–")
            self.kpi_text.setPlainText("")
            self._set_status(self.error, ERROR_COLOR) if self.error else self._set_status("", "#666")
            return
        k = planned.kpis
        self.kpi_values["path"].setText(f"{k.path_length_m / 1000:.1f} km")
        self.kpi_values["time"].setText(_hm(k.flight_time_s))
        self.kpi_values["seen"].setText(f"{100 * k.seen_share:.1f} %")
        self.kpi_values["sorties"].setText(str(k.sorties))
        self.kpi_text.setPlainText(format_kpis(k))
        if planned.warnings:
            self._set_status("<br>".join(html.escape(w) for w in planned.warnings), WARNING_COLOR, escaped=True)
        else:
            self._set_status(f"{k.pattern} patrol planned over {html.escape(k.site)}", "#2e7d32", escaped=True)

    def _set_status(self, text: str, colour: str, escaped: bool = False) -> None:
        body = text if escaped else html.escape(text)
        self.status.setText(f'<span style="color:{colour}">{body}</span>' if body else "")

    # ---- export ----------------------------------------------------------------------

    def export_plans(self, path: str | Path | None = None) -> list[Path]:
        """One QGroundControl .plan per drone and sortie (OUT.plan, OUT-D.plan, OUT-D-sK.plan)."""
        planned = self.result
        if planned is None:
            return []
        path = path or self._ask_path("Export .plan", f"{planned.site.name}.plan", "QGroundControl plan (*.plan)")
        if not path:
            return []
        names = self._export(planned, plan=path)
        if names:
            self._set_status(f"wrote {len(names)} plan file(s) to {names[0].parent}", "#2e7d32")
        return names

    def export_geojson(self, path: str | Path | None = None) -> Path | None:
        planned = self.result
        if planned is None:
            return None
        path = path or self._ask_path("Export GeoJSON", f"{planned.site.name}-patrol.geojson", "GeoJSON (*.geojson)")
        return self._export_one(planned, geojson=path) if path else None

    def export_kml(self, path: str | Path | None = None) -> Path | None:
        planned = self.result
        if planned is None:
            return None
        path = path or self._ask_path("Export KML", f"{planned.site.name}-patrol.kml", "KML (*.kml)")
        return self._export_one(planned, kml=path) if path else None

    def _export(self, planned: Planned, **where: str | Path) -> list[Path]:
        try:
            return export_patrol(planned.site, planned.sorties, planned.drones, **where)
        except OSError as exc:
            self._set_status(f"could not export: {exc}", ERROR_COLOR)
            return []

    def _export_one(self, planned: Planned, **where: str | Path) -> Path | None:
        written = self._export(planned, **where)
        if not written:
            return None
        self._set_status(f"wrote {written[0]}", "#2e7d32")
        return written[0]

    def _ask_path(self, title: str, name: str, filters: str) -> str:
        folder = str(self._settings.value("planner/export_folder", "", type=str)) if self._settings else ""
        path, _ = QFileDialog.getSaveFileName(self, title, str(Path(folder) / name), filters)
        if path and self._settings is not None:
            self._settings.setValue("planner/export_folder", str(Path(path).parent))
        return path

    # ---- settings --------------------------------------------------------------------

    def save_state(self, settings: QSettings) -> None:
        """Keep the parameters in `settings` now (they are also kept each time a plan starts)."""
        self._save(settings)

    def _save(self, settings: QSettings | None = None) -> None:
        s = settings if settings is not None else self._settings
        if s is None:
            return
        s.setValue("planner/pattern", self.pattern.currentData().value)
        s.setValue("planner/spacing_mode", self.spacing_mode.currentData())
        s.setValue("planner/endurance_on", self.endurance_on.isChecked())
        for key, widget in self._numbers().items():
            s.setValue(f"planner/{key}", widget.value())

    def _restore(self) -> None:
        if self._settings is None:
            return
        s = self._settings
        self.pattern.setCurrentIndex(max(0, self.pattern.findText(str(s.value("planner/pattern", "coverage")))))
        self.spacing_mode.setCurrentIndex(max(0, self.spacing_mode.findData(s.value("planner/spacing_mode", "camera"))))
        self.endurance_on.setChecked(s.value("planner/endurance_on", False, type=bool))
        for key, widget in self._numbers().items():
            if s.contains(f"planner/{key}"):
                kind = int if isinstance(widget, QSpinBox) else float
                widget.setValue(s.value(f"planner/{key}", widget.value(), type=kind))

    def _numbers(self) -> dict[str, QSpinBox | QDoubleSpinBox]:
        return {
            "altitude_m": self.altitude,
            "drones": self.drones,
            "speed_m_s": self.speed,
            "endurance_min": self.endurance,
            "reserve_pct": self.reserve,
            "margin_m": self.margin,
            "spacing_m": self.spacing,
            "sensor_width_mm": self.sensor_width,
            "focal_length_mm": self.focal_length,
            "image_width_px": self.image_width,
            "side_overlap_pct": self.side_overlap,
        }


def _spin(suffix: str, low: float, high: float, value: float, step: float, decimals: int = 1) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setValue(value)
    spin.setKeyboardTracking(False)
    return spin


def _hm(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"
