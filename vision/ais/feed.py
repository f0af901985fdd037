"""One AIS source decoded into a vessel table: what the pipeline, the app and ``borderwatch ais`` read.

The source's thread decodes each line as it comes and updates the table; readers on other threads
take frozen snapshots (``targets``, ``counts``, ``status``) whenever they like.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from missions.geo import LocalFrame
from vision.ais.decode import AisDecoder, DecodeCounts
from vision.ais.model import AisTarget
from vision.ais.sources import DEFAULT_DEAD_AFTER_S, AisSource, FeedStatus, open_ais_source
from vision.ais.table import DEFAULT_STALE_AFTER_S, VesselTable


class AisFeed:
    """``url`` (udp://, tcp://, a .nmea log) read into a :class:`VesselTable` over ``frame``, until ``close``."""

    def __init__(
        self,
        url: str,
        frame: LocalFrame,
        *,
        clock: Callable[[], float] = time.time,
        say: Callable[[str], None] | None = None,
        speed: float | None = 1.0,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        dead_after_s: float = DEFAULT_DEAD_AFTER_S,
    ) -> None:
        self.url = url
        self.dead_after_s = dead_after_s
        self._clock = clock
        self._say = say
        self._speed = speed
        self._lock = threading.Lock()  # the decoder is fed from the source's thread, read from others
        self.decoder = AisDecoder(source=url, say=say)
        self.table = VesselTable(frame, stale_after_s=stale_after_s, say=say)
        self._source: AisSource | None = None

    def start(self) -> AisFeed:
        """Open the source (UserError naming it when it cannot be opened) and start reading."""
        self._source = open_ais_source(self.url, self._line, self._clock, self._say, speed=self._speed)
        return self

    def close(self) -> None:
        if self._source is not None:
            self._source.close()

    def __enter__(self) -> AisFeed:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def source(self) -> AisSource | None:
        return self._source

    @property
    def counts(self) -> DecodeCounts:
        with self._lock:
            return self.decoder.counts

    def targets(self, now_s: float) -> tuple[AisTarget, ...]:
        return self.table.targets(now_s)

    def status(self, now_s: float) -> FeedStatus:
        if self._source is None:
            raise RuntimeError("the AIS feed was not started")
        return self._source.status(now_s, self.dead_after_s)

    def summary(self, now_s: float) -> str:
        """One line for a status bar or a terminal: the feed's state, its vessels and what it dropped."""
        counts = self.counts
        dropped = [
            f"{n} {what}"
            for n, what in (
                (counts.bad_checksum, "bad checksum(s)"),
                (counts.garbage, "garbage"),
                (counts.unknown_type, "of unknown type"),
                (counts.incomplete, "incomplete fragment(s)"),
                (counts.no_position, "without a position"),
            )
            if n
        ]
        conflicts = self.table.conflicts
        line = f"AIS {self.url}: {self.status(now_s)}, {len(self.targets(now_s))} vessel(s), "
        line += f"{counts.sentences} sentence(s), {counts.reports} report(s)"
        if dropped:
            line += f"; dropped: {', '.join(dropped)}"
        if conflicts:
            line += f"; {conflicts} position(s) from two places at once ({len(self.table.conflicting_mmsis)} MMSI)"
        return line

    def _line(self, line: str, time_s: float) -> None:
        with self._lock:
            reports = self.decoder.feed(line, time_s)
        for report in reports:
            self.table.update(report)
