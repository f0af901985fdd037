"""Where a broker is, and where a PKI folder keeps an identity's certificate.

Here rather than in groundstation.link because the onboard unit must read both without
importing the ground station. The folder layout is the one ``borderwatch pki`` writes:
``ca.crt`` and ``clients/<identity>.crt``/``.key``; a companion computer gets a folder with
those three files only.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from missions.errors import UserError

MQTTS_PORT = 8883


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtts://{host}:{self.port}"


def parse_broker_url(text: str) -> BrokerAddress:
    """``mqtts://HOST[:PORT]`` (8883 by default); a UserError quoting ``text`` for anything else."""
    try:
        url = urllib.parse.urlsplit(text)
        port = url.port
    except ValueError as exc:
        raise UserError(f"broker {text!r}: {exc}; expected mqtts://HOST:PORT") from None
    if url.scheme != "mqtts":
        raise UserError(f"broker {text!r}: expected mqtts://HOST:PORT (the bus speaks TLS only)")
    if not url.hostname or url.path not in ("", "/") or url.query or url.fragment or url.username:
        raise UserError(f"broker {text!r}: expected mqtts://HOST:PORT and nothing else")
    return BrokerAddress(url.hostname, port or MQTTS_PORT)


@dataclass(frozen=True)
class Credentials:
    """The files a client shows the broker: the CA it trusts, its certificate and key."""

    ca: Path
    cert: Path
    key: Path


def credentials_in(pki_dir: str | Path, identity: str) -> Credentials:
    """``identity``'s files in a PKI folder; a UserError naming the first one missing."""
    folder = Path(pki_dir)
    found = Credentials(
        folder / "ca.crt", folder / "clients" / f"{identity}.crt", folder / "clients" / f"{identity}.key"
    )
    for path in (found.ca, found.cert, found.key):
        if not path.is_file():
            raise UserError(f"{path}: missing; `borderwatch pki issue {folder} {identity}` makes it")
    return found
