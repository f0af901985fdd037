"""A run's report: one HTML page with a map of what was planned, flown, seen and found, and the KPIs.

The map is the preview map of :mod:`groundstation.runs.maps` (offline Leaflet beside the page, zones
coloured by role and risk, planned routes per vehicle) with the run's layers drawn on top: the
ground the cameras saw, the flown tracks, detections by class and alerts whose popups show the
evidence snapshot. Each alert is drawn and listed as its verified evidence record says it, with the
key that signed it; a line of alerts.jsonl that the verified evidence does not bear out (it differs
from its record, has none, or its record's log does not verify) is listed in red as unverified, with
the reason. Everything the page needs lies in one folder::

    OUT_DIR/report.html
    OUT_DIR/report_files/leaflet/      Leaflet, copied from the npm install
    OUT_DIR/report_files/snapshots/    the alerts' evidence JPEGs, copied from the run

so the folder can be zipped and read anywhere, with no network.
"""

from __future__ import annotations

import html
import itertools
import math
import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import folium
import shapely
from branca.element import Element, MacroElement
from folium.template import Template
from shapely.geometry.base import BaseGeometry

from groundstation.runs import vessels
from groundstation.runs.kpis import (
    VISIT_FOOTPRINT_SHARE,
    VISIT_GAP_S,
    VISIT_ZONE_SHARE,
    RunKpis,
    compute_run_kpis,
    hms,
    seen_area_m,
)
from groundstation.runs.maps import MapLegend, MapRoute, map_text, write_preview_map
from groundstation.runs.reader import AlertCheck, EvidenceAlert, RunData, TelemetryPoint
from groundstation.runs.style import (
    AIS_MARKERS,
    ALERT_OUTLINE_COLOR,
    DETECTION_COLORS,
    SEEN_COLOR,
    UNVERIFIED_COLOR,
    risk_color,
    route_color,
)
from vision.alerts import Alert, RuleKind
from vision.detections import ObjectClass

# A track's position is drawn at most this often, and at most this many markers in all: an hour's
# patrol records tens of thousands of sightings, and a map of them all is a slow smear.
DETECTION_EVERY_S = 10.0
MAX_DETECTION_MARKERS = 3000
# A flown track is broken where telemetry stopped this long (a link loss), rather than drawn straight across.
TRACK_GAP_S = 60.0
MAX_ALERT_ROWS = 200  # verified ones: every unverified line is listed


def default_report_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "report" / "report.html"


def write_report(run: RunData, out_html: str | Path, kpis: RunKpis | None = None) -> Path:
    """Write the report page and its folder of assets; the page's path."""
    out_html = Path(out_html)
    kpis = kpis or compute_run_kpis(run)
    assets = out_html.parent / f"{out_html.stem}_files"
    snapshot_urls = _copy_snapshots(run, assets / "snapshots", f"{quote(assets.name)}/snapshots")
    ais_reports = vessels.verified_ais_reports(run)

    def add_layers(fmap: folium.Map, legend: MapLegend) -> None:
        _draw_seen(fmap, run, legend)
        _draw_tracks(fmap, run, kpis, legend)
        _draw_detections(fmap, run, legend)
        _draw_alerts(fmap, run, snapshot_urls, ais_reports, legend)
        fmap.get_root().header.add_child(Element(_STYLE), name="borderwatch_report_style")
        fmap.add_child(_BelowMap(_kpi_section(run, kpis, snapshot_urls)))

    title = f"{run.site.name} — run of {run.started}"
    return write_preview_map(run.site, _planned_routes(run), out_html, title=title, add_layers=add_layers)


def _planned_routes(run: RunData) -> list[MapRoute]:
    routes = []
    for plan in run.plans:
        label = run.vehicle_label(plan.vehicle)
        points = tuple((w.lat_deg, w.lon_deg) for w in plan.plan.positions())
        routes.append(
            MapRoute(f"{label} sortie {plan.sortie} (planned)", points, route_color(plan.vehicle), f"{label} planned")
        )
    return routes


def _copy_snapshots(run: RunData, folder: Path, url_prefix: str) -> dict[str, str]:
    """Copy each verified alert's evidence JPEG beside the report; alert_id → URL relative to the page."""
    urls = {}
    for alert_id, record in run.verified_alerts.items():
        if record.snapshot is None or not record.snapshot.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record.snapshot, folder / record.snapshot.name)
        urls[alert_id] = f"{url_prefix}/{quote(record.snapshot.name)}"
    return urls


