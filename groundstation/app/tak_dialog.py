"""*Run → Send to TAK…*: where the station sends its picture as Cursor on Target, one URL a line."""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from missions.errors import UserError
from vision.cot.destinations import parse_destinations
from vision.cot.model import DEFAULT_COT_URL

ERROR_STYLE = "color: #c62828"

EXPLAINED = (
    "Send the drones, the tracks the cameras follow, the alerts and the site's zones to TAK (ATAK, WinTAK, "
    "a TAK Server) as Cursor on Target. One destination a line; none sends nothing."
)
FORMATS = (
    f"{DEFAULT_COT_URL}: the TAK mesh (ATAK and WinTAK on this network)\n"
    "udp://HOST:PORT: one TAK client or server\n"
    "tcp://HOST:8087: a TAK Server's streaming input\n"
    "tls://HOST:8089?package=DATAPACKAGE.zip, or ?cert=CLIENT.p12&password=PW&ca=CA.pem: a TAK Server over TLS\n"
    "add format=protobuf (…?format=protobuf) for TAK Protocol version 1"
)


class TakDialog(QDialog):
    """The destinations, checked on OK: a bad one is said here, naming it, and nothing is applied."""

    chosen = pyqtSignal(object)  # tuple[str, ...]: the destinations, every one of them valid

    def __init__(self, urls: Sequence[str], *, overridden: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send to TAK")
        self.resize(620, 380)
        intro = QLabel(EXPLAINED)
        intro.setWordWrap(True)
        self.edit = QPlainTextEdit("\n".join(urls))
        self.edit.setPlaceholderText(DEFAULT_COT_URL)
        formats = QLabel(FORMATS)
        formats.setStyleSheet("color: #555")
        formats.setWordWrap(True)
        applied = "Applied at once and kept for the next sessions."
        if overridden:
            applied += " This session was started with --cot: these replace its destinations."
        note = QLabel(applied)
        note.setWordWrap(True)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.edit, 1)
        layout.addWidget(formats)
        layout.addWidget(note)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def urls(self) -> tuple[str, ...]:
        return tuple(line.strip() for line in self.edit.toPlainText().splitlines() if line.strip())

    def accept(self) -> None:
        urls = self.urls()
        try:
            parse_destinations(urls)
        except UserError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.error.hide()
        self.chosen.emit(urls)
        super().accept()
