"""A ground station's place on the bus: the broker it uses and its receiver, for as long as it runs.

With no broker named, the station starts one of its own (the embedded default): a mosquitto
on a free loopback port, with a PKI made for the occasion (a CA, the broker's certificate,
the station's and one per unit) in a temporary folder, all stopped and removed on exit. The
units it starts (the demo's onboard processes) are given that folder. With ``mqtts://HOST:PORT``
the station uses the agency's broker and the certificates of a PKI folder made by
``borderwatch pki``.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path

from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import Broker
from groundstation.link.receiver import Handlers, Receiver, UnitView, station_endpoint
from groundstation.runs.reader import detections_from_json
from groundstation.runs.recorder import RunRecorder
from missions.errors import UserError
from vision.alerts import Alert
from vision.bus.address import BrokerAddress, parse_broker_url
from vision.camera import CameraPose

CONNECT_TIMEOUT_S = 10.0


def bus_site(name: str) -> str:
    """A site's name as one topic level: ``Algeciras port`` → ``algeciras-port``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return ids.check_site(slug or "site")


class StationBus:
    """The broker (ours or the agency's) and the station's receiver, from ``__enter__`` to ``__exit__``.

    ``units``: how many unit identities an embedded broker's PKI issues (unit-<site>-1 … n).
    ``evidence_dir``: where the receiver keeps each unit's evidence copy.
    """

    def __init__(
        self,
        site: str,
        *,
        broker_url: str | None = None,
        pki_dir: str | Path | None = None,
        units: int = 0,
        evidence_dir: str | Path | None = None,
        handlers: Handlers | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.site = ids.check_site(site)
        if broker_url is not None and pki_dir is None:
            raise UserError(f"--broker {broker_url}: also give --pki DIR, the folder with the station's certificate")
        self._address = parse_broker_url(broker_url) if broker_url is not None else None
        self.pki_dir = Path(pki_dir) if pki_dir is not None else None
        self.units = units
        self.evidence_dir = evidence_dir
        self.handlers = handlers or Handlers()
        self.connect_timeout_s = connect_timeout_s
        self.receiver: Receiver | None = None
        self.embedded = broker_url is None
        self._stack = contextlib.ExitStack()

    @property
    def address(self) -> BrokerAddress:
        if self._address is None:
            raise RuntimeError("the bus has no broker before it starts")
        return self._address

    def __enter__(self) -> StationBus:
        try:
            if self.embedded:
                self._start_embedded()
            assert self.pki_dir is not None
            endpoint = station_endpoint(self.pki_dir, self.site, self.address.host, self.address.port)
            self.receiver = Receiver(endpoint, self.site, evidence_dir=self.evidence_dir, handlers=self.handlers)
            self._stack.callback(self.receiver.close)
            self.receiver.start()
            if self.embedded and not self.receiver.wait_connected(self.connect_timeout_s):
                raise UserError(f"broker {self.address.url}: the station could not connect to its own broker")
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start_embedded(self) -> None:
        if self.pki_dir is None:
            self.pki_dir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="borderwatch-pki-")))
            pki.init(self.pki_dir)
        for who in (ids.station(self.site), *(ids.unit(self.site, n) for n in range(1, self.units + 1))):
            if not pki.client_credentials(self.pki_dir, who).cert.exists():
                pki.issue(self.pki_dir, who)
        broker = self._stack.enter_context(Broker(self.pki_dir))
        self._address = BrokerAddress(broker.address.host, broker.address.port)

    def unit_identity(self, number: int) -> str:
        return ids.unit(self.site, number).name


def recording(recorder: RunRecorder, then: Handlers | None = None) -> Handlers:
    """Handlers that put what units send into a run folder as the ground pipeline's results go
    there (alerts, detections; the receiver itself keeps the evidence copies in
    ``recorder.onboard_dir``), then tell ``then`` (an app, a console)."""
    then = then or Handlers()

    def alert(unit: int, a: Alert) -> None:
        recorder.emit(a)
        if then.alert:
            then.alert(unit, a)

    def detections(unit: int, doc: dict) -> None:
        found = detections_from_json(doc)
        if doc.get("pose") is not None:
            recorder.record_pose(unit - 1, found, CameraPose(**doc["pose"]))
        recorder.emit_detections(found)
        if then.detections:
            then.detections(unit, doc)

    def status(view: UnitView) -> None:
        recorder.note_onboard_head(view.unit, *view.evidence_head)
        if then.status:
            then.status(view)

    return Handlers(alert=alert, evidence=then.evidence, detections=detections, track=then.track, status=status,
                    problem=then.problem)  # fmt: skip
