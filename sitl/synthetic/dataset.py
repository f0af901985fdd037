"""A labelled YOLO dataset drawn by the synthetic camera.

Each sample is one view of one site's world: a camera at 35–130 m, looking straight down
or obliquely, turned any way, over a busier version of the world (extra vessels on the
water, vehicles on land and people near the shore around the point it looks at). Labels
are the renderer's ground-truth boxes, kept when at least 40 % of the object is in the
image and the box is at least `min_box_px` on its shorter side at full resolution — a
person 0.7 m across seen from 130 m is a few pixels, and a label no model can learn from
teaches it only to guess.

Layout (what ultralytics reads): images/{train,val}/*.jpg, labels/{train,val}/*.txt with
"class cx cy w h" normalised, and data.yaml naming the classes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import shapely

from missions.site import Site
from sitl.synthetic.render import CameraRenderer, SeenObject
from sitl.synthetic.world import PERSON_KIND, VEHICLE_KINDS, VESSEL_KINDS, World, WorldObject
from vision.camera import CameraPose
from vision.detections import ObjectClass

# People are in the world and its ground truth, but not among the classes the synthetic model
# learns: 0.7 m across is 4–9 px in a 1280 px frame from patrol altitude and 1–3 px at the
# model's 416 px input; a first training run with them reached AP50 0.00 on people.
CLASSES = (ObjectClass.VESSEL, ObjectClass.VEHICLE)
_COLOURS = ((235, 235, 235), (40, 40, 190), (150, 70, 20), (30, 30, 30), (20, 120, 230), (60, 140, 60), (0, 200, 220))


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    images: dict[str, int]
    labels: dict[str, dict[str, int]]

    def to_json_dict(self) -> dict:
        return {"root": str(self.root), "images": self.images, "labels": self.labels}


def yolo_labels(objects: tuple[SeenObject, ...], width_px: int, height_px: int, min_box_px: float) -> list[str]:
    """Ground truth → YOLO label lines for the classes the model learns."""
    lines = []
    for obj in objects:
        if obj.object_class not in CLASSES or obj.visible < 0.4:
            continue
        x0, y0, x1, y1 = obj.box_px
        if min(x1 - x0, y1 - y0) < min_box_px:
            continue
        cx, cy = (x0 + x1) / 2 / width_px, (y0 + y1) / 2 / height_px
        w, h = (x1 - x0) / width_px, (y1 - y0) / height_px
        lines.append(f"{CLASSES.index(obj.object_class)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def _busier(world: World, rng: np.random.Generator, centre: tuple[float, float], radius_m: float) -> World:
    """The world plus random objects around a point: vessels on water, vehicles and people on land."""
    extra: list[WorldObject] = []
    area = shapely.Point(centre).buffer(radius_m)
    water = area.intersection(world.water_m.buffer(-5.0))
    land = area.intersection(world.land_m.buffer(-3.0))
    next_id = max((o.id for o in world.objects), default=0) + 1
    taken: list[shapely.Polygon] = []
    for region, kinds, count in (
        (water, VESSEL_KINDS[:4], int(rng.integers(2, 10))),
        (water, VESSEL_KINDS[4:], int(rng.integers(0, 2))),
        (land, VEHICLE_KINDS, int(rng.integers(2, 10))),
        (land, (PERSON_KIND,), int(rng.integers(2, 14))),
    ):
        if region.is_empty or region.area < 100:
            continue
        x0, y0, x1, y1 = region.bounds
        for _ in range(count * 5):
            if count == 0:
                break
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if not region.contains(shapely.Point(x, y)):
                continue
            kind = kinds[int(rng.integers(len(kinds)))]
            heading = rng.uniform(0, 2 * math.pi)
            path = shapely.LineString([(x, y), (x + math.sin(heading), y + math.cos(heading))])
            moving = kind.object_class is ObjectClass.VESSEL and rng.random() < 0.7
            obj = WorldObject(next_id, kind, _COLOURS[int(rng.integers(len(_COLOURS)))], path,
                              kind.speed_m_s if moving else 0.0, phase_m=0.0)  # fmt: skip
            footprint = shapely.Polygon(obj.footprint_m(0.0)).buffer(1.0)
            if any(footprint.intersects(t) for t in taken):
                continue
            taken.append(footprint)
            extra.append(obj)
            next_id += 1
            count -= 1
    return world.with_objects(world.objects + tuple(extra))


def random_view(world: World, rng: np.random.Generator) -> tuple[CameraPose, float, tuple[float, float]]:
    """A pose looking at something interesting, a time, and the point looked at (site metres)."""
    keep_in = world.site.keep_in_m
    site = world.site
    time_s = float(rng.uniform(0, 2000))
    choice = rng.random()
    if world.objects and choice < 0.5:
        obj = world.objects[int(rng.integers(len(world.objects)))]
        tx, ty, _, _ = obj.pose_at(time_s)
    elif choice < 0.75 and world.shore_length_m > 0:
        parts = world.shore_parts_m
        lengths = np.array([p.length for p in parts])
        edge = parts[int(rng.choice(len(parts), p=lengths / lengths.sum()))]
        point = edge.interpolate(float(rng.uniform(0, edge.length)))
        tx, ty = point.x, point.y
    else:
        x0, y0, x1, y1 = keep_in.bounds
        tx, ty = rng.uniform(x0, x1), rng.uniform(y0, y1)
    tx, ty = tx + rng.normal(0, 15), ty + rng.normal(0, 15)
    alt = float(rng.uniform(35, 130))
    gimbal = -90.0 if rng.random() < 0.6 else float(rng.uniform(-88, -45))
    yaw = float(rng.uniform(0, 360))
    back = alt / math.tan(math.radians(-gimbal)) if gimbal > -89.9 else 0.0
    cx = tx - back * math.sin(math.radians(yaw))
    cy = ty - back * math.cos(math.radians(yaw))
    lon, lat = site.frame.lonlat(cx, cy)
    pose = CameraPose(
        lat, lon, alt, roll_deg=float(rng.normal(0, 3)), pitch_deg=float(rng.normal(0, 3)), yaw_deg=yaw,
        gimbal_pitch_deg=gimbal,
    )  # fmt: skip
    return pose, time_s, (tx, ty)


def make_dataset(
    root: Path,
    sites: list[Site],
    train: int,
    val: int,
    seed: int = 0,
    save_width_px: int = 640,
    min_box_px: float = 8.0,
) -> DatasetSummary:
    """Draw `train` + `val` labelled frames over the sites (in turn) into a YOLO dataset at root."""
    rng = np.random.default_rng(seed)
    worlds = [World.for_site(site, seed=seed + i) for i, site in enumerate(sites)]
    counts: dict[str, Counter] = {"train": Counter(), "val": Counter()}
    images = {"train": 0, "val": 0}
    for split, n in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            k = i % len(worlds)
            pose, time_s, centre = random_view(worlds[k], rng)
            out = CameraRenderer(_busier(worlds[k], rng, centre, 0.7 * pose.alt_m)).render(pose, time_s)
            h, w = out.image.shape[:2]
            lines = yolo_labels(out.objects, w, h, min_box_px)
            image = cv2.resize(out.image, (save_width_px, round(h * save_width_px / w)), interpolation=cv2.INTER_AREA)
            stem = f"{split}_{i:05d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 88])
            (root / "labels" / split / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
            counts[split].update(CLASSES[int(line.split()[0])].value for line in lines)
            images[split] += 1
    names = "".join(f"  {i}: {c.value}\n" for i, c in enumerate(CLASSES))
    (root / "data.yaml").write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    summary = DatasetSummary(root, images, {s: dict(c) for s, c in counts.items()})
    (root / "summary.json").write_text(json.dumps(summary.to_json_dict(), indent=2))
    return summary
