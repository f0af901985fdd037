"""Video sources against real H.264 over RTP on 127.0.0.1, real video files and image folders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from missions.errors import InputError
from sitl.pytest_plugin import free_port_block
from sitl.video import H264RtpStreamer
from vision.frames import Frame, Source
from vision.sources import SourceError, open_source

BLUE, GREEN, RED = (255, 0, 0), (0, 255, 0), (0, 0, 255)
SMALL = (320, 240)


class Camera:
    """Streams `colour(t)` frames at `fps` from a thread until stopped, like a drone camera."""

    def __init__(
        self,
        port: int,
        sdp_dir: Path,
        colour: Callable[[float], tuple[int, int, int]],
        size: tuple[int, int] = SMALL,
        fps: int = 30,
        age_s: float = 0.0,
    ) -> None:
        self.streamer = H264RtpStreamer(port, sdp_dir / f"camera-{port}.sdp", size[0], size[1], fps)
        self.colour, self.size, self.fps, self.age_s = colour, size, fps, age_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        try:
            while not self._stop.is_set():
                elapsed = time.monotonic() - start
                image = np.empty((self.size[1], self.size[0], 3), np.uint8)
                image[:] = self.colour(elapsed)
                self.streamer.send(image, time.time() - self.age_s)
                self._stop.wait(max(0.0, start + (self.streamer.frames_sent / self.fps) - time.monotonic()))
        finally:
            self.streamer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def port() -> int:
    return free_port_block(2)  # RTP and RTCP


@pytest.fixture
def cameras(tmp_path: Path) -> Iterator[Callable[..., Camera]]:
    started: list[Camera] = []

    def start(port: int, colour: Callable[[float], tuple[int, int, int]], **kwargs: Any) -> Camera:
        camera = Camera(port, tmp_path, colour, **kwargs)
        started.append(camera)
        return camera

    yield start
    for camera in started:
        camera.stop()


def frames_until(source: Source, predicate: Callable[[Frame], bool], timeout_s: float) -> list[Frame]:
    """Frames read until one satisfies `predicate` (included); fails after `timeout_s`."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = source.read(0.2)
        if frame is not None:
            frames.append(frame)
            if predicate(frame):
                return frames
    raise AssertionError(f"no matching frame within {timeout_s} s; {len(frames)} others, stats {source.stats()}")


def mean_bgr(frame: Frame) -> np.ndarray:
    return frame.image.reshape(-1, 3).mean(axis=0)


def is_colour(colour: tuple[int, int, int], tolerance: float = 12.0) -> Callable[[Frame], bool]:
    return lambda frame: bool(np.abs(mean_bgr(frame) - colour).max() < tolerance)


def test_streamed_frames_arrive_full_size_in_colour_with_the_senders_capture_time(port, cameras):
    # The camera stamps frames 2 s in the past, as a drone with a slow pipeline would:
    # a source that recovers the sender's stamp sees them 2 s old, not fresh.
    with open_source(str(port), name="drone-1") as source:
        cameras(port, lambda t: BLUE if t < 1.0 else GREEN, size=(1280, 720), age_s=2.0)
        blue = frames_until(source, is_colour(BLUE), timeout_s=3.0)[-1]
        green = frames_until(source, is_colour(GREEN), timeout_s=3.0)[-1]
    for frame in (blue, green):
        assert frame.image.shape == (720, 1280, 3)
        assert frame.source == "drone-1"
        assert 1.8 < frame.received_s - frame.time_s < 2.5
        assert not frame.image.flags.writeable
    assert green.index > blue.index
    assert source.stats().frames_delivered == green.index + 1


def test_a_slow_consumer_gets_the_newest_frame_and_drops_are_counted(port, cameras):
    with open_source(str(port)) as source:
        cameras(port, lambda t: RED)
        frames_until(source, lambda f: True, timeout_s=3.0)
        ages = []
        for _ in range(4):
            time.sleep(0.3)  # a detector ten times slower than the camera
            frame = source.read(1.0)
            assert frame is not None
            ages.append(time.time() - frame.time_s)
        stats = source.stats()
    assert max(ages) < 0.25, ages
    assert stats.frames_dropped >= 4 * 5


CAMERA_PROCESS = """
import sys, time
import numpy as np
from sitl.video import H264RtpStreamer
streamer = H264RtpStreamer(int(sys.argv[1]), sys.argv[2], 320, 240)
image = np.zeros((240, 320, 3), np.uint8)
image[:] = (255, 0, 0)
while True:
    streamer.send(image, time.time())
    time.sleep(1 / 30)
"""


@pytest.mark.parametrize("ending", ["closed", "killed"])
def test_a_restarted_camera_is_picked_up_within_3_s_without_stale_pictures(port, cameras, tmp_path, ending):
    with open_source(str(port)) as source:
        if ending == "closed":  # the camera says goodbye (RTCP BYE)
            first = cameras(port, lambda t: BLUE)
            last_blue = frames_until(source, is_colour(BLUE), timeout_s=3.0)[-1]
            first.stop()
        else:  # the camera process dies mid-stream and says nothing
            args = [sys.executable, "-c", CAMERA_PROCESS, str(port), str(tmp_path / "dying.sdp")]
            with subprocess.Popen(args) as process:
                try:
                    frames_until(source, is_colour(BLUE), timeout_s=5.0)
                    last_blue = frames_until(source, is_colour(BLUE), timeout_s=1.0)[-1]
                finally:
                    process.kill()
        ended_s = time.time()
        cameras(port, lambda t: GREEN)
        after = frames_until(source, is_colour(GREEN), timeout_s=4.0)
        gap_s = after[-1].received_s - last_blue.received_s
        assert gap_s < 3.0, f"the stream came back after {gap_s:.2f} s"
        # Until the new camera's first keyframe, its frames must not show the old picture.
        assert all(f.time_s < ended_s for f in after if is_colour(BLUE)(f))


