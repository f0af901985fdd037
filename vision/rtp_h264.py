"""H.264 over RTP: the SDP of a stream, what a receiver remembers of it, and slices decoded as soon as they are in.

FFmpeg's H.264 parser joins the RTP depacketizer's output into access units (one picture
each) but, not knowing where a picture ends, holds each until the next begins: a frame
late, 33 ms at 30 fps. Opened with ``fflags=noparse`` the demuxer hands out each RTP
packet's payload as it comes, NAL units with Annex B start codes: several for an
aggregation packet (STAP-A), or one piece of a NAL for a fragmentation unit (FU-A), the
first piece with a start code and the others without. The RTP marker bit and the FU-A end
bit, which say where a picture and a NAL end, are lost on the way.

:class:`SliceJoiner` joins the pieces again and hands on each slice, with the parameter
sets and SEI before it, as soon as it is whole; a decoder told that its input comes in
such chunks (``AV_CODEC_FLAG2_CHUNKS``) puts out a picture once its last macroblock row is
decoded, whether the sender cut it into one slice (``sitl.synthetic.video``) or several. A slice is
whole where the next NAL begins or the RTP timestamp changes, and earlier, judging by size:

* a NAL in pieces ends with a piece shorter than the first: senders fill every piece but
  the last up to their packet size;
* a NAL that came in one packet is whole if that packet is shorter than the first pieces
  of the NALs this sender had to cut; before it cut any, shorter than the longest packet
  that held a whole NAL, or than a few hundred bytes: no sender cuts so small.

A sender whose sizes mislead shows it with a further piece of a NAL judged whole; from
then on sizes are not trusted and a picture's last slice waits for the next picture, as
with FFmpeg's parser. The picture that gave the sender away is lost or damaged, and so
are the pictures that refer to it until the next keyframe.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from fractions import Fraction

import av

_START = b"\x00\x00\x01"  # a 4-byte start code ends with the 3-byte one
_STARTS = (_START, b"\x00" + _START)
_START_CODE = re.compile(re.escape(_START))
_NON_IDR_SLICE, _IDR_SLICE, _SEI = 1, 5, 6
_SLICES = (_NON_IDR_SLICE, _IDR_SLICE)
_RECOVERY_POINT = 6  # the SEI payload type
# A FU-A's first piece comes with a 4-byte start code and the 1-byte NAL header, the other
# pieces with neither, in place of the 2-byte FU indicator and header that each RTP packet
# carried: a full piece after the first is 5 bytes shorter than it.
_FU_A_GROWTH = 5
_WHOLE_NAL_BYTES = 400  # below which a NAL in one packet is whole, before this sender cut any
_MAX_HEADERS_BYTES = 1 << 16
_MAX_PTS_JUMP_S = 5.0
_STAMPS_KEPT = 64


def h264_sdp(port: int, host: str = "127.0.0.1") -> str:
    """The SDP of one H.264 stream sent as RTP (payload type 96, packetization mode 1) to `host:port`."""
    lines = ["v=0", f"o=- 0 0 IN IP4 {host}", "s=borderwatch camera", f"c=IN IP4 {host}", "t=0 0"]
    lines += [f"m=video {port} RTP/AVP 96", "a=rtpmap:96 H264/90000", "a=fmtp:96 packetization-mode=1"]
    return "\r\n".join(lines) + "\r\n"


@dataclass(frozen=True)
class Slice:
    """A slice NAL unit and the NAL units before it that were not yet handed on, in Annex B form."""

    data: bytes
    pts: int | None  # of the RTP packets that carried it: the same for every slice of a picture
    is_keyframe: bool  # an IDR slice, or a recovery point: decodable without what came before


class SliceJoiner:
    """Joins the packets of FFmpeg's unparsed H.264 RTP depacketizer into slices (see the module doc)."""

    def __init__(self) -> None:
        self.judges_by_size = True  # False once this sender's packet sizes misled
        self._data = bytearray()
        self._pts: int | None = None
        self._slice_open = False  # the last NAL in _data is a slice whose end has not come yet
        self._nal_bytes: int | None = None  # size of the packet that began the last NAL, if pieces may follow
        self._nal_pieces = 0
        self._nal_whole = False  # judged whole by size
        self._handed_by_size = False  # the last slice handed on was judged whole by size
        self._first_piece_bytes: int | None = None  # smallest first piece of a NAL this sender cut
        self._whole_bytes = 0  # largest packet that held one NAL, whole: its next packet began another

    def push(self, data: bytes, pts: int | None) -> list[Slice]:
        """The slices completed by one demuxed packet's `data`: none, one, or the one before and this one."""
        slices = []
        starts = data.startswith(_STARTS)
        if starts and self._nal_bytes is not None and self._nal_pieces == 0:
            self._whole_bytes = max(self._whole_bytes, self._nal_bytes)
        if pts != self._pts:
            slices += self.flush()
            self._pts = pts
        if starts:
            slices += self._begin(data)
        else:
            slices += self._continue(data)
        return slices

    def flush(self) -> list[Slice]:
        """The slice in progress, at the end of a picture or of the stream."""
        self._handed_by_size = False
        if self._slice_open:
            return self._hand_on(by_size=False)
        if len(self._data) > _MAX_HEADERS_BYTES:  # parameter sets and SEI wait for their picture, within reason
            self._data.clear()
        self._nal_bytes = None
        return []

    def _begin(self, data: bytes) -> list[Slice]:
        slices = self._hand_on(by_size=False) if self._slice_open else []  # it ended where this NAL begins
        self._handed_by_size = False
        nals = [match.end() for match in _START_CODE.finditer(data)]
        self._data += data
        self._slice_open = any(data[at] & 0x1F in _SLICES for at in nals if at < len(data))
        self._nal_bytes = len(data) if len(nals) == 1 else None  # an aggregate holds whole NALs only
        self._nal_pieces = 0
        # A sender that sends NALs of n bytes whole fills first pieces of n - 1 bytes or more.
        smallest_piece = self._first_piece_bytes or max(_WHOLE_NAL_BYTES, self._whole_bytes - 1)
        self._nal_whole = len(nals) == 1 and self.judges_by_size and len(data) < smallest_piece
        if self._slice_open and (self._nal_bytes is None or self._nal_whole):
            slices += self._hand_on(by_size=self._nal_whole)
        return slices

    def _continue(self, piece: bytes) -> list[Slice]:
        if self._nal_bytes is None:  # no NAL to add it to
            if self._handed_by_size:  # but a piece of the slice handed on, which its size said had ended
                self._distrust_sizes()
            return []  # else its first piece, and the header that says what it is, were lost
        self._data += piece
        self._nal_pieces += 1
        if self._nal_pieces == 1:
            self._first_piece_bytes = min(self._first_piece_bytes or self._nal_bytes, self._nal_bytes)
        if self._nal_whole:  # a piece of a NAL judged whole
            self._distrust_sizes()
        elif self.judges_by_size and len(piece) < self._nal_bytes - _FU_A_GROWTH:
            self._nal_whole = True
            if self._slice_open:
                return self._hand_on(by_size=True)
        return []

    def _distrust_sizes(self) -> None:
        self.judges_by_size = False
        self._nal_whole = self._handed_by_size = False

    def _hand_on(self, by_size: bool) -> list[Slice]:
        data = bytes(self._data)
        self._data.clear()
        self._slice_open = False
        self._nal_bytes = None
        self._handed_by_size = by_size
        return [Slice(data, self._pts, is_keyframe(data))]


