"""The site being edited: open, draw, edit, validate, save.

The model keeps the zones exactly as drawn and validates the whole site after every
change, the way a file is validated when it is read; a site that fails validation is
still shown and editable (its problem is the first of its errors), only it is neither
planned over nor saved. Messages lose the site's own file name: the panel shows it once.
"""

from __future__ import annotations

import json
from pathlib import Path

import shapely
from PyQt6.QtCore import QObject, pyqtSignal

from missions.errors import InputError
from missions.formats import load_site
from missions.formats.geojson import write_geojson, zone_from_feature
from missions.formats.kml import write_kml
from missions.formats.roles import with_site_altitude
from missions.geo import LocalFrame, circle_polygon
from missions.site import DEFAULT_MAX_ALTITUDE_M, Role, Route, RoutePoint, Site, Zone
from missions.validation import validate_site

# Roles an operator draws; a coastline only comes from a file.
DRAWN_ROLES = (Role.OPERATING_AREA, Role.NO_FLY, Role.WATCH, Role.LAUNCH)
ROLE_LABELS = {
    Role.OPERATING_AREA: "operating area",
    Role.NO_FLY: "no-fly",
    Role.WATCH: "watch",
    Role.LAUNCH: "launch",
    Role.COASTLINE: "coastline",
}
SAVE_SUFFIXES = (".geojson", ".json", ".kml")
_UNDO_DEPTH = 50
# A watch circle becomes a polygon (a watch zone is one by the file convention); this many sides.
_WATCH_CIRCLE_SEGMENTS = 48