def _draw_seen(fmap: folium.Map, run: RunData, legend: MapLegend) -> None:
    seen = seen_area_m(run)
    if seen.is_empty:
        return
    # A metre off on the map is far below a pixel at any zoom that shows a patrol.
    seen_deg = run.site.frame.to_geo(seen.simplify(1.0))
    layer = folium.FeatureGroup(name="Seen by the cameras").add_to(fmap)
    for rings in _polygon_rings(seen_deg):
        folium.Polygon(
            rings,
            color=SEEN_COLOR,
            weight=1,
            opacity=0.6,
            fill_color=SEEN_COLOR,
            fill_opacity=0.25,
            class_name="borderwatch-seen",
        ).add_to(layer)
    legend.add("fill", SEEN_COLOR, "Seen by the cameras")


def _draw_tracks(fmap: folium.Map, run: RunData, kpis: RunKpis, legend: MapLegend) -> None:
    per_vehicle: dict[int, list[TelemetryPoint]] = {}
    for point in sorted(run.telemetry, key=lambda p: p.time_s):
        if point.has_position:
            per_vehicle.setdefault(point.vehicle, []).append(point)
    flown = {v.vehicle: v for v in kpis.vehicles}
    for vehicle, points in sorted(per_vehicle.items()):
        label = run.vehicle_label(vehicle)
        color = route_color(vehicle)
        layer = folium.FeatureGroup(name=map_text(f"{label} flown")).add_to(fmap)
        stats = flown.get(vehicle)
        tooltip = f"{label} flown"
        if stats is not None:
            tooltip += f" — {stats.distance_m / 1000:.2f} km in {hms(stats.flight_time_s)}"
        for segment in _segments(points):
            line = [(p.lat_deg, p.lon_deg) for p in segment]
            # A white casing under a wider line: flown tracks read apart from the planned routes of the same colour.
            folium.PolyLine(line, color="#ffffff", weight=8, opacity=0.8).add_to(layer)
            folium.PolyLine(line, color=color, weight=4, opacity=1.0, tooltip=map_text(tooltip)).add_to(layer)
        legend.add("line", color, f"{label} flown")


def _segments(points: list[TelemetryPoint]) -> Iterator[list[TelemetryPoint]]:
    segment: list[TelemetryPoint] = []
    for a, b in itertools.pairwise([None, *points]):
        if a is not None and b.time_s - a.time_s > TRACK_GAP_S:
            if len(segment) >= 2:
                yield segment
            segment = []
        segment.append(b)
    if len(segment) >= 2:
        yield segment


def _draw_detections(fmap: folium.Map, run: RunData, legend: MapLegend) -> None:
    last_drawn: dict[tuple, float] = {}
    per_class: dict[ObjectClass, list[tuple[float, float, str]]] = {}
    for frame in sorted(run.detections, key=lambda f: f.frame_time_s):
        for d in frame:
            if not d.has_geo_position:
                continue
            key = (frame.source, d.track_id if d.track_id is not None else ("untracked", d.object_class))
            if frame.frame_time_s - last_drawn.get(key, -math.inf) < DETECTION_EVERY_S:
                continue
            last_drawn[key] = frame.frame_time_s
            track = "" if d.track_id is None else f" #{d.track_id}"
            vessel = "" if d.mmsi is None else f" — {vessels.vessel_label(d.mmsi, d.vessel_name)}"
            text = f"{d.object_class.value}{track} ({d.confidence:.2f}) at {_clock(frame.frame_time_s)}{vessel}"
            per_class.setdefault(d.object_class, []).append((d.lat_deg, d.lon_deg, text))
    total = sum(len(v) for v in per_class.values())
    step = max(1, math.ceil(total / MAX_DETECTION_MARKERS))
    for cls in sorted(per_class, key=lambda c: c.value):
        color = DETECTION_COLORS[cls]
        layer = folium.FeatureGroup(name=f"Detections: {cls.value}").add_to(fmap)
        for lat, lon, text in per_class[cls][::step]:
            folium.CircleMarker(
                (lat, lon), radius=3, color=color, weight=1, fill_color=color, fill_opacity=0.8, tooltip=map_text(text)
            ).add_to(layer)
        legend.add("dot", color, f"Detection: {cls.value}")


