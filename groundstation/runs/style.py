"""How every map draws things: the app's Leaflet page, the folium preview maps and the run report.

Path styles are Leaflet's path options, spelled as Leaflet spells them (``fillColor``), because
that is what the app's page takes as it is; the folium maps translate them to folium's keyword
arguments. Qt-free and folium-free, so the app, the CLI and the report can all import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from missions.site import Role, Zone
from vision.alerts import AlertSeverity, RuleKind
from vision.palette import CLASS_COLORS

BACKGROUND_COLOR = "#eef1f4"

OPERATING_AREA_COLOR = "#2e7d32"
NO_FLY_COLOR = "#d50000"
# Dashed, so a no-fly zone never reads as a high-risk watch zone of a similar red.
NO_FLY_DASH = "8 5"
COASTLINE_COLOR = "#1565c0"
LAUNCH_COLOR = "#263238"
# ColorBrewer YlOrRd: yellow for risk 1 through dark red for risk 5.
RISK_COLORS = {1: "#fed976", 2: "#feb24c", 3: "#fd8d3c", 4: "#f03b20", 5: "#800026"}

# An alert's severity follows its zone's risk (vision.alerts.severity), so it takes that risk's colour.
SEVERITY_COLORS = {
    AlertSeverity.LOW: RISK_COLORS[2],
    AlertSeverity.MEDIUM: RISK_COLORS[3],
    AlertSeverity.HIGH: RISK_COLORS[4],
    AlertSeverity.CRITICAL: RISK_COLORS[5],
}
UNKNOWN_SEVERITY_COLOR = "#616161"
ALERT_OUTLINE_COLOR = "#111111"
# What the evidence does not bear out, and what AIS does not account for, in the report's red and amber.
UNVERIFIED_COLOR = "#c62828"
DARK_VESSEL_COLOR = UNVERIFIED_COLOR  # a vessel in a watch zone that AIS does not name
AIS_NOT_SEEN_COLOR = "#ff8f00"  # an AIS position in view where no vessel is


@dataclass(frozen=True)
class AisMarker:
    """How a map draws an alert of AIS: a diamond, where every other alert is a disc coloured by its zone's risk."""

    css: str  # the marker's class beside ``borderwatch-ais-marker``
    legend_kind: str  # a MapLegend swatch
    color: str
    label: str

    @property
    def html(self) -> str:
        """The marker as a Leaflet divIcon's HTML, a 14 px square turned 45°."""
        if self.legend_kind == "diamond":
            look = f"border: 2px solid {ALERT_OUTLINE_COLOR}; background: {self.color};"
        else:
            look = f"border: 3px dashed {self.color}; background: #ffffff;"
        box = "width: 14px; height: 14px; margin: 3px; box-sizing: border-box; transform: rotate(45deg);"
        return f'<div class="borderwatch-ais-marker {self.css}" style="{box} {look}"></div>'


# Filled red for a vessel AIS does not name, hollow amber for an AIS position where no vessel is.
AIS_MARKERS = {
    RuleKind.DARK_VESSEL: AisMarker("dark", "diamond", DARK_VESSEL_COLOR, "Dark vessel (no AIS)"),
    RuleKind.AIS_NOT_SEEN: AisMarker("not-seen", "hollow-diamond", AIS_NOT_SEEN_COLOR, "AIS position not seen"),
}

# Kept clear of the zone colours (green, red, yellow-to-red, blue) so a route never reads as a zone.
ROUTE_COLORS = ("#6a1b9a", "#00838f", "#d81b60", "#5d4037", "#283593", "#9e9d24", "#212121", "#ef6c00")
_START_RING_SIZES = 5

# Grey for a vehicle whose link is down: its position is the last one heard, not where it is.
LOST_COLOR = "#9e9e9e"
DRAW_COLOR = "#1976d2"
SEEN_COLOR = "#4fc3f7"

DETECTION_COLORS = CLASS_COLORS  # one per object class: the video's, the map's and the report's


def clamped_risk(risk: int | None) -> int:
    """A zone's risk as a key of RISK_COLORS: an unset risk is drawn as the lowest."""
    return min(max(risk or 1, 1), 5)


def risk_color(risk: int | None) -> str:
    return RISK_COLORS[clamped_risk(risk)]


def route_color(index: int) -> str:
    """A colour per drone: a fixed palette, then hues spaced by the golden angle."""
    if index < len(ROUTE_COLORS):
        return ROUTE_COLORS[index]
    return f"hsl({(index * 137.508) % 360:.0f}, 70%, 35%)"


def start_ring_radius(index: int) -> int:
    """The pixel radius of a drone's start ring: wider for each drone, so starts that share a pad stay visible."""
    return 11 + 4 * (index % _START_RING_SIZES)


def zone_style(zone: Zone) -> dict[str, Any]:
    """Leaflet path options for a zone: coloured by its role, and a watch zone by its risk."""
    if zone.role is Role.OPERATING_AREA:
        return {"color": OPERATING_AREA_COLOR, "weight": 3, "fill": False}
    if zone.role is Role.NO_FLY:
        return {
            "color": NO_FLY_COLOR,
            "weight": 3,
            "dashArray": NO_FLY_DASH,
            "fillColor": NO_FLY_COLOR,
            "fillOpacity": 0.3,
        }
    if zone.role is Role.WATCH:
        color = risk_color(zone.risk)
        return {"color": color, "weight": 2, "fillColor": color, "fillOpacity": 0.45}
    if zone.role is Role.COASTLINE:
        return {"color": COASTLINE_COLOR, "weight": 3, "fill": False}
    return {"color": LAUNCH_COLOR, "weight": 2, "fillColor": LAUNCH_COLOR, "fillOpacity": 1.0}


def launch_point_style() -> dict[str, Any]:
    """Leaflet circle-marker options for a launch point: a dot ringed in white, drawn above everything."""
    return {"radius": 7, "color": "#ffffff", "weight": 2, "fillColor": LAUNCH_COLOR, "fillOpacity": 1.0}
