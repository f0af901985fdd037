"""Where frames come from: live RTP/UDP and RTSP streams, video files and image folders.

``open_source(spec)`` reads the kind from the spec: an SDP file, ``udp://HOST:PORT``,
``rtp://HOST:PORT`` or a bare port (H.264 over RTP, described by an SDP written for it),
``rtsp://…``, a video file, or a folder of images. Every source reads the same way
(:class:`vision.frames.Source`): ``read(timeout_s)`` gives the next frame, or None.

Live sources decode on a thread of their own and keep only the newest frame: a consumer
slower than the camera always gets a fresh frame, the ones it missed are counted as
dropped, and latency stays bounded. A stream that stalls, ends or fails is reopened with
backoff (0.1 s doubling to 1 s) until the source is closed; a packet the decoder rejects
is counted and skipped. Files and folders deliver every frame in order, then finish.

Capture time of RTP frames: FFmpeg's RTP demuxer turns the sender's RTCP sender reports
into a producer reference time on each packet, the sender's wall clock at capture (see
``sitl.synthetic.video``). Reports come with a stream's first packet and then every 5 s, so after
joining a running stream, and for senders that send no RTCP (PX4's GStreamer camera),
frames are stamped with their receive time until the first report arrives.

H.264 over RTP is decoded without FFmpeg's parser, which holds each frame until the next
begins: ``vision.rtp_h264`` hands each slice to the decoder as soon as it has all arrived.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from missions.errors import InputError
from vision.frames import Frame, Source, SourceBase
from vision.rtp_h264 import RtpSession, h264_sdp

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 1.0
_POLL_S = 0.2
# A sender stamp this far from the receive time comes from a stale RTCP mapping, a forged
# report, or a clock not worth trusting.
_MAX_SENDER_SKEW_S = 10.0
_END_OF_STREAM = "end of stream"
EVERY_FRAME_KEEP = 8
_LIVE_OPTIONS = {"probesize": "32", "analyzeduration": "0"}  # no probing: SPS/PPS come in-band
_RTP_OPTIONS = {
    **_LIVE_OPTIONS,
    "protocol_whitelist": "file,udp,rtp",
    # No reordering queue: a lost packet costs a damaged frame rather than a wait.
    "reorder_queue_size": "0",
    "buffer_size": str(4 << 20),
}
_RTP_H264_OPTIONS = {**_RTP_OPTIONS, "fflags": "+nobuffer+noparse"}  # LiveSource joins the slices


class SourceError(InputError):
    """A video source that cannot be opened: missing, empty, unreadable, or not what it claims to be."""


def open_source(
    spec: str,
    name: str | None = None,
    *,
    realtime: bool = False,
    stall_timeout_s: float = 1.0,
    clock: Callable[[], float] = time.time,
    every_frame: bool = False,
) -> Source:
    """Opens `spec` (see the module doc) as a source called `name`. `realtime` paces video
    files at their own rate; a live stream silent for `stall_timeout_s` is reopened. `clock`
    is the receiver's own: Unix time, or a simulation's clock that its cameras stamp by.
    `every_frame`: a live stream keeps its frames in order (up to EVERY_FRAME_KEEP) rather
    than only the newest, for a simulated camera that waits for its reader."""
    spec = spec.strip()
    keep = EVERY_FRAME_KEEP if every_frame else 1
    if spec.isdigit():
        return _udp_source(spec, "127.0.0.1", int(spec), name, stall_timeout_s, clock, keep)
    url = urlsplit(spec)
    if url.scheme in ("udp", "rtp"):
        try:
            port = url.port
        except ValueError:
            port = None
        if port is None:
            raise SourceError(spec, f"a {url.scheme}:// source needs a port, e.g. {url.scheme}://127.0.0.1:5600")
        return _udp_source(spec, url.hostname or "0.0.0.0", port, name, stall_timeout_s, clock, keep)
    if url.scheme in ("rtsp", "rtsps"):
        options = {**_LIVE_OPTIONS, "rtsp_transport": "tcp", "timeout": str(round(stall_timeout_s * 1e6))}
        return LiveSource(spec, name or spec, None, options, stall_timeout_s, clock=clock, keep=keep)
    if len(url.scheme) > 1 and "://" in spec:
        raise SourceError(
            spec, "unsupported kind of source: give a file, a folder, an SDP file, udp://, rtp:// or rtsp://"
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, name or path.name)
    if not path.exists():
        raise SourceError(spec, "no such file or folder")
    if path.suffix.lower() == ".sdp" or _starts_with(path, b"v=0"):
        port, is_h264 = _sdp_video(path)
        options = _RTP_H264_OPTIONS if is_h264 else _RTP_OPTIONS
        return LiveSource(str(path), name or path.stem, "sdp", options, stall_timeout_s, port, clock=clock, keep=keep)
    return VideoFileSource(path, name or path.stem, realtime)


def _udp_source(
    spec: str, host: str, port: int, name: str | None, stall_timeout_s: float, clock: Callable[[], float], keep: int
) -> LiveSource:
    if not 0 < port < 65535:
        raise SourceError(spec, f"UDP port must be in 1…65534 (RTCP uses port + 1), got {port}")
    handle, sdp_path = tempfile.mkstemp(prefix="borderwatch-", suffix=".sdp")
    with os.fdopen(handle, "w") as file:
        file.write(h264_sdp(port, host))
    return LiveSource(
        sdp_path, name or f"udp:{port}", "sdp", _RTP_H264_OPTIONS, stall_timeout_s, port, Path(sdp_path), clock, keep
    )


def _sdp_video(path: Path) -> tuple[int, bool]:
    """The video port of an SDP file and whether its video is H.264, or a SourceError saying why it is not one."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as error:
        raise SourceError(str(path), f"cannot read: {error.strerror}") from None
    if not lines or lines[0] != "v=0":
        raise SourceError(str(path), "not an SDP file: its first line is not 'v=0'")
    for n, line in enumerate(lines):
        if match := re.fullmatch(r"m=video (\d+)\s.*", line):
            media = itertools.takewhile(lambda attribute: not attribute.startswith("m="), lines[n + 1 :])
            return int(match.group(1)), any(re.match(r"a=rtpmap:\d+ H264/", a, re.IGNORECASE) for a in media)
    raise SourceError(str(path), "the SDP describes no video stream (no 'm=video PORT …' line)")