def _draw_alerts(
    fmap: folium.Map,
    run: RunData,
    snapshot_urls: Mapping[str, str],
    ais_reports: Mapping[str, tuple[vessels.HeldAisReport, ...]],
    legend: MapLegend,
) -> None:
    # An unverified line whose alert has a verified record is told in that record's popup, not drawn over it.
    unverified = [c for c in run.unverified_alerts if c.alert.alert_id not in run.verified_alerts]
    layers: dict[RuleKind | None, folium.FeatureGroup] = {}
    for record in _verified(run):
        alert = record.alert
        ais = AIS_MARKERS.get(alert.rule)
        key = alert.rule if ais else None
        if key not in layers:
            layers[key] = folium.FeatureGroup(name=f"Alerts: {ais.label}" if ais else "Alerts").add_to(fmap)
            if ais:
                legend.add(ais.legend_kind, ais.color, ais.label)
            else:
                legend.add("ring", ALERT_OUTLINE_COLOR, "Alert (filled by zone risk)")
        tooltip = map_text(f"{alert.severity.upper()}: {alert.message}")
        if ais is None:
            marker = folium.CircleMarker(
                (alert.lat_deg, alert.lon_deg),
                radius=9,
                color=ALERT_OUTLINE_COLOR,
                weight=2,
                fill_color=risk_color(alert.risk),
                fill_opacity=1.0,
                tooltip=tooltip,
            )
        else:
            marker = folium.Marker(
                (alert.lat_deg, alert.lon_deg),
                icon=folium.DivIcon(ais.html, icon_size=(20, 20), icon_anchor=(10, 10), class_name="borderwatch-ais"),
                tooltip=tooltip,
            )
        marker.add_to(layers[key])
        differing = [c for c in run.unverified_alerts if c.alert.alert_id == alert.alert_id]
        popup = _alert_popup(
            alert, snapshot_urls.get(alert.alert_id), record.signed_by, differing, ais_reports.get(alert.alert_id)
        )
        marker.add_child(_HtmlPopup(popup))
    if unverified:
        layer = folium.FeatureGroup(name="Unverified alerts").add_to(fmap)
        for check in unverified:
            alert = check.alert
            marker = folium.CircleMarker(
                (alert.lat_deg, alert.lon_deg),
                radius=9,
                color=UNVERIFIED_COLOR,
                weight=3,
                dash_array="4 3",
                fill_color="#ffffff",
                fill_opacity=0.9,
                tooltip=map_text(f"UNVERIFIED {alert.severity.upper()}: {alert.message}"),
            ).add_to(layer)
            marker.add_child(_HtmlPopup(_alert_popup(alert, None, None, [check])))
        legend.add("ring", UNVERIFIED_COLOR, "Unverified alert (alerts.jsonl only)")


def _verified(run: RunData) -> list[EvidenceAlert]:
    return sorted(run.verified_alerts.values(), key=lambda r: (r.alert.time_s, r.alert.alert_id))


def _alert_popup(
    alert: Alert,
    snapshot_url: str | None,
    signed: str | None,
    unverified: list[AlertCheck],
    ais: tuple[vessels.HeldAisReport, ...] | None = None,
) -> str:
    """The alert as ``signed`` (its verified record) says it, else as alerts.jsonl does; the lines of alerts.jsonl
    that the record does not bear out in red; the AIS reports its verified record holds."""
    e = html.escape
    track = "" if alert.track_id is None else f" #{alert.track_id}"
    rows = [
        f"<b>{e(alert.severity.upper())}</b> — {e(alert.message)}",
        f"{e(alert.iso_time)} · zone {e(alert.zone)} (risk {alert.risk})",
        f"{e(alert.object_class.value)}{track} · {e(alert.rule.value)} · {e(alert.source)}",
    ]
    if alert.mmsi is not None:
        rows.append(f"<b>{e(vessels.vessel_label(alert.mmsi, alert.vessel_name))}</b>")
    if signed:
        rows.append(f'<span class="borderwatch-verified">{e(signed)}</span>')
    rows += [f'<span class="borderwatch-unverified">{e(c.unverified_line)}</span>' for c in unverified]
    if snapshot_url:
        image = (
            f'<br><a href="{e(snapshot_url)}" target="_blank"><img class="borderwatch-snapshot" '
            f'src="{e(snapshot_url)}" alt="evidence snapshot"></a>'
        )
    else:
        image = "<br><i>no evidence snapshot</i>" if signed else "<br><i>no verified evidence snapshot</i>"
    return "<br>".join(rows) + vessels.ais_reports_html(ais or ()) + image


class _HtmlPopup(MacroElement):
    """A Leaflet popup of HTML. folium's Popup builds its content with jQuery, which an offline map does not load."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            {{ this._parent.get_name() }}.bindPopup({{ this.content|tojson }}, {maxWidth: 380, minWidth: 340});
        {% endmacro %}
        """
    )

    def __init__(self, content: str) -> None:
        super().__init__()
        self._name = "HtmlPopup"
        self.content = content


