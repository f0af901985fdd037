"""What the demo says on the terminal as it goes, headless or with the app: one line at a time,
each stamped with the time since the demo began."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from groundstation.fleet.state import FleetEvent, Reason, Severity, VehicleState, vehicle_name
from groundstation.runs.kpis import hms
from vision.alerts import Alert

# Events worth a line as they happen; the rest (items reached, status texts) show in the status line.
_SHOWN = frozenset({Reason.MISSION_COMPLETE, Reason.LANDED, Reason.LINK_LOST, Reason.LINK_RESTORED})


class Console:
    """Thread-safe: alerts come from the vision threads, events from the fleet link's."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.alerts = 0

    def say(self, text: str) -> None:
        with self._lock:
            self._write(f"[{hms(time.monotonic() - self._start):>6}] {text}")

    def alert(self, alert: Alert) -> None:
        with self._lock:
            self.alerts += 1
        named = "" if alert.mmsi is None else f" [{alert.vessel_name or 'MMSI'} {alert.mmsi}]"
        self.say(f"ALERT {alert.severity}: {alert.message}{named} ({alert.source})")

    def event(self, event: FleetEvent) -> None:
        if event.severity >= Severity.WARNING or event.reason in _SHOWN:
            self.say(event.message)

    def status(self, states: Sequence[VehicleState], streams: Sequence[tuple[str, float]] = ()) -> str:
        return status_line(states, streams, self.alerts)


def status_line(
    states: Sequence[VehicleState], streams: Sequence[tuple[str, float]], alerts: int, ais: str | None = None
) -> str:
    """Every vehicle's mode, mission item, height and battery; each stream's frame rate; the AIS feed's state
    (``ais``: "live, 12 vessel(s)", "dead: no line for 1m05s"); the alerts so far."""
    parts = []
    for s in states:
        item = f"item {max(s.mission_current, 0)}/{s.mission_total}" if s.mission_total else "no mission"
        alt = "?" if math.isnan(s.rel_alt_m) else f"{s.rel_alt_m:.0f} m"
        battery = "?" if math.isnan(s.battery_pct) else f"{s.battery_pct:.0f} %"
        link = "" if s.link_ok else " LINK LOST"
        parts.append(f"{vehicle_name(s.vehicle)} {s.flight_mode} {item} {alt} {battery}{link}")
    parts += [f"{name} {fps:.1f} fps" for name, fps in streams]
    if ais is not None:
        parts.append(f"AIS {ais}")
    return " | ".join([*parts, f"{alerts} alert(s)"])