class SiteModel(QObject):
    """The open site, its file and its validation messages."""

    changed = pyqtSignal()
    messages = pyqtSignal(object)  # tuple[str, ...]: errors first, then warnings

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = "untitled"
        self._zones: tuple[Zone, ...] = ()
        self._route: tuple[RoutePoint, ...] = ()
        self._site: Site | None = None
        self._path: Path | None = None
        self._dirty = False
        self._errors: tuple[str, ...] = ()
        self._warnings: tuple[str, ...] = ()
        self._undo: list[tuple[Zone, ...]] = []

    # ---- state -----------------------------------------------------------------------

    @property
    def site(self) -> Site | None:
        """The site as validated and repaired, or as drawn while it has errors; None before any."""
        return self._site

    @property
    def valid_site(self) -> Site | None:
        """The site when it can be planned over and saved, else None."""
        return self._site if self._site is not None and not self._errors else None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def dirty(self) -> bool:
        return self._dirty

    @property
    def errors(self) -> tuple[str, ...]:
        return self._errors

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    @property
    def notes(self) -> tuple[str, ...]:
        return self._errors + self._warnings

    @property
    def zones(self) -> tuple[Zone, ...]:
        return self._site.zones if self._site is not None else ()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    # ---- files -----------------------------------------------------------------------

    def open(self, path: str | Path) -> None:
        """Read and validate a site file; on InputError the current site stays as it was."""
        site = load_site(path)
        self._path = Path(path)
        self._name = site.name
        self._route = site.route
        self._undo.clear()
        self._set(site.zones, file_warnings=site.warnings, dirty=False)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the site (KML for .kml, GeoJSON otherwise) and read it back to check it."""
        if self._site is None:
            raise InputError(str(path or "site"), "there is no site to save")
        target = Path(path) if path is not None else self._path
        if target is None:
            raise InputError(self._name, "the site has no file yet: save it as a new file")
        if target.suffix.lower() not in SAVE_SUFFIXES:
            if target.suffix.lower() == ".plan":
                raise InputError(str(target), "a site is saved as GeoJSON or KML; export .plan files from the planner")
            target = target.with_name(target.name + ".geojson")
        if self._errors:
            raise InputError(str(target), f"not saved: {self._errors[0]}")
        site = self._site
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.stem}.saving{target.suffix}")
        try:
            if target.suffix.lower() == ".kml":
                write_kml(site, scratch)
            else:
                write_geojson(site, scratch, [Route("Site route", site.route)] if site.route else ())
            try:
                load_site(scratch)
            except InputError as exc:
                raise InputError(str(target), f"not saved: it would not read back: {exc.detail}", exc.feature) from None
            scratch.replace(target)
        finally:
            scratch.unlink(missing_ok=True)
        self._path = target
        self._set(self._zones, dirty=False)
        return target

    def new_site(self, name: str = "untitled") -> None:
        self._name = name.strip() or "untitled"
        self._path = None
        self._route = ()
        self._undo.clear()
        self._set((), dirty=False)

    # ---- editing ---------------------------------------------------------------------

    def add_zone(self, zone: Zone) -> None:
        self._edit((*self._zones, zone))

    def add_drawn(self, feature: dict, role: Role | str, name: str = "", risk: int | None = None) -> int:
        """Add a drawn Polygon, or a Point with ``properties.radius_m`` (a circle); its index.

        Raises InputError when the shape cannot be a zone of that role (a launch polygon).
        """
        role = role if isinstance(role, Role) else Role.parse(role)
        name = name.strip() or self._default_name(role)
        zone = self._zone(feature, role, name, risk if role is Role.WATCH else None, None, f"new {_label(role, name)}")
        self._edit((*self._zones, zone))
        return len(self._zones) - 1

    def replace_geometry(self, index: int, feature: dict) -> None:
        """Give zone ``index`` a new shape (moved or reshaped on the map), keeping what it is."""
        old = self._zones[index]
        zone = self._zone(feature, old.role, old.name, old.risk, old.max_altitude_m, _label(old.role, old.name))
        self._edit(_replaced(self._zones, index, zone))

    def update_zone(
        self, index: int, *, role: Role | str | None = None, name: str | None = None, risk: int | None = None
    ) -> None:
        old = self._zones[index]
        role = old.role if role is None else role if isinstance(role, Role) else Role.parse(role)
        name = old.name if name is None or not name.strip() else name.strip()
        risk = (risk if risk is not None else old.risk or 1) if role is Role.WATCH else None
        if (role, name, risk) == (old.role, old.name, old.risk):
            return
        feature = _feature(old)
        zone = self._zone(feature, role, name, risk, old.max_altitude_m, _label(old.role, old.name))
        self._edit(_replaced(self._zones, index, zone))

    def remove_zone(self, index: int) -> None:
        zones = list(self._zones)
        del zones[index]
        self._edit(tuple(zones))

    def undo(self) -> None:
        if self._undo:
            self._set(self._undo.pop(), dirty=True)

    # ---- internals -------------------------------------------------------------------

    def _source(self) -> str:
        return str(self._path) if self._path is not None else self._name

    def _zone(
        self, feature: dict, role: Role, name: str, risk: int | None, max_altitude_m: float | None, label: str
    ) -> Zone:
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        props = dict(feature.get("properties") or {}) if isinstance(feature, dict) else {}
        radius = props.get("radius_m")
        if isinstance(geometry, dict) and geometry.get("type") == "Point" and radius is not None:
            if role is Role.LAUNCH:
                radius = None  # a launch point drawn as a circle is its centre
            elif role is Role.WATCH:
                geometry, radius = _circle_as_polygon(geometry, radius), None
        out = {"role": role.value, "name": name}
        for key, value in (("radius_m", radius), ("risk", risk), ("max_altitude_m", max_altitude_m)):
            if value is not None:
                out[key] = value
        try:
            return zone_from_feature(
                self._source(), {"type": "Feature", "properties": out, "geometry": geometry}, label
            )
        except (TypeError, ValueError, shapely.errors.GEOSException) as exc:
            raise InputError(self._source(), f"not a shape: {exc}", label) from None

    def _default_name(self, role: Role) -> str:
        taken = {z.name for z in self._zones}
        title = ROLE_LABELS[role].capitalize()
        n = sum(1 for z in self._zones if z.role is role) + 1
        while f"{title} {n}" in taken:
            n += 1
        return f"{title} {n}"

    def _edit(self, zones: tuple[Zone, ...]) -> None:
        self._undo.append(self._zones)
        del self._undo[:-_UNDO_DEPTH]
        self._set(zones, dirty=True)

    def _set(self, zones: tuple[Zone, ...], *, file_warnings: tuple[str, ...] = (), dirty: bool) -> None:
        source = self._source()
        drawn = Site(self._name, source, zones, with_site_altitude(zones, DEFAULT_MAX_ALTITUDE_M), self._route)
        errors: list[str] = []
        warnings: list[str] = list(file_warnings)
        try:
            site = validate_site(drawn)
            warnings += [w for w in site.warnings if w not in warnings]
        except InputError as exc:
            site = drawn
            errors.append(str(exc))
        if not site.operating_areas:
            warnings.append("no operating area: draw one before planning")
        if not site.launch:
            warnings.append("no launch point: draw one (a circle's centre) before planning")
        self._zones = zones
        self._site = site
        self._dirty = dirty
        self._errors = tuple(_without_source(m, source) for m in errors)
        self._warnings = tuple(_without_source(m, source) for m in warnings)
        self.changed.emit()
        self.messages.emit(self.notes)


def _label(role: Role, name: str) -> str:
    return f"{role.value} {name!r}"


def _replaced(zones: tuple[Zone, ...], index: int, zone: Zone) -> tuple[Zone, ...]:
    if not 0 <= index < len(zones):
        raise IndexError(f"no zone {index}")
    return (*zones[:index], zone, *zones[index + 1 :])


def _feature(zone: Zone) -> dict:
    props = {"radius_m": zone.radius_m} if zone.radius_m is not None else {}
    return {"type": "Feature", "properties": props, "geometry": _geometry(zone.shape_deg)}


def _circle_as_polygon(point: dict, radius_m: float) -> dict:
    lon, lat = (float(v) for v in point["coordinates"][:2])
    frame = LocalFrame(lat, lon)
    disc = circle_polygon(shapely.Point(0.0, 0.0), float(radius_m), _WATCH_CIRCLE_SEGMENTS, enclosing=False)
    return _geometry(frame.to_geo(disc))


def _geometry(shape: shapely.Geometry) -> dict:
    """GeoJSON as a file holds it: lists, not the tuples of shapely's mapping()."""
    return json.loads(shapely.to_geojson(shape))


def _without_source(message: str, source: str) -> str:
    prefix = f"{source}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
