"""The window's link to TAK: one CoT feed and sender for the open site, its state in the status bar.

:class:`TakLink` owns one :class:`vision.cot.link.CotLink` at a time, open while TAK destinations
are set (the app's setting, or ``--cot`` for the session). What the station knows goes into its
feed: the fleet's telemetry snapshots (``report``), each video pipeline's tracks, alerts and camera
view (the pipelines are handed the link, see ``VisionWorker``), and what units publish on the bus
(the station's receiver chains ``BusToCot`` over :class:`CurrentFeed`). A timer on the interface
thread ticks the feed once a second, which keeps markers fresh and sends the site's zones when due,
and puts the sender's state in the status bar.

The site names the events (``borderwatch.<site>.…``): another site, or other destinations, close
the link and open a new one (``feed_changed`` tells whoever handed the old one on). Closing flushes
for up to two seconds, on a thread of its own so the interface never waits for it. The feed and
the sender are thread-safe and never block: the pipelines' threads and this one share them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from PyQt6.QtCore import QObject, QSettings, QTimer, pyqtSignal
from PyQt6.QtWidgets import QLabel, QWidget

from groundstation.app.settings import TAK_URLS_KEY, text_value
from groundstation.app.tak_dialog import TakDialog
from groundstation.fleet import VehicleState
from groundstation.link.cot import report_states
from missions.errors import UserError
from missions.site import Site
from vision.alerts import Alert
from vision.bus.tracks import TrackEvent
from vision.cot.destinations import parse_destinations
from vision.cot.events import DroneReport
from vision.cot.feed import CotFeed
from vision.cot.link import CotLink, cot_site_name, open_cot
from vision.cot.sender import DestinationStats

INTERVAL_MS = 1000
PROBLEM_STYLE = "color: #c62828; font-weight: bold"
TROUBLE_STYLE = "color: #ef6c00"
_TROUBLE = ("retrying", "failed")


class TakLink(QObject):
    """TAK destinations (``urls``) and, while there are any, the link to them; ``close`` ends it."""

    feed_changed = pyqtSignal()  # `link` was opened, closed or replaced: pipelines must take the new one
    said = pyqtSignal(str)  # a line the sender says: a destination lost or back, a certificate refused

    def __init__(
        self,
        settings: QSettings,
        urls: Sequence[str] | None = None,
        parent: QObject | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`urls`: the session's destinations (``--cot``) instead of the saved setting; None: the setting."""
        super().__init__(parent)
        self.settings = settings
        self.overridden = urls is not None
        self.urls: tuple[str, ...] = tuple(urls) if urls is not None else saved_urls(settings)
        self.link: CotLink | None = None
        self.label = QLabel()
        self.label.setContentsMargins(0, 0, 10, 0)  # apart from the fleet's status at its right
        self.label.hide()
        self._clock = clock
        self._site: Site | None = None
        self._site_name: str | None = None
        self._closed = False
        self._opened = False  # at least once: the first open waits for what the window opens at start
        self._closing: list[threading.Thread] = []
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.tick)
        # After the caller has opened what it opens at start: the first link is already its site's.
        QTimer.singleShot(0, self._first_open)

    @property
    def feed(self) -> CotFeed | None:
        return self.link.feed if self.link is not None else None

    # ------------------------------------------------------------ what the window tells it

    def set_urls(self, urls: Sequence[str], *, save: bool = True) -> None:
        """Send to these destinations from now on (none: stop sending); UserError naming a bad one, and
        nothing changed. `save` keeps them as the setting (the session's ``--cot`` no longer applies)."""
        urls = tuple(u.strip() for u in urls if u.strip())
        parse_destinations(urls)
        if save:
            self.settings.setValue(TAK_URLS_KEY, json.dumps(list(urls)))
            self.settings.sync()
            self.overridden = False
        self.urls = urls
        self._reopen()

    def set_site(self, site: Site | None) -> None:
        """The open site: its name is the events' uid atom, its zones go to TAK. The same site edited
        keeps the link and sends its zones as they are now at the next refresh."""
        self._site = site
        if self.link is not None and cot_site_name(site) == self._site_name:
            self.link.feed.zones = tuple(site.zones) if site is not None else ()
            return
        self._reopen()

    def report(self, states: tuple[VehicleState, ...]) -> None:
        """A fleet telemetry snapshot: each drone's position, heading, speed and battery."""
        if self.link is not None:
            report_states(self.link.feed, states, self._clock)

    def tick(self) -> None:
        link = self.link
        if link is not None:
            link.feed.tick(self._clock())
            self._show(link.sender.stats())

    def edit(self, parent: QWidget | None = None) -> TakDialog:
        """The *Send to TAK* dialog, open (not modal to the app's loop); OK applies and saves."""
        dialog = TakDialog(self.urls, overridden=self.overridden, parent=parent)
        dialog.chosen.connect(self.set_urls)
        dialog.open()
        return dialog

    def close(self) -> None:
        """Stop sending: the live tracks end on TAK screens, what is queued goes out (up to 2 s, off this thread)."""
        self._closed = True
        self._timer.stop()
        self._close_link()

    def wait_closed(self, timeout_s: float = 4.0) -> bool:
        """Wait for the links being closed to have flushed; True when they have."""
        deadline = time.monotonic() + timeout_s
        for thread in self._closing:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._closing = [t for t in self._closing if t.is_alive()]
        return not self._closing

    # ------------------------------------------------------------ opening and closing

    def _first_open(self) -> None:
        if not (self._closed or self._opened):
            self._reopen()

    def _reopen(self) -> None:
        self._opened = True
        had = self._close_link()
        if self._closed or not self.urls:
            self.label.hide()
            if had:
                self.feed_changed.emit()
            return
        site = self._site
        self._site_name = cot_site_name(site)
        try:
            self.link = open_cot(self.urls, self._site_name, site.zones if site is not None else (), say=self._say,
                                 clock=self._clock)  # fmt: skip
        except UserError as exc:
            self._problem(f"TAK: {exc}", str(exc))
            self.said.emit(f"TAK: {exc}")
        else:
            self._timer.start()
            self.tick()
        self.feed_changed.emit()

    def _close_link(self) -> bool:
        self._timer.stop()
        link, self.link = self.link, None
        if link is None:
            return False
        # Not a daemon: a process that exits right after the window still flushes what is queued.
        thread = threading.Thread(target=link.close, name="CoT close", daemon=False)
        thread.start()
        self._closing = [t for t in self._closing if t.is_alive()] + [thread]
        return True

    # ------------------------------------------------------------ the status bar

    def _show(self, stats: Mapping[str, DestinationStats]) -> None:
        text, tooltip, style = status_line(stats)
        self.label.setText(text)
        self.label.setToolTip(f"Cursor on Target to TAK, site {self._site_name}\n{tooltip}")
        self.label.setStyleSheet(style)
        self.label.show()

    def _problem(self, text: str, tooltip: str) -> None:
        self.label.setText(text)
        self.label.setToolTip(tooltip)
        self.label.setStyleSheet(PROBLEM_STYLE)
        self.label.show()

    def _say(self, line: str) -> None:
        # Called on the sender's thread: the queued signal carries the line to the interface's.
        with contextlib.suppress(RuntimeError):  # the link is gone (the app is closing): nobody reads it
            self.said.emit(line)


