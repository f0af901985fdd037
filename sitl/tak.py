"""A TAK server's receiving end on the loopback, for tests, soak runs and demos, and a PKI to go with it.

:class:`TakReceiver` listens on 127.0.0.1 for what a TAK client would send: CoT XML (one
event per datagram, or a TCP stream of concatenated documents), TAK Protocol version 1 mesh
datagrams and stream frames (``0xbf``, a varint length, the message). Every event becomes a
:class:`ReceivedCot` holding it as CoT XML, protobuf turned back into the XML it stands for,
so a test reads both the same way; what it cannot decode is kept in ``undecodable`` with why.
:func:`cot_schema_problems` checks an event against the CoT event schema. :func:`make_test_pki`
writes a CA, a server and client certificates and a TAK data package for ``tls://``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from vision.cot.model import CotEncoding

POLL_S = 0.1
MAX_MESSAGE_BYTES = 1 << 20
MESH_HEADER = b"\xbf\x01\xbf"
_XML_ROOT = re.compile(rb"\s*(?:<\?xml[^>]*\?>\s*)?<([A-Za-z_][\w.:-]*)")
_TYPE = re.compile(r"^[a-z](-[A-Za-z0-9]+)*$")
_HOW = re.compile(r"^[a-z](-[a-z])*$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True)
class ReceivedCot:
    """One event as it arrived: when, how it was encoded, the event as CoT XML, the TLS client's CN."""

    arrival_s: float
    encoding: CotEncoding
    event: ET.Element
    peer_cn: str | None = None

    @property
    def uid(self) -> str:
        return self.event.get("uid", "")


class Undecodable(ValueError):
    """Bytes that are no CoT event; the message says why."""


def decode_datagram(data: bytes) -> tuple[CotEncoding, ET.Element]:
    """One datagram's event: TAK protobuf behind the mesh header, or CoT XML."""
    if data.startswith(b"\xbf"):
        if not data.startswith(MESH_HEADER):
            raise Undecodable(f"a datagram starting {data[:3].hex()} is neither the TAK mesh header nor XML")
        return CotEncoding.PROTOBUF, _from_proto(data, mesh=True)
    return CotEncoding.XML, _from_xml(data)


