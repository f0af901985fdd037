"""The synthetic camera: draw the world as a drone's camera sees it, and say what is in view.

The world is flat (z = 0), so a pinhole camera maps it to the image by a homography. Each
frame draws the ground under the camera's footprint top-down into a canvas at about the
image's own ground resolution — water, land, quay edges, container stacks, then objects
with shadows and wakes — and warps that canvas into the image in one `warpPerspective`.
The homography is built from the same `vision.camera` model the geolocator inverts, so
what the renderer puts at a pixel is exactly what the geolocator will read back.

The ground truth of a frame is every object whose footprint projects into the image:
its class, world position and pixel box (clipped to the image) with the visible fraction.
The camera is an ideal pinhole: lens distortion in the intrinsics is refused rather than
silently drawn without it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import shapely

from sitl.synthetic.world import World, WorldObject, outline, place
from vision.camera import CameraPose, Intrinsics, project, rotation_world_from_camera
from vision.detections import ObjectClass

_WATER_BGR = np.array([105.0, 78.0, 32.0])
_LAND_BGR = np.array([150.0, 160.0, 165.0])
_SKY_BGR = (225, 205, 185)
_HAZE_BGR = (150, 125, 90)
_TILE_PX = 256
_TILE_M_PER_PX = 0.5
_MAX_CANVAS_PX = 2600
_MAX_PX_PER_M = 24.0
_SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing
_SCALE = 1 << _SHIFT


@dataclass(frozen=True)
class SeenObject:
    """One object in one frame, as the ground truth knows it."""

    id: int
    object_class: ObjectClass
    kind: str
    x_m: float
    y_m: float
    lat_deg: float
    lon_deg: float
    heading_deg: float
    speed_m_s: float
    box_px: tuple[float, float, float, float]
    visible: float  # share of the projected box inside the image

    def to_json_dict(self) -> dict:
        return {
            "id": self.id,
            "class": self.object_class.value,
            "kind": self.kind,
            "x_m": round(self.x_m, 3),
            "y_m": round(self.y_m, 3),
            "lat_deg": round(self.lat_deg, 8),
            "lon_deg": round(self.lon_deg, 8),
            "heading_deg": round(self.heading_deg, 1),
            "speed_m_s": round(self.speed_m_s, 2),
            "box_px": [round(v, 1) for v in self.box_px],
            "visible": round(self.visible, 3),
        }


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray
    objects: tuple[SeenObject, ...]


def _periodic_noise(seed: int, smooth_px: float) -> np.ndarray:
    """Tileable smooth noise in [−1, 1]: white noise low-passed in the frequency domain."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((_TILE_PX, _TILE_PX)))
    f = np.fft.fftfreq(_TILE_PX)
    fx, fy = np.meshgrid(f, f)
    noise = np.real(np.fft.ifft2(spectrum * np.exp(-((fx**2 + fy**2) * (smooth_px * math.pi) ** 2))))
    noise -= noise.mean()
    return (noise / np.abs(noise).max()).astype(np.float32)


@functools.cache
def _textures() -> tuple[np.ndarray, np.ndarray]:
    """Water and land tiles, the same for every world and camera: made once per process."""
    ripples = 0.6 * _periodic_noise(1, 2.0) + 0.4 * _periodic_noise(2, 8.0)
    water = np.clip(_WATER_BGR[None, None, :] * (1.0 + 0.18 * ripples[..., None]), 0, 255).astype(np.uint8)
    grain = 0.5 * _periodic_noise(3, 1.0) + 0.5 * _periodic_noise(4, 12.0)
    land = np.clip(_LAND_BGR[None, None, :] * (1.0 + 0.12 * grain[..., None]), 0, 255).astype(np.uint8)
    return water, land


