"""QGroundControl `.plan` files: read, write, and convert to and from a :class:`Site`.

The layout follows what QGroundControl itself writes (``PlanMasterController``,
``MissionController``, ``GeoFenceController``, ``RallyPointController`` and
``MissionItem::save`` in mavlink/qgroundcontrol src/MissionManager), and what MAVSDK's
importer demands (mavlink/MAVSDK src/mavsdk/plugins/mission_raw/mission_import.cpp):

- top level ``"version": 1``, ``"mission"`` with ``"version": 2``, ``"geoFence"`` and
  ``"rallyPoints"`` both present with ``"version": 2`` — MAVSDK refuses the whole file
  otherwise, even when there is no fence and no rally point;
- every mission item a ``"SimpleItem"`` with ``command``, ``frame``, ``autoContinue`` and a
  non-empty ``params`` array of 7 (param1..4, lat, lon, alt); an unset param is ``null``,
  which both read as NaN;
- fence polygons ``[[lat, lon], ...]``, fence circles ``{"center": [lat, lon], "radius": m}``,
  rally points ``[lat, lon, alt]`` with the altitude relative to home.

``doJumpId`` is written as the 1-based position of the item (QGroundControl numbers the
planned home 0). A DO_JUMP's param1 refers to that id and is kept exactly as read.
Complex items (surveys) are read through the items QGroundControl generated for them and
written back flattened into simple items: the mission flies the same, but QGroundControl
no longer offers to edit the survey pattern.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely

from missions.errors import InputError
from missions.plan import FenceCircle, FencePolygon, MissionItem, MissionPlan, Waypoint
from missions.site import Role, RoutePoint, Site, Zone

GROUND_STATION = "borderwatch"
PLAN_FILE_VERSION = 1
MISSION_VERSION = 2
GEOFENCE_VERSION = 2
RALLY_VERSION = 2
FENCE_SHAPE_VERSION = 1
FIRMWARE_PX4 = 12
VEHICLE_MULTIROTOR = 2

# QGroundControl's AltMode enum (QGroundControlQmlGlobal.h): only the editor reads it.
ALT_MODE_RELATIVE = 1
ALT_MODE_ABSOLUTE = 2
ALT_MODE_CALC_ABOVE_TERRAIN = 3
ALT_MODE_TERRAIN_FRAME = 4

_RELATIVE_FRAMES = frozenset({3, 6})  # GLOBAL_RELATIVE_ALT and its _INT twin
_AMSL_FRAMES = frozenset({0, 5})
_TERRAIN_FRAMES = frozenset({10, 11})
_GLOBAL_FRAMES = _RELATIVE_FRAMES | _AMSL_FRAMES | _TERRAIN_FRAMES
_EDITOR_KEYS = ("AMSLAltAboveTerrain", "Altitude", "AltitudeMode")


# --------------------------------------------------------------------------- reading


def read_plan(path: str | Path) -> MissionPlan:
    """Read a QGroundControl `.plan` file; raise :class:`InputError` on anything malformed."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(source, f"cannot read file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(source, "not a text file (not UTF-8)") from exc
    if not text.strip():
        raise InputError(source, "file is empty; expected a QGroundControl plan (JSON)")
    try:
        root = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    return _PlanReader(source).plan(root, name=Path(path).stem)


