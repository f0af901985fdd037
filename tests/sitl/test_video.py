"""The simulated camera's H.264/RTP stream, checked by receiving it with vision's RTP source."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sitl.ports import free_port_block
from sitl.synthetic.video import H264RtpStreamer, video_port
from vision.sources import open_source

WIDTH, HEIGHT, BITS = 320, 240, 8


def numbered_image(n: int) -> np.ndarray:
    """A grey image with `n` written across its top as 8 black or white 40-pixel squares."""
    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for bit in range(BITS):
        image[:40, bit * 40 : (bit + 1) * 40] = 255 if n >> bit & 1 else 0
    return image


def number_in(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if image[5:35, bit * 40 + 5 : bit * 40 + 35].mean() > 128)


@pytest.mark.parametrize(("index", "port"), [(0, 5600), (1, 5602), (3, 5606)])
def test_vehicles_stream_to_even_ports_from_5600(index, port):
    assert video_port(index) == port


def test_a_negative_vehicle_index_has_no_port():
    with pytest.raises(ValueError, match="index"):
        video_port(-1)


def test_the_sdp_file_describes_the_stream_before_the_first_frame(tmp_path):
    with H264RtpStreamer(free_port_block(2), tmp_path / "cam.sdp") as streamer:
        sdp = (tmp_path / "cam.sdp").read_bytes().decode()
    assert sdp.startswith("v=0\r\n")
    for line in (
        f"m=video {streamer.port} RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 packetization-mode=1",
        "c=IN IP4 127.0.0.1",
    ):
        assert line in sdp.split("\r\n")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((720, 1280, 3), np.uint8), r"must be 320×240 .*got shape 720×1280×3"),
        (np.zeros((HEIGHT, WIDTH), np.uint8), r"must be 320×240 .*got shape 240×320 uint8"),
        (np.zeros((HEIGHT, WIDTH, 3), np.float32), r"must be 320×240 BGR uint8 .*float32"),
    ],
    ids=["wrong-size", "grey", "float"],
)
def test_a_frame_that_does_not_fit_the_stream_is_refused(tmp_path, image, message):
    with H264RtpStreamer(free_port_block(2), tmp_path / "cam.sdp", WIDTH, HEIGHT) as streamer:
        with pytest.raises(ValueError, match=message):
            streamer.send(image, time.time())
        assert streamer.frames_sent == 0


def test_an_odd_frame_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="even frame size, got 321×240"):
        H264RtpStreamer(free_port_block(2), tmp_path / "cam.sdp", 321, 240)


def slices_in(rtp: bytes) -> int:
    """How many slice NAL units (types 1 and 5) an H.264 RTP packet begins (RFC 6184)."""
    payload = rtp[12 + 4 * (rtp[0] & 0x0F) :]
    kind = payload[0] & 0x1F
    if kind == 28:  # FU-A: a slice begins in the piece with the start bit
        return int(payload[1] & 0x80 != 0 and payload[1] & 0x1F in (1, 5))
    if kind == 24:  # STAP-A: NAL units, each after its 16-bit size
        kinds, at = [], 1
        while at + 2 < len(payload):
            kinds.append(payload[at + 2] & 0x1F)
            at += 2 + int.from_bytes(payload[at : at + 2], "big")
        return sum(k in (1, 5) for k in kinds)
    return int(kind in (1, 5))


def test_each_picture_is_sent_as_one_slice(tmp_path):
    # A receiver decodes a picture in one slice as soon as that slice is in (vision.rtp_h264).
    port = free_port_block(2)
    texture = np.random.default_rng(1).integers(0, 256, (45, 80, 3), np.uint8).repeat(16, 0).repeat(16, 1)
    slices: Counter[bytes] = Counter()  # by RTP timestamp
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", port))
        receiver.setblocking(False)
        with H264RtpStreamer(port, tmp_path / "cam.sdp", 1280, 720) as streamer:
            start = time.time()
            for n in range(8):
                streamer.send(np.roll(texture, 8 * n, axis=1), start + n / 30)
                while True:  # the frame's packets are all in by now: each send is a burst
                    try:
                        rtp = receiver.recv(65536)
                    except BlockingIOError:
                        break
                    slices[rtp[4:8]] += slices_in(rtp)
    assert list(slices.values()) == [1] * 8


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_closing_frees_the_socket_and_refuses_more_frames(tmp_path):
    before = open_descriptors()
    streamer = H264RtpStreamer(free_port_block(2), tmp_path / "cam.sdp", WIDTH, HEIGHT)
    streamer.send(numbered_image(1), time.time())
    assert open_descriptors() > before
    streamer.close()
    assert open_descriptors() == before
    with pytest.raises(ValueError, match="closed"):
        streamer.send(numbered_image(2), time.time())


def test_each_frame_arrives_stamped_with_its_capture_time(tmp_path):
    port = free_port_block(2)
    start = round(time.time(), 3) - 1.0
    # Irregular capture times: the stamps must come from them, not from counting frames.
    capture_s = [start + 0.04 * n + (0.013 if n % 3 == 0 else 0.0) for n in range(45)]
    received = {}
    with open_source(str(port)) as source, H264RtpStreamer(port, tmp_path / "cam.sdp", WIDTH, HEIGHT) as streamer:
        for n, stamp in enumerate(capture_s):
            streamer.send(numbered_image(n), stamp)
            frame = source.read(0.05)
            if frame is not None:
                received[number_in(frame.image)] = frame
        streamer.close()
        while (frame := source.read(0.5)) is not None:
            received[number_in(frame.image)] = frame
    assert len(received) > 30
    for n, frame in received.items():
        assert frame.time_s == pytest.approx(capture_s[n], abs=1e-3), n


@pytest.mark.parametrize("sent_fps", [30, 8], ids=["nominal-rate", "slow-camera"])
def test_a_receiver_that_joins_late_decodes_within_a_second(tmp_path, sent_fps):
    port = free_port_block(2)
    with H264RtpStreamer(port, tmp_path / "cam.sdp", WIDTH, HEIGHT, fps=30) as streamer:
        n = 0

        def send_for(seconds: float) -> None:
            nonlocal n
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                streamer.send(numbered_image(n % 256), time.time())
                n += 1
                time.sleep(1 / sent_fps)

        send_for(0.5)  # well past the first keyframes
        with open_source(str(tmp_path / "cam.sdp")) as source:
            joined = time.monotonic()
            first = None
            while first is None and time.monotonic() - joined < 3.0:
                send_for(1 / sent_fps)
                first = source.read(0.0)
            waited_s = time.monotonic() - joined
    assert first is not None, source.stats()
    assert first.image.shape == (HEIGHT, WIDTH, 3)
    assert waited_s < 1.3