def _starts_with(path: Path, prefix: bytes) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(prefix)) == prefix
    except OSError:
        return False


class LiveSource(SourceBase):
    """A live stream FFmpeg can open (an SDP file, an RTSP URL), decoded on a background thread.

    ``close`` stops the thread within 0.2 s over UDP; over RTSP, where interrupting a read
    can cut a packet in half, within the stall timeout.
    """

    def __init__(
        self,
        url: str,
        name: str,
        format_name: str | None,
        options: dict[str, str],
        stall_timeout_s: float = 1.0,
        port: int | None = None,
        temporary_sdp: Path | None = None,
        clock: Callable[[], float] = time.time,
        keep: int = 1,
    ) -> None:
        super().__init__(name)
        self._clock = clock
        self._url, self._format, self._options = url, format_name, options
        self._stall_s = stall_timeout_s
        self._poll_s = min(_POLL_S, stall_timeout_s) if format_name == "sdp" else stall_timeout_s
        self._port = port
        self._temporary_sdp = temporary_sdp
        self._joins_slices = "noparse" in options.get("fflags", "")
        self._waiting: collections.deque[tuple[av.VideoFrame, float, float]] = collections.deque(maxlen=keep)
        self._decoded = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"video source {name}", daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        return self._closed

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """The oldest frame kept and not yet read (the newest, when it keeps one), waiting up to `timeout_s`
        for one; None if none came."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not self._waiting and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(remaining)
            if not self._waiting:
                return None
            video_frame, time_s, received_s = self._waiting.popleft()
        # Converting here, not on the reader thread, spends no CPU on frames that get dropped.
        return self._deliver(to_bgr(video_frame), time_s, received_s)

    def close(self) -> None:
        """Stops the reader thread and frees its sockets."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._stop.set()
        self._thread.join(self._poll_s + 1.0)
        if self._temporary_sdp is not None:
            self._temporary_sdp.unlink(missing_ok=True)

    def _run(self) -> None:
        delay = BACKOFF_FIRST_S
        while True:
            decoded_before = self._decoded
            try:
                reason = self._stream_once()
            except Exception as error:  # whatever FFmpeg raises, the reader lives on and reconnects
                reason = f"{type(error).__name__}: {error}"
                if self._port is not None and isinstance(error, av.InvalidDataError):
                    reason += f" (is UDP port {self._port} or {self._port + 1} taken by another receiver?)"
            if self._stop.is_set():
                return
            with self._lock:
                self._last_error = reason
            streamed = self._decoded > decoded_before
            if streamed:
                delay = BACKOFF_FIRST_S
            # A sender that said goodbye may be back at once (a restarted camera): listening
            # again without delay catches its first keyframe instead of waiting for the next.
            if not (streamed and reason == _END_OF_STREAM):
                if self._stop.wait(delay):
                    return
                delay = min(2 * delay, BACKOFF_MAX_S)
            with self._lock:
                self._reconnects += 1

    def _stream_once(self) -> str:
        """Decodes one connection until it ends, stalls or the source closes; says why it stopped."""
        container = av.open(self._url, format=self._format, options=self._options, timeout=self._poll_s)
        try:
            if not container.streams.video:
                return f"{self._url}: no video stream"
            stream = container.streams.video[0]
            session, decoder = RtpSession(self._joins_slices), stream.codec_context
            if self._joins_slices:
                decoder.flags2 |= av.codec.context.Flags2.chunks  # see vision.rtp_h264
            last_packet_s = time.monotonic()
            while not self._stop.is_set():
                try:
                    for packet in container.demux(stream):
                        last_packet_s = time.monotonic()
                        if self._stop.is_set():
                            break
                        self._decode(packet, session, decoder)
                    else:
                        return _END_OF_STREAM
                except av.ExitError:  # a poll timed out: over UDP nothing is lost, read on
                    if time.monotonic() - last_packet_s >= self._stall_s:
                        return f"no packets for {self._stall_s:g} s"
            return "closed"
        finally:
            container.close()

    def _decode(self, packet: av.Packet, session: RtpSession, decoder: av.CodecContext) -> None:
        chunks, sender_s = session.receive(packet)
        for chunk in chunks:
            try:
                frames = decoder.decode(chunk)
            except av.FFmpegError as error:
                self._rejected(f"decoder: {error}")
                continue
            for video_frame in frames:
                self._offer(video_frame, session.sender_time(video_frame.pts, sender_s))

    def _offer(self, video_frame: av.VideoFrame, sender_s: float | None) -> None:
        received_s = self._clock()
        if sender_s is None or abs(sender_s - received_s) > _MAX_SENDER_SKEW_S:
            sender_s = received_s
        with self._lock:
            if len(self._waiting) == self._waiting.maxlen:
                self._dropped += 1
            self._waiting.append((video_frame, sender_s, received_s))
            self._decoded += 1
            self._lock.notify_all()