def test_a_resolution_change_is_picked_up(port, cameras):
    with open_source(str(port)) as source:
        small = cameras(port, lambda t: BLUE, size=(320, 240))
        frames_until(source, lambda f: f.image.shape == (240, 320, 3), timeout_s=3.0)
        small.stop()
        cameras(port, lambda t: RED, size=(640, 480))
        frame = frames_until(source, lambda f: f.image.shape == (480, 640, 3), timeout_s=4.0)[-1]
    assert is_colour(RED)(frame)


def test_garbage_datagrams_do_not_stop_the_stream(port, cameras):
    rng = np.random.default_rng(7)
    with open_source(str(port)) as source, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as noise:
        cameras(port, lambda t: GREEN)
        frames_until(source, lambda f: True, timeout_s=3.0)
        for i in range(300):
            payload = bytearray(rng.integers(0, 256, int(rng.integers(1, 1400)), dtype=np.uint8).tobytes())
            if i % 3 == 0:  # looks like RTP H.264 (version 2, payload type 96) with a random NAL
                payload[:2] = b"\x80\x60"
            elif i % 3 == 1:  # looks like RTCP
                payload[:2] = b"\x80\xc8"
            noise.sendto(bytes(payload), ("127.0.0.1", port + i % 2))
        before = source.stats().frames_delivered
        after = frames_until(source, is_colour(GREEN), timeout_s=3.0)[-1]
        assert after.index >= before


@pytest.mark.parametrize("scheme", ["udp", "rtp"])
def test_a_dead_stream_is_retried_with_backoff_and_close_frees_the_ports(port, scheme):
    source = open_source(f"{scheme}://127.0.0.1:{port}", stall_timeout_s=0.3)
    assert source.read(0.3) is None
    deadline = time.monotonic() + 3.0
    while source.stats().reconnects < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = source.stats()
    assert stats.reconnects >= 2
    assert "no packets for 0.3 s" in (stats.last_error or "")
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.0
    assert source.finished and source.read(0.1) is None
    assert not [t for t in threading.enumerate() if t.name.startswith("video source")]
    for p in (port, port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", p))


def test_an_unreachable_rtsp_server_is_retried_not_fatal():
    tcp_port = free_port_block(1)
    with open_source(f"rtsp://127.0.0.1:{tcp_port}/camera") as source:
        assert source.read(0.5) is None
        deadline = time.monotonic() + 3.0
        while source.stats().reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = source.stats()
    assert stats.reconnects >= 1
    assert stats.last_error is not None


def write_video(path: Path, levels: list[int], fps: int = 25, size: tuple[int, int] = (160, 120)) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "qp": "0"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p"
        for i, level in enumerate(levels):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_a_video_file_delivers_every_frame_in_order_then_finishes(tmp_path):
    levels = [10 * i + 20 for i in range(20)]
    write_video(tmp_path / "patrol.mp4", levels, fps=25)
    with open_source(str(tmp_path / "patrol.mp4")) as source:
        frames = list(source)
        assert source.finished
        assert source.read(0.1) is None
    assert [f.index for f in frames] == list(range(20))
    assert [round(f.image.mean()) for f in frames] == pytest.approx(levels, abs=2)
    assert {f.source for f in frames} == {"patrol"}
    assert np.diff([f.time_s for f in frames]) == pytest.approx([1 / 25] * 19, abs=1e-6)
    assert source.stats().frames_delivered == 20


def test_a_video_file_can_be_paced_at_its_own_rate(tmp_path):
    write_video(tmp_path / "clip.mkv", [50] * 10, fps=20)
    with open_source(str(tmp_path / "clip.mkv"), realtime=True) as source:
        started = time.monotonic()
        frames = list(source)
    assert len(frames) == 10
    assert 0.4 < time.monotonic() - started < 0.9


def write_png(path: Path, level: int, size: tuple[int, int] = (64, 48)) -> None:
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "rgb24"
    frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="rgb24")
    path.write_bytes(b"".join(bytes(p) for p in encoder.encode(frame)))


def test_an_image_folder_delivers_every_image_in_name_order_then_finishes(tmp_path):
    for n in (1, 2, 10):
        write_png(tmp_path / f"frame{n}.png", level=n * 20)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "frame5.png").write_bytes(b"\x89PNG but truncated")
    with open_source(str(tmp_path)) as source:
        frames = list(source)
        stats = source.stats()
    assert [round(f.image.mean()) for f in frames] == [20, 40, 200]
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].time_s == pytest.approx(os.path.getmtime(tmp_path / "frame1.png"))
    assert stats.decode_errors == 1 and "frame5.png" in (stats.last_error or "")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no image files"),
        (lambda d: (d / "clip.mp4").write_bytes(os.urandom(4096)) and d / "clip.mp4", "not a video"),
        (lambda d: (d / "cam.sdp").write_text("hello\n") and d / "cam.sdp", "not an SDP file"),
        (lambda d: (d / "cam.sdp").write_text("v=0\nc=IN IP4 127.0.0.1\n") and d / "cam.sdp", "no video stream"),
    ],
    ids=["missing", "empty-folder", "garbage-video", "not-sdp", "sdp-without-video"],
)
def test_bad_files_give_errors_that_name_them(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SourceError, match=message) as caught:
        open_source(str(path))
    assert isinstance(caught.value, InputError)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("udp://127.0.0.1", "needs a port"), ("http://example.org/cam", "unsupported kind of source")],
)
def test_bad_urls_give_errors_that_name_them(spec, message):
    with pytest.raises(SourceError, match=message) as caught:
        open_source(spec)
    assert spec in str(caught.value)
