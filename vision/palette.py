"""One colour per object class, wherever an object is drawn: the video overlay, the app's map and
the report. Bright, so that it stands out on sea, quays and zone fills alike."""

from __future__ import annotations

from types import MappingProxyType

from vision.detections import ObjectClass

CLASS_COLORS = MappingProxyType(
    {
        ObjectClass.VESSEL: "#00e5ff",
        ObjectClass.VEHICLE: "#e040fb",
        ObjectClass.PERSON: "#76ff03",
        ObjectClass.OTHER: "#bdbdbd",
    }
)


def bgr(color: str) -> tuple[int, int, int]:
    """`#rrggbb` in OpenCV's channel order."""
    value = int(color.removeprefix("#"), 16)
    return value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF


CLASS_BGR = MappingProxyType({cls: bgr(color) for cls, color in CLASS_COLORS.items()})
