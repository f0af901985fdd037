"""What a video source hands the pipeline: frames, and the small interface that yields them.

The sources themselves (RTP, RTSP, files, folders) live in ``vision.sources``; a new kind
of source (a synthetic camera, say) subclasses :class:`SourceBase` for its bookkeeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """A BGR image and when it was taken.

    ``time_s`` is the capture time in Unix seconds as well as the source knows it: the
    sender's own stamp where the transport carries one (RTCP sender reports, a video
    file's creation time), else the moment the frame was decoded. ``received_s`` is always
    the local decode time, so ``received_s - time_s`` is the frame's age on arrival when
    the sender's clock is trustworthy. ``index`` counts the frames this source delivered
    before this one; frames a live source skipped show in its stats, not here. The image
    is read-only: frames are shared between threads and stages.
    """

    image: np.ndarray
    time_s: float
    index: int
    source: str
    received_s: float

    def __post_init__(self) -> None:
        image = self.image
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"a frame is H×W×3 uint8 BGR, got shape {image.shape} and dtype {image.dtype}")
        if image.flags.writeable:
            image = image.view()
            image.flags.writeable = False
            object.__setattr__(self, "image", image)

    @property
    def width_px(self) -> int:
        return int(self.image.shape[1])

    @property
    def height_px(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class StreamPace:
    """A source that waits for the pipeline consuming it (a simulation in lockstep with its cameras):
    the pipeline says when it `started`, each frame time it `took` (all before it too), and when it
    `stopped`, after which the source no longer waits."""

    started: Callable[[], None]
    took: Callable[[float], None]
    stopped: Callable[[], None]


@dataclass(frozen=True)
class StreamClock:
    """The clock a stream's frames are stamped by, and how the vehicle's own time stamps read on it.

    For a real camera `now` is Unix time and `boot` is None (telemetry is stamped on arrival).
    A simulation, whose vehicles and cameras may run faster than real time and slow down
    when the pipeline falls behind, gives its own: `now` its clock, `boot(vehicle_s)` the
    instant of a vehicle time stamp (time_boot_ms) on it, and with `pace` waits for the
    pipeline, which then takes every frame.
    """

    now: Callable[[], float] = time.time
    boot: Callable[[float], float] | None = None
    pace: StreamPace | None = None


@dataclass(frozen=True)
class SourceStats:
    """How a source has fared: frames handed out, frames a slow reader missed, stream
    reopenings, packets or files the decoder rejected, and the last thing that went wrong."""

    frames_delivered: int
    frames_dropped: int
    reconnects: int
    decode_errors: int
    last_error: str | None


class Source(Protocol):
    """Frames from one camera, file or folder: ``read`` until ``finished``, then ``close``."""

    name: str

    @property
    def finished(self) -> bool: ...

    def read(self, timeout_s: float = 1.0) -> Frame | None: ...

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def __iter__(self) -> Iterator[Frame]: ...


class SourceBase:
    """What every source shares: the counters behind ``stats``, iteration and the context manager.

    Subclasses provide ``finished``, ``read`` and ``close``, hand out frames through
    ``_deliver`` (which numbers them) and report what the decoder refused with ``_rejected``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Condition()
        self._delivered = self._dropped = self._reconnects = self._decode_errors = 0
        self._last_error: str | None = None

    @property
    def finished(self) -> bool:
        raise NotImplementedError

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def stats(self) -> SourceStats:
        with self._lock:
            return SourceStats(self._delivered, self._dropped, self._reconnects, self._decode_errors, self._last_error)

    def _deliver(self, image: np.ndarray, time_s: float, received_s: float) -> Frame:
        with self._lock:
            index = self._delivered
            self._delivered += 1
        return Frame(image, time_s, index, self.name, received_s)

    def _rejected(self, message: str) -> None:
        with self._lock:
            self._decode_errors += 1
            self._last_error = message

    def __iter__(self) -> Iterator[Frame]:
        while not self.finished:
            frame = self.read(1.0)
            if frame is not None:
                yield frame

    def __enter__(self) -> SourceBase:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
