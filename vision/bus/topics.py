"""The topics of the bus, shared by the units that publish and the stations that read.

    borderwatch/v1/<site>/unit-<n>/<channel>

``v1`` versions both the topic scheme and the payloads (`vision.bus.payloads`). It lives in
vision, not in groundstation.link, because the onboard unit must build the same topics
without importing the ground station; groundstation.link.identity takes them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "borderwatch/v1"
UNIT_CHANNELS = ("status", "detections", "alerts", "evidence", "tracks")  # what a unit publishes

_UNIT_TOPIC = re.compile(rf"{re.escape(ROOT)}/([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)/unit-([1-9][0-9]*)/([a-z]+)")


@dataclass(frozen=True)
class UnitTopic:
    site: str
    unit: int
    channel: str


_UNIT_IDENTITY = re.compile(r"unit-([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)-([1-9][0-9]*)")


def parse_unit_identity(name: str) -> tuple[str, int]:
    """The site and number a unit's identity (``unit-<site>-<n>``, its certificate's name) says;
    a ValueError quoting it otherwise."""
    match = _UNIT_IDENTITY.fullmatch(name)
    if not match:
        raise ValueError(f"{name!r} is not a unit's identity (unit-<site>-<n>, like unit-algeciras-1)")
    return match[1], int(match[2])


def unit_prefix(site: str, unit: int) -> str:
    return f"{ROOT}/{site}/unit-{unit}"


def unit_topic(site: str, unit: int, channel: str) -> str:
    if channel not in UNIT_CHANNELS:
        raise ValueError(f"channel {channel!r}: a unit publishes on {', '.join(UNIT_CHANNELS)}")
    return f"{unit_prefix(site, unit)}/{channel}"


def parse_unit_topic(topic: str) -> UnitTopic:
    """The site, unit and channel of a unit's topic; a ValueError naming the topic otherwise."""
    match = _UNIT_TOPIC.fullmatch(topic)
    if not match or match[3] not in UNIT_CHANNELS:
        raise ValueError(f"{topic}: not a unit's topic ({ROOT}/<site>/unit-<n>/<{'|'.join(UNIT_CHANNELS)}>)")
    return UnitTopic(match[1], int(match[2]), match[3])