class _BelowMap(MacroElement):
    """HTML placed after the map's div: a map's children render their HTML after the map's own."""

    _template = Template(
        """
        {% macro html(this, kwargs) %}{{ this.content }}{% endmacro %}
        """
    )

    def __init__(self, content: str) -> None:
        super().__init__()
        self._name = "BelowMap"
        self.content = content


def _polygon_rings(shape: BaseGeometry) -> Iterator[list[list[tuple[float, float]]]]:
    parts = getattr(shape, "geoms", [shape])
    for part in parts:
        if isinstance(part, shapely.Polygon) and not part.is_empty:
            yield [[(lat, lon) for lon, lat in part.exterior.coords]] + [
                [(lat, lon) for lon, lat in ring.coords] for ring in part.interiors
            ]
        elif hasattr(part, "geoms"):
            yield from _polygon_rings(part)


def _clock(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).strftime("%H:%M:%S")


# ------------------------------------------------------------------------------------------- KPIs


def _kpi_section(run: RunData, k: RunKpis, snapshot_urls: Mapping[str, str]) -> str:
    e = html.escape
    ended = f"ended {e(k.ended)}" if k.ended else "not closed"
    ais = "" if k.ais is None else f'<p class="ais">{e(k.ais.summary)}</p>'
    unverified = f", {k.unverified_alerts} unverified in alerts.jsonl" if k.unverified_alerts else ""
    parts = [
        '<section class="borderwatch-report">',
        f"<h1>{e(k.site)}: patrol run</h1>",
        f"<p>Started {e(k.started)}, {ended}, {hms(k.duration_s)}; {k.frames} camera frames recorded.</p>",
        ais,
        ""
        if k.simulated_at is None
        else f"<p>Simulated at {k.simulated_at}: durations and revisits are in the drones' own time.</p>",
        f'<p class="verdict {"ok" if k.evidence.ok else "bad"}"><b>Evidence:</b> {e(k.evidence.verdict)}</p>',
        "<h2>Coverage</h2>",
        _table(
            ("Area", "Size", "Seen"),
            [
                (
                    "Operating area (minus no-fly)",
                    _km2(k.area_m2),
                    "—" if k.seen_share is None else f"{100 * k.seen_share:.1f} % ({_km2(k.seen_area_m2)})",
                )
            ],
        ),
        "<h2>Vehicles</h2>",
        _table(
            ("Vehicle", "Distance flown", "Time in the air"),
            [(v.name, f"{v.distance_m / 1000:.2f} km", hms(v.flight_time_s)) for v in k.vehicles],
        ),
        "<h2>Watch zones</h2>",
        f"<p class='note'>A frame visits a zone when it sees at least {100 * VISIT_ZONE_SHARE:.0f} % of it, or "
        f"looks at it with at least {100 * VISIT_FOOTPRINT_SHARE:.0f} % of its view; frames less than "
        f"{VISIT_GAP_S:.0f} s apart make one visit. Revisit intervals run from visit start to visit start.</p>",
        _table(
            ("Zone", "Risk", "Seen", "Visits", "Mean revisit", "Longest revisit", "Alerts"),
            [
                (
                    z.name,
                    "—" if z.risk is None else str(z.risk),
                    f"{100 * z.seen_share:.0f} %",
                    str(z.visits),
                    hms(z.mean_revisit_s),
                    hms(z.max_revisit_s),
                    str(z.alerts),
                )
                for z in k.zones
            ],
        ),
        "<h2>Detections and alerts by class</h2>",
        _table(
            ("Class", "Sightings", "Tracked objects", "Alerts"),
            [
                (
                    cls,
                    str(k.detections_per_class.get(cls, 0)),
                    str(k.tracks_per_class.get(cls, 0)),
                    str(k.alerts_per_class.get(cls, 0)),
                )
                for cls in sorted(set(k.detections_per_class) | set(k.tracks_per_class) | set(k.alerts_per_class))
            ],
        ),
        f"<h2>Alerts ({k.alerts}{unverified})</h2>",
        _alerts_table(run, snapshot_urls),
    ]
    if k.ais is not None:
        rows = vessels.vessel_rows(run)
        parts += [
            "<h2>Vessels seen</h2>",
            f"<p class='note'>{vessels.VESSELS_NOTE}</p>",
            _table(
                vessels.VESSEL_HEADER,
                [vessels.vessel_cells(r) for r in rows],
                [vessels.vessel_row_class(r) for r in rows],
            ),
        ]
    if k.warnings:
        parts += ["<h2>Warnings</h2>", "<ul>", *(f"<li>{e(w)}</li>" for w in k.warnings), "</ul>"]
    parts.append("</section>")
    return "\n".join(parts)


