"""Where CoT goes: ``--cot URL`` as a :class:`CotDestination`, and what pytak needs to reach it.

::

    udp://HOST:PORT   one datagram per event; a multicast group (the TAK mesh's SA group
                      239.2.3.1:6969 by default) or one host; options ttl=N, iface=ADDR (the local
                      address whose interface carries the group)
    tcp://HOST:PORT   a TAK server's plain streaming input (8087 by default)
    tls://HOST:PORT   a TAK server's TLS input (8089 by default), with a client certificate:
                      cert=PATH (.p12, or PEM with key=PATH), password=PW, ca=PATH (PEM or a .p12
                      truststore, ca_password=PW when it has its own), or package=PATH.zip, the
                      TAK data package a server hands out, which names all of these itself

Every destination takes ``format=xml`` (the default) or ``format=protobuf`` (TAK Protocol
version 1). Passwords never show: :attr:`CotDestination.url`, which every message names, has
them as ``***``.

Parsing only reads the URL. :func:`pytak_config` opens the certificate files, once, before
anything connects, so that a wrong password or a corrupt file is one clear line rather than a
TLS handshake failing every few seconds.
"""

from __future__ import annotations

import configparser
import ipaddress
import re
import secrets
import ssl
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from missions.errors import UserError
from vision.cot.model import DEFAULT_COT_URL, CotEncoding

__all__ = ["DEFAULT_COT_URL", "CotDestination", "parse_destination", "parse_destinations"]

DEFAULT_PORTS = {"udp": 6969, "tcp": 8087, "tls": 8089}

_OPTIONS = {
    "udp": {"format", "ttl", "iface"},
    "tcp": {"format"},
    "tls": {"format", "cert", "key", "password", "ca", "ca_password", "package"},
}
_SECRETS = re.compile(r"(?i)([?&](?:ca_)?password=)[^&#]*")
_USERINFO = re.compile(r"^([a-zA-Z][\w+.-]*://[^/@?#:]*):[^/@?#]*@")
_P12_SUFFIXES = (".p12", ".pfx")


@dataclass(frozen=True)
class CotDestination:
    """One place to send CoT. ``url`` is what the user wrote, passwords redacted."""

    url: str
    scheme: str
    host: str
    port: int
    encoding: CotEncoding = CotEncoding.XML
    is_multicast: bool = False
    ttl: int = 1
    iface: str | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None
    ca_password: str | None = field(default=None, repr=False)
    package: Path | None = None

    def __str__(self) -> str:
        return self.url


def redact(text: str) -> str:
    """``text`` with the values of password options and any password in the address as ``***``."""
    return _USERINFO.sub(r"\1:***@", _SECRETS.sub(r"\1***", text))


