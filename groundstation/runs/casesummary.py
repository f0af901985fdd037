"""The one-page summary of a case file: each alert's time, place on a small map of the site, class, zone,
snapshot and who signed it, readable offline in any browser (no script, no network: inline SVG and data URIs)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import shapely

from groundstation.runs.style import (
    ALERT_OUTLINE_COLOR,
    BACKGROUND_COLOR,
    SEVERITY_COLORS,
    UNKNOWN_SEVERITY_COLOR,
    zone_style,
)
from missions.site import Role, Site
from vision.evidence import EvidenceRecord


@dataclass(frozen=True)
class SummaryEntry:
    """An alert record as the summary shows it, with its snapshot when the case holds it."""

    log: str
    record: EvidenceRecord
    alert: Mapping[str, Any]
    snapshot: bytes | None


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}p{margin:4px 0}
.alert{display:grid;grid-template-columns:240px 320px 1fr;gap:14px;border-top:1px solid #ccc;padding:10px 0;
break-inside:avoid}.alert svg{width:240px;height:180px}.alert img{max-width:320px;max-height:180px}
table{border-collapse:collapse}th,td{text-align:left;padding:1px 10px 1px 0;vertical-align:top}
th{color:#555;font-weight:normal}code{font-size:12px;word-break:break-all}td{overflow-wrap:anywhere}
.alert>div{min-width:0}
.sev{color:#fff;padding:0 6px;border-radius:3px}.none{color:#777;font-style:italic}
"""


def summary_html(
    manifest: Mapping[str, Any], site: Site | None, entries: Sequence[SummaryEntry], sealed_by: str, name: str
) -> bytes:
    """The one page an investigator reads: each alert from its signed record, on a map of the site, with
    the keys, logs and withheld snapshots the manifest (files aside) lists."""
    e, run, keys = html.escape, manifest["run"], manifest["keys"]
    fingerprints = {k["key_id"]: k["fingerprint"] for k in keys}
    chosen = manifest["alerts"] is not None
    what = f"{len(entries)} chosen alert(s)" if chosen else f"every record of the run ({len(entries)} alert(s))"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Case file: {e(str(run['site_name'] or ''))} {e(run['folder'])}</title><style>{_STYLE}</style></head>"
        "<body>",
        f"<h1>Case file: {e(str(run['site_name'] or run['folder']))}</h1>",
        f"<p>Run {e(run['folder'])}, {e(str(run['started']))} to {e(str(run['ended'] or 'no end recorded'))}. "
        f"Exported {e(manifest['created'])}: {what}. Sealed by key <code>{e(sealed_by)}</code>.</p>",
        "<p>Every alert below is its evidence record as the unit that recorded it signed it; its snapshot's SHA-256 "
        "is in that record. To check this case file yourself, offline, with the public keys you trust: "
        f"<code>borderwatch evidence verify {e(name)} --trust DIR</code>.</p>",
    ]
    frame = _SiteMap(site) if site is not None else None
    if frame is not None:
        parts.append(frame.defs())
    for entry in entries:
        parts.append(_alert_html(entry, frame, fingerprints))
    parts.append("<h2>Keys</h2><table><tr><th>key id</th><th>fingerprint (SHA-256 of the public key)</th></tr>")
    parts += [
        f"<tr><td><code>{e(k['key_id'])}</code></td><td><code>{e(k['fingerprint'])}</code></td></tr>" for k in keys
    ]
    parts.append("</table><h2>Logs</h2><table><tr><th>log</th><th>records</th><th>anchor (prev_sha256 of the first)"
                 "</th><th>newest signed head</th></tr>")  # fmt: skip
    for log in manifest["logs"]:
        head = f"record {log['head_seq']}" if log["head_seq"] else "none"
        parts.append(f"<tr><td>{e(log['path'])}</td><td>{log['first_seq']}–{log['last_seq']}</td>"
                     f"<td><code>{e(log['anchor_sha256'])}</code></td><td>{head}</td></tr>")  # fmt: skip
    parts.append("</table>")
    if manifest["withheld"]:
        parts.append(f"<p>{len(manifest['withheld'])} snapshot(s) of records the case is not about are withheld; "
                     "their SHA-256 stays in their signed records and in manifest.json.</p>")  # fmt: skip
    parts.append("</body></html>\n")
    return "\n".join(parts).encode("utf-8")


