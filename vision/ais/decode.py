"""NMEA 0183 AIS sentences in, position and static reports out.

:class:`AisDecoder` takes the lines a receiver sends (``!AIVDM`` heard from others, ``!AIVDO``
from our own transponder), with or without a leading NMEA 4.0 tag block, and returns the
reports of the message types the vessel table uses: 1, 2, 3 and 18 (positions), 5 and 24
(what a vessel says of itself) and 19 (both at once). pyais parses the sentences and decodes
the payloads; the decoder assembles multi-part messages itself, keyed by sequential message
id and channel, so that it can bound what it keeps of fragments whose partner never came.

What a radio hears is never trusted: no input raises. Every line falls into one count of
:class:`DecodeCounts`, and the first problem of each kind is said once, in one line naming
the source and the sentence, through ``say``; later ones are only counted.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyais.messages import AISSentence, NMEASentenceFactory

from vision.ais.model import AisClass, AisReport, PositionReport, StaticReport

POSITION_TYPES_A = frozenset({1, 2, 3})
DECODED_TYPES = frozenset({1, 2, 3, 5, 18, 19, 24})

# The parts of one message are sent back to back in one slot burst; a second covers any
# receiver's buffering, ten leaves room for a replayed log's coarse time stamps.
FRAGMENT_TIMEOUT_S = 10.0
# Sequential message ids run 0-9 on each of two channels: more pending messages than that
# means fragments are being lost, not that messages are interleaved.
MAX_PENDING_MESSAGES = 20

SOG_NOT_AVAILABLE_KN = 102.3
COG_NOT_AVAILABLE_DEG = 360.0
HEADING_NOT_AVAILABLE_DEG = 511
LAT_NOT_AVAILABLE_DEG = 91.0
LON_NOT_AVAILABLE_DEG = 181.0

_QUOTED_MAX_CHARS = 60


@dataclass(frozen=True)
class DecodeCounts:
    """What the decoder has seen so far; each non-blank line lands in ``sentences`` and at most one problem count.

    ``garbage`` counts lines that are not AIS sentences at all and AIS payloads too short for
    their type; ``incomplete`` counts the fragments of multi-part messages dropped because a
    part was missing, out of order or late; ``unknown_by_type`` is ``((msg_type, count), …)``.
    """

    sentences: int = 0
    reports: int = 0
    bad_checksum: int = 0
    garbage: int = 0
    unknown_type: int = 0
    incomplete: int = 0
    no_position: int = 0
    unknown_by_type: tuple[tuple[int, int], ...] = ()


@dataclass
class _Pending:
    """The fragments of one multi-part message received so far, in order."""

    started_s: float
    fragment_count: int
    parts: list[AISSentence]
    lines: list[str]


class AisDecoder:
    """Turns NMEA lines into :class:`PositionReport` and :class:`StaticReport`.

    Not thread-safe: feed it from one thread (a source's), or under a lock.
    """

    def __init__(self, source: str = "feed", say: Callable[[str], None] | None = None) -> None:
        self.source = source
        self._say = say
        self._pending: dict[tuple[int | None, str], _Pending] = {}
        self._counts: dict[str, int] = dict.fromkeys(
            ("sentences", "reports", "bad_checksum", "garbage", "unknown_type", "incomplete", "no_position"), 0
        )
        self._unknown_by_type: dict[int, int] = {}
        self._said: set[str] = set()

    @property
    def counts(self) -> DecodeCounts:
        return DecodeCounts(**self._counts, unknown_by_type=tuple(sorted(self._unknown_by_type.items())))

    def feed(self, line: str | bytes, time_s: float) -> list[AisReport]:
        """The reports that ``line``, received at ``time_s``, completes: none, one, or two (message 19)."""
        try:
            return self._feed(line, time_s)
        except Exception as error:  # a radio's bytes must never stop the feed
            self._problem("garbage", "cannot be decoded", _text(line), f"{type(error).__name__}: {error}")
            return []

    def _feed(self, line: str | bytes, time_s: float) -> list[AisReport]:
        text = _text(line).strip()
        if not text:
            return []
        self._counts["sentences"] += 1
        self._expire(time_s)
        try:
            sentence = NMEASentenceFactory.produce(text.encode("ascii"))
        except Exception:  # pyais raises several kinds (and ValueError) for what is not AIS
            self._problem("garbage", "not an AIS sentence", text)
            return []
        if not isinstance(sentence, AISSentence):
            self._problem("garbage", "not an AIS sentence", text)
            return []
        if not sentence.is_valid:
            self._problem("bad_checksum", "bad checksum", text)
            return []
        if sentence.frag_cnt == 1:
            return self._decode(sentence, (text,), time_s)
        return self._assemble(sentence, text, time_s)

    def _assemble(self, sentence: AISSentence, text: str, time_s: float) -> list[AisReport]:
        key = (sentence.seq_id, sentence.channel)
        pending = self._pending.get(key)
        if sentence.frag_num == 1:
            if pending is not None:
                self._drop(key, "a multi-part message never finished")
            self._pending[key] = _Pending(time_s, sentence.frag_cnt, [sentence], [text])
            self._bound()
            return []
        if (
            pending is None
            or pending.fragment_count != sentence.frag_cnt
            or len(pending.parts) + 1 != sentence.frag_num
        ):
            if pending is not None:
                self._drop(key, "a multi-part message never finished")
            self._counts["incomplete"] += 1
            self._problem_said("incomplete", "a fragment whose earlier parts never came", text)
            return []
        pending.parts.append(sentence)
        pending.lines.append(text)
        if len(pending.parts) < pending.fragment_count:
            return []
        del self._pending[key]
        whole = AISSentence.assemble_from_iterable(pending.parts)
        return self._decode(whole, tuple(pending.lines), time_s)

    def _decode(self, sentence: AISSentence, lines: tuple[str, ...], time_s: float) -> list[AisReport]:
        msg_type = sentence.ais_id
        if msg_type not in DECODED_TYPES:
            self._unknown_by_type[msg_type] = self._unknown_by_type.get(msg_type, 0) + 1
            self._problem("unknown_type", f"message type {msg_type}, which is not decoded,", lines[0])
            return []
        fields = sentence.decode().asdict(enum_as_int=True)
        if fields.get("mmsi") is None or any(fields.get(name) is None for name in _REQUIRED[msg_type]):
            self._problem("garbage", f"a message {msg_type} too short for its type", lines[0])
            return []
        reports: list[AisReport] = []
        if msg_type in _POSITION_TYPES:
            position = _position(fields, msg_type, time_s, lines)
            if position is None:
                self._problem("no_position", "position not available", lines[0])
            else:
                reports.append(position)
        if msg_type in _STATIC_TYPES:
            reports.append(_static(fields, msg_type, time_s, lines))
        self._counts["reports"] += len(reports)
        return reports

    def _expire(self, now_s: float) -> None:
        late = [key for key, p in self._pending.items() if not (0.0 <= now_s - p.started_s <= FRAGMENT_TIMEOUT_S)]
        for key in late:
            self._drop(key, f"a multi-part message not finished within {FRAGMENT_TIMEOUT_S:g} s")

    def _bound(self) -> None:
        while len(self._pending) > MAX_PENDING_MESSAGES:
            oldest = min(self._pending, key=lambda k: self._pending[k].started_s)
            self._drop(oldest, f"more than {MAX_PENDING_MESSAGES} multi-part messages unfinished")

    def _drop(self, key: tuple[int | None, str], what: str) -> None:
        pending = self._pending.pop(key)
        self._counts["incomplete"] += len(pending.lines)
        self._problem_said("incomplete", what, pending.lines[0])

    def _problem(self, kind: str, what: str, line: str, detail: str | None = None) -> None:
        self._counts[kind] += 1
        self._problem_said(kind, what, line, detail)

    def _problem_said(self, kind: str, what: str, line: str, detail: str | None = None) -> None:
        if self._say is None or kind in self._said:
            return
        self._said.add(kind)
        why = f" ({detail})" if detail else ""
        message = (
            f"AIS {self.source}: {what} in {_quoted(line)}{why} "
            f"(counted and dropped; {self._counts[kind]} so far; later ones only counted)"
        )
        with contextlib.suppress(Exception):  # a broken reporter must not stop decoding
            self._say(message)


_POSITION_TYPES = frozenset({1, 2, 3, 18, 19})
_STATIC_TYPES = frozenset({5, 19, 24})
_REQUIRED: dict[int, tuple[str, ...]] = {
    1: ("lat", "lon"),
    2: ("lat", "lon"),
    3: ("lat", "lon"),
    5: ("shipname",),
    18: ("lat", "lon"),
    19: ("lat", "lon", "shipname"),
    24: ("partno",),
}


def _position(fields: dict[str, Any], msg_type: int, time_s: float, lines: tuple[str, ...]) -> PositionReport | None:
    lat, lon = float(fields["lat"]), float(fields["lon"])
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90.0 or abs(lon) > 180.0:
        return None  # 91/181 is "not available"; anything else out of range is no better
    sog = fields.get("speed")
    cog = fields.get("course")
    heading = fields.get("heading")
    is_a = msg_type in POSITION_TYPES_A
    return PositionReport(
        mmsi=int(fields["mmsi"]),
        time_s=float(time_s),
        lat_deg=lat,
        lon_deg=lon,
        sog_kn=None if sog is None or sog >= SOG_NOT_AVAILABLE_KN else float(sog),
        cog_deg=None if cog is None or cog >= COG_NOT_AVAILABLE_DEG else float(cog),
        heading_deg=None if heading is None or heading >= 360 else float(heading),
        ais_class=AisClass.A if is_a else AisClass.B,
        msg_type=msg_type,
        nav_status=int(fields["status"]) if is_a and fields.get("status") is not None else None,
        sentences=lines,
    )


def _static(fields: dict[str, Any], msg_type: int, time_s: float, lines: tuple[str, ...]) -> StaticReport:
    ship_type = fields.get("ship_type")
    length = (fields.get("to_bow") or 0) + (fields.get("to_stern") or 0)  # 0 and 0: not available
    return StaticReport(
        mmsi=int(fields["mmsi"]),
        time_s=float(time_s),
        msg_type=msg_type,
        name=_clean(fields.get("shipname")),
        callsign=_clean(fields.get("callsign")),
        ship_type=int(ship_type) if ship_type else None,
        length_m=float(length) if length > 0 else None,
        sentences=lines,
    )


def _clean(value: object) -> str | None:
    """A 6-bit AIS string without its '@' padding and spaces, None when that leaves nothing."""
    if not isinstance(value, str):
        return None
    text = value.replace("@", " ").strip()
    return " ".join(text.split()) or None


def _text(line: str | bytes) -> str:
    if isinstance(line, bytes | bytearray):
        return bytes(line).decode("ascii", errors="replace")
    return str(line)


def _quoted(line: str) -> str:
    printable = "".join(c if c.isprintable() else "?" for c in line.strip())
    if len(printable) > _QUOTED_MAX_CHARS:
        printable = printable[: _QUOTED_MAX_CHARS - 3] + "..."
    return f"'{printable}'"