def parse_destination(text: str) -> CotDestination:
    """The destination ``text`` names; raises UserError starting with the (redacted) URL when it cannot be used."""
    text = text.strip()
    url = redact(text)

    def bad(problem: str) -> UserError:
        return UserError(f"{url}: {problem}")

    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in DEFAULT_PORTS:
        raise bad("not a CoT destination; expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise bad("the port must be a number from 1 to 65535") from None
    if port == 0:
        raise bad("the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise bad("no host named")
    if parts.username is not None:
        raise bad("a user name in the address is not used; give certificates as options instead")
    if parts.path not in ("", "/") or parts.fragment:
        raise bad("unexpected path after the port; options go after '?'")
    options: dict[str, str] = {}
    if ":" in parts.hostname:
        raise bad("an IPv6 address; pytak's transports take IPv4 addresses and host names")
    # A '+' is a plus, as typed in a shell (in a password, a path), not a form's space.
    for name, value in parse_qsl(parts.query.replace("+", "%2B"), keep_blank_values=True):
        name = name.lower()
        if name not in _OPTIONS[scheme]:
            known = ", ".join(sorted(_OPTIONS[scheme]))
            raise bad(f"unknown option {name!r} for {scheme} (it takes {known})")
        if name in options:
            raise bad(f"option {name!r} given twice")
        options[name] = value
    fmt = options.pop("format", "xml").lower()
    if fmt not in ("xml", "protobuf"):
        raise bad(f"format must be xml or protobuf, not {fmt!r}")
    host = parts.hostname
    fields: dict = {"encoding": CotEncoding(fmt)}
    if scheme == "udp":
        fields.update(_udp_options(host, options, bad))
    elif scheme == "tls":
        fields.update(_tls_options(options, bad))
    return CotDestination(url, scheme, host, port or DEFAULT_PORTS[scheme], **fields)


def parse_destinations(texts: Iterable[str]) -> list[CotDestination]:
    """Each of ``texts`` parsed; the same destination twice is an error (its events would go twice)."""
    destinations: list[CotDestination] = []
    seen: set[tuple[str, str, int, CotEncoding]] = set()
    for text in texts:
        destination = parse_destination(text)
        key = (destination.scheme, destination.host.lower(), destination.port, destination.encoding)
        if key in seen:
            raise UserError(f"{destination.url}: given twice")
        seen.add(key)
        destinations.append(destination)
    return destinations


def _udp_options(host: str, options: dict[str, str], bad) -> dict:
    try:
        is_multicast = ipaddress.ip_address(host).is_multicast
    except ValueError:
        is_multicast = False
    fields: dict = {"is_multicast": is_multicast}
    if "ttl" in options:
        try:
            fields["ttl"] = int(options["ttl"])
        except ValueError:
            fields["ttl"] = -1
        if not 0 <= fields["ttl"] <= 255:
            raise bad(f"ttl must be a whole number from 0 to 255, not {options['ttl']!r}")
    if "iface" in options:
        if not is_multicast:
            raise bad("iface= chooses the interface of a multicast group; this host is not one")
        try:
            fields["iface"] = str(ipaddress.IPv4Address(options["iface"]))
        except ValueError:
            raise bad(f"iface must be the IPv4 address of a local interface, not {options['iface']!r}") from None
    return fields


def _tls_options(options: dict[str, str], bad) -> dict:
    def path(name: str) -> Path | None:
        value = options.get(name)
        if value is None:
            return None
        if not value:
            raise bad(f"{name}= names no file")
        return Path(value).expanduser()

    fields = {
        "client_cert": path("cert"),
        "client_key": path("key"),
        "ca": path("ca"),
        "package": path("package"),
        "password": options.get("password"),
        "ca_password": options.get("ca_password"),
    }
    if fields["package"] is not None:
        if fields["client_cert"] is not None or fields["client_key"] is not None:
            raise bad("give either package= or cert=, not both")
    elif fields["client_cert"] is None:
        raise bad("needs a client certificate: cert=PATH (.p12 or .pem) or package=PATH.zip (a TAK data package)")
    cert = fields["client_cert"]
    if cert is not None and cert.suffix.lower() in _P12_SUFFIXES and fields["client_key"] is not None:
        raise bad("key= goes with a PEM certificate; a .p12 holds its own key")
    return fields


def open_package(destination: CotDestination, folder: Path) -> CotDestination:
    """``destination`` with the client certificate, truststore and passwords its data package names.

    The package is unpacked into ``folder``. Raises UserError naming the URL and the package
    when it is not a zip, holds no .pref file, or names files it does not hold.
    """
    import zipfile

    pytak = import_pytak()
    package = destination.package
    assert package is not None
    where = f"{destination.url}: the data package {package}"
    if not package.is_file():
        raise UserError(f"{where} does not exist")
    try:
        pytak.functions.unzip_file(str(package), str(folder))
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(f"{where} is not a zip file ({error})") from error
    try:
        pref = Path(pytak.functions.find_file(str(folder), "*.pref"))
    except EOFError:
        raise UserError(f"{where} is not a TAK data package: it holds no .pref file") from None
    # pytak's load_preferences reads the keys TAK Server's packages have used (certificateLocation,
    # clientPassword); ATAK's per-connection form, which pytak's own package builder writes, numbers
    # them (certificateLocation0, caLocation0, ...). Either will do.
    try:
        prefs = pytak.functions.load_preferences(str(pref), str(folder))
        entries = {e.get("key"): (e.text or "").strip() for e in ET.parse(pref).getroot().iter("entry")}

        def entry(key: str) -> str | None:
            return entries.get(key) or entries.get(f"{key}0") or None

        cert = prefs.get("certificate_location") or entry("certificateLocation")
        cert = pytak.functions.find_cert(str(folder), cert) if cert else None
        ca = entry("caLocation")
        ca = pytak.functions.find_cert(str(folder), ca) if ca else None
    except (ET.ParseError, KeyError, EOFError, AssertionError) as error:
        raise UserError(f"{where}: its {pref.name} cannot be read or names a file it does not hold") from error
    if cert is None:
        raise UserError(f"{where}: its {pref.name} names no client certificate (certificateLocation)")
    password = prefs.get("client_password") or entry("clientPassword")
    return replace(
        destination,
        client_cert=Path(cert),
        password=password,
        ca=Path(ca) if ca else destination.ca,
        ca_password=entry("caPassword") or password,
    )


def pytak_config(destination: CotDestination, folder: Path) -> configparser.SectionProxy:
    """pytak's settings for ``destination`` (``protocol_factory`` reads them), its certificates checked.

    For tls the client certificate, its key and the trusted CAs are read, checked and written
    as PEM into ``folder`` (the key encrypted with a password of this run's own, so no key
    lies on disk in the clear); raises UserError naming the URL and the file that is missing,
    corrupt, locked with another password, or not the key of its certificate.
    """
    settings = {"COT_URL": f"{destination.scheme}://{destination.host}:{destination.port}"}
    if destination.scheme == "udp":
        settings["COT_URL"] = f"udp+wo://{destination.host}:{destination.port}"
        settings["PYTAK_MULTICAST_TTL"] = str(destination.ttl)
        settings["PYTAK_MULTICAST_LOCAL_ADDR"] = destination.iface or "0.0.0.0"
    elif destination.scheme == "tls":
        settings.update(_tls_settings(destination, folder))
    parser = configparser.ConfigParser(interpolation=None)
    parser["cot"] = settings
    return parser["cot"]


def _tls_settings(destination: CotDestination, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    if destination.package is not None:
        destination = open_package(destination, folder / "package")
    url = destination.url
    assert destination.client_cert is not None
    certs, key = _client_certificate(destination)
    passphrase = secrets.token_urlsafe(24)
    cert_pem = folder / "client.pem"
    key_pem = folder / "client.key"
    cert_pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    key_pem.touch(mode=0o600)
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    settings = {
        "PYTAK_TLS_CLIENT_CERT": str(cert_pem),
        "PYTAK_TLS_CLIENT_KEY": str(key_pem),
        "PYTAK_TLS_CLIENT_PASSWORD": passphrase,
        "PYTAK_TLS_CLIENT_CIPHERS": "DEFAULT:!aNULL:!eNULL",  # pytak's own default, ALL, lets in anonymous ones
    }
    trusted = _trusted(destination, certs[1:])
    if trusted:
        ca_pem = folder / "ca.pem"
        ca_pem.write_bytes(
            b"".join(c if isinstance(c, bytes) else c.public_bytes(serialization.Encoding.PEM) for c in trusted)
        )
        settings["PYTAK_TLS_CLIENT_CAFILE"] = str(ca_pem)
    else:
        system = ssl.get_default_verify_paths().cafile
        if not system:
            raise UserError(f"{url}: needs ca=PATH to check the server: {destination.client_cert} holds no CA")
        settings["PYTAK_TLS_CLIENT_CAFILE"] = system
    try:
        with warnings.catch_warnings():  # pytak's refusal of TLS 1.0 and 1.1 uses deprecated flags
            warnings.simplefilter("ignore", DeprecationWarning)
            import_pytak().client_functions.get_ssl_ctx(
                configparser.ConfigParser(settings, interpolation=None)["DEFAULT"]
            )
    except (ValueError, SyntaxError, ssl.SSLError) as error:
        problem = f"the client certificate {destination.client_cert} and its key do not go together"
        raise UserError(f"{url}: {problem}") from error
    return settings


def _client_certificate(destination: CotDestination) -> tuple[list[x509.Certificate], object]:
    """The certificate, its chain and its private key."""
    path = destination.client_cert
    assert path is not None
    password = destination.password.encode() if destination.password else None
    data = _read(destination.url, path, "client certificate")
    if path.suffix.lower() in _P12_SUFFIXES:
        try:
            loaded = pkcs12.load_pkcs12(data, password)
        except ValueError as error:
            raise UserError(
                f"{destination.url}: cannot open the client certificate {path}: a wrong password, or not a PKCS#12 file"
            ) from error
        if loaded.key is None or loaded.cert is None:
            raise UserError(f"{destination.url}: the client certificate {path} holds no certificate with its key")
        return [loaded.cert.certificate, *(c.certificate for c in loaded.additional_certs)], loaded.key
    certs = _pem_certificates(destination.url, path, data, "client certificate")
    key_path = destination.client_key or path
    key_data = data if key_path == path else _read(destination.url, key_path, "client key")
    try:
        key = serialization.load_pem_private_key(key_data, password)
    except (ValueError, TypeError) as error:
        raise UserError(
            f"{destination.url}: cannot read the client key {key_path}: a wrong or missing password, "
            "or no PEM private key in it"
        ) from error
    return certs, key


def _trusted(destination: CotDestination, chain: list[x509.Certificate]) -> list[x509.Certificate | bytes]:
    """The CAs that sign the server: ca=, else the client certificate's own chain (TAK exports carry it)."""
    path = destination.ca
    if path is None:
        return chain
    data = _read(destination.url, path, "truststore")
    if path.suffix.lower() not in _P12_SUFFIXES:
        return [_checked_pem_bundle(destination.url, path, data)]
    password = destination.ca_password if destination.ca_password is not None else destination.password
    try:
        loaded = pkcs12.load_pkcs12(data, password.encode() if password else None)
    except ValueError as error:
        raise UserError(
            f"{destination.url}: cannot open the truststore {path}: a wrong password, or not a PKCS#12 file"
        ) from error
    certs = ([loaded.cert] if loaded.cert else []) + list(loaded.additional_certs)
    if not certs:
        raise UserError(f"{destination.url}: the truststore {path} holds no certificate")
    return [c.certificate for c in certs]


def _checked_pem_bundle(url: str, path: Path, data: bytes) -> bytes:
    """A PEM CA file as it is, once OpenSSL reads it (a system bundle may hold certificates cryptography rejects)."""
    try:
        ssl.create_default_context(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{url}: the truststore {path} holds no PEM certificate") from error
    return data


def _pem_certificates(url: str, path: Path, data: bytes, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise UserError(f"{url}: the {what} {path} holds no PEM certificate") from error


def _read(url: str, path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"{url}: cannot read the {what} {path} ({error.strerror or error})") from error


def import_pytak():
    """pytak, imported without its complaint that aiohttp (for transports borderwatch does not use) is missing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*aiohttp.*", category=UserWarning)
        import pytak
    return pytak