class CameraRenderer:
    """Renders one world through one camera model; safe to share between threads once built."""

    def __init__(
        self, world: World, intrinsics: Intrinsics | None = None, max_range_m: float = 900.0, noise: float = 3.0
    ) -> None:
        self.world = world
        self.intrinsics = intrinsics or Intrinsics()
        if self.intrinsics.has_distortion:
            raise ValueError("the synthetic camera draws an ideal pinhole: set k1 = k2 = 0")
        self.max_range_m = max_range_m
        self.noise = noise

    @cached_property
    def _grain(self) -> list[np.ndarray]:
        """A few frames of sensor noise, reused in turn: drawing fresh noise costs more than the scene."""
        shape = (self.intrinsics.height_px, self.intrinsics.width_px, 3)
        grains = []
        for _ in range(4):
            grain = np.empty(shape, np.int16)
            cv2.randn(grain, 0, self.noise)
            grains.append(grain)
        return grains

    def render(self, pose: CameraPose, time_s: float) -> Rendered:
        intr = self.intrinsics
        frame = self.world.site.frame
        rotation = rotation_world_from_camera(pose)
        camera_m = pose.position_m(frame)
        bounds = self._footprint_bounds(camera_m, rotation)
        if bounds is None:
            image = np.full((intr.height_px, intr.width_px, 3), _SKY_BGR, np.uint8)
            return Rendered(image, ())
        x0, y0, x1, y1 = bounds
        px_per_m = min(
            _MAX_PX_PER_M,
            intr.fx_px / max(camera_m[2], 1.0),
            _MAX_CANVAS_PX / max(x1 - x0, 1e-6),
            _MAX_CANVAS_PX / max(y1 - y0, 1e-6),
        )
        canvas = self._ground(
            x0, y1, px_per_m, max(1, math.ceil((x1 - x0) * px_per_m)), math.ceil((y1 - y0) * px_per_m)
        )
        objects = self.world.visible_objects(bounds, time_s)
        for obj in sorted(objects, key=lambda o: -o.kind.length_m):
            self._draw_object(canvas, obj, time_s, x0, y1, px_per_m)
        homography = self._homography(camera_m, rotation, x0, y1, px_per_m)
        image = cv2.warpPerspective(
            canvas, homography, (intr.width_px, intr.height_px), flags=cv2.INTER_LINEAR, borderValue=_HAZE_BGR
        )
        self._paint_sky(image, rotation)
        if self.noise > 0:
            grains = self._grain
            image = cv2.add(image, grains[int(time_s * 30) % len(grains)], dtype=cv2.CV_8U)
        return Rendered(image, self._ground_truth(objects, time_s, camera_m, rotation))

    # The homography and the footprint -------------------------------------------------

    def _homography(self, camera_m: np.ndarray, rotation: np.ndarray, x0: float, y1: float, s: float) -> np.ndarray:
        intr = self.intrinsics
        k = np.array([[intr.fx_px, 0.0, intr.cx_px], [0.0, intr.fy_px, intr.cy_px], [0.0, 0.0, 1.0]])
        rt = rotation.T
        ground_to_image = k @ np.column_stack([rt[:, 0], rt[:, 1], -rt @ camera_m])
        # Canvas pixel centres (c + ½, r + ½) are world (x0 + (c + ½)/s, y1 − (r + ½)/s);
        # image pixel (i, j) is centred on the continuous coordinate (i + ½, j + ½).
        canvas_to_ground = np.array([[1 / s, 0.0, x0 + 0.5 / s], [0.0, -1 / s, y1 - 0.5 / s], [0.0, 0.0, 1.0]])
        continuous_to_index = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
        return continuous_to_index @ ground_to_image @ canvas_to_ground

    def _rays(self, pixels: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        intr = self.intrinsics
        cam = np.column_stack(
            [(pixels[:, 0] - intr.cx_px) / intr.fx_px, (pixels[:, 1] - intr.cy_px) / intr.fy_px, np.ones(len(pixels))]
        )
        rays = cam @ rotation.T
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def _footprint_bounds(self, camera_m: np.ndarray, rotation: np.ndarray) -> tuple[float, float, float, float] | None:
        """Bounding box of the ground the image sees, out to the maximum range."""
        w, h = self.intrinsics.width_px, self.intrinsics.height_px
        t = np.linspace(0.0, 1.0, 9)
        edge = np.concatenate(
            [
                np.column_stack([t * w, np.zeros_like(t)]),
                np.column_stack([t * w, np.full_like(t, h)]),
                np.column_stack([np.zeros_like(t), t * h]),
                np.column_stack([np.full_like(t, w), t * h]),
            ]
        )
        rays = self._rays(edge, rotation)
        height = camera_m[2]
        if height <= 0:
            return None
        points = []
        for ray in rays:
            horizontal = math.hypot(ray[0], ray[1])
            if ray[2] < -1e-6:
                reach = min(height / -ray[2], self.max_range_m)
            elif horizontal > 1e-9:
                reach = self.max_range_m
            else:
                continue
            points.append(camera_m[:2] + ray[:2] * reach)
        if not points:
            return None
        pts = np.array(points)
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())

    def _paint_sky(self, image: np.ndarray, rotation: np.ndarray) -> None:
        """Rays that do not descend see sky, not a mirrored ground."""
        intr = self.intrinsics
        corners = np.array([[0, 0], [intr.width_px, 0], [0, intr.height_px], [intr.width_px, intr.height_px]], float)
        if (self._rays(corners, rotation)[:, 2] < -1e-3).all():
            return
        u = (np.arange(intr.width_px) + 0.5 - intr.cx_px) / intr.fx_px
        v = (np.arange(intr.height_px) + 0.5 - intr.cy_px) / intr.fy_px
        r = rotation[2]
        z = r[0] * u[None, :] + r[1] * v[:, None] + r[2]
        image[z >= -1e-3] = _SKY_BGR

    # Drawing ---------------------------------------------------------------------------

    def _ground(self, x0: float, y1: float, s: float, width: int, height: int) -> np.ndarray:
        water_tile, land_tile = _textures()
        k = 1.0 / (s * _TILE_M_PER_PX)
        to_tile = np.array(
            [[k, 0.0, (x0 + 0.5 / s) / _TILE_M_PER_PX], [0.0, k, (-y1 + 0.5 / s) / _TILE_M_PER_PX]], np.float64
        )
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        canvas = cv2.warpAffine(water_tile, to_tile, (width, height), flags=flags, borderMode=cv2.BORDER_WRAP)
        x1, y0 = x0 + width / s, y1 - height / s
        land = shapely.clip_by_rect(self.world.land_m, x0 - 5, y0 - 5, x1 + 5, y1 + 5)
        if land.is_empty:
            return canvas
        mask = np.zeros((height, width), np.uint8)
        rings = []
        for poly in getattr(land, "geoms", [land]):
            if poly.geom_type != "Polygon":
                continue
            rings.append(self._to_canvas(np.asarray(poly.exterior.coords)[:, :2], x0, y1, s))
            rings += [self._to_canvas(np.asarray(r.coords)[:, :2], x0, y1, s) for r in poly.interiors]
        cv2.fillPoly(mask, rings, 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        ground = cv2.warpAffine(land_tile, to_tile, (width, height), flags=flags, borderMode=cv2.BORDER_WRAP)
        cv2.copyTo(ground, mask, canvas)
        cv2.polylines(canvas, rings, True, (70, 75, 80), max(1, round(1.2 * s)), cv2.LINE_AA, shift=_SHIFT)
        for i, block in enumerate(self.world.clutter_m):
            if block[:, 0].max() < x0 or block[:, 0].min() > x1 or block[:, 1].max() < y0 or block[:, 1].min() > y1:
                continue
            colour = ((60, 60, 160), (140, 100, 40), (50, 120, 60), (40, 140, 200), (110, 110, 110))[i % 5]
            pts = self._to_canvas(block, x0, y1, s)
            cv2.fillPoly(canvas, [pts], colour, cv2.LINE_AA, shift=_SHIFT)
            cv2.polylines(canvas, [pts], True, (40, 40, 40), 1, cv2.LINE_AA, shift=_SHIFT)
        return canvas

    @staticmethod
    def _blend_poly(canvas: np.ndarray, pts: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
        """Draw a translucent polygon, touching only the pixels around it."""
        h, w = canvas.shape[:2]
        c0, r0 = np.maximum((pts.min(axis=0) >> _SHIFT) - 1, 0)
        c1, r1 = np.minimum((pts.max(axis=0) >> _SHIFT) + 2, [w, h])
        if c1 <= c0 or r1 <= r0:
            return
        roi = canvas[r0:r1, c0:c1]
        layer = roi.copy()
        cv2.fillPoly(layer, [pts - np.array([c0, r0]) * _SCALE], colour, cv2.LINE_AA, shift=_SHIFT)
        cv2.addWeighted(layer, alpha, roi, 1.0 - alpha, 0, dst=roi)

    @staticmethod
    def _to_canvas(points_m: np.ndarray, x0: float, y1: float, s: float) -> np.ndarray:
        cols = (points_m[:, 0] - x0) * s - 0.5
        rows = (y1 - points_m[:, 1]) * s - 0.5
        return np.round(np.column_stack([cols, rows]) * _SCALE).astype(np.int32)

    def _draw_object(self, canvas: np.ndarray, obj: WorldObject, time_s: float, x0: float, y1: float, s: float) -> None:
        x_m, y_m, heading, speed = obj.pose_at(time_s)
        kind = obj.kind
        body = outline(kind)
        shadow_offset = np.array([0.25, -0.25]) * (1.0 + kind.beam_m * 0.3)
        shadow = self._to_canvas(place(body, x_m, y_m, heading) + shadow_offset, x0, y1, s)
        cv2.fillPoly(canvas, [shadow], (25, 25, 25), cv2.LINE_AA, shift=_SHIFT)
        if kind.object_class is ObjectClass.VESSEL and speed > 0:
            half_b, half_l = kind.beam_m / 2, kind.length_m / 2
            tail = -half_l - 1.6 * kind.length_m
            wake = np.array(
                [[-half_b * 0.8, -half_l], [half_b * 0.8, -half_l], [half_b * 2.2, tail], [-half_b * 2.2, tail]]
            )
            self._blend_poly(canvas, self._to_canvas(place(wake, x_m, y_m, heading), x0, y1, s), (200, 190, 170), 0.35)
        hull = self._to_canvas(place(body, x_m, y_m, heading), x0, y1, s)
        cv2.fillPoly(canvas, [hull], obj.colour_bgr, cv2.LINE_AA, shift=_SHIFT)
        if kind.object_class is ObjectClass.PERSON:
            head = self._to_canvas(place(body * 0.45, x_m, y_m, heading), x0, y1, s)
            cv2.fillPoly(canvas, [head], (60, 80, 110), cv2.LINE_AA, shift=_SHIFT)
            return
        # A cabin or bridge aft on vessels, a windscreen forward on vehicles: gives the shape a front.
        half_b, half_l = kind.beam_m / 2, kind.length_m / 2
        if kind.object_class is ObjectClass.VESSEL:
            top = np.array([[-0.7, -0.85], [0.7, -0.85], [0.7, -0.45], [-0.7, -0.45]]) * [half_b, half_l]
            tone = (245, 245, 245) if sum(obj.colour_bgr) < 400 else (90, 90, 90)
        else:
            top = np.array([[-0.85, 0.35], [0.85, 0.35], [0.85, 0.65], [-0.85, 0.65]]) * [half_b, half_l]
            tone = (40, 30, 25)
        cv2.fillPoly(canvas, [self._to_canvas(place(top, x_m, y_m, heading), x0, y1, s)], tone, cv2.LINE_AA,
                     shift=_SHIFT)  # fmt: skip

    # Ground truth ----------------------------------------------------------------------

    def _ground_truth(
        self, objects: list[WorldObject], time_s: float, camera_m: np.ndarray, rotation: np.ndarray
    ) -> tuple[SeenObject, ...]:
        intr = self.intrinsics
        frame = self.world.site.frame
        seen = []
        for obj in objects:
            footprint = obj.footprint_m(time_s)
            pixels, in_front = project(np.column_stack([footprint, np.zeros(len(footprint))]), camera_m, rotation, intr)
            if not in_front.all():
                continue
            bx0, by0 = pixels.min(axis=0)
            bx1, by1 = pixels.max(axis=0)
            full = (bx1 - bx0) * (by1 - by0)
            cx0, cy0 = max(bx0, 0.0), max(by0, 0.0)
            cx1, cy1 = min(bx1, float(intr.width_px)), min(by1, float(intr.height_px))
            if cx1 <= cx0 or cy1 <= cy0 or full <= 0:
                continue
            x_m, y_m, heading, speed = obj.pose_at(time_s)
            lon_deg, lat_deg = frame.lonlat(x_m, y_m)
            seen.append(
                SeenObject(
                    id=obj.id,
                    object_class=obj.object_class,
                    kind=obj.kind.name,
                    x_m=x_m,
                    y_m=y_m,
                    lat_deg=lat_deg,
                    lon_deg=lon_deg,
                    heading_deg=heading,
                    speed_m_s=speed,
                    box_px=(float(cx0), float(cy0), float(cx1), float(cy1)),
                    visible=float((cx1 - cx0) * (cy1 - cy0) / full),
                )
            )
        return tuple(seen)