class RtpSession:
    """What one connection to a live stream remembers from packet to packet: who sends, each
    pts's capture time from the sender reports, and the slices in progress where FFmpeg's
    parser does not join them (`joins_slices`)."""

    def __init__(self, joins_slices: bool) -> None:
        self._slices = SliceJoiner() if joins_slices else None
        self._sender_times: dict[int, float] = {}  # pts → sender's capture time, until its frame is decoded
        self._last_pts_s: float | None = None
        self._ssrc: int | None = None
        self._awaiting_keyframe = False

    def receive(self, packet: av.Packet) -> tuple[list[av.Packet], float | None]:
        """What to decode now that `packet` came, and the sender's capture time of `packet`, if known."""
        # A new sender on the port (a rebooted camera) shows as a new SSRC in its sender reports
        # or, without reports, as a jump in RTP time. Its first packet was dropped as out of
        # sequence, and its P-frames would paint over the old sender's last picture: wait for
        # a keyframe.
        new_sender = False
        ssrc = _side_data_number(packet, "rtcp_sr", "=I")
        if ssrc is not None:
            new_sender = self._ssrc is not None and ssrc != self._ssrc
            self._ssrc = ssrc
        if packet.pts is not None and packet.time_base is not None:
            pts_s = float(packet.pts * packet.time_base)
            new_sender |= self._last_pts_s is not None and not -1.0 < pts_s - self._last_pts_s < _MAX_PTS_JUMP_S
            self._last_pts_s = pts_s
        if new_sender:
            self._awaiting_keyframe = True
            if self._slices is not None:  # forget the old sender's half-sent slice and packet sizes
                self._slices = SliceJoiner()
        wallclock_us = _side_data_number(packet, "prft", "=q")
        sender_s = None if wallclock_us is None else wallclock_us / 1e6
        if sender_s is not None and packet.pts is not None:
            self._sender_times[packet.pts] = sender_s
            while len(self._sender_times) > _STAMPS_KEPT:
                del self._sender_times[next(iter(self._sender_times))]
        if self._slices is None:  # a picture as FFmpeg's parser joined it, or the empty packet that drains the decoder
            chunks = [(packet, packet.is_keyframe)]
        else:
            slices = self._slices.push(bytes(packet), packet.pts) if packet.size else self._slices.flush()
            chunks = [(_packet(piece, packet.time_base), piece.is_keyframe) for piece in slices]
            if not packet.size:  # the end of the stream: drain the decoder too
                chunks.append((packet, False))
        return [chunk for chunk, is_keyframe in chunks if self._may_decode(is_keyframe)], sender_s

    def sender_time(self, pts: int | None, fallback: float | None) -> float | None:
        """The sender's capture time of the frame decoded with `pts`: once each, `fallback` for a frame without one."""
        return fallback if pts is None else self._sender_times.pop(pts, None)

    def _may_decode(self, is_keyframe: bool) -> bool:
        if self._awaiting_keyframe and not is_keyframe:
            return False
        self._awaiting_keyframe = False
        return True