def _alerts_table(run: RunData, snapshot_urls: Mapping[str, str]) -> str:
    verified = _verified(run)
    rows: list[tuple[tuple, tuple, str]] = []  # (sort key, cells, row class)
    for record in verified[:MAX_ALERT_ROWS]:
        a = record.alert
        url = snapshot_urls.get(a.alert_id)
        cells = (a.iso_time, a.severity, a.zone, a.object_class.value, a.message, record.signed_by)
        rows.append(((a.time_s, a.alert_id, 0), (*cells, _Link(url, "snapshot") if url else "—"), ""))
    for check in run.unverified_alerts:
        a = check.alert
        cells = (a.iso_time, a.severity, a.zone, a.object_class.value, a.message, check.unverified_line, "—")
        rows.append(((a.time_s, a.alert_id, 1), cells, "unverified"))
    rows.sort(key=lambda row: row[0])
    header = ("Time (UTC)", "Severity", "Zone", "Class", "Message", "Signature", "Evidence")
    table = _table(header, [cells for _, cells, _ in rows], [css for _, _, css in rows])
    if run.unverified_alerts:
        n = len(run.unverified_alerts)
        lines = "line of alerts.jsonl is" if n == 1 else "lines of alerts.jsonl are"
        table = (
            f'<p class="verdict bad"><b>{n} {lines} not borne out by the verified evidence</b>: '
            "listed in red as unverified, with the reason. The other rows are as their signed evidence "
            "records say.</p>" + table
        )
    if len(verified) > MAX_ALERT_ROWS:
        table += (
            f"<p class='note'>The first {MAX_ALERT_ROWS} of {len(verified)} verified alerts; all are on the map.</p>"
        )
    return table


class _Link:
    def __init__(self, url: str, text: str) -> None:
        self.url, self.text = url, text

    def __html__(self) -> str:
        return f'<a href="{html.escape(self.url)}" target="_blank">{html.escape(self.text)}</a>'


def _table(header: tuple[str, ...], rows: list[tuple], row_classes: list[str] | None = None) -> str:
    if not rows:
        return "<p class='note'>None.</p>"

    def cell(value: object) -> str:
        return value.__html__() if isinstance(value, _Link) else html.escape(str(value))

    def tr(css: str) -> str:
        return f'<tr class="{html.escape(css)}">' if css else "<tr>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    classes = row_classes or [""] * len(rows)
    body = "".join(
        tr(css) + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row, css in zip(rows, classes, strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _km2(area_m2: float | None) -> str:
    return "—" if area_m2 is None else f"{area_m2 / 1e6:.3f} km²"


_STYLE = """<style>
    html, body { height: auto; }
    .folium-map { height: 70vh !important; min-height: 420px; }
    .leaflet-pane > svg path.borderwatch-seen { pointer-events: none !important; }
    .borderwatch-snapshot { width: 320px; height: auto; margin-top: 6px; border: 1px solid #999; }
    .borderwatch-report { font: 14px/1.5 sans-serif; color: #222; padding: 8px 24px 40px; max-width: 1100px; }
    .borderwatch-report h1 { font-size: 22px; margin: 12px 0 4px; }
    .borderwatch-report h2 { font-size: 17px; margin: 22px 0 6px; }
    .borderwatch-report table { border-collapse: collapse; }
    .borderwatch-report th, .borderwatch-report td { border: 1px solid #ccc; padding: 3px 10px; text-align: left; }
    .borderwatch-report th { background: #f0f2f5; }
    .borderwatch-report .note { color: #555; font-size: 13px; }
    .borderwatch-report .verdict { padding: 6px 10px; border-radius: 4px; }
    .borderwatch-report .verdict.ok { background: #e8f5e9; border: 1px solid #2e7d32; }
    .borderwatch-report .verdict.bad { background: #ffebee; border: 1px solid #c62828; }
    .borderwatch-report tr.unverified td { color: #c62828; background: #ffebee; font-weight: bold; }
    .borderwatch-report tr.dark td { color: #c62828; background: #ffebee; font-weight: bold; }
    .borderwatch-report tr.not-seen td { color: #8a4b00; background: #fff3e0; font-weight: bold; }
    .borderwatch-ais { background: none; border: none; }
    .borderwatch-ais-reports table { border-collapse: collapse; margin-top: 4px; font-size: 11px; }
    .borderwatch-ais-reports th, .borderwatch-ais-reports td { border: 1px solid #ccc; padding: 1px 4px; }
    .borderwatch-unverified { color: #c62828; font-weight: bold; }
    .borderwatch-verified { color: #2e7d32; }
</style>"""
