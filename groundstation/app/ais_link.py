"""The station's AIS feed: opened over the site's map, read once a second, reported to Qt as frozen values.

:class:`AisLink` owns one :class:`vision.ais.feed.AisFeed` at a time. The feed decodes on its own
thread; a timer on the interface thread takes the vessel table (``targets``, a tuple of
:class:`AisTarget`) and the feed's state (``status``) from it once a second, and the lines the
feed says from its thread come over as ``said``. Vessels are placed in the site's metres, so a
site with another frame opens the feed again (``set_frame``); ``feed_changed`` tells whoever
hands the feed on (the video pipelines) to take the new one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from missions.errors import UserError
from missions.geo import LocalFrame
from vision.ais.feed import AisFeed
from vision.ais.sources import FeedState

INTERVAL_MS = 1000


class AisLink(QObject):
    """An AIS source (udp://, tcp://, an .nmea log) read over the open site's frame, from `open` to `close`."""

    targets = pyqtSignal(object)  # tuple[AisTarget, ...]: the vessel table now
    status = pyqtSignal(str, object, str)  # one line, its FeedState (None: not reading), the feed's summary
    said = pyqtSignal(str)  # a line the feed says: what it dropped, a connection lost or back
    feed_changed = pyqtSignal()  # `feed` was opened, closed or replaced

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.feed: AisFeed | None = None
        self.url: str | None = None
        self._frame: LocalFrame | None = None
        self._clock: Callable[[], float] = time.time
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.tick)

    def open(self, url: str, frame: LocalFrame | None, *, clock: Callable[[], float] = time.time) -> bool:
        """Read `url` on `clock` over `frame` (None: waits for a site). False when it cannot open: `status` says why."""
        self.url = url.strip()
        self._clock = clock
        return self._reopen(frame)

    def set_frame(self, frame: LocalFrame | None) -> None:
        """The site changed: a feed over another frame is opened again over this one."""
        if self.url is not None and frame is not None and frame != self._frame:
            self._reopen(frame)

    def close(self) -> None:
        self.url = None
        if self._close_feed():
            self.feed_changed.emit()

    def tick(self) -> None:
        feed = self.feed
        if feed is None:
            return
        now_s = self._clock()
        targets = feed.targets(now_s)
        status = feed.status(now_s)
        self.targets.emit(targets)
        self.status.emit(f"AIS {status}, {len(targets)} vessel(s)", status.state, feed.summary(now_s))

    def _reopen(self, frame: LocalFrame | None) -> bool:
        had_feed = self._close_feed()
        self._frame = frame
        opened = False
        if frame is None:
            line = f"AIS {self.url}: waiting for a site to place its vessels"
            self.status.emit(line, FeedState.WAITING, line)
        else:
            try:
                self.feed = AisFeed(self.url or "", frame, clock=self._clock, say=self._say).start()
            except UserError as exc:
                self.status.emit(f"AIS: {exc}", FeedState.DEAD, str(exc))
                self.said.emit(f"AIS: {exc}")
            else:
                opened = True
                self._timer.start()
                self.tick()
        if had_feed or opened:
            self.feed_changed.emit()
        return opened

    def _close_feed(self) -> bool:
        """Close the feed (True if one was open); an empty table goes out, so its vessels leave the map."""
        self._timer.stop()
        feed, self.feed = self.feed, None
        if feed is None:
            return False
        feed.close()
        self.targets.emit(())
        return True

    def _say(self, line: str) -> None:
        # Called on the feed's thread: the queued signal carries the line to the interface's.
        with contextlib.suppress(RuntimeError):  # the link is gone (the app is closing): nobody reads it
            self.said.emit(line)