class CurrentFeed:
    """The feed the window's link has now, for what holds on to a feed longer than one link lasts (the
    bus's receiver): news for TAK goes to the current link's feed, and nowhere while there is none."""

    def __init__(self, feed: Callable[[], CotFeed | None]) -> None:
        self._feed = feed

    def drone(self, report: DroneReport, now_s: float) -> None:
        feed = self._feed()
        if feed is not None:
            feed.drone(report, now_s)

    def track(self, event: TrackEvent, now_s: float) -> None:
        feed = self._feed()
        if feed is not None:
            feed.track(event, now_s)

    def alert(self, alert: Alert, now_s: float, snapshot_url: str | None = None) -> None:
        feed = self._feed()
        if feed is not None:
            feed.alert(alert, now_s, snapshot_url)


def saved_urls(settings: QSettings) -> tuple[str, ...]:
    """The TAK destinations the settings keep; none when the value is missing or not a list of text."""
    try:
        value = json.loads(text_value(settings, TAK_URLS_KEY, "[]") or "[]")
    except json.JSONDecodeError:
        return ()
    return tuple(u for u in value if isinstance(u, str) and u.strip()) if isinstance(value, list) else ()


def status_line(stats: Mapping[str, DestinationStats]) -> tuple[str, str, str]:
    """The status bar's TAK: its text (``TAK: 2 destinations, 340 sent``, or the first destination in
    trouble, ``TAK: tcp://…:8087: retrying``), a line per destination for its tooltip, and its style."""
    sent = sum(s.sent for s in stats.values())
    count = f"{len(stats)} destination{'s' if len(stats) != 1 else ''}, {sent} sent"
    troubled = [(url, s) for url, s in stats.items() if s.state in _TROUBLE]
    if troubled:
        url, worst = next(((u, s) for u, s in troubled if s.state == "failed"), troubled[0])
        text = f"TAK: {url.split('?', 1)[0]}: {worst.state}"
        if len(stats) > 1:
            text += f" ({count})"
        style = PROBLEM_STYLE if len(troubled) == len(stats) else TROUBLE_STYLE
    else:
        text, style = f"TAK: {count}", ""
    lines = []
    for url, s in stats.items():
        line = f"{url}: {s.state}, {s.sent} sent"
        if s.pending:
            line += f", {s.pending} waiting"
        if s.last_error:
            line += f"; last error: {s.last_error}"
        lines.append(line)
    return text, "\n".join(lines), style