class VideoFileSource(SourceBase):
    """Every frame of a video file, in order. Capture times count from the file's
    ``creation_time`` tag when it has one, else from when the file was opened."""

    def __init__(self, path: Path, name: str, realtime: bool = False) -> None:
        super().__init__(name)
        self.path = path
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError) as error:
            raise SourceError(str(path), f"not a video FFmpeg can read ({error})") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(str(path), "not a video FFmpeg can read (it holds no video stream)")
        stream = self._container.streams.video[0]
        self._period_s = 1 / float(stream.average_rate or 30)
        self._frames = _Prefetch(((to_bgr(f), f.time) for f in self._decoded_frames(stream)), depth=3)
        self._origin_s = _creation_time_s(self._container.metadata.get("creation_time")) or time.time()
        self._realtime = realtime
        self._first_time_s: float | None = None
        self._start_monotonic = 0.0
        self._next: tuple[np.ndarray, float | None] | None = None
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        """The next frame; None at the end, or when paced and the next frame is not due within `timeout_s`."""
        if self._next is None and not self._finished:
            try:
                self._next = next(self._frames)
            except (StopIteration, av.FFmpegError, OSError) as error:
                if not isinstance(error, StopIteration):
                    self._last_error = f"{self.path}: {error}"
                self.close()
        if self._next is None:
            return None
        image, frame_time_s = self._next
        time_s = frame_time_s if frame_time_s is not None else self._delivered * self._period_s
        if self._first_time_s is None:
            self._first_time_s = time_s
            self._start_monotonic = time.monotonic()
        offset_s = time_s - self._first_time_s
        if self._realtime:
            wait_s = self._start_monotonic + offset_s - time.monotonic()
            time.sleep(max(0.0, min(wait_s, timeout_s)))
            if wait_s > timeout_s:
                return None
        self._next = None
        return self._deliver(image, self._origin_s + offset_s, time.time())

    def _decoded_frames(self, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(stream):
            try:
                yield from packet.decode()
            except av.FFmpegError as error:
                self._rejected(f"{self.path}: {error}")

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            self._next = None
            self._frames.close()
            self._container.close()


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as BGR: through OpenCV for 4:2:0 video, which is several times faster than swscale."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


class _Prefetch:
    """Runs an iterator on a thread a few items ahead, so decoding overlaps the consumer's work."""

    _END = object()

    def __init__(self, items: Iterator, depth: int) -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="video-file-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, which owns the error report
            self._error = error
        finally:
            with contextlib.suppress(queue.Full):
                self._queue.put(self._END, timeout=1.0)

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            self._queue.put(self._END)
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=1.0)


def _creation_time_s(tag: str | None) -> float | None:
    try:
        return datetime.fromisoformat(tag).timestamp() if tag else None
    except ValueError:
        return None


class ImageFolderSource(SourceBase):
    """Every image in a folder, in natural name order (frame2 before frame10), each stamped
    with its file's modification time. Files that do not decode are counted and skipped."""

    def __init__(self, folder: Path, name: str) -> None:
        super().__init__(name)
        self.folder = folder
        try:
            files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        except OSError as error:
            raise SourceError(str(folder), f"cannot list: {error.strerror}") from None
        if not files:
            raise SourceError(str(folder), f"no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        natural = re.compile(r"(\d+)")
        self._files = sorted(files, key=lambda p: [int(s) if s.isdigit() else s.lower() for s in natural.split(p.name)])
        self._position = 0
        self._closed = False

    @property
    def finished(self) -> bool:
        return self._closed or self._position >= len(self._files)

    def read(self, timeout_s: float = 1.0) -> Frame | None:
        while not self.finished:
            path = self._files[self._position]
            self._position += 1
            try:
                with av.open(str(path)) as container:
                    image = next(container.decode(video=0)).to_ndarray(format="bgr24")
                return self._deliver(image, path.stat().st_mtime, time.time())
            except (av.FFmpegError, OSError, StopIteration, IndexError) as error:
                self._rejected(f"{path}: not an image FFmpeg can read ({error})")
        return None

    def close(self) -> None:
        self._closed = True