@dataclass(frozen=True)
class _PlanReader:
    source: str

    def fail(self, message: str, feature: str | None = None) -> InputError:
        return InputError(self.source, message, feature)

    def plan(self, root: Any, name: str) -> MissionPlan:
        if not isinstance(root, dict):
            raise self.fail(f"expected a JSON object at the top level, found {_json_type(root)}")
        if root.get("fileType") != "Plan":
            raise self.fail(f"fileType is {root.get('fileType')!r}, expected 'Plan' (is this a QGroundControl plan?)")
        mission = root.get("mission")
        if mission is None:
            raise self.fail("no 'mission' section")
        if not isinstance(mission, dict):
            raise self.fail(f"'mission' must be an object, found {_json_type(mission)}", "mission")
        raw_items = mission.get("items", [])
        if not isinstance(raw_items, list):
            raise self.fail("'items' must be an array", "mission")

        items: list[MissionItem] = []
        editor: list[tuple[MissionItem, dict]] = []
        for index, raw in enumerate(raw_items):
            for item, extra in self.items(raw, f"mission item {index + 1}"):
                items.append(item)
                editor.append((item, extra))

        home_raw = mission.get("plannedHomePosition")
        if home_raw is None:
            raise self.fail("missing plannedHomePosition [lat, lon, alt]", "mission")
        home_lat, home_lon, home_alt = self.position(home_raw, "plannedHomePosition", with_alt=True)

        fence = root.get("geoFence") or {}
        if not isinstance(fence, dict):
            raise self.fail("'geoFence' must be an object", "geoFence")
        polygons = tuple(self.fence_polygon(p, i) for i, p in enumerate(self.array(fence, "polygons", "geoFence")))
        circles = tuple(self.fence_circle(c, i) for i, c in enumerate(self.array(fence, "circles", "geoFence")))

        rally_section = root.get("rallyPoints") or {}
        if not isinstance(rally_section, dict):
            raise self.fail("'rallyPoints' must be an object", "rallyPoints")
        rally = tuple(
            Waypoint(*self.position(p, f"rally point {i + 1}", with_alt=True))
            for i, p in enumerate(self.array(rally_section, "points", "rallyPoints"))
        )

        meta = {
            "groundStation": root.get("groundStation"),
            "firmwareType": mission.get("firmwareType", FIRMWARE_PX4),
            "vehicleType": mission.get("vehicleType", VEHICLE_MULTIROTOR),
            "globalPlanAltitudeMode": mission.get("globalPlanAltitudeMode", ALT_MODE_RELATIVE),
            "editor": tuple(editor),
        }
        return MissionPlan(
            items=tuple(items),
            home=Waypoint(home_lat, home_lon, home_alt if home_alt is not None else 0.0),
            fence_polygons=polygons,
            fence_circles=circles,
            rally=rally,
            cruise_speed_m_s=self.number(mission.get("cruiseSpeed", 15.0), "cruiseSpeed", "mission"),
            hover_speed_m_s=self.number(mission.get("hoverSpeed", 5.0), "hoverSpeed", "mission"),
            name=name,
            meta=meta,
        )

    def items(self, raw: Any, feature: str) -> list[tuple[MissionItem, dict]]:
        if not isinstance(raw, dict):
            raise self.fail(f"expected an object, found {_json_type(raw)}", feature)
        kind = raw.get("type")
        if kind == "SimpleItem":
            return [self.simple_item(raw, feature)]
        if kind == "ComplexItem":
            complex_type = raw.get("complexItemType", "?")
            generated = (raw.get("TransectStyleComplexItem") or {}).get("Items")
            if not isinstance(generated, list) or not generated:
                raise self.fail(
                    f"complex item {complex_type!r} carries no generated items (TransectStyleComplexItem.Items); "
                    "open and save the plan in a recent QGroundControl, or convert it to simple items",
                    feature,
                )
            return [
                self.simple_item(sub, f"{feature} ({complex_type}), generated item {k + 1}")
                for k, sub in enumerate(generated)
            ]
        raise self.fail(f"unknown item type {kind!r} (expected 'SimpleItem' or 'ComplexItem')", feature)

    def simple_item(self, raw: Any, feature: str) -> tuple[MissionItem, dict]:
        if not isinstance(raw, dict):
            raise self.fail(f"expected an object, found {_json_type(raw)}", feature)
        if "doJumpId" in raw:
            feature = f"{feature} (doJumpId {raw['doJumpId']})"
        for key in ("command", "frame", "params"):
            if key not in raw:
                raise self.fail(f"missing {key!r}", feature)
        command = self.integer(raw["command"], "command", feature)
        frame = self.integer(raw["frame"], "frame", feature)
        params = raw["params"]
        if not isinstance(params, list) or len(params) != 7:
            found = f"{len(params)} entries" if isinstance(params, list) else _json_type(params)
            raise self.fail(f"'params' must hold 7 values (param1-4, lat, lon, alt), found {found}", feature)
        values = tuple(None if p is None else self.number(p, f"param{k + 1}", feature) for k, p in enumerate(params))
        if frame in _GLOBAL_FRAMES and values[4] is not None and values[5] is not None:
            self.check_lat_lon(values[4], values[5], feature)
        autocontinue = raw.get("autoContinue", True)
        if not isinstance(autocontinue, bool):
            raise self.fail(f"'autoContinue' must be true or false, found {autocontinue!r}", feature)
        extra = {k: raw[k] for k in _EDITOR_KEYS if k in raw}
        return MissionItem(command, frame, values, autocontinue), extra

    def fence_polygon(self, raw: Any, index: int) -> FencePolygon:
        feature = f"geoFence polygon {index + 1}"
        if not isinstance(raw, dict) or not isinstance(raw.get("polygon"), list):
            raise self.fail("expected an object with a 'polygon' array of [lat, lon]", feature)
        vertices = tuple(self.position(v, feature)[:2] for v in raw["polygon"])
        if len(vertices) < 3:
            raise self.fail(f"a fence polygon needs at least 3 vertices, found {len(vertices)}", feature)
        # MAVSDK reads a missing inclusion as true, QGroundControl requires it: follow MAVSDK.
        return FencePolygon(vertices, self.flag(raw.get("inclusion", True), "inclusion", feature))

    def fence_circle(self, raw: Any, index: int) -> FenceCircle:
        feature = f"geoFence circle {index + 1}"
        circle = raw.get("circle") if isinstance(raw, dict) else None
        if not isinstance(circle, dict) or "center" not in circle or "radius" not in circle:
            raise self.fail("expected an object with 'circle': {'center': [lat, lon], 'radius': m}", feature)
        lat, lon, _ = self.position(circle["center"], feature)
        radius = self.number(circle["radius"], "radius", feature)
        if not radius > 0:
            raise self.fail(f"radius must be positive, found {radius}", feature)
        return FenceCircle(lat, lon, radius, self.flag(raw.get("inclusion", False), "inclusion", feature))

    def position(self, raw: Any, feature: str, with_alt: bool = False) -> tuple[float, float, float | None]:
        if not isinstance(raw, list) or len(raw) < 2 or len(raw) > 3:
            raise self.fail(f"expected [lat, lon{', alt' if with_alt else ''}], found {json.dumps(raw)}", feature)
        lat = self.number(raw[0], "latitude", feature)
        lon = self.number(raw[1], "longitude", feature)
        self.check_lat_lon(lat, lon, feature)
        alt = raw[2] if len(raw) == 3 else None
        return lat, lon, None if alt is None else self.number(alt, "altitude", feature)

    def check_lat_lon(self, lat: float, lon: float, feature: str) -> None:
        if abs(lat) > 90.0 and abs(lon) <= 90.0:
            raise self.fail(
                f"latitude {lat} is out of range; [lat, lon] probably swapped (QGroundControl writes latitude first)",
                feature,
            )
        if not -90.0 <= lat <= 90.0:
            raise self.fail(f"latitude {lat} is out of range [-90, 90]", feature)
        if not -180.0 <= lon <= 180.0:
            raise self.fail(f"longitude {lon} is out of range [-180, 180]", feature)

    def array(self, section: dict, key: str, feature: str) -> list:
        value = section.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{key!r} must be an array, found {_json_type(value)}", feature)
        return value

    def number(self, value: Any, what: str, feature: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(f"{what} must be a number, found {json.dumps(value)}", feature)
        return float(value)

    def integer(self, value: Any, what: str, feature: str) -> int:
        number = self.number(value, what, feature)
        if not number.is_integer():
            raise self.fail(f"{what} must be an integer, found {value}", feature)
        return int(number)

    def flag(self, value: Any, what: str, feature: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{what!r} must be true or false, found {json.dumps(value)}", feature)
        return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


# --------------------------------------------------------------------------- writing


def write_plan(plan: MissionPlan, path: str | Path) -> Path:
    """Write ``plan`` as a `.plan` that QGroundControl opens and MAVSDK imports; the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(plan_json(plan), indent=4) + "\n", encoding="utf-8")
    return out


def plan_json(plan: MissionPlan) -> dict:
    """The `.plan` document for ``plan``, as JSON-ready dicts and lists."""
    meta = plan.meta or {}
    editor = meta.get("editor", ())
    items = []
    for index, item in enumerate(plan.items):
        kept = editor[index][1] if index < len(editor) and editor[index][0] == item else None
        items.append(_item_json(item, index + 1, kept))
    return {
        "fileType": "Plan",
        "geoFence": {
            "circles": [
                {
                    "circle": {"center": [c.lat_deg, c.lon_deg], "radius": _number(c.radius_m)},
                    "inclusion": c.inclusion,
                    "version": FENCE_SHAPE_VERSION,
                }
                for c in plan.fence_circles
            ],
            "polygons": [
                {"inclusion": p.inclusion, "polygon": [[lat, lon] for lat, lon in p.vertices], "version": 1}
                for p in plan.fence_polygons
            ],
            "version": GEOFENCE_VERSION,
        },
        "groundStation": GROUND_STATION,
        "mission": {
            "cruiseSpeed": _number(plan.cruise_speed_m_s),
            "firmwareType": meta.get("firmwareType", FIRMWARE_PX4),
            "globalPlanAltitudeMode": meta.get("globalPlanAltitudeMode", ALT_MODE_RELATIVE),
            "hoverSpeed": _number(plan.hover_speed_m_s),
            "items": items,
            "plannedHomePosition": [plan.home.lat_deg, plan.home.lon_deg, _number(plan.home.alt_m)],
            "vehicleType": meta.get("vehicleType", VEHICLE_MULTIROTOR),
            "version": MISSION_VERSION,
        },
        "rallyPoints": {
            "points": [[w.lat_deg, w.lon_deg, _number(w.alt_m)] for w in plan.rally],
            "version": RALLY_VERSION,
        },
        "version": PLAN_FILE_VERSION,
    }


def _item_json(item: MissionItem, jump_id: int, kept_editor_keys: dict | None) -> dict:
    out: dict[str, Any] = {}
    if kept_editor_keys is not None:
        out.update(kept_editor_keys)
    elif item.has_position and item.frame in _GLOBAL_FRAMES:
        # QGroundControl restores its altitude fields from these; without them it shows a default.
        mode = ALT_MODE_RELATIVE
        if item.frame in _AMSL_FRAMES:
            mode = ALT_MODE_ABSOLUTE
        elif item.frame in _TERRAIN_FRAMES:
            mode = ALT_MODE_TERRAIN_FRAME
        out.update({"AMSLAltAboveTerrain": None, "Altitude": _number(item.alt_m), "AltitudeMode": mode})
    out.update(
        {
            "autoContinue": bool(item.autocontinue),
            "command": int(item.command),
            "doJumpId": jump_id,
            "frame": int(item.frame),
            "params": [_number(p) for p in _seven(item.params)],
            "type": "SimpleItem",
        }
    )
    return out


def _seven(params: tuple[float | None, ...]) -> tuple[float | None, ...]:
    if len(params) != 7:
        raise ValueError(f"a mission item needs 7 params, found {len(params)}: {params}")
    return params


def _number(value: float | None) -> float | int | None:
    """JSON has no NaN: QGroundControl writes an unset param as null, and so do we."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


# --------------------------------------------------------------------------- sites


def read_site_plan(path: str | Path) -> Site:
    return site_from_plan(read_plan(path), str(path))


def site_from_plan(plan: MissionPlan, source: str) -> Site:
    """The site a plan describes: its geofence, its rally points (or home) and its route.

    A `.plan` has no names, watch zones or coastline: zones are named after their index.
    """
    zones: list[Zone] = []
    notes: list[str] = []
    counts = {"Inclusion polygon": 0, "Exclusion polygon": 0, "Inclusion circle": 0, "Exclusion circle": 0}

    def name(kind: str) -> str:
        counts[kind] += 1
        return f"{kind} {counts[kind]}"

    for polygon in plan.fence_polygons:
        role = Role.OPERATING_AREA if polygon.inclusion else Role.NO_FLY
        kind = "Inclusion polygon" if polygon.inclusion else "Exclusion polygon"
        zones.append(Zone(role, name(kind), shapely.Polygon([(lon, lat) for lat, lon in polygon.vertices])))
    for circle in plan.fence_circles:
        role = Role.OPERATING_AREA if circle.inclusion else Role.NO_FLY
        kind = "Inclusion circle" if circle.inclusion else "Exclusion circle"
        zones.append(Zone(role, name(kind), shapely.Point(circle.lon_deg, circle.lat_deg), circle.radius_m))
    for i, point in enumerate(plan.rally):
        zones.append(Zone(Role.LAUNCH, f"Rally point {i + 1}", shapely.Point(point.lon_deg, point.lat_deg)))
    if not plan.rally:
        zones.append(Zone(Role.LAUNCH, "Planned home", shapely.Point(plan.home.lon_deg, plan.home.lat_deg)))
        notes.append("no rally points: the planned home position is used as the launch point 'Planned home'")
    route, route_notes = _route(plan)
    return Site(
        name=Path(source).stem or plan.name,
        source=source,
        zones=tuple(zones),
        route=route,
        warnings=tuple(f"{source}: {note}" for note in notes + route_notes),
    )


def _route(plan: MissionPlan) -> tuple[tuple[RoutePoint, ...], list[str]]:
    """Positioned mission items, altitudes made relative to home."""
    editor = (plan.meta or {}).get("editor", ())
    points: list[RoutePoint] = []
    notes: list[str] = []
    for index, item in enumerate(plan.items):
        if not item.has_position or item.lat_deg is None or item.lon_deg is None:
            continue
        feature = f"mission item {index + 1}"
        alt = item.alt_m
        if alt is not None and item.frame in _AMSL_FRAMES:
            alt = alt - plan.home.alt_m
        elif alt is not None and item.frame in _TERRAIN_FRAMES:
            notes.append(f"{feature}: altitude is above terrain; taken as above home")
        elif alt is not None and item.frame not in _RELATIVE_FRAMES:
            notes.append(f"{feature}: frame {item.frame} is not a global frame; altitude kept as written")
        if alt is None:
            kept = editor[index][1] if index < len(editor) and editor[index][0] == item else {}
            if kept.get("AltitudeMode") in (ALT_MODE_CALC_ABOVE_TERRAIN, ALT_MODE_TERRAIN_FRAME) and isinstance(
                kept.get("Altitude"), int | float
            ):
                alt = float(kept["Altitude"])
                notes.append(f"{feature}: altitude {alt:g} m is above terrain (not yet computed); taken as above home")
            else:
                notes.append(f"{feature}: no altitude")
        points.append(RoutePoint(item.lat_deg, item.lon_deg, alt))
    return tuple(points), notes
