"""`borderwatch fly`: one plan per vehicle, flown at once, with a progress line per vehicle and a report.

Exit 0 only when every mission completed and every vehicle is back on the ground and
disarmed; 1 when a flight failed (the report says which and why); 2 for bad input; 130 on
Ctrl-C, which only stops watching: vehicles keep doing what they were doing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from typing import TextIO

from groundstation.fleet import FleetError, FleetEvent, FleetLink, Reason, Severity, VehicleState
from groundstation.fleet.connections import parse_addresses
from groundstation.fleet.flight import Flight, FlightOptions, FlightOutcome, fly_all
from groundstation.fleet.mission import RawPlan, raw_plan
from groundstation.fleet.state import vehicle_name
from missions.errors import InputError, UserError
from missions.formats.qgc_plan import read_plan

DEFAULT_PORT = 14540
EXIT_FAILED = 1

# Events worth a line as they happen; the rest (item reached, debug text) only feed the progress line.
_SHOWN = frozenset(set(Reason) - {Reason.MISSION_PROGRESS, Reason.STATUS_TEXT})


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "fly",
        help="upload and fly one plan per vehicle, show progress, report the outcome",
        description="Upload and fly one plan per vehicle (borderwatch or any QGroundControl .plan), "
        "watch them until they have landed, and report. Exit 0 only when every mission completed "
        "and every vehicle landed and disarmed.",
    )
    p.add_argument("plans", nargs="+", metavar="PLAN", help="QGroundControl .plan file, one per vehicle")
    p.add_argument(
        "--connect",
        action="extend",
        nargs="+",
        default=[],
        metavar="URL",
        help=f"MAVLink connection of the i-th vehicle (default udpin://0.0.0.0:{DEFAULT_PORT}+i); vehicles "
        "sharing one connection say which system they are: URL?system=N, or URL?system=1-10 for ten",
    )
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="give up after S seconds (3600)")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="wait S seconds for each vehicle to appear and have a position fix (30)",
    )
    p.add_argument(
        "--start-retry", type=float, default=15.0, metavar="S", help="retry a refused mission start for S seconds (15)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only events and the report")
    p.set_defaults(run=run)


def expand_urls(urls: list[str]) -> list[str]:
    """`URL?system=A-B` stands for the vehicles A to B on one connection, one URL each."""
    out = []
    for url in urls:
        base, sep, query = url.partition("?system=")
        first, dash, last = query.partition("-")
        if sep and dash and first.isdigit() and last.isdigit():
            if not 1 <= int(first) <= int(last) <= 255:
                raise UserError(f"--connect {url}: the systems must run upwards within 1–255")
            out += [f"{base}?system={n}" for n in range(int(first), int(last) + 1)]
        else:
            out.append(url)
    return out


def _inputs(args: argparse.Namespace) -> tuple[list[str], list[RawPlan], list[str]]:
    args.connect = expand_urls(args.connect)
    if len(args.connect) > len(args.plans):
        raise UserError(f"{len(args.connect)} --connect URLs for {len(args.plans)} plans: give one plan per vehicle")
    for name in ("timeout", "connect_timeout", "start_retry"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, not {getattr(args, name)}")
    raws = []
    for path in args.plans:
        plan = read_plan(path)
        if not plan.items:
            raise InputError(path, "has no mission items: nothing to fly")
        raws.append(raw_plan(plan, source=path))
    urls = list(args.connect) + [f"udpin://0.0.0.0:{DEFAULT_PORT + i}" for i in range(len(args.connect), len(raws))]
    try:
        parse_addresses(urls)
    except ValueError as exc:
        raise UserError(f"--connect: {exc}") from None
    return list(args.plans), raws, urls


def run(args: argparse.Namespace) -> int:
    names, raws, urls = _inputs(args)
    options = FlightOptions(health_timeout_s=args.connect_timeout, start_retry_s=args.start_retry)
    timeouts = {"timeout_s": args.timeout, "connect_timeout_s": args.connect_timeout}
    return asyncio.run(fly(names, raws, urls, options, **timeouts, quiet=args.quiet))


async def fly(
    names: list[str],
    raws: list[RawPlan],
    urls: list[str],
    options: FlightOptions,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    quiet: bool = False,
    out: TextIO | None = None,
) -> int:
    """Flies raws[i] on the vehicle at urls[i]; prints progress, events and the report to `out`."""
    out = out or sys.stdout
    deadline = time.monotonic() + timeout_s
    try:
        async with FleetLink.connect(urls, timeout_s=connect_timeout_s) as fleet:
            flights = [Flight(v, raw, options) for v, raw in zip(fleet, raws, strict=True)]
            display = _Display(out, names, urls, quiet)
            watchers = [asyncio.create_task(watch(fleet)) for watch in (display.show_events, display.show_progress)]
            outcomes: list[FlightOutcome] | None = None
            try:
                outcomes = await fly_all(flights, deadline - time.monotonic())
            finally:
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
                if outcomes is None:
                    print("interrupted: stopped watching; the vehicles carry on with what they were doing", file=out)
                display.report(outcomes if outcomes is not None else [f.outcome() for f in flights])
    except FleetError as exc:
        print(f"borderwatch: fly: {exc.reason.value}: {exc}", file=out, flush=True)
        return EXIT_FAILED
    return 0 if all(o.ok for o in outcomes) else EXIT_FAILED


class _Display:
    def __init__(self, out: TextIO, names: list[str], urls: list[str], quiet: bool) -> None:
        self.out = out
        self.names = names
        self.urls = urls
        self.quiet = quiet
        self.events: list[FleetEvent] = []
        self._lines: list[str] = []

    async def show_events(self, fleet: FleetLink) -> None:
        with fleet.events.subscribe(keep=1024) as events:
            async for event in events:
                self.events.append(event)
                if event.reason in _SHOWN or event.severity >= Severity.WARNING:
                    print(f"  {event.message}", file=self.out, flush=True)

    async def show_progress(self, fleet: FleetLink) -> None:
        if self.quiet:
            return
        while True:
            await asyncio.sleep(1.0)
            for state in (v.state for v in fleet):
                print(progress_line(state), file=self.out, flush=True)

    def report(self, outcomes: list[FlightOutcome]) -> None:
        p = self.out
        print("report:", file=p)
        for o in outcomes:
            name = vehicle_name(o.vehicle)
            print(f"  {name} ({self.names[o.vehicle]} via {self.urls[o.vehicle]}): {_verdict(o)}", file=p)
            print(
                f"    items reached {o.items_reached}/{o.items_total}, flight time {_duration(o.flight_time_s)}, "
                f"battery {_battery(o)}",
                file=p,
            )
            mine = [e for e in self.events if e.vehicle == o.vehicle and e.severity >= Severity.WARNING]
            for e in mine[-8:]:
                print(f"    {e.message.removeprefix(name + ': ')}", file=p)
            for note in o.notes:
                print(f"    {note}", file=p)
        failed = [o for o in outcomes if not o.ok]
        if not failed:
            print(f"all {len(outcomes)} missions completed; every vehicle landed and disarmed", file=p, flush=True)
        else:
            print(f"FAILED: {len(failed)} of {len(outcomes)} flights: {_verdict(failed[0])}", file=p, flush=True)


def progress_line(s: VehicleState) -> str:
    link = "link ok" if s.link_ok else "LINK LOST"
    item = f"item {max(s.mission_current, 0)}/{s.mission_total}" if s.mission_total > 0 else "no mission"
    return (
        f"{vehicle_name(s.vehicle)}: {s.flight_mode:<16} {item:<12} alt {_num(s.rel_alt_m, 'm')} "
        f"speed {_num(s.ground_speed_m_s, 'm/s')} battery {_num(s.battery_pct, '%', 0)} "
        f"{'armed' if s.armed else 'disarmed'} {s.landed_state.value} {link}"
    )


def _verdict(o: FlightOutcome) -> str:
    if o.error is not None:
        return f"{o.error.reason.value}: {o.error}"
    if o.ok:
        return "mission complete, landed and disarmed"
    if not o.mission_complete:
        where = "landed" if o.landed else "not landed"
        return f"mission not completed ({o.items_reached}/{o.items_total} items), {where}"
    return "mission complete but the vehicle has not landed and disarmed"


def _num(value: float, unit: str, digits: int = 1) -> str:
    return "   ?" if math.isnan(value) else f"{value:5.{digits}f} {unit}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _battery(o: FlightOutcome) -> str:
    if math.isnan(o.battery_start_pct) or math.isnan(o.battery_end_pct):
        return "unknown"
    return f"{o.battery_start_pct:.0f}% → {o.battery_end_pct:.0f}% ({o.battery_used_pct:.0f}% used)"
