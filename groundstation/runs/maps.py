"""Preview maps of a site and its patrol routes, as one HTML file that works offline.

folium's Map links ten scripts and stylesheets from four CDNs by default (Leaflet, jQuery,
Bootstrap, Font Awesome, the awesome-markers plugin and Bootstrap 3's glyphicons). A patrol
is often planned where there is no internet, so the map uses Leaflet alone: the files
installed from the npm registry by ``make setup`` are copied beside the HTML and linked
relatively, and only features that need nothing but Leaflet are drawn (vector paths, circle
markers, tooltips, plain controls).
"""

from __future__ import annotations

import html
import itertools
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import folium
import shapely
from branca.element import Element, MacroElement
from folium.template import Template
from shapely.geometry.base import BaseGeometry

from groundstation.runs.style import (
    BACKGROUND_COLOR,
    COASTLINE_COLOR,
    LAUNCH_COLOR,
    NO_FLY_COLOR,
    OPERATING_AREA_COLOR,
    clamped_risk,
    launch_point_style,
    risk_color,
    route_color,
    start_ring_radius,
    zone_style,
)
from missions.errors import UserError
from missions.site import Role, Site, Zone

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
WEB_ASSETS_ENV = "BORDERWATCH_WEB_ASSETS"
SETUP_COMMAND = "make setup"

LEAFLET_FILES = ("leaflet.js", "leaflet.css")
# Only the control icons are needed: markers with image icons are never drawn.
LEAFLET_IMAGES = ("layers.png", "layers-2x.png")


class WebAssetsMissing(UserError):
    """The browser files a map needs have not been installed.

    A :class:`UserError` because the fix is the user's (run the setup) and the CLI should
    say so in one line rather than with a traceback.
    """


@dataclass(frozen=True)
class MapRoute:
    """One flight as drawn on a map: (lat, lon) degrees, in flying order.

    Routes of one ``group`` (a drone's sorties) share a colour, a layer and a legend row.
    """

    label: str
    points_deg: tuple[tuple[float, float], ...]
    color: str | None = None
    group: str | None = None


def web_modules_dir() -> Path:
    """Where the npm packages are: ``$BORDERWATCH_WEB_ASSETS`` or ``groundstation/web/node_modules``."""
    override = os.environ.get(WEB_ASSETS_ENV)
    return Path(override) if override else WEB_DIR / "node_modules"


def leaflet_dist_dir(modules_dir: Path | None = None) -> Path:
    """Leaflet's ``dist`` folder, checked to hold every file a map links to."""
    dist = (modules_dir or web_modules_dir()) / "leaflet" / "dist"
    wanted = [dist / name for name in LEAFLET_FILES] + [dist / "images" / name for name in LEAFLET_IMAGES]
    missing = [p for p in wanted if not p.is_file()]
    if missing:
        raise WebAssetsMissing(
            f"the map's web assets are not installed ({missing[0]} is missing); "
            f"run `{SETUP_COMMAND}` (or `cd {WEB_DIR} && npm ci`) to install Leaflet from the npm registry, "
            f"or point {WEB_ASSETS_ENV} at a node_modules folder that has leaflet in it"
        )
    return dist


