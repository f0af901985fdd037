"""A run's report: one HTML page with a map of what was planned, flown, seen and found, and the KPIs.

The map is the preview map of :mod:`groundstation.maps` (offline Leaflet beside the page, zones
coloured by role and risk, planned routes per vehicle) with the run's layers drawn on top: the
ground the cameras saw, the flown tracks, detections by class and alerts whose popups show the
evidence snapshot. Everything the page needs lies in one folder::

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

from groundstation.maps import RISK_COLORS, MapLegend, MapRoute, map_text, route_color, write_preview_map
from groundstation.run_data import RunData, TelemetryPoint
from groundstation.run_kpis import (
    VISIT_FOOTPRINT_SHARE,
    VISIT_GAP_S,
    VISIT_ZONE_SHARE,
    RunKpis,
    compute_run_kpis,
    hms,
    seen_area_m,
)
from vision.alerts import Alert
from vision.detections import ObjectClass

SEEN_COLOR = "#4fc3f7"
CLASS_COLORS = {
    ObjectClass.VESSEL: "#0277bd",
    ObjectClass.VEHICLE: "#ef6c00",
    ObjectClass.PERSON: "#c2185b",
    ObjectClass.OTHER: "#616161",
}
# A track's position is drawn at most this often, and at most this many markers in all: an hour's
# patrol records tens of thousands of sightings, and a map of them all is a slow smear.
DETECTION_EVERY_S = 10.0
MAX_DETECTION_MARKERS = 3000
# A flown track is broken where telemetry stopped this long (a link loss), rather than drawn straight across.
TRACK_GAP_S = 60.0
MAX_ALERT_ROWS = 200


def default_report_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "report" / "report.html"


def write_report(run: RunData, out_html: str | Path, kpis: RunKpis | None = None) -> Path:
    """Write the report page and its folder of assets; the page's path."""
    out_html = Path(out_html)
    kpis = kpis or compute_run_kpis(run)
    assets = out_html.parent / f"{out_html.stem}_files"
    snapshot_urls = _copy_snapshots(run, assets / "snapshots", f"{quote(assets.name)}/snapshots")

    def add_layers(fmap: folium.Map, legend: MapLegend) -> None:
        _draw_seen(fmap, run, legend)
        _draw_tracks(fmap, run, kpis, legend)
        _draw_detections(fmap, run, legend)
        _draw_alerts(fmap, run, snapshot_urls, legend)
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
    """Copy each alert's evidence JPEG beside the report; alert_id → URL relative to the page."""
    urls = {}
    for alert_id, source in run.snapshots.items():
        if not source.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / source.name)
        urls[alert_id] = f"{url_prefix}/{quote(source.name)}"
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
            text = f"{d.object_class.value}{track} ({d.confidence:.2f}) at {_clock(frame.frame_time_s)}"
            per_class.setdefault(d.object_class, []).append((d.lat_deg, d.lon_deg, text))
    total = sum(len(v) for v in per_class.values())
    step = max(1, math.ceil(total / MAX_DETECTION_MARKERS))
    for cls in sorted(per_class, key=lambda c: c.value):
        color = CLASS_COLORS[cls]
        layer = folium.FeatureGroup(name=f"Detections: {cls.value}").add_to(fmap)
        for lat, lon, text in per_class[cls][::step]:
            folium.CircleMarker(
                (lat, lon), radius=3, color=color, weight=1, fill_color=color, fill_opacity=0.8, tooltip=map_text(text)
            ).add_to(layer)
        legend.add("dot", color, f"Detection: {cls.value}")


def _draw_alerts(fmap: folium.Map, run: RunData, snapshot_urls: Mapping[str, str], legend: MapLegend) -> None:
    alerts = _unique_alerts(run)
    if not alerts:
        return
    layer = folium.FeatureGroup(name="Alerts").add_to(fmap)
    for alert in alerts:
        marker = folium.CircleMarker(
            (alert.lat_deg, alert.lon_deg),
            radius=9,
            color="#111111",
            weight=2,
            fill_color=RISK_COLORS[min(max(alert.risk, 1), 5)],
            fill_opacity=1.0,
            tooltip=map_text(f"{alert.severity.upper()}: {alert.message}"),
        ).add_to(layer)
        marker.add_child(_HtmlPopup(_alert_popup(alert, snapshot_urls.get(alert.alert_id))))
    legend.add("ring", "#111111", "Alert (filled by zone risk)")


def _unique_alerts(run: RunData) -> list[Alert]:
    return sorted({a.alert_id: a for a in run.alerts}.values(), key=lambda a: a.time_s)


def _alert_popup(alert: Alert, snapshot_url: str | None) -> str:
    e = html.escape
    track = "" if alert.track_id is None else f" #{alert.track_id}"
    rows = [
        f"<b>{e(alert.severity.upper())}</b> — {e(alert.message)}",
        f"{e(alert.iso_time)} · zone {e(alert.zone)} (risk {alert.risk})",
        f"{e(alert.object_class.value)}{track} · {e(alert.rule.value)} · {e(alert.source)}",
    ]
    image = (
        f'<br><a href="{e(snapshot_url)}" target="_blank"><img class="borderwatch-snapshot" src="{e(snapshot_url)}" '
        f'alt="evidence snapshot"></a>'
        if snapshot_url
        else "<br><i>no evidence snapshot</i>"
    )
    return "<br>".join(rows) + image


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
    parts = [
        '<section class="borderwatch-report">',
        f"<h1>{e(k.site)}: patrol run</h1>",
        f"<p>Started {e(k.started)}, {ended}, {hms(k.duration_s)}; {k.frames} camera frames recorded.</p>",
        ""
        if k.time_scale == 1.0
        else f"<p>Simulated at {k.time_scale:g}× real time: durations and revisits are in the drones' own time.</p>",
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
        f"<h2>Alerts ({k.alerts})</h2>",
        _alerts_table(run, snapshot_urls),
    ]
    if k.warnings:
        parts += ["<h2>Warnings</h2>", "<ul>", *(f"<li>{e(w)}</li>" for w in k.warnings), "</ul>"]
    parts.append("</section>")
    return "\n".join(parts)


def _alerts_table(run: RunData, snapshot_urls: Mapping[str, str]) -> str:
    alerts = _unique_alerts(run)
    rows = []
    for a in alerts[:MAX_ALERT_ROWS]:
        url = snapshot_urls.get(a.alert_id)
        rows.append(
            (
                a.iso_time,
                a.severity,
                a.zone,
                a.object_class.value,
                a.message,
                _Link(url, "snapshot") if url else "—",
            )
        )
    table = _table(("Time (UTC)", "Severity", "Zone", "Class", "Message", "Evidence"), rows)
    if len(alerts) > MAX_ALERT_ROWS:
        table += f"<p class='note'>The first {MAX_ALERT_ROWS} of {len(alerts)} alerts; all are on the map.</p>"
    return table


class _Link:
    def __init__(self, url: str, text: str) -> None:
        self.url, self.text = url, text

    def __html__(self) -> str:
        return f'<a href="{html.escape(self.url)}" target="_blank">{html.escape(self.text)}</a>'


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    if not rows:
        return "<p class='note'>None.</p>"

    def cell(value: object) -> str:
        return value.__html__() if isinstance(value, _Link) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
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
</style>"""
