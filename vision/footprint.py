"""The part of the ground a camera sees: its image border cast onto the plane z = 0.

Pixel → ground is a homography as long as every ray descends, so the footprint of an
image whose rays all reach the ground is the image border mapped point by point. An
oblique camera whose top edge looks at or above the horizon sees the ground out to
infinity; there the border is first cut, in the image, along a line just below the
horizon (every ray kept still descends), and the ground polygon is then cut to a disc of
`max_range_m` around the point below the camera. Both cuts are exact for a pinhole: the
horizon is a straight line in the undistorted image, and the disc is where "clipped at
max range" puts every ray that would land further out, at or above the horizon included.

The border is sampled with several points per edge so that lens distortion and the cut
land where they should; straight edges of an undistorted image stay straight on the
ground, so the samples cost accuracy nothing there.
"""

from __future__ import annotations

import numpy as np
import shapely

from missions.geo import LocalFrame
from vision.camera import CameraPose, Intrinsics, pixel_rays, rotation_world_from_camera

DEFAULT_MAX_RANGE_M = 2000.0
_SAMPLES_PER_EDGE = 16
_DISC_SEGMENTS = 180


def ground_footprint(
    pose: CameraPose,
    intrinsics: Intrinsics,
    frame: LocalFrame,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
    samples_per_edge: int = _SAMPLES_PER_EDGE,
) -> shapely.Polygon:
    """What the camera sees of the plane z = 0, in the site's metres; empty when it sees none of it.

    Ground further than `max_range_m` (horizontal distance from the point below the
    camera) is left out, so a view at or above the horizon ends there.
    """
    if not max_range_m > 0.0:
        raise ValueError("max_range_m must be positive")
    camera_m = pose.position_m(frame)
    height_m = float(camera_m[2])
    if not height_m > 0.0:
        return shapely.Polygon()
    rotation = rotation_world_from_camera(pose)
    # Rays scaled to unit length along the optical axis: the image plane z_camera = 1 in world
    # terms, where a straight cut stays straight and linear interpolation stays on the plane.
    rays = pixel_rays(_border_px(intrinsics, samples_per_edge), rotation, intrinsics)
    rays = rays / (rays @ rotation[:, 2])[:, None]
    # Such a ray is at least 1 long, so one that descends by less than this lands further
    # out than 1.7 × max range: cutting it loses nothing, and keeps the far corners finite.
    min_descent = min(0.5, height_m / (2.0 * max_range_m))
    kept = _clip_below(rays, -min_descent)
    if len(kept) < 3:
        return shapely.Polygon()
    ground_xy = camera_m[None, :2] + kept[:, :2] * (height_m / -kept[:, 2])[:, None]
    cast = shapely.make_valid(shapely.Polygon(ground_xy))
    disc = shapely.Point(camera_m[:2]).buffer(max_range_m, quad_segs=_DISC_SEGMENTS // 4)
    return _largest_polygon(shapely.intersection(cast, disc))


def _border_px(intrinsics: Intrinsics, per_edge: int) -> np.ndarray:
    """Points around the image border, clockwise on screen from the top-left corner, without repeats."""
    w, h = float(intrinsics.width_px), float(intrinsics.height_px)
    steps = np.linspace(0.0, 1.0, max(per_edge, 1), endpoint=False)
    top = np.column_stack([steps * w, np.zeros_like(steps)])
    right = np.column_stack([np.full_like(steps, w), steps * h])
    bottom = np.column_stack([w - steps * w, np.full_like(steps, h)])
    left = np.column_stack([np.zeros_like(steps), h - steps * h])
    return np.vstack([top, right, bottom, left])


def _clip_below(ring: np.ndarray, z_max: float) -> np.ndarray:
    """Sutherland–Hodgman: the closed ring of points (N, 3) cut to the half-space z <= z_max."""
    out: list[np.ndarray] = []
    count = len(ring)
    for i in range(count):
        here, there = ring[i], ring[(i + 1) % count]
        here_in, there_in = here[2] <= z_max, there[2] <= z_max
        if here_in:
            out.append(here)
        if here_in != there_in:
            t = (z_max - here[2]) / (there[2] - here[2])
            crossing = here + t * (there - here)
            crossing[2] = z_max  # exactly on the cut, not a rounding error above it
            out.append(crossing)
    return np.array(out).reshape(-1, 3)


def _largest_polygon(shape) -> shapely.Polygon:
    polygons = [p for p in getattr(shape, "geoms", [shape]) if isinstance(p, shapely.Polygon) and not p.is_empty]
    if not polygons:
        return shapely.Polygon()
    return max(polygons, key=lambda p: p.area)
