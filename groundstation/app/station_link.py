"""The app's end of the event bus: its broker, its receiver, and what the units send, as Qt signals.

With no broker named (``BusConfig()``) the app runs a mosquitto of its own, the embedded
default: a PKI made for the session (or the folder given), certificates for the open site's
station and units, the broker on a loopback port that it keeps for the session. With
``mqtts://HOST:PORT`` the station uses that broker and the station certificate of the PKI
folder given. Either way the station listens to the open site only, from the moment a site
is open until another one is, or the app closes.

The receiver (``groundstation.link``) calls back on paho's network thread; what it hands on
leaves here as queued signals carrying frozen values, and what goes into a run folder goes
there through ``groundstation.link.station.recording`` as the demo's does.

Each unit's evidence is copied, record by record, into a folder that is the same hash chain
as the unit's own log: the run's ``onboard/`` while the app records a run of this site, else
a folder of the session's. The copy moves with the receiver when a recording starts or
stops, so that a run's copy begins at the unit's first record even when the unit was
already publishing before the run began.

While the window sends to TAK (``cot_feed`` gives a feed), what the units publish goes there too: the
receiver's handlers are chained behind a ``BusToCot`` over the window's current feed, so TAK's link
can be replaced without restarting the receiver.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from groundstation.app.tak_link import CurrentFeed
from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import Broker
from groundstation.link.cot import BusToCot
from groundstation.link.receiver import Handlers, UnitView
from groundstation.link.station import StationBus, bus_site, recording
from groundstation.runs.reader import detections_from_json
from groundstation.runs.recorder import RunRecorder
from missions.errors import UserError
from missions.geo import LocalFrame
from vision.alerts import Alert
from vision.bus.address import credentials_in, parse_broker_url
from vision.camera import Intrinsics
from vision.cot.feed import CotFeed
from vision.evidence import EvidenceRecord

DEFAULT_UNITS = 4  # unit certificates the app's own broker issues for a site


@dataclass(frozen=True)
class BusConfig:
    """Which broker the station uses: None, a mosquitto of the app's own; else ``mqtts://HOST:PORT``."""

    broker_url: str | None = None
    pki_dir: str | Path | None = None  # the station's certificates; for the app's own broker, its PKI (optional)
    units: int = DEFAULT_UNITS  # unit certificates the app's own broker issues

    def __post_init__(self) -> None:
        if self.broker_url is not None:
            parse_broker_url(self.broker_url)
            if self.pki_dir is None:
                raise UserError(f"--broker {self.broker_url}: also give --pki DIR, the folder with the certificates")
        if self.units < 1:
            raise UserError(f"--units {self.units}: give at least one unit")


@dataclass(frozen=True)
class BusInfo:
    """The bus the station is on, as a unit must be told: broker, PKI folder, identities."""

    site: str  # the site's slug, a topic level
    url: str
    pki_dir: Path
    embedded: bool
    units: int  # unit certificates issued (the app's own broker), 0 for the agency's

    def unit_identity(self, number: int) -> str:
        return ids.unit(self.site, number).name

    def onboard_args(self, number: int) -> str:
        """What `borderwatch onboard` needs to publish as unit ``number`` of this site."""
        return f"--broker {self.url} --pki {self.pki_dir} --unit {self.unit_identity(number)}"

    def __str__(self) -> str:
        whose = "the app's own mosquitto" if self.embedded else "the agency's broker"
        return f"event bus {self.url} ({whose}), site {self.site}, certificates in {self.pki_dir}"


