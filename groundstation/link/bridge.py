"""A site's broker passes on its alerts, tracks and status to headquarters' broker.

Each port runs a station with a broker of its own, and headquarters runs one more. A site's
broker connects to headquarters' as an ordinary client (a mosquitto bridge): over TLS, with the
certificate of ``bridge-<site>`` from the agency's PKI folder, so headquarters' ACL lets it write
its own site's ``alerts``, ``tracks`` and ``status`` and nothing else. Detections and evidence
stay at the site.

The bridge is the site broker's own persistent session: what units publish while headquarters
is out of reach waits in the site broker (QoS 1, kept on disk when it stops) and goes out in
order once the link is back. A unit's retained status stays retained at headquarters, its last
will included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from groundstation.link import identity as ids
from groundstation.link.pki import client_credentials
from missions.errors import UserError

if TYPE_CHECKING:
    from vision.bus.address import BrokerAddress

# Mosquitto keeps at most this many messages for a client it cannot reach, the bridge included
# (1000 by default, a few minutes of ten units' status). As many as a unit's outbox holds.
MAX_QUEUED_MESSAGES = 100_000
# Seconds before the first try to reach headquarters again, and the most between tries.
_RESTART_BASE_S, _RESTART_CAP_S = 1, 30


@dataclass(frozen=True)
class BridgeTarget:
    """Where a site's broker forwards its site's messages: headquarters' broker."""

    site: str
    hq: BrokerAddress

    def __post_init__(self) -> None:
        ids.check_site(self.site)

    @property
    def identity(self) -> ids.Identity:
        """Who the site's broker is on headquarters' broker."""
        return ids.bridge(self.site)


def bridge_topics(site: str) -> list[str]:
    """The topic filters a site's broker forwards: each bridged channel of each unit, and below it."""
    return [f"{ids.station(site).prefix}/+/{channel}/#" for channel in ids.BRIDGED_CHANNELS]


def bridge_section(pki_dir: Path, target: BridgeTarget) -> str:
    """The lines that, at the end of a site broker's mosquitto.conf, bridge it to headquarters."""
    pki_dir = pki_dir.resolve()
    who = target.identity
    creds = client_credentials(pki_dir, who)
    for path in (creds.cert, creds.key):
        if not path.exists():
            raise UserError(f"{path}: missing; run `borderwatch pki issue {pki_dir} {who.name}` first")
    if any(c in target.hq.host for c in " \t\n\r#"):
        raise UserError(f"headquarters' broker {target.hq.host!r}: not a host name or address")
    lines = [
        f"# Written by borderwatch: {target.site}'s alerts, tracks and status go on to headquarters.",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"connection hq-{target.site}",
        f"address {target.hq.host}:{target.hq.port}",
        f"remote_clientid {who.name}",
        "bridge_protocol_version mqttv50",
        # Kept across outages at both ends: what is queued here goes out when the link is back.
        "cleansession false",
        "start_type automatic",
        f"restart_timeout {_RESTART_BASE_S} {_RESTART_CAP_S}",
        # The bridge only sends: it has nothing to unsubscribe from at headquarters, and its
        # connection state has no topic headquarters' ACL would let it write.
        "bridge_attempt_unsubscribe false",
        "notifications false",
        f"bridge_cafile {creds.ca}",
        f"bridge_certfile {creds.cert}",
        f"bridge_keyfile {creds.key}",
        "bridge_insecure false",
    ]
    lines.extend(f"topic {topic} out 1" for topic in bridge_topics(target.site))
    return "\n".join(lines) + "\n"
