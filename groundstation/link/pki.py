"""The certificates of the bus: one CA, a server certificate for the broker, one per client.

A PKI folder holds::

    DIR/ca.crt                    the CA: every broker and client trusts it, and nothing else
    DIR/ca.key                    the CA's private key; only `borderwatch pki issue` needs it
    DIR/broker.crt, broker.key    the broker's server certificate (SAN: localhost, 127.0.0.1, --broker-name)
    DIR/clients/<identity>.crt    a client certificate; its CN is the identity (see groundstation.link.identity)
    DIR/clients/<identity>.key

Private keys are written 0600. A machine gets ``ca.crt`` and its own certificate and key, never
``ca.key``. Keys are ECDSA P-256, which every OpenSSL that mosquitto, EMQX or HiveMQ links accepts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from groundstation.link.identity import Identity
from missions.errors import UserError

CA_DAYS = 3650
LEAF_DAYS = 825
# Clocks of drones and field laptops drift; a certificate valid from "now" would be refused by a
# peer a minute behind.
_BACKDATE = datetime.timedelta(minutes=10)
DEFAULT_BROKER_NAMES = ("localhost", "127.0.0.1")
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dataclass(frozen=True)
class Credentials:
    """What one party needs to join the bus: the CA to trust, and its own certificate and key."""

    ca: Path
    cert: Path
    key: Path


def ca_paths(pki_dir: Path) -> tuple[Path, Path]:
    return pki_dir / "ca.crt", pki_dir / "ca.key"


def broker_credentials(pki_dir: Path) -> Credentials:
    return Credentials(pki_dir / "ca.crt", pki_dir / "broker.crt", pki_dir / "broker.key")


def client_credentials(pki_dir: Path, identity: Identity) -> Credentials:
    clients = pki_dir / "clients"
    return Credentials(pki_dir / "ca.crt", clients / f"{identity.name}.crt", clients / f"{identity.name}.key")


def init(pki_dir: Path, broker_names: Iterable[str] = (), force: bool = False) -> list[Path]:
    """Make a CA and the broker's certificate in ``pki_dir``; the files written.

    An existing CA is kept unless ``force``: replacing it invalidates every certificate it issued.
    """
    ca_crt, ca_key = ca_paths(pki_dir)
    if not force and (ca_crt.exists() or ca_key.exists()):
        existing = ca_key if ca_key.exists() else ca_crt
        raise UserError(
            f"{existing}: a CA already exists; pass --force to replace it "
            "(every certificate it issued, broker's and clients', stops working)"
        )
    # Checked before anything is written, so that a typo does not cost the old CA.
    san = [_general_name(n) for n in dict.fromkeys([*DEFAULT_BROKER_NAMES, *broker_names])]
    _make_dir(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "borderwatch CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(ca_key, key)
    _write_cert(ca_crt, cert)
    broker = broker_credentials(pki_dir)
    _issue(pki_dir, "borderwatch broker", broker, server_names=san)
    return [ca_crt, ca_key, broker.cert, broker.key]


def issue(pki_dir: Path, identity: Identity, force: bool = False) -> Credentials:
    """A client certificate for ``identity``, signed by the CA of ``pki_dir``.

    An existing one is kept unless ``force``: a unit in the field still holds the old key.
    """
    creds = client_credentials(pki_dir, identity)
    if not force and creds.cert.exists():
        raise UserError(f"{creds.cert}: {identity.name} already has a certificate; pass --force to issue a new one")
    _issue(pki_dir, identity.name, creds, server_names=None)
    return creds


def issued(pki_dir: Path) -> list[str]:
    """The common names of the client certificates in ``pki_dir`` that its CA signed, sorted."""
    ca_cert = load_cert(ca_paths(pki_dir)[0])
    names = []
    for path in sorted((pki_dir / "clients").glob("*.crt")):
        cert = load_cert(path)
        if _signed_by(cert, ca_cert):
            names.extend(a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return sorted(str(n) for n in names)


def stale(pki_dir: Path) -> list[Path]:
    """Client certificates in ``pki_dir`` that its CA did not sign (left from a replaced CA)."""
    ca_cert = load_cert(ca_paths(pki_dir)[0])
    return [p for p in sorted((pki_dir / "clients").glob("*.crt")) if not _signed_by(load_cert(p), ca_cert)]


def load_cert(path: Path) -> x509.Certificate:
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise UserError(f"{path}: not a PEM certificate ({exc})") from None


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UserError(f"{path}: expected an EC private key, found {type(key).__name__}")
    return key


def _issue(pki_dir: Path, common_name: str, creds: Credentials, server_names: list[x509.GeneralName] | None) -> None:
    ca_crt, ca_key_path = ca_paths(pki_dir)
    if not ca_key_path.exists():
        raise UserError(f"{ca_key_path}: no CA in {pki_dir}; run `borderwatch pki init {pki_dir}` first")
    ca_key = load_key(ca_key_path)
    ca_cert = load_cert(ca_crt)
    if ca_cert.public_key() != ca_key.public_key():
        raise UserError(f"{ca_key_path}: does not belong to {ca_crt}; the CA folder is mixed up")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server_names is None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        ).add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    _make_dir(creds.cert.parent)
    _write_key(creds.key, key)
    _write_cert(creds.cert, builder.sign(ca_key, hashes.SHA256()))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not _DNS_NAME.fullmatch(name):
        raise UserError(f"broker name {name!r}: neither an IP address nor a DNS name")
    return x509.DNSName(name)


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the folder ({exc.strerror})") from None


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(path, pem, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    # Through a new file created with its final mode, so a key is never readable by others, not
    # even for an instant, and a crash leaves the old file or the new one, not half of either.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)  # the umask may have taken bits from a certificate's 0644
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None
