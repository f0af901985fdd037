"""The vessels a run saw and what AIS said of them: the report's "Vessels seen" table and its AIS KPI line.

One row per vessel track (a video source's track id), with its AIS status:

* **bound**: its detections carried an MMSI (the AIS watch bound the track to a target); every MMSI it
  carried, in the order it first carried them, when the binding changed over time;
* **dark**: a dark-vessel alert names the track. A track called dark and bound later is still dark (the
  alert stands), with the MMSI it was bound to listed;
* **unidentified**: seen, never bound, never called dark (the watch had no feed, or too little time);

and one row per ais-not-seen alert: an AIS target's position that a camera looked at and saw nothing at.
Alerts are taken as the report shows them (:attr:`RunData.shown_alerts`: as the verified evidence says
them where it can). Pure, but for :func:`verified_ais_reports`, which reads the AIS reports held in the
verified evidence records.
"""

from __future__ import annotations

import enum
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from groundstation.runs.reader import RunData
from vision.alerts import Alert, RuleKind
from vision.detections import ObjectClass
from vision.evidence import EvidenceRecord
from vision.evidence_verify import read_records

AIS_RULES = frozenset({RuleKind.DARK_VESSEL, RuleKind.AIS_NOT_SEEN})


class AisStatus(enum.StrEnum):
    BOUND = "bound"
    DARK = "dark"
    UNIDENTIFIED = "unidentified"
    NOT_SEEN = "not seen"


@dataclass(frozen=True)
class VesselRow:
    """A vessel track seen (``track_id`` set), or an AIS position not seen (``track_id`` None)."""

    what: str  # "drone-1#4", or "MMSI 224000001 at 36.13000, -5.41000"
    status: AisStatus
    source: str
    track_id: int | None
    mmsis: tuple[int, ...]  # in the order the track first carried them
    names: tuple[str, ...]
    first_s: float  # a not-seen row's: its alert's time
    last_s: float
    alerts: tuple[Alert, ...]  # that name the track, in time order; a not-seen row's own


@dataclass(frozen=True)
class AisKpis:
    tracks: int
    bound: int
    dark: int
    unidentified: int
    not_seen: int  # ais-not-seen alerts: AIS positions a camera saw nothing at

    @property
    def summary(self) -> str:
        return (
            f"AIS: {self.tracks} vessel track(s) seen: {self.bound} bound, {self.dark} dark, "
            f"{self.unidentified} unidentified; {self.not_seen} AIS position(s) not seen"
        )


@dataclass(frozen=True)
class HeldAisReport:
    """An AIS position report as a verified evidence record holds it (its NMEA sentences stay there)."""

    mmsi: int
    time_s: float
    lat_deg: float
    lon_deg: float
    sog_kn: float | None
    cog_deg: float | None
    name: str | None


def has_ais(run: RunData) -> bool:
    """Whether the run holds anything of AIS: a detection bound to an MMSI, or an alert of AIS."""
    if any(a.rule in AIS_RULES or a.mmsi is not None for a in run.shown_alerts):
        return True
    return any(d.mmsi is not None for frame in run.detections for d in frame)


def vessel_rows(run: RunData) -> tuple[VesselRow, ...]:
    """The tracks in order of first sighting, then the AIS positions not seen in time order."""
    seen: dict[tuple[str, int], list[float]] = {}  # first, last
    mmsis: dict[tuple[str, int], dict[int, None]] = {}
    names: dict[tuple[str, int], dict[str, None]] = {}
    for frame in run.detections:
        for d in frame:
            if d.track_id is None or (d.object_class is not ObjectClass.VESSEL and d.mmsi is None):
                continue
            key = (frame.source, d.track_id)
            span = seen.setdefault(key, [frame.frame_time_s, frame.frame_time_s])
            span[0], span[1] = min(span[0], frame.frame_time_s), max(span[1], frame.frame_time_s)
            if d.mmsi is not None:
                mmsis.setdefault(key, {})[d.mmsi] = None
                if d.vessel_name:
                    names.setdefault(key, {})[d.vessel_name] = None
    alerts = run.shown_alerts
    track_alerts: dict[tuple[str, int], list[Alert]] = {}
    for alert in alerts:
        if alert.track_id is None or alert.rule is RuleKind.AIS_NOT_SEEN:
            continue
        key = (alert.source, alert.track_id)
        if key in seen or alert.rule is RuleKind.DARK_VESSEL:
            # A dark vessel whose sightings were not recorded was still seen: by the alert.
            span = seen.setdefault(key, [alert.time_s, alert.time_s])
            span[0], span[1] = min(span[0], alert.time_s), max(span[1], alert.time_s)
            track_alerts.setdefault(key, []).append(alert)
    rows = []
    for key, (first, last) in sorted(seen.items(), key=lambda kv: (kv[1][0], kv[0])):
        held = tuple(track_alerts.get(key, ()))
        if any(a.rule is RuleKind.DARK_VESSEL for a in held):
            status = AisStatus.DARK
        else:
            status = AisStatus.BOUND if key in mmsis else AisStatus.UNIDENTIFIED
        source, track = key
        rows.append(
            VesselRow(
                f"{source}#{track}",
                status,
                source,
                track,
                tuple(mmsis.get(key, ())),
                tuple(names.get(key, ())),
                first,
                last,
                held,
            )
        )
    for alert in alerts:
        if alert.rule is not RuleKind.AIS_NOT_SEEN:
            continue
        what = f"MMSI {alert.mmsi} at {alert.lat_deg:.5f}, {alert.lon_deg:.5f}"
        rows.append(
            VesselRow(
                what,
                AisStatus.NOT_SEEN,
                alert.source,
                None,
                () if alert.mmsi is None else (alert.mmsi,),
                () if not alert.vessel_name else (alert.vessel_name,),
                alert.time_s,
                alert.time_s,
                (alert,),
            )
        )
    return tuple(rows)


