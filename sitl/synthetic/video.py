"""The simulated drone camera on the wire: H.264 over RTP/UDP, as a real drone sends it.

Each vehicle streams to 127.0.0.1 on its own port and describes the stream in an SDP
file for receivers that need one (``vision.sources.open_source``, ffplay, VLC);
QGroundControl's "UDP h.264" video takes the port alone. Encoding is tuned for live
viewing rather than quality: x264's ultrafast preset with zero-latency tuning (no
B-frames, no lookahead) on one thread, so that each picture is one slice, whole in the
NAL unit a receiver decodes as soon as it is in (``vision.rtp_h264``), and a keyframe with
its SPS/PPS every second so that a receiver that joins or rejoins decodes within a second.

FFmpeg's RTP muxer also sends RTCP sender reports that tie the RTP clock to wall-clock
time. The stream's wall-clock origin is the first frame's capture time and every frame's
timestamp is its capture time relative to that, so a receiver can recover each frame's
capture time from the reports (``vision.sources`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from vision.rtp_h264 import h264_sdp

PX4_VIDEO_BASE_PORT = 5600
RTP_CLOCK_HZ = 90_000
KEYFRAME_INTERVAL_S = 1.0
_TIME_BASE = Fraction(1, RTP_CLOCK_HZ)
_X264_PARAMS = "repeat-headers=1:sliced-threads=0:threads=1"


def video_port(index: int, base: int = PX4_VIDEO_BASE_PORT) -> int:
    """The UDP port vehicle `index` streams its camera to: ``base + 2 * index``.

    PX4's Gazebo camera plugin uses ``5600 + index``, but an RTP receiver also binds the
    next port up for RTCP (FFmpeg always does, on every interface), so adjacent ports
    cannot be received side by side, and a sender's RTCP reports would land in its
    neighbour's video. RFC 3550's even-RTP/odd-RTCP pairing avoids both. Vehicle 0 keeps
    PX4's 5600.
    """
    if index < 0:
        raise ValueError(f"vehicle index must be ≥ 0, got {index}")
    return base + 2 * index


class H264RtpStreamer:
    """Encodes BGR frames to H.264 and sends them as RTP to ``host:port``.

    The SDP file is written when the streamer is made, so a receiver can start listening
    before the first frame; the socket opens with the first frame, whose capture time
    becomes the stream's wall-clock origin. ``close`` flushes the encoder, sends RTCP BYE
    and frees the socket.
    """

    def __init__(
        self,
        port: int,
        sdp_path: str | Path,
        width_px: int = 1280,
        height_px: int = 720,
        fps: int = 30,
        host: str = "127.0.0.1",
    ) -> None:
        if not 0 < port < 65535:
            raise ValueError(f"RTP port must be in 1…65534 (RTCP uses port + 1), got {port}")
        if width_px <= 0 or height_px <= 0 or width_px % 2 or height_px % 2:
            raise ValueError(f"H.264 4:2:0 needs a positive, even frame size, got {width_px}×{height_px}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.port = port
        self.host = host
        self.width_px = width_px
        self.height_px = height_px
        self.fps = fps
        self.sdp_path = Path(sdp_path)
        self.sdp_path.write_text(h264_sdp(port, host))
        self.frames_sent = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._origin_s = 0.0
        self._last_pts = -1
        self._keyframe_s = -float("inf")
        self._closed = False

    def send(self, image_bgr: np.ndarray, capture_time_s: float) -> None:
        """Encodes and sends one frame taken at `capture_time_s`.

        Capture times are wall-clock Unix seconds: receivers trust a sender's stamp only
        within 10 s of their own clock.
        """
        if self._closed:
            raise ValueError(f"the streamer to {self.host}:{self.port} is closed")
        expected = (self.height_px, self.width_px, 3)
        if image_bgr.shape != expected or image_bgr.dtype != np.uint8:
            actual = "×".join(str(n) for n in image_bgr.shape)
            raise ValueError(
                f"frame for {self.host}:{self.port} must be {self.width_px}×{self.height_px} BGR uint8 "
                f"(shape {expected}), got shape {actual} {image_bgr.dtype}"
            )
        if self._container is None:
            self._open(capture_time_s)
        assert self._container is not None and self._stream is not None
        # Capture times that stand still or step back (a paused sim) still need rising pts.
        pts = max(round((capture_time_s - self._origin_s) * RTP_CLOCK_HZ), self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr), format="bgr24")
        frame.pts = pts
        frame.time_base = _TIME_BASE
        # x264 counts its keyframe interval in frames; a camera running below its nominal rate
        # still owes joining receivers a keyframe every second. A receiver still listening to
        # this port's previous sender drops the first packet of a new RTP sequence (RFC 3550
        # validation), breaking the first keyframe: a second one lets it start a frame later.
        if self.frames_sent == 1 or capture_time_s - self._keyframe_s >= KEYFRAME_INTERVAL_S:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in self._stream.encode(frame):
            if packet.is_keyframe:
                self._keyframe_s = capture_time_s
            self._container.mux(packet)
        self.frames_sent += 1

    def _open(self, first_capture_s: float) -> None:
        # The RTP muxer rounds its wall-clock origin to whole milliseconds; rounding here
        # first keeps pts and the sender reports on exactly the same origin.
        origin_ms = round(first_capture_s * 1000)
        self._origin_s = origin_ms / 1000
        container = av.open(
            f"rtp://{self.host}:{self.port}",
            mode="w",
            format="rtp",
            # BYE on close tells receivers the stream ended rather than stalled.
            options={"start_time_realtime": str(origin_ms * 1000), "rtpflags": "send_bye"},
        )
        try:
            stream = container.add_stream(
                "libx264",
                rate=self.fps,
                # zerolatency's sliced threads would cut each picture into a slice per core, which
                # gains nothing here (one thread encodes a 720p frame in about 5 ms) and leaves a
                # receiver that decodes NAL by NAL with pieces of pictures.
                options={"preset": "ultrafast", "tune": "zerolatency", "x264-params": _X264_PARAMS},
            )
            stream.width = self.width_px
            stream.height = self.height_px
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = _TIME_BASE
            stream.codec_context.gop_size = self.fps
        except Exception:
            container.close()
            raise
        self._container = container
        self._stream = stream

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        container, stream = self._container, self._stream
        self._container = self._stream = None
        if container is None or stream is None:
            return
        try:
            for packet in stream.encode(None):
                container.mux(packet)
        finally:
            container.close()

    def __enter__(self) -> H264RtpStreamer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 30) -> Path:
    """BGR frames → an H.264 MP4 file (for tests, benchmarks and `detect --source FILE`)."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency"})
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