def write_preview_map(
    site: Site,
    routes: Sequence[MapRoute],
    out_html: str | Path,
    title: str | None = None,
    *,
    tiles_url: str | None = None,
    tiles_attribution: str | None = None,
    add_layers: Callable[[folium.Map, MapLegend], None] | None = None,
) -> Path:
    """Write an HTML map of the site and routes; Leaflet goes to ``<stem>_files/leaflet/`` beside it.

    With no ``tiles_url`` the map has a plain background and loads nothing from any network.
    ``add_layers(map, legend)`` draws more (a run report's tracks and alerts) on top of the
    routes, before the layer control is made so that it lists them too.
    """
    dist = leaflet_dist_dir()
    out_html = Path(out_html)
    assets_name = f"{out_html.stem}_files"
    leaflet_url = f"{quote(assets_name)}/leaflet"

    # Fractional zoom so that fitting the bounds does not leave the site small in the middle.
    fmap = folium.Map(tiles=None, control_scale=True, zoom_start=14, location=_centre(site), zoom_snap=0.25)
    # Instance attributes, so folium's class-level CDN lists are neither used nor mutated.
    fmap.default_js = [("leaflet", f"{leaflet_url}/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{leaflet_url}/leaflet.css")]
    figure = fmap.get_root()
    figure.title = html.escape(title or f"{site.name} — patrol preview")
    figure.header.add_child(Element(_STYLE), name="borderwatch_style")
    if tiles_url:
        attribution = tiles_attribution or urlsplit(tiles_url).netloc or tiles_url
        folium.TileLayer(tiles_url, attr=html.escape(attribution), name="Tiles").add_to(fmap)

    legend = MapLegend()
    _draw_site(fmap, site, legend)
    _draw_routes(fmap, site, routes, legend)
    # Last, on top: drones usually take off from the pad, and their start rings must not hide it.
    _draw_launch_points(fmap, site, legend)
    if add_layers is not None:
        add_layers(fmap, legend)
    folium.LayerControl(collapsed=True).add_to(fmap)
    fmap.add_child(legend)

    bounds = _bounds(site, routes)
    if bounds is not None:
        fmap.fit_bounds(bounds, padding=(20, 20))

    page = figure.render()
    external = external_assets(page)
    if external:
        raise RuntimeError(f"the map links to assets on the network: {', '.join(external)}")

    out_html.parent.mkdir(parents=True, exist_ok=True)
    _copy_leaflet(dist, out_html.parent / assets_name / "leaflet")
    out_html.write_text(page, encoding="utf-8")
    return out_html


def external_assets(page: str) -> list[str]:
    """The script and stylesheet URLs of an HTML page that are not relative paths."""
    urls = re.findall(r"<script\b[^>]*\bsrc\s*=\s*[\"']([^\"']*)", page, flags=re.IGNORECASE)
    urls += re.findall(r"<link\b[^>]*\bhref\s*=\s*[\"']([^\"']*)", page, flags=re.IGNORECASE)
    return [u for u in urls if urlsplit(u).scheme or u.startswith(("//", "/"))]


def _copy_leaflet(dist: Path, target: Path) -> None:
    (target / "images").mkdir(parents=True, exist_ok=True)
    for name in LEAFLET_FILES:
        shutil.copyfile(dist / name, target / name)
    for name in LEAFLET_IMAGES:
        shutil.copyfile(dist / "images" / name, target / "images" / name)
    # Leaflet is BSD-2-Clause: a copy must carry its notice.
    license_file = dist.parent / "LICENSE"
    if license_file.is_file():
        shutil.copyfile(license_file, target / "LICENSE")


def _draw_site(fmap: folium.Map, site: Site, legend: MapLegend) -> None:
    if site.operating_areas:
        layer = folium.FeatureGroup(name="Operating area").add_to(fmap)
        for zone in site.operating_areas:
            _add_zone(layer, zone, f"Operating area: {zone.name}")
        legend.add("outline", OPERATING_AREA_COLOR, "Operating area")

    if site.watch:
        layer = folium.FeatureGroup(name="Watch zones").add_to(fmap)
        for zone in sorted(site.watch, key=lambda z: z.risk or 0):
            risk = zone.risk if zone.risk is not None else "not set"
            _add_zone(layer, zone, f"{zone.name} — risk {risk}")
        for risk in sorted({clamped_risk(z.risk) for z in site.watch}):
            legend.add("fill", risk_color(risk), f"Watch zone, risk {risk}")

    if site.no_fly:
        layer = folium.FeatureGroup(name="No-fly zones").add_to(fmap)
        for zone in site.no_fly:
            _add_zone(layer, zone, f"No-fly: {zone.name}")
        legend.add("no-fly", NO_FLY_COLOR, "No-fly zone")

    coastlines = site.zones_of(Role.COASTLINE)
    if coastlines:
        layer = folium.FeatureGroup(name="Coastline").add_to(fmap)
        for zone in coastlines:
            for line in _lines(zone.shape_deg.boundary if _is_areal(zone.shape_deg) else zone.shape_deg):
                folium.PolyLine(
                    line, tooltip=map_text(f"Coastline: {zone.name}"), **_folium_options(zone_style(zone))
                ).add_to(layer)
        legend.add("line", COASTLINE_COLOR, "Coastline")


