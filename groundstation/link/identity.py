"""Who is on the bus, and what each may read and write.

An identity is the common name (CN) of a client certificate; the broker takes it as the MQTT
user name (``use_identity_as_username``), so the ACL below is keyed by it:

- ``station-<site>`` reads ``borderwatch/v1/<site>/#``, writes ``borderwatch/v1/<site>/+/commands/#``;
- ``unit-<site>-<n>`` writes its own channels (``borderwatch/v1/<site>/unit-<n>/status``, ``…/detections``,
  ``…/alerts``, ``…/evidence``, ``…/tracks``), reads only its ``…/commands/#``: a unit never writes
  commands, not even to itself;
- ``hq`` reads ``borderwatch/v1/#`` and writes nothing;
- ``bridge-<site>`` is how a site's broker connects to headquarters' broker: it writes that site's
  ``…/alerts``, ``…/tracks`` and ``…/status`` (what ``groundstation.link.bridge`` forwards) and reads
  nothing, so a site's broker cannot speak for another site nor pass on detections or evidence.

A site is a slug (``algeciras``, ``tarifa-coast``); a unit is numbered from 1 within its site
and appears in topics as ``unit-<n>``. The number is the last ``-`` field of a unit's identity,
so a site may itself contain hyphens.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from missions.errors import UserError

# The topic scheme is vision's, so that an onboard unit builds the same topics without importing us.
from vision.bus.topics import ROOT, UNIT_CHANNELS, unit_prefix

HQ = "hq"

_SITE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_UNIT = re.compile(rf"unit-({_SITE.pattern})-([1-9][0-9]*)")
_STATION = re.compile(rf"station-({_SITE.pattern})")
_BRIDGE = re.compile(rf"bridge-({_SITE.pattern})")
_SCHEME = "station-<site>, unit-<site>-<n>, bridge-<site> or hq (site: lowercase letters, digits and '-'; n from 1)"
# What headquarters hears of a site: detections stay at the site (they are per frame, and the
# site's station acts on them), and so does evidence (large, and kept in the site's run folder).
BRIDGED_CHANNELS = ("alerts", "tracks", "status")


class Role(enum.StrEnum):
    STATION = "station"
    UNIT = "unit"
    BRIDGE = "bridge"
    HQ = "hq"


class Access(enum.StrEnum):
    """Mosquitto's ACL words."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Identity:
    role: Role
    site: str | None = None
    unit: int | None = None

    @property
    def name(self) -> str:
        """The certificate CN and MQTT user name."""
        if self.role is Role.STATION:
            return f"station-{self.site}"
        if self.role is Role.UNIT:
            return f"unit-{self.site}-{self.unit}"
        if self.role is Role.BRIDGE:
            return f"bridge-{self.site}"
        return HQ

    @property
    def prefix(self) -> str:
        """The topics this identity speaks for (a station and hq only listen and command)."""
        if self.role is Role.UNIT:
            return unit_prefix(self.site or "", self.unit or 0)
        if self.role in (Role.STATION, Role.BRIDGE):
            return f"{ROOT}/{self.site}"
        return ROOT

    def grants(self) -> tuple[tuple[Access, str], ...]:
        """The ACL lines of this identity: everything not listed is refused by the broker."""
        if self.role is Role.UNIT:
            writes = tuple((Access.WRITE, f"{self.prefix}/{channel}/#") for channel in UNIT_CHANNELS)
            writes += tuple((Access.WRITE, f"{self.prefix}/{channel}") for channel in UNIT_CHANNELS)
            return (*writes, (Access.READ, f"{self.prefix}/commands/#"))
        if self.role is Role.STATION:
            return ((Access.READ, f"{self.prefix}/#"), (Access.WRITE, f"{self.prefix}/+/commands/#"))
        if self.role is Role.BRIDGE:
            writes = tuple((Access.WRITE, f"{self.prefix}/+/{channel}") for channel in BRIDGED_CHANNELS)
            return writes + tuple((Access.WRITE, f"{self.prefix}/+/{channel}/#") for channel in BRIDGED_CHANNELS)
        return ((Access.READ, f"{ROOT}/#"),)


def station(site: str) -> Identity:
    return Identity(Role.STATION, site=check_site(site))


def unit(site: str, number: int) -> Identity:
    if number < 1:
        raise UserError(f"unit number {number}: units are numbered from 1")
    return Identity(Role.UNIT, site=check_site(site), unit=number)


def bridge(site: str) -> Identity:
    return Identity(Role.BRIDGE, site=check_site(site))


def hq() -> Identity:
    return Identity(Role.HQ)


def check_site(site: str) -> str:
    if not _SITE.fullmatch(site):
        raise UserError(f"site {site!r}: a site on the bus is lowercase letters, digits and '-' (like 'algeciras')")
    return site


def parse(name: str) -> Identity:
    """The identity a certificate CN names; a UserError quoting it when it follows no scheme."""
    if name == HQ:
        return hq()
    if m := _UNIT.fullmatch(name):
        return Identity(Role.UNIT, site=m[1], unit=int(m[2]))
    if m := _STATION.fullmatch(name):
        return Identity(Role.STATION, site=m[1])
    if m := _BRIDGE.fullmatch(name):
        return Identity(Role.BRIDGE, site=m[1])
    raise UserError(f"identity {name!r}: expected {_SCHEME}")
