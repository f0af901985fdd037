"""Who wrote a piece of evidence: Ed25519 keys, their ids, and the trust store that verifies them.

A unit that writes evidence (an onboard computer, a ground station) holds one private key,
kept outside run folders and readable by its owner only. Its **key id** is the first 16 hex
digits of the SHA-256 of the raw 32-byte public key; its **fingerprint** the whole digest, in
groups of four, for people to compare over the phone. A **trust store** is a folder of public
keys (``<key id>.pub``, PEM) that a verifying station has chosen to trust.

Here, in vision, because the onboard unit signs without the ground station.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from missions.errors import UserError


class KeyFileError(UserError):
    """A key file that is missing, unreadable, of the wrong type, or too open."""


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "borderwatch"


def default_key_path() -> Path:
    """``$BORDERWATCH_KEY``, else ``~/.config/borderwatch/keys/signing.key``."""
    return Path(os.environ.get("BORDERWATCH_KEY") or _config_home() / "keys" / "signing.key")


def default_trust_dir() -> Path:
    """``$BORDERWATCH_TRUST``, else ``~/.config/borderwatch/trust``."""
    return Path(os.environ.get("BORDERWATCH_TRUST") or _config_home() / "trust")


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def fingerprint(key: Ed25519PublicKey) -> str:
    digest = hashlib.sha256(public_raw(key)).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


@dataclass(frozen=True)
class Signer:
    """A private key and its id: ``sign`` is Ed25519 over the given bytes."""

    private: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, data: bytes) -> str:
        """The signature, base64."""
        return encode_signature(self.private.sign(data))

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())


def create_key(path: str | os.PathLike[str], force: bool = False) -> Signer:
    """A new key pair; the private key written to ``path`` (0600, its folder 0700), never over one
    already there unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise KeyFileError(f"{path}: a key is already there; it signs evidence already kept (--force replaces it)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = Signer.generate()
    pem = signer.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    return Signer(signer.private, path)


def station_key(path: str | os.PathLike[str] | None = None, say=None) -> Signer:
    """This machine's signing key (``path``, else the default): made on first use, and then trusted by
    this machine's own trust store, which is what a station verifies its own runs with."""
    path = Path(path) if path is not None else default_key_path()
    if path.exists():
        return load_key(path)
    signer = create_key(path)
    TrustStore.load(default_trust_dir()).trust(signer.public)
    if say is not None:
        say(f"made a signing key for this station: {path} (key {signer.key_id})")
    return signer


def load_key(path: str | os.PathLike[str]) -> Signer:
    """The signing key at ``path``; a KeyFileError naming it when it is missing, unreadable, not an
    Ed25519 private key, or readable by others."""
    path = Path(path)
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no signing key there; `borderwatch keys init` makes one") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the signing key ({exc.strerror})") from None
    if mode & 0o077:
        raise KeyFileError(f"{path}: the signing key is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not a PEM private key without a password ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__.removeprefix('_')} key, not Ed25519")
    return Signer(key, path)


def load_public(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the public key ({exc.strerror})") from None
    return parse_public(data, str(path))


def parse_public(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{where}: a {type(key).__name__.removeprefix('_')} key, not Ed25519")
    return key


class TrustStore:
    """The public keys a verifier trusts, by key id: a folder of ``<key id>.pub`` files, or given keys."""

    def __init__(self, keys: dict[str, Ed25519PublicKey] | None = None, directory: Path | None = None) -> None:
        self.keys = dict(keys or {})
        self.directory = directory

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TrustStore:
        """Every ``*.pub`` in ``directory`` (none when it does not exist); a file whose name is not its
        key's id is refused, naming it."""
        directory = Path(directory)
        keys: dict[str, Ed25519PublicKey] = {}
        for path in sorted(directory.glob("*.pub")) if directory.is_dir() else ():
            key = load_public(path)
            if path.stem != key_id(key):
                raise KeyFileError(f"{path}: holds key {key_id(key)}, not the {path.stem} its name says")
            keys[path.stem] = key
        return cls(keys, directory)

    def trust(self, key: Ed25519PublicKey) -> Path:
        """Add a key (written to the folder): its file."""
        if self.directory is None:
            raise ValueError("this trust store has no folder")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{key_id(key)}.pub"
        path.write_bytes(public_pem(key))
        self.keys[key_id(key)] = key
        return path

    def verify(self, signer: str, data: bytes, signature: str) -> str | None:
        """None when ``signature`` (base64) is ``signer``'s over ``data``; else what is wrong, in words."""
        key = self.keys.get(signer)
        if key is None:
            return f"signed by key {signer}, which is not trusted"
        try:
            raw = base64.b64decode(signature, validate=True)
            key.verify(raw, data)
        except (binascii.Error, ValueError, InvalidSignature):
            return f"the signature does not match key {signer}"
        return None

    def __contains__(self, signer: str) -> bool:
        return signer in self.keys

    def __len__(self) -> int:
        return len(self.keys)