def _draw_routes(fmap: folium.Map, site: Site, routes: Sequence[MapRoute], legend: MapLegend) -> None:
    groups: dict[str, tuple[str, folium.FeatureGroup]] = {}
    for route in routes:
        if not route.points_deg:
            continue
        key = route.group or route.label
        if key not in groups:
            index = len(groups)
            color = route.color or route_color(index)
            layer = folium.FeatureGroup(name=map_text(key)).add_to(fmap)
            groups[key] = (color, layer)
            # An unfilled ring, wider for each drone, so starts that share a pad stay visible side by side.
            folium.CircleMarker(
                route.points_deg[0],
                radius=start_ring_radius(index),
                color=color,
                weight=3,
                fill=False,
                tooltip=map_text(f"{key}: start"),
            ).add_to(layer)
            legend.add("line", color, key)
        color, layer = groups[key]
        km = _length_m(site, route.points_deg) / 1000.0
        tooltip = map_text(f"{route.label} — {len(route.points_deg)} waypoints, {km:.1f} km")
        folium.PolyLine(route.points_deg, color=route.color or color, weight=3, opacity=0.9, tooltip=tooltip).add_to(
            layer
        )
    if groups:
        legend.add("ring", "#555555", "Route start")


def _draw_launch_points(fmap: folium.Map, site: Site, legend: MapLegend) -> None:
    if not site.launch:
        return
    layer = folium.FeatureGroup(name="Launch points").add_to(fmap)
    for zone in site.launch:
        for lat, lon in _points(zone.shape_deg):
            folium.CircleMarker(
                (lat, lon), tooltip=map_text(f"Launch: {zone.name}"), **_folium_options(launch_point_style())
            ).add_to(layer)
    legend.add("dot", LAUNCH_COLOR, "Launch point")


def _add_zone(layer: folium.FeatureGroup, zone: Zone, label: str) -> None:
    style = _folium_options(zone_style(zone))
    tooltip = map_text(label)
    if zone.is_circle:
        for lat, lon in _points(zone.shape_deg):
            folium.Circle((lat, lon), radius=zone.radius_m, tooltip=tooltip, **style).add_to(layer)
        return
    for rings in _polygons(zone.shape_deg):
        folium.Polygon(rings, tooltip=tooltip, **style).add_to(layer)
    for line in _lines(zone.shape_deg):
        folium.PolyLine(line, tooltip=tooltip, **{k: v for k, v in style.items() if not k.startswith("fill")}).add_to(
            layer
        )


def _parts(shape: BaseGeometry) -> Iterator[BaseGeometry]:
    if hasattr(shape, "geoms"):
        for part in shape.geoms:
            yield from _parts(part)
    elif not shape.is_empty:
        yield shape


def _latlon(coords) -> list[tuple[float, float]]:
    return [(float(y), float(x)) for x, y, *_ in coords]


def _polygons(shape: BaseGeometry) -> Iterator[list[list[tuple[float, float]]]]:
    for part in _parts(shape):
        if isinstance(part, shapely.Polygon):
            yield [_latlon(part.exterior.coords)] + [_latlon(r.coords) for r in part.interiors]


def _lines(shape: BaseGeometry) -> Iterator[list[tuple[float, float]]]:
    for part in _parts(shape):
        if isinstance(part, shapely.LineString | shapely.LinearRing):
            yield _latlon(part.coords)


