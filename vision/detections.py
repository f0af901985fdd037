"""What a detector saw in one frame: the value that flows from detector to alerts.

Every stage of a pipeline takes a frame's detections and gives back new ones: the detector
adds what it sees, geolocation the camera's pose and each position, the tracker ``track_id``
(``dataclasses.replace``); nothing downstream mutates a frame's detections, so they can
cross threads as they are.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vision.camera import CameraPose


class ObjectClass(enum.Enum):
    """The classes customs cares about; every detector label maps to one of them."""

    VESSEL = "vessel"
    VEHICLE = "vehicle"
    PERSON = "person"
    OTHER = "other"

    @classmethod
    def from_name(cls, label: str) -> ObjectClass:
        """Map a detector's label (COCO, YOLO or our own) to a class; unknown labels are OTHER."""
        normalised = label.strip().lower().replace("_", " ").replace("-", " ")
        return _LABELS.get(normalised, cls.OTHER)


_LABELS: dict[str, ObjectClass] = {
    **{c.value: c for c in ObjectClass},
    **dict.fromkeys(("boat", "ship", "vessel", "yacht", "canoe", "kayak", "jet ski"), ObjectClass.VESSEL),
    **dict.fromkeys(
        ("car", "truck", "bus", "motorcycle", "motorbike", "van", "pickup", "trailer", "vehicle"), ObjectClass.VEHICLE
    ),
    **dict.fromkeys(("person", "pedestrian", "people", "swimmer"), ObjectClass.PERSON),
}


@dataclass(frozen=True)
class Detection:
    """One object in one frame.

    ``box_px`` is (x1, y1, x2, y2) in image pixels. The world position is either local
    metres in the site's frame (``x_m``, ``y_m``: east, north) or degrees, whichever the
    geolocator produced; ``track_id`` is None until a tracker has seen the object.
    """

    object_class: ObjectClass
    confidence: float
    box_px: tuple[float, float, float, float]
    track_id: int | None = None
    x_m: float | None = None
    y_m: float | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    mmsi: int | None = None  # the vessel AIS names, once vision.ais binds the track to it
    vessel_name: str | None = None
    error_m: float | None = None  # the position's error radius (one sigma), when the geolocator knows it

    @property
    def has_local_position(self) -> bool:
        return self.x_m is not None and self.y_m is not None

    @property
    def has_geo_position(self) -> bool:
        return self.lat_deg is not None and self.lon_deg is not None

    @property
    def is_located(self) -> bool:
        return self.has_local_position or self.has_geo_position


@dataclass(frozen=True)
class Detections:
    """All detections of one frame of one video source.

    ``frame_time_s`` is the capture time in seconds since the Unix epoch (UTC): alert
    rules measure dwell with it and alerts report it, so it must be the camera's clock,
    not the time the frame happened to be processed. ``pose`` is where the camera was
    then, when the stream has a pose source: the evidence of an alert keeps it, and a
    run's frames record what the camera saw of the ground.
    """

    source: str
    frame_time_s: float
    frame_index: int
    items: tuple[Detection, ...] = ()
    pose: CameraPose | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Detection]:
        return iter(self.items)

    def _with(self, items: tuple[Detection, ...]) -> Detections:
        return dataclasses.replace(self, items=items)

    def of_class(self, *classes: ObjectClass) -> Detections:
        wanted = frozenset(classes)
        return self._with(tuple(d for d in self.items if d.object_class in wanted))

    def located(self) -> Detections:
        """Only the detections that have a world position."""
        return self._with(tuple(d for d in self.items if d.is_located))

    def tracked(self) -> Detections:
        return self._with(tuple(d for d in self.items if d.track_id is not None))

    def to_json_dict(self) -> dict[str, Any]:
        """A frame's detections as the ground station receives them over UDP."""
        return {
            "type": "detections",
            "source": self.source,
            "frame_time_s": self.frame_time_s,
            "frame_index": self.frame_index,
            "items": [
                {
                    "class": d.object_class.value,
                    "confidence": round(d.confidence, 3),
                    "box_px": [round(v, 1) for v in d.box_px],
                    "track_id": d.track_id,
                    "lat_deg": d.lat_deg,
                    "lon_deg": d.lon_deg,
                    **({} if d.mmsi is None else {"mmsi": d.mmsi, "vessel_name": d.vessel_name}),
                }
                for d in self.items
            ],
        }

    @classmethod
    def from_ultralytics(
        cls,
        results: Any,
        source: str,
        frame_time_s: float,
        frame_index: int,
        names: Mapping[int, str] | Sequence[str] | None = None,
    ) -> Detections:
        """Convert an ultralytics ``Results`` (or the one-element list ``predict`` returns).

        Duck-typed so that vision installs without ultralytics or torch: it reads
        ``.boxes.xyxy``, ``.boxes.conf``, ``.boxes.cls``, ``.boxes.id`` (present only when
        tracking) and ``.names``; arrays may be numpy or torch, on any device.
        """
        result = results
        if not hasattr(result, "boxes") and isinstance(results, Sequence):
            if len(results) != 1:
                raise ValueError(f"expected the results of one frame, got {len(results)}")
            result = results[0]
        boxes = getattr(result, "boxes", None)
        if boxes is None:
            return cls(source, frame_time_s, frame_index)
        labels = names if names is not None else getattr(result, "names", None) or {}
        xyxy = _array(boxes.xyxy).reshape(-1, 4).astype(float)
        conf = _array(boxes.conf).reshape(-1).astype(float)
        class_ids = _array(boxes.cls).reshape(-1).astype(int)
        raw_ids = getattr(boxes, "id", None)
        track_ids = None if raw_ids is None else _array(raw_ids).reshape(-1).astype(int)
        if not len(xyxy) == len(conf) == len(class_ids) or (track_ids is not None and len(track_ids) != len(xyxy)):
            raise ValueError("boxes.xyxy, boxes.conf, boxes.cls and boxes.id differ in length")
        items = tuple(
            Detection(
                object_class=ObjectClass.from_name(_label(labels, int(class_ids[i]))),
                confidence=float(conf[i]),
                box_px=(float(xyxy[i, 0]), float(xyxy[i, 1]), float(xyxy[i, 2]), float(xyxy[i, 3])),
                track_id=None if track_ids is None else int(track_ids[i]),
            )
            for i in range(len(xyxy))
        )
        return cls(source, frame_time_s, frame_index, items)


def _array(value: Any) -> np.ndarray:
    # A CUDA tensor refuses np.asarray; moving it to the host first works for torch and numpy alike.
    if hasattr(value, "cpu"):
        value = value.cpu()
    return np.asarray(value)


def _label(names: Mapping[int, str] | Sequence[str], class_id: int) -> str:
    if isinstance(names, Mapping):
        return str(names.get(class_id, "other"))
    return str(names[class_id]) if 0 <= class_id < len(names) else "other"