class StationLink(QObject):
    """The station on the bus for the open site, from ``open_site`` until ``close``. Not thread-safe:
    call it from the Qt thread; its signals arrive there."""

    started = pyqtSignal(object)  # BusInfo
    stopped = pyqtSignal()
    alert = pyqtSignal(int, object)  # unit number, Alert
    snapshot = pyqtSignal(int, object, object)  # unit number, Alert, JPEG bytes: the alert's evidence record
    detections = pyqtSignal(int, object)  # unit number, Detections
    unit = pyqtSignal(object)  # UnitView, a copy: a unit's status changed
    problem = pyqtSignal(str)  # one line naming the broker, unit or topic

    def __init__(
        self,
        config: BusConfig | None,
        parent: QObject | None = None,
        *,
        cot_feed: Callable[[], CotFeed | None] = lambda: None,
    ) -> None:
        """`cot_feed`: the window's feed to TAK now (None: it sends nothing to TAK)."""
        super().__init__(parent)
        self.config = config
        self._cot_feed = cot_feed
        self._to_tak = False  # whether the running receiver hands what it hears to TAK
        self._frame: LocalFrame | None = None
        self.info: BusInfo | None = None
        self._site: str | None = None
        self._recorder: RunRecorder | None = None
        self._broker: Broker | None = None
        self._port: int | None = None  # our broker's, kept across sites so that units keep their address
        self._bus: StationBus | None = None
        self._copies: Path | None = None  # where the running receiver copies the units' evidence
        self._session = contextlib.ExitStack()
        self._session_dir: Path | None = None
        self._bad_detections: set[int] = set()
        self._last_said: str | None = None

    @property
    def enabled(self) -> bool:
        return self.config is not None

    @property
    def is_running(self) -> bool:
        return self._bus is not None

    def open_site(self, site_name: str | None, frame: LocalFrame | None = None) -> None:
        """Listen to this site's units (None: to nobody); nothing changes when it is the site already heard.
        `frame`, the site's, places the units' camera views on TAK."""
        if self.config is None:
            return
        self._frame = frame
        slug = bus_site(site_name) if site_name else None
        if slug == self._site and (slug is None or self._bus is not None):
            return
        self._stop()
        self._site = slug
        if slug is None:
            return
        try:
            self._start(slug)
        except (UserError, OSError, ssl.SSLError, ValueError) as exc:
            self._stop()
            self._say(f"event bus for {slug}: not started: {exc}")

    def set_recorder(self, recorder: RunRecorder | None) -> None:
        """Record what the units send into this run (None: stop); the receiver restarts on its session,
        so nothing sent meanwhile is lost, and the evidence copies move to the run or back."""
        self._recorder = recorder
        if self._bus is not None and self.info is not None:
            self._restart_receiver(self.info)

    def cot_changed(self) -> None:
        """The window began or stopped sending to TAK: the receiver restarts (on its session, losing
        nothing) with its news going there or not; another feed in place of one needs nothing."""
        if self._bus is None or self.info is None or (self._cot_feed() is not None) == self._to_tak:
            return
        self._restart_receiver(self.info)

    def _restart_receiver(self, info) -> None:
        self._stop_receiver()
        try:
            self._start_receiver(info)
        except (UserError, OSError, ssl.SSLError, ValueError) as exc:
            self._say(f"event bus {info.url}: the station did not restart: {exc}")

    def unit_views(self) -> list[UnitView]:
        """Every unit heard from, a copy each; empty when the station is not on a bus."""
        receiver = self._bus.receiver if self._bus is not None else None
        return receiver.unit_views() if receiver is not None else []

    def is_connected(self) -> bool:
        receiver = self._bus.receiver if self._bus is not None else None
        return receiver is not None and receiver.is_connected()

    def close(self) -> None:
        """Stop the receiver and our broker; remove what the session made (its PKI, its copies)."""
        self._stop()
        self._session.close()
        self._session_dir = None

    # ------------------------------------------------------------ starting and stopping

    def _start(self, slug: str) -> None:
        config = self.config
        assert config is not None
        if config.broker_url is None:
            pki_dir = self._embedded_pki()
            for who in (ids.station(slug), *(ids.unit(slug, n) for n in range(1, config.units + 1))):
                if not pki.client_credentials(pki_dir, who).cert.exists():
                    pki.issue(pki_dir, who)
            self._broker = self._start_broker(pki_dir)
            info = BusInfo(slug, self._broker.address.url, pki_dir, embedded=True, units=config.units)
        else:
            pki_dir = Path(config.pki_dir or ".")
            credentials_in(pki_dir, ids.station(slug).name)  # a missing certificate is one line naming it
            info = BusInfo(slug, config.broker_url, pki_dir, embedded=False, units=0)
        self._start_receiver(info)
        self.info = info
        self.started.emit(info)

    def _embedded_pki(self) -> Path:
        assert self.config is not None
        if self.config.pki_dir is not None:
            folder = Path(self.config.pki_dir)
            if not pki.ca_paths(folder)[0].exists():
                raise UserError(f"{folder}: no CA here; `borderwatch pki init {folder}` makes one")
            return folder
        folder = self._session_folder() / "pki"
        if not folder.exists():
            pki.init(folder)
        return folder

    def _start_broker(self, pki_dir: Path) -> Broker:
        # The last site's port when it is still free: units keep the address they were given.
        if self._port is not None:
            with contextlib.suppress(UserError):
                return Broker(pki_dir, port=self._port).__enter__()
        broker = Broker(pki_dir).__enter__()
        self._port = broker.address.port
        return broker

    def _start_receiver(self, info: BusInfo) -> None:
        recorder = self._recorder
        if recorder is not None and bus_site(recorder.site.name) == info.site:
            target = recorder.onboard_dir
        else:
            recorder = None
            target = self._session_folder() / "onboard" / info.site
        try:
            if self._copies is not None and self._copies != target:
                _carry_copies(self._copies, target)
        except OSError as exc:
            self._say(f"{target}: the units' evidence copies could not be carried over: {exc}")
        self._copies = target
        handlers = self._handlers()
        self._to_tak = self._cot_feed() is not None
        if self._to_tak:
            feed: Any = CurrentFeed(self._cot_feed)  # feed-shaped: the window's feed when a message comes
            # The units' field of view is not on the bus: 80°, as `borderwatch cot` assumes by default.
            bridge = BusToCot(feed, site_frame=self._frame, intrinsics=Intrinsics(), evidence_dir=target)
            handlers = bridge.handlers(handlers)
        bus = StationBus(info.site, broker_url=info.url, pki_dir=info.pki_dir, evidence_dir=target,
                         handlers=recording(recorder, handlers) if recorder is not None else handlers)  # fmt: skip
        bus.__enter__()
        self._bus = bus

    def _stop_receiver(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.__exit__(None, None, None)

    def _stop(self) -> None:
        was = self._bus is not None or self._broker is not None
        self._stop_receiver()
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.__exit__(None, None, None)
        self._copies = None
        self.info = None
        if was:
            self.stopped.emit()

    def _session_folder(self) -> Path:
        if self._session_dir is None:
            self._session_dir = Path(self._session.enter_context(tempfile.TemporaryDirectory(prefix="borderwatch-")))
        return self._session_dir

    # ------------------------------------------------------------ paho's thread

    def _handlers(self) -> Handlers:
        return Handlers(
            alert=lambda unit, alert: self._emit(self.alert, unit, alert),
            evidence=self._on_evidence,
            detections=self._on_detections,
            status=lambda view: self._emit(self.unit, view),
            problem=lambda line: self._emit(self.problem, line),
        )

    def _on_evidence(self, unit: int, record: EvidenceRecord, snapshot_jpeg: bytes | None) -> None:
        body = record.to_json()["payload"].get("alert")
        if not snapshot_jpeg or not isinstance(body, dict):
            return
        try:
            alert = Alert.from_json_dict(body)
        except (KeyError, TypeError, ValueError):
            return  # a record of another kind: kept in the copy, nothing to show
        self._emit(self.snapshot, unit, alert, snapshot_jpeg)

    def _on_detections(self, unit: int, doc: dict) -> None:
        try:
            detections = detections_from_json(doc)
        except ValueError as exc:
            if unit not in self._bad_detections:
                self._bad_detections.add(unit)
                self._emit(self.problem, f"unit-{unit}: detections dropped: {exc}")
            return
        self._emit(self.detections, unit, detections)

    def _emit(self, signal, *args) -> None:
        with contextlib.suppress(RuntimeError):  # the app is closing and this object is gone
            signal.emit(*args)

    def _say(self, line: str) -> None:
        if line != self._last_said:  # the same failure at each edit of the site is said once
            self._last_said = line
            self.problem.emit(line)


def _carry_copies(source: Path, target: Path) -> None:
    """Each unit's evidence copy in ``source`` replaces the one in ``target`` (the newer chain is in ``source``)."""
    if not source.is_dir():
        return
    target.mkdir(parents=True, exist_ok=True)
    for unit in sorted(source.glob("unit-*")):
        if unit.is_dir():
            shutil.rmtree(target / unit.name, ignore_errors=True)
            shutil.copytree(unit, target / unit.name)