def _points(shape: BaseGeometry) -> Iterator[tuple[float, float]]:
    for part in _parts(shape):
        if isinstance(part, shapely.Point):
            yield float(part.y), float(part.x)
        elif isinstance(part, shapely.Polygon | shapely.LineString):
            yield float(part.centroid.y), float(part.centroid.x)


def _is_areal(shape: BaseGeometry) -> bool:
    return any(isinstance(p, shapely.Polygon) for p in _parts(shape))


def _length_m(site: Site, points_deg: Sequence[tuple[float, float]]) -> float:
    xy = [site.frame.xy(lon, lat) for lat, lon in points_deg]
    return sum(math.dist(a, b) for a, b in itertools.pairwise(xy))


def _centre(site: Site) -> tuple[float, float]:
    return site.frame.origin_lat_deg, site.frame.origin_lon_deg


def _bounds(site: Site, routes: Sequence[MapRoute]) -> list[list[float]] | None:
    shapes = [site.frame.to_geo(site.local(z)) if z.is_circle else z.shape_deg for z in site.zones]
    shapes += [shapely.MultiPoint([(lon, lat) for lat, lon in r.points_deg]) for r in routes if r.points_deg]
    shapes = [s for s in shapes if not s.is_empty]
    if not shapes:
        return None
    min_lon, min_lat, max_lon, max_lat = shapely.GeometryCollection(shapes).bounds
    return [[min_lat, min_lon], [max_lat, max_lon]]


def _folium_options(style: dict) -> dict:
    """Leaflet's path options as folium's keyword arguments: ``fill_color`` for ``fillColor``."""
    return {re.sub(r"([A-Z])", r"_\1", key).lower(): value for key, value in style.items()}


def map_text(text: str) -> str:
    """Plain text made safe for folium, which pastes tooltips raw into a JavaScript template literal."""
    return html.escape(str(text)).replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;")


_STYLE = f"""<style>
    .folium-map.leaflet-container {{ background: {BACKGROUND_COLOR}; }}
    .borderwatch-legend {{
        background: rgba(255, 255, 255, 0.92); padding: 6px 10px; border-radius: 4px;
        box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); font: 12px/1.5 sans-serif; color: #222;
    }}
    .borderwatch-legend .swatch {{
        display: inline-block; width: 18px; height: 12px; margin-right: 6px; vertical-align: middle;
        box-sizing: border-box;
    }}
</style>"""


class MapLegend(MacroElement):
    """A Leaflet control listing what the map draws, so it stacks with the scale bar."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.control({position: "bottomleft"});
            {{ this.get_name() }}.onAdd = function () {
                var div = L.DomUtil.create("div", "borderwatch-legend");
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                return div;
            };
            {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "Legend"
        self.rows: list[str] = []

    def add(self, kind: str, color: str, label: str) -> None:
        swatch = {
            "outline": f"border: 3px solid {color};",
            "fill": f"background: {color}; opacity: 0.8;",
            "no-fly": f"border: 2px dashed {color}; background: {color}4d;",
            "line": f"height: 4px; background: {color};",
            "dot": f"width: 12px; border-radius: 50%; background: {color};",
            "ring": f"width: 12px; border-radius: 50%; border: 2px solid {color};",
            "diamond": f"width: 11px; height: 11px; margin: 0 9px 0 3px; transform: rotate(45deg); "
            f"background: {color}; border: 2px solid #111111;",
            "hollow-diamond": f"width: 11px; height: 11px; margin: 0 9px 0 3px; transform: rotate(45deg); "
            f"background: #ffffff; border: 2px dashed {color};",
        }[kind]
        self.rows.append(f'<div><span class="swatch" style="{html.escape(swatch)}"></span>{html.escape(label)}</div>')

    @property
    def html(self) -> str:
        return "".join(self.rows)
