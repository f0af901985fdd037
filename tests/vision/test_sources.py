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
from sitl.ports import free_port_block
from sitl.synthetic.video import H264RtpStreamer
from vision.frames import Frame, Source
from vision.rtp_h264 import SliceJoiner, is_keyframe
from vision.sources import SourceError, open_source

BLUE, GREEN, RED = (255, 0, 0), (0, 255, 0), (0, 0, 255)
SMALL = (320, 240)


class Camera:
    """Streams `picture(t)` at `fps` from a thread until stopped, like a drone camera:
    a whole image, or a colour to fill it with."""

    def __init__(
        self,
        port: int,
        sdp_dir: Path,
        picture: Callable[[float], tuple[int, int, int] | np.ndarray],
        size: tuple[int, int] = SMALL,
        fps: int = 30,
        age_s: float = 0.0,
    ) -> None:
        self.streamer = H264RtpStreamer(port, sdp_dir / f"camera-{port}.sdp", size[0], size[1], fps)
        self.picture, self.size, self.fps, self.age_s = picture, size, fps, age_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        try:
            while not self._stop.is_set():
                elapsed = time.monotonic() - start
                image = np.empty((self.size[1], self.size[0], 3), np.uint8)
                image[:] = self.picture(elapsed)
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

    def start(port: int, picture: Callable[[float], tuple[int, int, int] | np.ndarray], **kwargs: Any) -> Camera:
        camera = Camera(port, tmp_path, picture, **kwargs)
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


def test_every_frame_keeps_the_frames_a_slow_consumer_has_not_read_in_order(port, cameras):
    """For a simulated camera that waits for its pipeline: a burst a little ahead is kept, not dropped."""
    with open_source(str(port), every_frame=True) as source:
        camera = cameras(port, lambda t: RED, fps=20)
        frames_until(source, lambda f: True, timeout_s=3.0)
        time.sleep(0.25)  # five frames arrive while the consumer is busy
        camera.stop()
        got = []
        while (frame := source.read(0.5)) is not None:
            got.append(frame.index)
        stats = source.stats()
    assert len(got) >= 5, got
    assert got == sorted(got) and len(set(got)) == len(got)
    assert stats.frames_dropped == 0


