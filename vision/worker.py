"""One assembled pipeline on a thread of its own, for whoever watches several streams at once.

The headless demo runs one :class:`StreamWorker` per simulated camera; the ground station's
app wraps each in a Qt object that turns its callbacks into signals. Nothing here imports Qt.

The callbacks run on the worker's thread: ``on_result`` with every frame's result and the
frame, ``on_error`` with what ended the stream (the source, the model or a callback failed),
``on_finished`` last of all, once the pipeline's source and pose reader are closed.

A simulation in lockstep with its camera (``vision.frames.StreamPace``) waits for this worker
from ``started`` (said as soon as the pipeline is assembled and before it reads a frame) until
``stopped`` (said whatever ended the thread, so the simulation never waits for a dead stream),
and is told every frame the pipeline ``took`` before anything else is done with the result.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vision.frames import Frame, Source, SourceStats, StreamPace
from vision.pipeline import FrameResult
from vision.runner import Assembly

NO_VIDEO_AFTER_S = 3.0
_FPS_WINDOW_S = 2.0


@dataclass(frozen=True)
class StreamStats:
    """How a stream fares, as its caption shows it."""

    name: str
    status: str  # "starting…", "connecting…", "live", "no video for N s", "failed", "stopped"
    fps: float
    latency_ms: float | None  # capture to result, of the newest frame
    drops: int  # frames never shown: skipped by the source for a slow pipeline (and by a slow view, in the app)
    frames: int  # frames processed

    @property
    def caption(self) -> str:
        parts = [self.name, self.status]
        if self.frames:
            parts.append(f"{self.fps:.1f} fps")
            if self.latency_ms is not None:
                parts.append(f"{self.latency_ms:.0f} ms")
            parts.append(f"{self.drops} dropped")
        return " · ".join(parts)


class StreamWorker:
    """Runs one stream's pipeline on a thread from :meth:`start` until :meth:`stop` or :meth:`close`.

    `assembly` is the pipeline with its source, or a function that assembles it; that one runs
    on the worker's thread, since loading a model takes seconds an interface must not wait, and
    what it raises ends the stream through ``on_error`` like any other failure. Either way the
    worker closes the assembly when its thread ends. `pace`: the simulation's, when one waits
    for this stream. A stream silent for `no_video_after_s` says so in its status.
    """

    def __init__(
        self,
        name: str,
        assembly: Assembly | Callable[[], Assembly],
        *,
        pace: StreamPace | None = None,
        on_result: Callable[[FrameResult, Frame], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        no_video_after_s: float = NO_VIDEO_AFTER_S,
    ) -> None:
        self.name = name
        self._assembly = assembly if isinstance(assembly, Assembly) else None
        self._build = None if isinstance(assembly, Assembly) else assembly
        self._pace = pace
        self._on_result = on_result
        self._on_error = on_error
        self._on_finished = on_finished
        self._no_video_after_s = no_video_after_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = "idle"  # idle, starting, running, failed, stopped
        self._error: Exception | None = None
        self._source: Source | None = None
        self._frames = 0
        self._done_times: collections.deque[float] = collections.deque(maxlen=1000)
        self._latency_ms: float | None = None
        self._started_s = 0.0
        self._last_frame_s: float | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> str:
        """idle (not started), starting (assembling), running, failed or stopped."""
        with self._lock:
            return self._state

    @property
    def error(self) -> Exception | None:
        """What ended the stream, if something did."""
        with self._lock:
            return self._error

    @property
    def frames(self) -> int:
        """Frames processed so far."""
        with self._lock:
            return self._frames

    def source_stats(self) -> SourceStats | None:
        """The source's own counters, once it is open."""
        with self._lock:
            source = self._source
        return None if source is None else source.stats()

    def start(self) -> None:
        """Start the thread; a worker starts once, later calls do nothing."""
        with self._lock:
            if self._state != "idle":
                return
            self._state = "starting"
            self._started_s = time.monotonic()
        if self._assembly is not None and self._pace is not None:
            self._pace.started()  # assembled already: the simulation waits for this pipeline from now on
        self._thread = threading.Thread(target=self._work, name=f"vision {self.name}", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True, timeout_s: float = 5.0) -> bool:
        """Ask the thread to end (after the frame in hand); with `wait`, join it for up to `timeout_s`.

        True once it has ended."""
        self._stop.set()
        if self._thread is None:
            return True
        if wait:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop, wait (bounded) for the thread and close the assembly, whether the thread ran or not."""
        self.stop(wait=True, timeout_s=timeout_s)
        with self._lock:
            assembly = self._assembly
        if assembly is not None:
            assembly.close()

    def stats(self) -> StreamStats:
        now = time.monotonic()
        with self._lock:
            while self._done_times and now - self._done_times[0] > _FPS_WINDOW_S:
                self._done_times.popleft()
            window_s = min(_FPS_WINDOW_S, now - self._started_s) if self._started_s else 0.0
            fps = len(self._done_times) / window_s if window_s > 0.2 else 0.0
            frames, latency_ms = self._frames, self._latency_ms
            source, last_frame_s, state = self._source, self._last_frame_s, self._state
        drops = 0 if source is None else source.stats().frames_dropped
        return StreamStats(self.name, self._status(state, now, last_frame_s), fps, latency_ms, drops, frames)

    # ------------------------------------------------------------ worker thread
    def _work(self) -> None:
        assembly = self._assembly
        pace = self._pace
        try:
            if assembly is None:
                assembly = self._build()
                with self._lock:
                    self._assembly = assembly
                if pace is not None and not self._stop.is_set():
                    pace.started()  # a simulation in lockstep waits for this pipeline from now on
            with self._lock:
                self._source, self._state = assembly.source, "running"
            if not self._stop.is_set():
                assembly.pipeline.run(assembly.source, stop=self._stop, on_result=self._took)
            with self._lock:
                self._state = "stopped"
        except Exception as error:  # whatever breaks one stream is reported; the others run on
            with self._lock:
                self._state, self._error = "failed", error
            if self._on_error is not None:
                self._on_error(error)
        finally:
            if pace is not None:
                pace.stopped()
            if assembly is not None:
                assembly.close()
            if self._on_finished is not None:
                self._on_finished()

    def _took(self, result: FrameResult, frame: Frame) -> None:
        if self._pace is not None:
            self._pace.took(result.frame_time_s)
        done_s = time.monotonic()
        with self._lock:
            self._frames += 1
            self._done_times.append(done_s)
            self._last_frame_s = done_s
            self._latency_ms = result.latency_s * 1000.0 if math.isfinite(result.latency_s) else None
        if self._on_result is not None:
            self._on_result(result, frame)

    def _status(self, state: str, now: float, last_frame_s: float | None) -> str:
        if state in ("idle", "starting"):
            return "starting…"
        if state in ("failed", "stopped"):
            return state
        silent_s = now - (last_frame_s if last_frame_s is not None else self._started_s)
        if silent_s < self._no_video_after_s:
            return "live" if last_frame_s is not None else "connecting…"
        return f"no video for {silent_s:.0f} s"
