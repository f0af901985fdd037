"""`borderwatch ais`: read an AIS feed and show its vessel table, as the station will see it."""

from __future__ import annotations

import argparse
import time

from missions.errors import UserError
from missions.formats import load_site
from vision.ais.feed import AisFeed
from vision.ais.model import AisTarget
from vision.ais.sources import FeedState


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "ais",
        help="read an AIS feed (UDP, TCP or a .nmea log) and print its vessel table",
        description="Read NMEA 0183 !AIVDM/!AIVDO sentences (rtl_ais and AIS-catcher send them to UDP 10110) and "
        "print the vessels: MMSI, name, call sign, type, length, position dead-reckoned to now with its error, "
        "course, speed and the age of the last report, then what the feed dropped and why.",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="udp://HOST:PORT (listen), tcp://HOST:PORT (connect), or a .nmea log to replay")  # fmt: skip
    p.add_argument("--site", required=True, metavar="SITE", help="the site whose metric frame places the vessels")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C, or "
                   "the end of a log)")  # fmt: skip
    p.add_argument("--every", type=float, default=10.0, metavar="S", help="print the table every S seconds (10)")
    p.add_argument("--speed", type=float, metavar="K", help="replay a log K times faster than recorded (default: "
                   "as fast as it reads)")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for flag, value in (("--duration", args.duration), ("--every", args.every), ("--speed", args.speed)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be positive, not {value:g}")
    site = load_site(args.site)
    feed = AisFeed(args.source, site.frame, say=lambda line: print(f"borderwatch: {line}", flush=True),
                   speed=args.speed)  # fmt: skip
    started = time.monotonic()
    next_print = started + args.every
    with feed:
        try:
            while args.duration is None or time.monotonic() - started < args.duration:
                time.sleep(0.1)
                if feed.status(time.time()).state is FeedState.ENDED:
                    break
                if time.monotonic() >= next_print:
                    next_print += args.every
                    _print_table(feed)
        except KeyboardInterrupt:
            pass
    _print_table(feed)
    return 0


def _print_table(feed: AisFeed) -> None:
    now = _feed_now(feed)
    targets = feed.targets(now)
    print(feed.summary(now))
    if targets:
        print(f"  {'MMSI':>9}  {'name':<20} {'call':<7} {'type':>4} {'len':>4}  {'lat':>10} {'lon':>11} "
              f"{'±m':>4} {'COG':>4} {'SOG kn':>6} {'age s':>6}")  # fmt: skip
    for t in targets:
        print(_row(t))


def _feed_now(feed: AisFeed) -> float:
    """Now on the feed's clock: the wall clock, or a log replayed faster than real time's own latest time."""
    last = feed.source.last_line_s if feed.source is not None else None
    return max(time.time(), last or 0.0)


def _row(t: AisTarget) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    return (
        f"  {t.mmsi:>9}  {(t.name or '—')[:20]:<20} {(t.callsign or '—')[:7]:<7} {num(t.ship_type, 'd'):>4} "
        f"{num(t.length_m, '.0f'):>4}  {t.lat_deg:>10.5f} {t.lon_deg:>11.5f} {t.error_m:>4.0f} "
        f"{num(t.cog_deg, '.0f'):>4} {num(t.sog_kn, '.1f'):>6} {t.age_s:>6.0f}"
    )