def ais_kpis(run: RunData) -> AisKpis | None:
    """The AIS line's counts; None for a run without AIS (an older run, or one with no feed)."""
    if not has_ais(run):
        return None
    rows = vessel_rows(run)

    def count(status: AisStatus) -> int:
        return sum(1 for r in rows if r.status is status)

    return AisKpis(
        tracks=sum(1 for r in rows if r.track_id is not None),
        bound=count(AisStatus.BOUND),
        dark=count(AisStatus.DARK),
        unidentified=count(AisStatus.UNIDENTIFIED),
        not_seen=count(AisStatus.NOT_SEEN),
    )


def verified_ais_reports(run: RunData) -> Mapping[str, tuple[HeldAisReport, ...]]:
    """alert_id → the AIS reports its verified evidence record holds (``payload["ais"]``), for those that hold any.

    Each log is read again only when the run has AIS at all: the records' payloads are not kept by the reader."""
    if not has_ais(run):
        return MappingProxyType({})
    wanted: dict[str, dict[int, str]] = {}  # log → seq → alert_id
    for alert_id, record in run.verified_alerts.items():
        wanted.setdefault(record.log, {})[record.seq] = alert_id
    out: dict[str, tuple[HeldAisReport, ...]] = {}
    for log, by_seq in wanted.items():
        folder = run.directory / log
        if not (folder / "evidence.jsonl").is_file():
            continue
        for _, record in read_records(folder):
            if isinstance(record, EvidenceRecord) and record.seq in by_seq:
                reports = _reports(record.payload.get("ais"))
                if reports:
                    out[by_seq[record.seq]] = reports
    return MappingProxyType(out)


def _reports(held: Any) -> tuple[HeldAisReport, ...]:
    if not isinstance(held, list | tuple):
        return ()
    reports = []
    for item in held:
        if not isinstance(item, Mapping):
            continue
        mmsi, time_s, lat, lon = (item.get(k) for k in ("mmsi", "time_s", "lat_deg", "lon_deg"))
        if not isinstance(mmsi, int) or not all(_is_number(v) for v in (time_s, lat, lon)):
            continue
        name = item.get("name")
        reports.append(
            HeldAisReport(
                mmsi,
                float(time_s),
                float(lat),
                float(lon),
                _number_or_none(item.get("sog_kn")),
                _number_or_none(item.get("cog_deg")),
                name if isinstance(name, str) and name else None,
            )
        )
    return tuple(sorted(reports, key=lambda r: (r.time_s, r.mmsi)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


# ------------------------------------------------------------------------------------------- HTML

VESSEL_HEADER = ("What", "AIS status", "MMSI", "Name", "First seen (UTC)", "Last seen (UTC)", "Alerts")
VESSELS_NOTE = (
    "A vessel track is <b>bound</b> when the AIS watch named it (every MMSI it carried is listed), <b>dark</b> "
    "when a dark-vessel alert names it (in a watch zone past its limit with no AIS), <b>unidentified</b> when "
    "neither. An AIS position <b>not seen</b> is an ais-not-seen alert: a target's reported position well inside "
    "a camera's view with no vessel there."
)


def vessel_cells(row: VesselRow) -> tuple[str, ...]:
    alerts = "; ".join(f"{a.rule.value} in {a.zone} at {clock(a.time_s)}" for a in row.alerts) or "—"
    return (
        row.what,
        str(row.status),
        ", ".join(map(str, row.mmsis)) or "—",
        ", ".join(row.names) or "—",
        clock(row.first_s),
        clock(row.last_s),
        alerts,
    )


def vessel_row_class(row: VesselRow) -> str:
    """The CSS class a row stands out with: dark in red, not seen in amber."""
    return {AisStatus.DARK: "dark", AisStatus.NOT_SEEN: "not-seen"}.get(row.status, "")


def vessel_label(mmsi: int | None, name: str | None) -> str:
    """How a popup or tooltip names a vessel: "MMSI 224000001 ALPHA"; empty without an MMSI."""
    if mmsi is None:
        return ""
    return f"MMSI {mmsi} {name}" if name else f"MMSI {mmsi}"


def ais_reports_html(reports: tuple[HeldAisReport, ...]) -> str:
    """The AIS reports of an evidence record as a small table for a popup."""
    if not reports:
        return ""
    e = html.escape
    head = "".join(f"<th>{h}</th>" for h in ("MMSI", "Time (UTC)", "Position", "SOG", "COG"))
    body = "".join(
        "<tr>"
        f"<td>{r.mmsi}{e(' ' + r.name) if r.name else ''}</td><td>{clock(r.time_s)}</td>"
        f"<td>{r.lat_deg:.5f}, {r.lon_deg:.5f}</td>"
        f"<td>{'—' if r.sog_kn is None else f'{r.sog_kn:.1f} kn'}</td>"
        f"<td>{'—' if r.cog_deg is None else f'{r.cog_deg:.0f}°'}</td>"
        "</tr>"
        for r in reports
    )
    return (
        f'<div class="borderwatch-ais-reports"><b>AIS reports in the evidence ({len(reports)})</b>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def clock(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).strftime("%H:%M:%S")
