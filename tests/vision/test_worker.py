"""A pipeline on a StreamWorker's thread: every frame's result reported, a simulation waiting on it told
when to start and stop waiting whatever ends the stream, failures said once, the source closed after.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vision.detections import Detections
from vision.frames import Frame, SourceStats, StreamPace
from vision.pipeline import Pipeline
from vision.runner import Assembly
from vision.worker import StreamWorker

IMAGE = np.zeros((72, 128, 3), np.uint8)


class Frames:
    """`count` frames, then finished; None: frames forever, as a live camera."""

    name = "cam"

    def __init__(self, count: int | None, period_s: float = 0.0) -> None:
        self.count, self.period_s, self.read_n, self.closed = count, period_s, 0, 0

    @property
    def finished(self) -> bool:
        return self.count is not None and self.read_n >= self.count

    def read(self, timeout_s: float = 1.0):
        if self.finished:
            return None
        time.sleep(self.period_s)
        self.read_n += 1
        return Frame(IMAGE, 1000.0 + self.read_n, self.read_n - 1, self.name, 1000.0 + self.read_n)

    def stats(self) -> SourceStats:
        return SourceStats(self.read_n, 0, 0, 0, None)

    def close(self) -> None:
        self.closed += 1


class Nothing:
    name, class_names = "nothing", {}

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        return detections


class Events:
    """What the simulation and the callbacks are told, in order, from any thread."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.finished = threading.Event()
        self.pace = StreamPace(
            lambda: self.lines.append("started"),
            lambda time_s: self.lines.append(f"took {time_s:g}"),
            lambda: self.lines.append("stopped"),
        )

    def worker(self, assembly, **callbacks) -> StreamWorker:
        return StreamWorker(
            "cam",
            assembly,
            pace=self.pace,
            on_result=callbacks.get(
                "on_result", lambda result, frame: self.lines.append(f"result {result.frame_index}")
            ),
            on_error=lambda error: self.lines.append(f"error {error}"),
            on_finished=self._finished,
        )

    def _finished(self) -> None:
        self.lines.append("finished")
        self.finished.set()


def assembly_of(source: Frames) -> Assembly:
    return Assembly(source, Pipeline(Nothing(), source_name="cam"), [source.close])


@pytest.mark.parametrize("assembled", [True, False], ids=["assembled", "assembled-on-the-thread"])
def test_every_frame_is_taken_then_reported_between_started_and_stopped(assembled):
    events, source = Events(), Frames(3)
    worker = events.worker(assembly_of(source) if assembled else lambda: assembly_of(source))

    worker.start()
    assert events.finished.wait(5.0)

    assert events.lines == [
        "started",
        *(line for i in range(3) for line in (f"took {1001 + i}", f"result {i}")),
        "stopped",
        "finished",
    ]
    assert source.closed == 1 and not worker.running
    stats = worker.stats()
    assert (worker.state, worker.frames, worker.error, stats.status, stats.frames) == ("stopped", 3, None, "stopped", 3)
    assert worker.source_stats().frames_delivered == 3


def test_a_stream_that_cannot_be_assembled_says_why_and_releases_the_simulation():
    events = Events()

    def broken() -> Assembly:
        raise OSError("no such camera")

    worker = events.worker(broken)
    worker.start()
    assert events.finished.wait(5.0)

    assert events.lines == ["error no such camera", "stopped", "finished"]
    assert worker.state == "failed" and isinstance(worker.error, OSError)
    assert worker.stats().status == "failed" and worker.source_stats() is None


def test_a_failing_callback_ends_the_stream_and_closes_its_source():
    events, source = Events(), Frames(None)

    def on_result(result, frame):
        if result.frame_index == 1:
            raise RuntimeError("disk full")

    worker = events.worker(assembly_of(source), on_result=on_result)
    worker.start()
    assert events.finished.wait(5.0)

    assert events.lines == ["started", "took 1001", "took 1002", "error disk full", "stopped", "finished"]
    assert worker.state == "failed" and source.closed == 1


def test_stop_ends_a_live_stream_after_its_frame_and_close_waits_for_it():
    events, source = Events(), Frames(None, period_s=0.01)
    worker = events.worker(assembly_of(source))
    worker.start()
    deadline = time.monotonic() + 5.0
    while worker.frames < 3 and time.monotonic() < deadline:
        time.sleep(0.01)

    worker.close(timeout_s=5.0)

    assert not worker.running and worker.state == "stopped" and source.closed == 1
    assert events.lines[0] == "started" and events.lines[-2:] == ["stopped", "finished"]
    assert worker.stats().status == "stopped" and worker.stats().frames == worker.frames >= 3


def test_a_worker_closed_before_it_started_closes_its_assembly_and_never_paces():
    events, source = Events(), Frames(3)
    worker = events.worker(assembly_of(source))

    worker.close()

    assert source.closed == 1 and events.lines == [] and worker.state == "idle"
    assert worker.stats().status == "starting…" and worker.stats().frames == 0