HD = (1280, 720)
TEXTURE = np.random.default_rng(3).integers(0, 256, (HD[1] // 16, HD[0] // 16, 3), np.uint8).repeat(16, 0).repeat(16, 1)


def textured(n: int) -> np.ndarray:
    """An HD texture moved 4 pixels per frame, with `n` written across its top as 8 black or white squares."""
    image = np.roll(TEXTURE, 4 * n, axis=1)
    for bit in range(8):
        image[:64, bit * 64 : (bit + 1) * 64] = 255 if n >> bit & 1 else 0
    return image


def error_of(frame: Frame) -> float:
    """Mean absolute difference between a frame of `textured` pictures and the one it shows."""
    n = sum(1 << bit for bit in range(8) if frame.image[8:56, bit * 64 + 8 : bit * 64 + 56].mean() > 128)
    return float(np.abs(frame.image.astype(np.int16) - textured(n)).mean())


def test_hd_frames_arrive_intact_as_soon_as_they_are_sent(port, cameras):
    # FFmpeg's H.264 parser would hold each frame until the next began: 33 ms more at 30 fps.
    with open_source(str(port)) as source:
        cameras(port, lambda t: textured(int(t * 30)), size=HD)
        frames = frames_until(source, lambda f: f.index >= 45, timeout_s=6.0)[15:]
    ages_ms = sorted(1000 * (f.received_s - f.time_s) for f in frames)
    assert ages_ms[len(ages_ms) // 2] < 25, ages_ms
    assert max(error_of(f) for f in frames) < 5


@pytest.mark.parametrize("x264_params", ["sliced-threads=1:threads=4", "slices=4", "slice-max-size=1200"])
def test_a_sender_that_cuts_pictures_into_slices_is_decoded_intact_as_soon_as_sent(port, x264_params):
    def send(stop: threading.Event, fps: int = 30) -> None:
        start_ms = round(time.time() * 1000)
        options = {"start_time_realtime": str(start_ms * 1000)}  # pts 0 is start_ms in its sender reports
        with av.open(f"rtp://127.0.0.1:{port}", "w", format="rtp", options=options) as container:
            options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": x264_params}
            stream = container.add_stream("libx264", rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = *HD, "yuv420p"
            stream.codec_context.gop_size = fps // 2
            for n in range(10 * fps):
                if stop.wait(max(0.0, start_ms / 1000 + n / fps - time.time())):
                    break
                frame = av.VideoFrame.from_ndarray(textured(n), format="bgr24")
                frame.pts, frame.time_base = n, Fraction(1, fps)
                container.mux(stream.encode(frame))

    stop = threading.Event()
    sender = threading.Thread(target=send, args=(stop,), daemon=True)
    with open_source(str(port)) as source:
        sender.start()
        try:
            frames = frames_until(source, lambda f: f.index >= 45, timeout_s=6.0)
        finally:
            stop.set()
            sender.join()
    assert max(error_of(f) for f in frames) < 5  # not even the first picture damaged
    ages_ms = sorted(1000 * (f.received_s - f.time_s) for f in frames[15:])
    assert ages_ms[len(ages_ms) // 2] < 25, ages_ms


START = b"\x00\x00\x00\x01"
SPS, PPS = b"\x67\x42\xc0\x1f\x8c\x8d\x40", b"\x68\xce\x3c\x80"


def slice_nal(size: int, idr: bool = False) -> bytes:
    return bytes([0x65 if idr else 0x41, 0x88]) + b"\x9a" * (size - 2)  # 0x88: first_mb_in_slice 0


def demuxed(nal: bytes, cuts: tuple[int, ...]) -> list[bytes]:
    """`nal` as FFmpeg's RTP demuxer hands it out unparsed: whole if it fits a 1400-byte
    payload, else in FU-A pieces of `cuts` bytes of the NAL, then of 1398."""
    if len(nal) <= 1400:
        return [START + nal]
    body, pieces = nal[1:], []
    while body:
        size = cuts[len(pieces)] if len(pieces) < len(cuts) else 1398
        pieces.append(body[:size])
        body = body[size:]
    return [START + nal[:1] + pieces[0], *pieces[1:]]


def joined(pictures: list[list[bytes]], cuts: tuple[int, ...] = ()) -> tuple[SliceJoiner, list[int], list[bytes]]:
    """The slices of `pictures` pushed through a joiner: for each, how many packets after its
    own last one it was handed on, and its slice NAL as handed on."""
    joiner, sent_at, handed, count = SliceJoiner(), [], [], 0
    for n, nals in enumerate(pictures):
        for nal in nals:
            for data in demuxed(nal, cuts):
                count += 1
                handed += [(count, piece) for piece in joiner.push(data, 3000 * n)]
            if nal[0] & 0x1F in (1, 5):
                sent_at.append(count)
    handed += [(count + 1, piece) for piece in joiner.flush()]
    delays = [at - sent for (at, _), sent in zip(handed, sent_at, strict=True)]
    return joiner, delays, [piece.data.rsplit(START)[-1] for _, piece in handed]


@pytest.mark.parametrize(
    ("pictures", "delays"),
    [
        ([[SPS, PPS, slice_nal(5000, idr=True)], [slice_nal(1000)], [slice_nal(3000)], [slice_nal(300)]], [0] * 4),
        ([[SPS, PPS, *[slice_nal(2000, idr=True)] * 4], [slice_nal(900)] * 4, [slice_nal(3000)] * 4], [0] * 12),
        # Never cut: a slice is known whole at once once one as large came whole.
        ([[SPS, PPS, slice_nal(300, idr=True)], [slice_nal(700)], [slice_nal(1300)], [slice_nal(1000)]], [0, 1, 1, 0]),
    ],
    ids=["one-slice", "four-slices", "never-cut"],
)
def test_slices_are_handed_on_whole_with_their_last_packet(pictures, delays):
    joiner, handed_after, handed = joined(pictures)
    assert handed_after == delays
    assert handed == [nal for nals in pictures for nal in nals if nal[0] & 0x1F in (1, 5)]
    assert joiner.judges_by_size


def test_a_sender_whose_pieces_mislead_is_waited_for_after_one_damaged_slice():
    pictures = [[SPS, PPS, slice_nal(5000, idr=True)], [slice_nal(3000)], [slice_nal(3000)]]
    joiner, handed_after, handed = joined(pictures, cuts=(1398, 700))  # a short piece mid-NAL
    assert not joiner.judges_by_size
    assert handed_after == [-3, 1, 1]
    assert handed[1:] == pictures[1] + pictures[2]


@pytest.mark.parametrize(
    ("nals", "expected"),
    [
        ([SPS, PPS, slice_nal(50, idr=True)], True),
        ([slice_nal(50)], False),
        ([b"\x06\x05\x10" + bytes(range(16)) + b"\x80", slice_nal(50)], False),  # user data
        ([b"\x06\x05\x01\x07\x06\x01\x84\x80", slice_nal(50)], True),  # user data, then a recovery point
    ],
    ids=["idr", "p-slice", "sei", "recovery-point"],
)
def test_keyframes_are_idr_slices_or_recovery_points(nals, expected):
    assert is_keyframe(b"".join(START + nal for nal in nals)) == expected


CAMERA_PROCESS = """
import sys, time
import numpy as np
from sitl.synthetic.video import H264RtpStreamer
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