def _alert_html(entry: SummaryEntry, frame: _SiteMap | None, fingerprints: Mapping[str, str]) -> str:
    e, a, rec = html.escape, entry.alert, entry.record
    lat, lon = _number(a.get("lat_deg")), _number(a.get("lon_deg"))
    severity = str(a.get("severity") or "")
    color = next((c for s, c in SEVERITY_COLORS.items() if str(s) == severity), UNKNOWN_SEVERITY_COLOR)
    place = f"{lat:.6f}, {lon:.6f}" if lat is not None and lon is not None else "not placed"
    drawn = frame.alert_svg(lat, lon) if frame is not None and lat is not None and lon is not None else ""
    picture = '<p class="none">no snapshot</p>'
    if entry.snapshot is not None:
        picture = f'<img alt="snapshot" src="data:image/jpeg;base64,{base64.b64encode(entry.snapshot).decode()}">'
    signer = rec.signer or "nobody"
    rows = [
        ("time", str(a.get("iso_time") or rec.time)),
        ("zone", f"{a.get('zone')} (risk {a.get('risk')})"),
        ("class", f"{a.get('object_class')}" + (f", track {a['track_id']}" if a.get("track_id") is not None else "")),
        ("rule", f"{a.get('rule')}, {a.get('count')} object(s)"),
        ("place", place),
        ("source", str(a.get("source"))),
        ("message", str(a.get("message"))),
        ("record", f"{entry.log} record {rec.seq}, sha256 {rec.sha256}"),
        ("signed by", f"key {signer} (fingerprint {fingerprints.get(signer, 'unknown')})"),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return (f'<section class="alert">{drawn or "<p class=none>no map</p>"}{picture}<div><h2>{e(str(a["alert_id"]))} '
            f'<span class="sev" style="background:{color}">{e(severity)}</span></h2><table>{table}</table></div>'
            "</section>")  # fmt: skip


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _SiteMap:
    """The site's zones in metres, drawn once as an SVG symbol that each alert's small map reuses."""

    _ORDER = (Role.OPERATING_AREA, Role.WATCH, Role.NO_FLY, Role.COASTLINE, Role.LAUNCH)

    def __init__(self, site: Site) -> None:
        self.site = site
        self.shapes = [(z, site.local(z)) for role in self._ORDER for z in site.zones_of(role)]
        bounds = [s.bounds for _, s in self.shapes if not s.is_empty]
        self.bounds = (
            (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds), max(b[3] for b in bounds))
            if bounds
            else (-100.0, -100.0, 100.0, 100.0)
        )

    def defs(self) -> str:
        paths = [_svg_shape(shape, zone_style(zone)) for zone, shape in self.shapes]
        hidden = '<svg width="0" height="0" style="position:absolute">'
        return f'{hidden}<defs><g id="site">{"".join(paths)}</g></defs></svg>'

    def alert_svg(self, lat: float, lon: float) -> str:
        x, y = self.site.frame.xy(lon, lat)
        x0, y0, x1, y1 = self.bounds
        x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
        pad = 0.05 * max(x1 - x0, y1 - y0, 50.0)
        x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        # SVG's y grows downwards: flip north up about the box.
        r = 0.03 * max(x1 - x0, y1 - y0)
        return (f'<svg viewBox="{x0:.1f} {-y1:.1f} {x1 - x0:.1f} {y1 - y0:.1f}" style="background:{BACKGROUND_COLOR}">'
                f'<g transform="scale(1,-1)"><use href="#site"/><circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" '
                f'fill="#ffeb3b" stroke="{ALERT_OUTLINE_COLOR}" stroke-width="2" vector-effect="non-scaling-stroke"/>'
                "</g></svg>")  # fmt: skip


def _svg_shape(shape, style: Mapping[str, Any]) -> str:
    fill = style.get("fillColor", "none") if style.get("fill", True) else "none"
    attrs = (
        f'stroke="{style.get("color", "#000")}" stroke-width="{style.get("weight", 1)}" '
        f'fill-opacity="{style.get("fillOpacity", 0.3)}" fill-rule="evenodd" vector-effect="non-scaling-stroke"'
    )
    if style.get("dashArray"):
        attrs += f' stroke-dasharray="{style["dashArray"]}"'
    out = []
    for part in shapely.get_parts(shape):
        if isinstance(part, shapely.Polygon):
            rings = [part.exterior, *part.interiors]
            out.append(f'<path d="{" ".join(_ring(r.coords, True) for r in rings)}" fill="{fill}" {attrs}/>')
        elif isinstance(part, shapely.LineString):
            out.append(f'<path d="{_ring(part.coords, False)}" fill="none" {attrs}/>')
        elif isinstance(part, shapely.Point):
            out.append(f'<circle cx="{part.x:.1f}" cy="{part.y:.1f}" r="20" fill="{fill}" {attrs}/>')
    return "".join(out)


def _ring(coords: Iterable[Sequence[float]], closed: bool) -> str:
    points = [f"{x:.1f} {y:.1f}" for x, y, *_ in coords]
    return "M" + " L".join(points) + (" Z" if closed else "")
