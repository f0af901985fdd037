"""`--cot URL …` made real: the destinations checked, a sender started, a feed over it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from missions.site import Site
from vision.cot.destinations import parse_destinations
from vision.cot.feed import CotFeed
from vision.cot.sender import CotSender

Say = Callable[[str], None]


@dataclass
class CotLink:
    """A feed and the sender under it; ``close`` ends the live tracks, flushes, and stops."""

    feed: CotFeed
    sender: CotSender
    clock: Callable[[], float] = time.time

    def close(self, flush_s: float = 2.0) -> None:
        self.feed.close(self.clock())
        self.sender.close(flush_s)

    def summary(self) -> str:
        parts = [f"{url}: {stats.sent} sent" for url, stats in self.sender.stats().items()]
        return "CoT " + "; ".join(parts)


def cot_site_name(site: Site | None, fallback: str = "borderwatch") -> str:
    """The site as the uid atom that keeps its events apart from another site's on one TAK server."""
    name = site.name if site is not None and site.name else fallback
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or fallback


def open_cot(
    urls: Sequence[str],
    site_name: str,
    zones: Iterable = (),
    say: Say | None = None,
    clock: Callable[[], float] = time.time,
) -> CotLink:
    """Parse every URL (UserError naming a bad one before anything starts), then start sending."""
    destinations = parse_destinations(urls)
    sender = CotSender(destinations, say=say)
    sender.start()
    return CotLink(CotFeed(site_name, sender.send, zones=zones), sender, clock)
