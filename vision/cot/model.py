"""The values the CoT modules pass between them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_COT_URL = "udp://239.2.3.1:6969"  # TAK's mesh SA multicast group, what ATAK and WinTAK listen to

COT_HELP = (
    f"send drones, tracks, alerts and zones as Cursor on Target to TAK (repeatable; alone: {DEFAULT_COT_URL}, "
    "the mesh SA multicast): udp://HOST:PORT, tcp://HOST:8087, tls://HOST:8089?cert=CLIENT.p12&password=PW&ca=CA "
    "or ?package=DATAPACKAGE.zip; add format=protobuf for TAK Protocol version 1"
)


class CotEncoding(enum.Enum):
    """How a destination wants its events: CoT XML, or TAK Protocol version 1 (protobuf).

    Protobuf is framed as the transport asks: the mesh header on UDP, the stream header and
    a length on TCP and TLS (takproto's MESH and STREAM).
    """

    XML = "xml"
    PROTOBUF = "protobuf"


@dataclass(frozen=True)
class CotMessage:
    """One CoT event as XML, with what a sender needs to know about it without parsing it.

    ``uid`` is the event's uid: a sender that still holds an unsent event of the same uid
    replaces it (CoT is state, the newer event says all the older one did). ``stale_s`` is
    the event's stale time (Unix seconds).
    """

    uid: str
    stale_s: float
    xml: bytes