def _packet(piece: Slice, time_base: Fraction | None) -> av.Packet:
    packet = av.Packet(piece.data)
    packet.pts, packet.time_base = piece.pts, time_base
    return packet


def _side_data_number(packet: av.Packet, kind: str, layout: str) -> int | None:
    side = packet.get_sidedata(kind)
    data = bytes(side) if side else b""
    return struct.unpack_from(layout, data)[0] if len(data) >= struct.calcsize(layout) else None


def is_keyframe(nal_units: bytes) -> bool:
    """Whether Annex B NAL units hold an IDR slice or a recovery point SEI (as FFmpeg's parser judges keyframes)."""
    for nal in nal_units.split(_START)[1:]:
        kind = nal[0] & 0x1F if nal else 0
        if kind == _IDR_SLICE or (kind == _SEI and _has_recovery_point(nal)):
            return True
    return False


def _has_recovery_point(sei: bytes) -> bool:
    rbsp = sei[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    at = 0
    while at < len(rbsp) and rbsp[at] != 0x80:  # 0x80: the RBSP trailing bits after the last message
        numbers = []
        for _ in range(2):  # payload type, then size: runs of 0xFF, each adding 255, then the rest
            number = 0
            while at < len(rbsp) and rbsp[at] == 0xFF:
                number, at = number + 255, at + 1
            if at >= len(rbsp):
                return False
            numbers.append(number + rbsp[at])
            at += 1
        if numbers[0] == _RECOVERY_POINT:
            return True
        at += numbers[1]
    return False
