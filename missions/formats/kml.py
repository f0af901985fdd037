"""KML sites, as Google Earth and QGroundControl write them, and back.

A zone's role comes from, in order: ExtendedData ``role`` (``<Data>`` or
``<SchemaData><SimpleData>``), the name of the nearest enclosing Folder that names a role
("No-fly zones", "Keep out", "Launch points"...), or a default recorded in
``Site.warnings``: the largest role-less polygon is the operating area when the file
declares none, other role-less polygons are watch zones of risk 1, role-less points are
launch points and the first role-less line is the route.

A circle is written as one Placemark whose MultiGeometry holds the centre Point (what is
read back, with ``radius_m`` from ExtendedData) and a ring LineString (what Google Earth
draws, ignored on reading).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from shapely.geometry.base import BaseGeometry

from missions.errors import InputError
from missions.formats.roles import Unassigned, assign_defaults, with_site_altitude
from missions.geo import LocalFrame, circle_polygon
from missions.site import DEFAULT_MAX_ALTITUDE_M, Role, Route, RoutePoint, Site, Zone

KML_NS = "http://www.opengis.net/kml/2.2"
GX_NS = "http://www.google.com/kml/ext/2.2"
ROUTE_ROLE = "route"  # not a zone role: marks the LineStrings that make Site.route
CIRCLE_RING_SEGMENTS = 72

_GEOMETRY_TAGS = ("Point", "LineString", "LinearRing", "Polygon", "MultiGeometry")
_CONTAINER_TAGS = ("Document", "Folder")
_FOLDER_SUFFIX = re.compile(r"[\s_-]+(zones?|areas?|points?|lines?)$")

# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Part:
    """One geometry of a placemark, before its role is settled."""

    placemark: str
    name: str
    shape: BaseGeometry  # lon/lat; LineStrings keep their altitudes
    role: Role | str | None
    data: dict[str, str]


@dataclass
class _Collected:
    parts: list[_Part] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    placemarks: int = 0


def read_site_kml(path: str | Path) -> Site:
    """Read a KML file into a :class:`Site`; raise :class:`InputError` naming the placemark."""
    source = str(path)
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        line, column = exc.position
        raise InputError(source, f"not valid XML: {_expat_reason(exc)} at line {line}, column {column + 1}") from exc
    except OSError as exc:
        raise InputError(source, f"cannot read file ({exc.strerror or exc})") from exc
    root = tree.getroot()
    if _local(root.tag) not in ("kml", *_CONTAINER_TAGS, "Placemark"):
        raise InputError(source, f"not a KML document (root element <{_local(root.tag)}>)")

    collected = _Collected()
    _walk(root, source, (), collected)
    if collected.placemarks == 0:
        raise InputError(source, "no Placemark found; nothing to read")

    document = _child(root, "Document") if _local(root.tag) == "kml" else root
    title = _text(_child(document, "name")) if document is not None else ""
    # Google Earth names a saved document after its file.
    title = re.sub(r"\.km[lz]$", "", title, flags=re.IGNORECASE)
    return _site(source, title or Path(source).stem, collected.parts, collected.skipped)


def _walk(element: ET.Element, source: str, folders: tuple[str, ...], out: _Collected) -> None:
    for child in element:
        tag = _local(child.tag)
        if tag == "Folder":
            _walk(child, source, (*folders, _text(_child(child, "name"))), out)
        elif tag in ("Document", "kml"):
            _walk(child, source, folders, out)
        elif tag == "Placemark":
            out.placemarks += 1
            parts = _placemark(child, source, folders, out.placemarks)
            if not parts:
                name = _text(_child(child, "name")) or f"Placemark {out.placemarks}"
                out.skipped.append(f"placemark {name!r}: no Point, LineString or Polygon (a gx:Track?); skipped")
            out.parts.extend(parts)


def _placemark(element: ET.Element, source: str, folders: tuple[str, ...], number: int) -> list[_Part]:
    name = _text(_child(element, "name")) or f"Placemark {number}"
    feature = f"placemark {name!r}"
    data = _extended_data(element)
    role: Role | str | None = None
    if "role" in data:
        if data["role"].strip().lower() == ROUTE_ROLE:
            role = ROUTE_ROLE
        else:
            try:
                role = Role.parse(data["role"])
            except ValueError as exc:
                raise InputError(source, str(exc), feature) from exc
    else:
        role = _folder_role(folders)

    geometry = next((g for g in element if _local(g.tag) in _GEOMETRY_TAGS), None)
    if geometry is None:
        # gx:Track, NetworkLink-style placemarks or plain labels: nothing a site can use.
        return []
    shapes = list(_shapes(geometry, source, feature))
    if data.get("radius_m", "").strip():
        centre = next((s for s in shapes if isinstance(s, shapely.Point)), None)
        if centre is None:
            raise InputError(source, "radius_m is given but the placemark has no Point for the centre", feature)
        shapes = [centre]  # the ring beside it is only there for Google Earth to draw
    if len(shapes) == 1:
        return [_Part(name, name, shapes[0], role, data)]
    return [_Part(name, f"{name} (part {k + 1})", s, role, data) for k, s in enumerate(shapes)]


def _shapes(element: ET.Element, source: str, feature: str) -> Iterator[BaseGeometry]:
    tag = _local(element.tag)
    if tag == "MultiGeometry":
        for child in element:
            if _local(child.tag) in _GEOMETRY_TAGS:
                yield from _shapes(child, source, feature)
        return
    if tag == "Point":
        coords = _coordinates(element, source, feature)
        if len(coords) != 1:
            raise InputError(source, f"a Point needs exactly one coordinate, found {len(coords)}", feature)
        yield shapely.Point(coords[0][:2])
    elif tag in ("LineString", "LinearRing"):
        coords = _coordinates(element, source, feature)
        if len(coords) < 2:
            raise InputError(source, f"a {tag} needs at least 2 points, found {len(coords)}", feature)
        yield shapely.LineString(coords)
    elif tag == "Polygon":
        outer = _child(element, "outerBoundaryIs")
        if outer is None or _child(outer, "LinearRing") is None:
            raise InputError(source, "a Polygon needs an outerBoundaryIs/LinearRing", feature)
        shell = _ring(_child(outer, "LinearRing"), source, feature, "outer boundary")
        rings = [r for inner in element if _local(inner.tag) == "innerBoundaryIs" for r in inner]
        holes = [
            _ring(ring, source, feature, f"inner boundary {k + 1}")
            for k, ring in enumerate(r for r in rings if _local(r.tag) == "LinearRing")
        ]
        yield shapely.Polygon(shell, holes)


def _ring(element: ET.Element, source: str, feature: str, which: str) -> list[tuple[float, float]]:
    points = [c[:2] for c in _coordinates(element, source, feature)]
    distinct = {p for p in points}
    if len(distinct) < 3:
        raise InputError(source, f"a Polygon {which} needs at least 3 distinct points, found {len(distinct)}", feature)
    return points


def _coordinates(element: ET.Element, source: str, feature: str) -> list[tuple[float, ...]]:
    text = _text(_child(element, "coordinates"))
    if not text:
        raise InputError(source, f"{_local(element.tag)} has no coordinates", feature)
    # Tuples are "lon,lat[,alt]" separated by any whitespace; some tools put spaces after the commas.
    tokens = re.sub(r"\s*,\s*", ",", text).split()
    coords = []
    for token in tokens:
        try:
            values = tuple(float(v) for v in token.split(","))
        except ValueError:
            raise InputError(source, f"cannot read coordinate {token!r} (expected lon,lat[,alt])", feature) from None
        if len(values) not in (2, 3) or not all(math.isfinite(v) for v in values):
            raise InputError(source, f"cannot read coordinate {token!r} (expected lon,lat[,alt])", feature)
        lon, lat = values[0], values[1]
        if abs(lat) > 90.0 and abs(lon) <= 90.0:
            raise InputError(
                source, f"latitude {lat} out of range in {token!r}: lon,lat probably swapped (KML is lon,lat)", feature
            )
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise InputError(source, f"coordinate {token!r} out of range (lon -180..180, lat -90..90)", feature)
        coords.append(values)
    return coords


def _extended_data(element: ET.Element) -> dict[str, str]:
    data: dict[str, str] = {}
    extended = _child(element, "ExtendedData")
    if extended is None:
        return data
    for item in extended.iter():
        tag = _local(item.tag)
        if tag == "Data" and item.get("name"):
            data[item.get("name").strip().lower()] = _text(_child(item, "value"))
        elif tag == "SimpleData" and item.get("name"):
            data[item.get("name").strip().lower()] = (item.text or "").strip()
    return data


def _folder_role(folders: tuple[str, ...]) -> Role | None:
    """The role named by the innermost folder that names one ("No-fly zones", "Keep out")."""
    for folder in reversed(folders):
        for candidate in _folder_candidates(folder):
            try:
                return Role.parse(candidate)
            except ValueError:
                continue
    return None


def _folder_candidates(name: str) -> list[str]:
    text = name.strip().lower()
    if not text:
        return []
    singular = re.sub(r"s\b", "", text) if not text.endswith("ss") else text
    return [text, singular, _FOLDER_SUFFIX.sub("", text)]


def _site(source: str, title: str, parts: list[_Part], skipped: list[str]) -> Site:
    zones: list[Zone] = []
    unassigned: list[Unassigned] = []
    lines: list[_Part] = []
    notes: list[str] = list(skipped)
    origin: dict[int, _Part] = {}
    for part in parts:
        feature = f"placemark {part.placemark!r}"
        risk = _int_data(part, "risk", source)
        if part.role is None:
            unassigned.append(Unassigned(part.name, part.shape, risk))
            origin[id(unassigned[-1])] = part
            continue
        if part.role == ROUTE_ROLE:
            if not isinstance(part.shape, shapely.LineString):
                raise InputError(source, f"a route must be a LineString, found a {part.shape.geom_type}", feature)
            lines.append(part)
            continue
        radius = _float_data(part, "radius_m", source)
        _check_shape(part.role, part, radius, source)
        shape = part.shape
        if isinstance(shape, shapely.LineString) and shape.has_z:
            shape = shapely.force_2d(shape)
        zones.append(Zone(part.role, part.name, shape, radius, risk, _float_data(part, "max_altitude_m", source)))
    zones, default_lines, defaults = assign_defaults(source, zones, unassigned)
    lines += [origin[id(u)] for u in default_lines]
    route: tuple[RoutePoint, ...] = ()
    for part in lines:
        if route:
            notes.append(f"placemark {part.placemark!r}: a site holds one route; this second line is ignored")
            continue
        route = tuple(RoutePoint(c[1], c[0], c[2] if len(c) > 2 else None) for c in part.shape.coords)
    return Site(
        name=title,
        source=source,
        zones=tuple(zones),
        max_altitude_m=with_site_altitude(zones, DEFAULT_MAX_ALTITUDE_M),
        route=route,
        warnings=(*defaults, *(f"{source}: {note}" for note in notes)),
    )


def _check_shape(role: Role, part: _Part, radius_m: float | None, source: str) -> None:
    feature = f"placemark {part.placemark!r}"
    shape = part.shape
    if radius_m is not None and radius_m <= 0:
        raise InputError(source, f"radius_m must be positive, found {radius_m:g}", feature)
    if isinstance(shape, shapely.Point):
        if role in (Role.NO_FLY, Role.OPERATING_AREA, Role.WATCH) and radius_m is None:
            raise InputError(source, f"a {role.value} Point needs radius_m (it is a circle)", feature)
        if role is Role.COASTLINE:
            raise InputError(source, "a coastline must be a LineString, found a Point", feature)
    elif isinstance(shape, shapely.LineString):
        if role is not Role.COASTLINE:
            raise InputError(source, f"a LineString cannot be a {role.value} zone (only coastline or route)", feature)
    elif role in (Role.LAUNCH, Role.COASTLINE):
        raise InputError(source, f"a {role.value} cannot be a Polygon", feature)


def _float_data(part: _Part, key: str, source: str) -> float | None:
    text = part.data.get(key, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(source, f"{key} must be a number, found {text!r}", f"placemark {part.placemark!r}") from None
    if not math.isfinite(value):
        raise InputError(source, f"{key} must be a finite number, found {text!r}", f"placemark {part.placemark!r}")
    return value


def _int_data(part: _Part, key: str, source: str) -> int | None:
    value = _float_data(part, key, source)
    if value is None:
        return None
    if not value.is_integer() or not 1 <= value <= 5:
        raise InputError(source, f"{key} must be an integer 1..5, found {value:g}", f"placemark {part.placemark!r}")
    return int(value)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _expat_reason(exc: ET.ParseError) -> str:
    return str(exc).split(":", 1)[0]


# --------------------------------------------------------------------------- writing

# KML colours are aabbggrr.
_STYLES = {
    Role.OPERATING_AREA: ("ff00b000", "3300b000"),
    Role.NO_FLY: ("ff0000ff", "550000ff"),
    Role.WATCH: ("ff008cff", "44008cff"),
    Role.LAUNCH: ("ffffffff", "00ffffff"),
    Role.COASTLINE: ("ffffaa00", "00ffaa00"),
}
_ROUTE_STYLE = ("ff00ffff", "00000000")
_FOLDERS = {
    Role.OPERATING_AREA: "Operating area",
    Role.NO_FLY: "No-fly zones",
    Role.WATCH: "Watch zones",
    Role.LAUNCH: "Launch points",
    Role.COASTLINE: "Coastline",
}


def write_kml(site: Site, path: str | Path, routes: Sequence[Route] = ()) -> Path:
    """Write the site's zones in one folder per role, then its route and ``routes``; the path written.

    A route keeps its name and points (altitudes above ground); its properties are not written.
    The site's own route, if it has one, is written first, so that it is what reads back.
    """
    ET.register_namespace("", KML_NS)
    ET.register_namespace("gx", GX_NS)
    kml = ET.Element(_k("kml"))
    document = ET.SubElement(kml, _k("Document"))
    _sub(document, "name", site.name)
    for role, (line, fill) in _STYLES.items():
        _style(document, role.value, line, fill)
    _style(document, ROUTE_ROLE, *_ROUTE_STYLE)

    for role, title in _FOLDERS.items():
        zones = site.zones_of(role)
        if not zones:
            continue
        folder = ET.SubElement(document, _k("Folder"))
        _sub(folder, "name", title)
        for zone in zones:
            _zone_placemark(folder, zone)

    all_routes: list[Route] = []
    if site.route:
        all_routes.append(Route("Site route", site.route))
    all_routes.extend(routes)
    if all_routes:
        folder = ET.SubElement(document, _k("Folder"))
        _sub(folder, "name", "Routes")
        for route in all_routes:
            placemark = _placemark_element(folder, route.name, ROUTE_ROLE, {"role": ROUTE_ROLE})
            line = ET.SubElement(placemark, _k("LineString"))
            _sub(line, "tessellate", "1")
            _sub(line, "altitudeMode", "relativeToGround")
            _sub(line, "coordinates", _route_coordinates(route.points))

    ET.indent(kml)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(kml).write(out, encoding="UTF-8", xml_declaration=True)
    return out


def _zone_placemark(folder: ET.Element, zone: Zone) -> None:
    data = {"role": zone.role.value}
    for key, value in (("risk", zone.risk), ("radius_m", zone.radius_m), ("max_altitude_m", zone.max_altitude_m)):
        if value is not None:
            data[key] = repr(value) if isinstance(value, float) else str(value)
    placemark = _placemark_element(folder, zone.name, zone.role.value, data)
    shape = zone.shape_deg
    if zone.is_circle:
        multi = ET.SubElement(placemark, _k("MultiGeometry"))
        _geometry(multi, shape)
        _geometry(multi, _circle_ring(shape, zone.radius_m))
    else:
        _geometry(placemark, shape)


def _placemark_element(parent: ET.Element, name: str, style: str, data: dict[str, str]) -> ET.Element:
    placemark = ET.SubElement(parent, _k("Placemark"))
    _sub(placemark, "name", name)
    _sub(placemark, "styleUrl", f"#{style}")
    extended = ET.SubElement(placemark, _k("ExtendedData"))
    for key, value in data.items():
        item = ET.SubElement(extended, _k("Data"), name=key)
        _sub(item, "value", value)
    return placemark


def _geometry(parent: ET.Element, shape: BaseGeometry) -> None:
    if isinstance(shape, shapely.Point):
        _sub(ET.SubElement(parent, _k("Point")), "coordinates", _coordinates_text(shape.coords))
    elif isinstance(shape, shapely.LineString):
        line = ET.SubElement(parent, _k("LineString"))
        _sub(line, "tessellate", "1")
        _sub(line, "coordinates", _coordinates_text(shape.coords))
    elif isinstance(shape, shapely.Polygon):
        polygon = ET.SubElement(parent, _k("Polygon"))
        _ring_element(polygon, "outerBoundaryIs", shape.exterior.coords)
        for hole in shape.interiors:
            _ring_element(polygon, "innerBoundaryIs", hole.coords)
    elif hasattr(shape, "geoms"):
        multi = ET.SubElement(parent, _k("MultiGeometry"))
        for part in shape.geoms:
            _geometry(multi, part)
    else:
        raise ValueError(f"cannot write a {shape.geom_type} to KML")


def _ring_element(polygon: ET.Element, boundary: str, coords: Sequence) -> None:
    ring = ET.SubElement(ET.SubElement(polygon, _k(boundary)), _k("LinearRing"))
    _sub(ring, "coordinates", _coordinates_text(coords))


def _circle_ring(centre: shapely.Point, radius_m: float) -> shapely.LineString:
    frame = LocalFrame(centre.y, centre.x)
    disc = frame.to_geo(circle_polygon(shapely.Point(0.0, 0.0), radius_m, CIRCLE_RING_SEGMENTS, enclosing=False))
    return shapely.LineString(disc.exterior.coords)


def _coordinates_text(coords: Sequence) -> str:
    # repr() keeps every bit of a float, so a site survives the round trip exactly.
    return " ".join(",".join(repr(float(v)) for v in c[:2]) for c in coords)


def _route_coordinates(points: Sequence[RoutePoint]) -> str:
    if all(p.alt_m is None for p in points):
        return " ".join(f"{float(p.lon_deg)!r},{float(p.lat_deg)!r}" for p in points)
    return " ".join(f"{float(p.lon_deg)!r},{float(p.lat_deg)!r},{float(p.alt_m or 0.0)!r}" for p in points)


def _style(document: ET.Element, style_id: str, line_colour: str, fill_colour: str) -> None:
    style = ET.SubElement(document, _k("Style"), id=style_id)
    line = ET.SubElement(style, _k("LineStyle"))
    _sub(line, "color", line_colour)
    _sub(line, "width", "2")
    poly = ET.SubElement(style, _k("PolyStyle"))
    _sub(poly, "color", fill_colour)


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, _k(tag))
    element.text = text
    return element


def _k(tag: str) -> str:
    return f"{{{KML_NS}}}{tag}"
