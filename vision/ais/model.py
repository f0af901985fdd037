"""The types the AIS parts share. Times are seconds on the run's clock (Unix time, or a simulation's own)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

KNOT_M_S = 1852.0 / 3600.0


class AisClass(enum.Enum):
    """The transceiver class: A (ships under SOLAS, messages 1-3 and 5) or B (small craft, 18, 19, 24)."""

    A = "A"
    B = "B"


@dataclass(frozen=True)
class PositionReport:
    """A position a vessel broadcast (message 1, 2, 3, 18 or 19), as received at ``time_s``.

    ``sog_kn``, ``cog_deg`` and ``heading_deg`` are None where the message says "not available"
    (SOG 102.3, COG 360, heading 511). ``sentences`` are the NMEA lines it came in, kept for evidence.
    """

    mmsi: int
    time_s: float
    lat_deg: float
    lon_deg: float
    sog_kn: float | None
    cog_deg: float | None
    heading_deg: float | None
    ais_class: AisClass
    msg_type: int
    nav_status: int | None = None  # class A only: 1 at anchor, 5 moored, …
    sentences: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaticReport:
    """What a vessel says of itself (message 5, 19 or 24): None for what this message does not carry."""

    mmsi: int
    time_s: float
    msg_type: int
    name: str | None = None
    callsign: str | None = None
    ship_type: int | None = None
    length_m: float | None = None
    sentences: tuple[str, ...] = ()


AisReport = PositionReport | StaticReport


@dataclass(frozen=True)
class AisTarget:
    """One row of the vessel table at a moment: its last position dead-reckoned to ``time_s``.

    ``error_m`` is the radius (metres, about 2 sigma) the vessel is within around ``x_m, y_m``:
    the report's own error, growing with the time since it (``age_s``). ``x_m, y_m`` are in the
    site's metric frame.
    """

    mmsi: int
    time_s: float
    lat_deg: float
    lon_deg: float
    x_m: float
    y_m: float
    error_m: float
    age_s: float
    sog_kn: float | None
    cog_deg: float | None
    heading_deg: float | None
    ais_class: AisClass
    name: str | None = None
    callsign: str | None = None
    ship_type: int | None = None
    length_m: float | None = None
    last_report: PositionReport | None = None

    @property
    def moving(self) -> bool:
        return self.sog_kn is not None and self.sog_kn >= 1.0

    @property
    def label(self) -> str:
        return f"{self.name} (MMSI {self.mmsi})" if self.name else f"MMSI {self.mmsi}"


@dataclass(frozen=True)
class TrackFix:
    """Where the video pipeline places one tracked vessel at ``time_s``, in the site's metric frame.

    ``error_m`` is the radius (about 2 sigma) of its geolocation error; ``vx_m_s, vy_m_s`` its
    velocity when the tracker has one. ``key`` names the track across sources ("camera-1#7").
    """

    key: str
    time_s: float
    x_m: float
    y_m: float
    error_m: float
    vx_m_s: float | None = None
    vy_m_s: float | None = None

    @property
    def speed_m_s(self) -> float | None:
        if self.vx_m_s is None or self.vy_m_s is None:
            return None
        return (self.vx_m_s**2 + self.vy_m_s**2) ** 0.5