class StreamDecoder:
    """Splits a TCP stream into events: CoT XML documents and TAK protobuf stream frames, mixed as they come."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[CotEncoding, ET.Element] | Undecodable]:
        """The events (or the reasons a piece was skipped) that ``data`` completes."""
        self._buffer += data
        out: list[tuple[CotEncoding, ET.Element] | Undecodable] = []
        while True:
            stripped = self._buffer.lstrip()
            del self._buffer[: len(self._buffer) - len(stripped)]
            if not self._buffer:
                return out
            try:
                size = self._frame_size()
            except Undecodable as problem:
                out.append(problem)
                self._resync()
                continue
            if size is None:
                return out
            frame = bytes(self._buffer[:size])
            del self._buffer[:size]
            try:
                if frame[0] == 0xBF:
                    out.append((CotEncoding.PROTOBUF, _from_proto(frame, mesh=False)))
                else:
                    out.append((CotEncoding.XML, _from_xml(frame)))
            except Undecodable as problem:
                out.append(problem)

    def _frame_size(self) -> int | None:
        """The length of the message at the front of the buffer; None while it is incomplete."""
        buffer = self._buffer
        if buffer[0] == 0xBF:
            from google.protobuf.internal.decoder import _DecodeVarint  # takproto's own framing reads it so
            from google.protobuf.message import DecodeError

            try:
                length, start = _DecodeVarint(bytes(buffer[:11]), 1)
            except IndexError:
                return None
            except DecodeError:
                raise Undecodable("a protobuf frame with a broken length") from None
            if length > MAX_MESSAGE_BYTES:
                raise Undecodable(f"a protobuf frame of {length} bytes")
            return start + length if len(buffer) >= start + length else None
        if buffer[0] != ord("<"):
            raise Undecodable(f"unexpected bytes {bytes(buffer[:16])!r}")
        root = _XML_ROOT.match(buffer)
        if root is None:
            if len(buffer) > 1024:
                raise Undecodable(f"not an XML document: {bytes(buffer[:16])!r}")
            return None
        tag_end = buffer.find(b">", root.end())
        if tag_end > 0 and buffer[tag_end - 1] == ord("/"):
            return tag_end + 1
        close = re.compile(rb"</" + re.escape(root.group(1)) + rb"\s*>")
        found = close.search(buffer, root.end()) if tag_end > 0 else None
        if found is not None:
            return found.end()
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise Undecodable(f"an XML document longer than {MAX_MESSAGE_BYTES} bytes")
        return None

    def _resync(self) -> None:
        """Drops bytes up to the next thing that could start a message."""
        starts = [i for i in (self._buffer.find(b"<", 1), self._buffer.find(b"\xbf", 1)) if i > 0]
        del self._buffer[: min(starts) if starts else len(self._buffer)]


def _from_xml(data: bytes) -> ET.Element:
    try:
        event = ET.fromstring(data)
    except ET.ParseError as error:
        raise Undecodable(f"not XML ({error})") from None
    if event.tag != "event":
        raise Undecodable(f"XML whose root is <{event.tag}>, not a CoT <event>")
    return event


def _from_proto(data: bytes, *, mesh: bool) -> ET.Element:
    """A TAK protobuf message as the CoT XML event it stands for."""
    import takproto
    from google.protobuf.message import DecodeError

    try:
        message = takproto.parse_mesh(data) if mesh else takproto.parse_stream(data)
    except (DecodeError, EOFError, IndexError) as error:
        raise Undecodable(f"not a TAK protobuf message ({error})") from None
    if message is None or not message.HasField("cotEvent"):
        raise Undecodable("a TAK protobuf message without a cotEvent")
    cot = message.cotEvent
    event = ET.Element("event", version="2.0", uid=cot.uid, type=cot.type, how=cot.how)
    for name in ("access", "qos", "opex"):
        if getattr(cot, name):
            event.set(name, getattr(cot, name))
    for name, ms in (("time", cot.sendTime), ("start", cot.startTime), ("stale", cot.staleTime)):
        event.set(name, datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    ET.SubElement(event, "point", {name: _decimal(getattr(cot, name)) for name in ("lat", "lon", "hae", "ce", "le")})
    if cot.HasField("detail"):
        detail = ET.SubElement(event, "detail")
        proto = cot.detail
        if proto.xmlDetail:
            try:
                detail.extend(ET.fromstring(f"<detail>{proto.xmlDetail}</detail>"))
            except ET.ParseError as error:
                raise Undecodable(f"a TAK protobuf message whose xmlDetail is not XML ({error})") from None
        for field, tag, names in (
            ("contact", "contact", ("endpoint", "callsign")),
            ("group", "__group", ("name", "role")),
            ("precisionLocation", "precisionlocation", ("geopointsrc", "altsrc")),
            ("status", "status", ("battery",)),
            ("takv", "takv", ("device", "platform", "os", "version")),
            ("track", "track", ("speed", "course")),
        ):
            if proto.HasField(field):
                part = getattr(proto, field)
                values = {name: getattr(part, name) for name in names}
                attributes = {k: v if isinstance(v, str) else _decimal(v) for k, v in values.items() if v != ""}
                ET.SubElement(detail, tag, attributes)
    return event


def _decimal(value: float) -> str:
    """A number as xs:decimal writes it: never with an exponent."""
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text or "E" in text else text


class TakReceiver:
    """Listens on 127.0.0.1 (use :meth:`udp`, :meth:`tcp` or :meth:`tls`) and decodes what comes, until closed."""

    def __init__(self, scheme: str, sock: socket.socket, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.scheme = scheme
        self.host = host
        self.port: int = sock.getsockname()[1]
        self._socket = sock
        self._tls = tls
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._received: list[ReceivedCot] = []
        self._undecodable: list[str] = []
        self._refused: list[str] = []
        self.connections = 0
        sock.settimeout(POLL_S)
        target = self._read_datagrams if scheme == "udp" else self._accept
        self._threads = [threading.Thread(target=target, name=f"TAK receiver {self.url}", daemon=True)]
        self._threads[0].start()

    @classmethod
    def udp(cls, port: int = 0, group: str | None = None) -> TakReceiver:
        """Datagrams to 127.0.0.1:port, or to the multicast ``group`` joined on the loopback interface."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((group or "127.0.0.1", port))
            if group is not None:
                membership = ipaddress.IPv4Address(group).packed + socket.inet_aton("127.0.0.1")
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError:
            sock.close()
            raise
        return cls("udp", sock, host=group or "127.0.0.1")

    @classmethod
    def tcp(cls, port: int = 0) -> TakReceiver:
        return cls("tcp", _listen(port))

    @classmethod
    def tls(cls, server_cert: Path, server_key: Path, ca: Path, port: int = 0) -> TakReceiver:
        """A TLS listener that lets in only clients whose certificate ``ca`` signed."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_cert, server_key)
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
        return cls("tls", _listen(port), tls=context)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def received(self) -> list[ReceivedCot]:
        return self._snapshot(self._received)

    @property
    def undecodable(self) -> list[str]:
        return self._snapshot(self._undecodable)

    @property
    def refused(self) -> list[str]:
        """Why each TLS client that was turned away was (its certificate, mostly)."""
        return self._snapshot(self._refused)

    def _snapshot(self, items: list) -> list:
        with self._changed:
            return list(items)

    def wait_for(self, until: int | Callable[[list[ReceivedCot]], bool], timeout_s: float = 5.0) -> bool:
        """Whether ``until`` events (or events for which ``until(received)`` holds) came within ``timeout_s``."""
        done = (lambda got: len(got) >= until) if isinstance(until, int) else until
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done(list(self._received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, POLL_S))
            return True

    def close(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + 1.0
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._socket.close()

    def __enter__(self) -> TakReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _record(self, results: list, peer_cn: str | None = None) -> None:
        now = time.time()
        with self._changed:
            for result in results:
                if isinstance(result, Undecodable):
                    self._undecodable.append(str(result))
                else:
                    self._received.append(ReceivedCot(now, result[0], result[1], peer_cn))
            self._changed.notify_all()

    def _read_datagrams(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                result: tuple | Undecodable = decode_datagram(data)
            except Undecodable as problem:
                result = problem
            self._record([result])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), name=f"TAK client of {self.url}", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        peer_cn = None
        try:
            if self._tls is not None:
                conn.settimeout(1.0)
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except OSError as error:
                    with self._changed:
                        self._refused.append(str(error))
                    return
                subject = dict(item[0] for item in conn.getpeercert().get("subject", ()))
                peer_cn = subject.get("commonName")
            conn.settimeout(POLL_S)
            decoder = StreamDecoder()
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self._record(decoder.feed(data), peer_cn)
        finally:
            conn.close()


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
    except OSError:
        sock.close()
        raise
    return sock


def cot_schema_problems(event: ET.Element) -> list[str]:
    """What in ``event`` breaks the CoT event schema (MITRE's Event.xsd, CoT 2.0); empty when nothing does."""
    problems: list[str] = []
    if event.tag != "event":
        return [f"root is <{event.tag}>, not <event>"]
    if event.get("version") != "2.0":
        problems.append(f"version is {event.get('version')!r}, not '2.0'")
    if not event.get("uid"):
        problems.append("no uid")
    if not _TYPE.match(event.get("type", "")):
        problems.append(f"type {event.get('type')!r} is not hyphen-separated atoms")
    if not _HOW.match(event.get("how", "")):
        problems.append(f"how {event.get('how')!r} is not hyphen-separated letters")
    times = {}
    for name in ("time", "start", "stale"):
        text = event.get(name, "")
        if _DATETIME.match(text):
            times[name] = datetime.fromisoformat(text[:-1] + "+00:00")
        else:
            problems.append(f"{name} {text!r} is not a UTC xs:dateTime")
    if len(times) == 3:
        if times["start"] > times["stale"]:
            problems.append("start is after stale")
        if times["time"] > times["stale"]:
            problems.append("time is after stale")
    points = event.findall("point")
    if len(points) != 1:
        problems.append(f"{len(points)} <point> elements, not one")
    for point in points[:1]:
        limits = {"lat": (-90, 90), "lon": (-180, 180), "hae": None, "ce": (0, None), "le": (0, None)}
        for name, bounds in limits.items():
            text = point.get(name, "")
            if not _DECIMAL.match(text):
                problems.append(f"point {name} {text!r} is not a decimal")
            elif bounds and not (bounds[0] <= Decimal(text) and (bounds[1] is None or Decimal(text) <= bounds[1])):
                problems.append(f"point {name} {text} is out of range")
    if len(event.findall("detail")) > 1:
        problems.append("more than one <detail>")
    others = sorted({child.tag for child in event} - {"point", "detail"})
    if others:
        problems.append(f"unexpected elements {', '.join(others)}")
    return problems


@dataclass(frozen=True)
class TestPki:
    """Files for tls:// tests; one password opens every .p12 (TAK's packages do the same)."""

    ca_pem: Path
    server_cert_pem: Path
    server_key_pem: Path
    client_p12: Path
    client_password: str
    client_cn: str
    other_ca_client_p12: Path
    truststore_p12: Path
    data_package_zip: Path

    __test__ = False  # not a pytest test class, whatever its name


def make_test_pki(folder: Path, *, client_cn: str = "borderwatch-test-client", password: str = "atakatak") -> TestPki:
    """A CA, a server certificate for 127.0.0.1 and localhost, clients of it and of a stranger CA, and a package."""
    import warnings

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*aiohttp.*", category=UserWarning)
        from pytak.onboarding_packages import build_connection_data_package_zip, build_connection_manifest_xml

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)

    def issue(cn: str, issuer=None, *, usage=None, names=()):
        """A key and its certificate, signed by ``issuer`` (a CA's certificate and key), or a CA's own."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        signer, signer_key = issuer or (None, key)
        extensions = [(x509.BasicConstraints(ca=issuer is None, path_length=None), True)]
        extensions += [(x509.ExtendedKeyUsage([usage]), False)] if usage else []
        extensions += [(x509.SubjectAlternativeName(list(names)), False)] if names else []
        builder = x509.CertificateBuilder(signer.subject if signer else name, name, key.public_key())
        builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now)
        builder = builder.not_valid_after(now + timedelta(days=30))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer_key, hashes.SHA256()), key

    ca, stranger_ca = issue("borderwatch test CA"), issue("a stranger's CA")
    server_names = (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"))
    server = issue("localhost", ca, usage=ExtendedKeyUsageOID.SERVER_AUTH, names=server_names)
    client = issue(client_cn, ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = issue("stranger", stranger_ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    locked = serialization.BestAvailableEncryption(password.encode())

    def p12(name, key_and_cert, cas) -> bytes:
        cert, key = key_and_cert or (None, None)
        return pkcs12.serialize_key_and_certificates(name, key, cert, [c for c, _ in cas], locked)

    files = {
        "ca.pem": ca[0].public_bytes(serialization.Encoding.PEM),
        "server.pem": server[0].public_bytes(serialization.Encoding.PEM),
        "server.key": server[1].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "client.p12": p12(client_cn.encode(), client, [ca]),
        "stranger.p12": p12(b"stranger", stranger, [stranger_ca]),
        "truststore.p12": p12(None, None, [ca]),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    # The keys TAK Server's packages use and pytak's load_preferences reads.
    entries = {"caLocation": "cert/caCert.p12", "caPassword": password, "clientPassword": password}
    entries["certificateLocation"] = "cert/clientCert.p12"
    pref = (
        '<?xml version="1.0" standalone="yes"?>\n<preferences>\n<preference version="1" name="cot_streams">\n'
        '<entry key="count" class="class java.lang.Integer">1</entry>\n'
        '<entry key="connectString0" class="class java.lang.String">127.0.0.1:8089:ssl</entry>\n</preference>\n'
        '<preference version="1" name="com.atakmap.app_preferences">\n'
        + "".join(f'<entry key="{k}" class="class java.lang.String">{v}</entry>\n' for k, v in entries.items())
        + "</preference>\n</preferences>\n"
    )
    manifest = build_connection_manifest_xml(uid="borderwatch-test", display_name="borderwatch test")
    package = folder / "borderwatch-test-package.zip"
    package.write_bytes(
        build_connection_data_package_zip(
            config_pref_xml=pref,
            manifest_xml=manifest,
            client_p12_path=str(folder / "client.p12"),
            trust_p12_path=str(folder / "truststore.p12"),
        )
    )
    paths = [folder / name for name in ("ca.pem", "server.pem", "server.key", "client.p12")]
    return TestPki(*paths, password, client_cn, folder / "stranger.p12", folder / "truststore.p12", package)
