"""The loopback TAK receiver: every encoding decoded however TCP cuts it, garbage counted, the schema checked."""

from __future__ import annotations

import itertools
import socket
import ssl
import time
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, datetime

import pytest
import takproto

from sitl.tak import StreamDecoder, TakReceiver, TestPki, cot_schema_problems, decode_datagram, make_test_pki
from vision.cot.model import CotEncoding

NOW_S = 1_750_000_000.0


def _iso(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_xml(uid: str, *, declaration: bool = True, lat: str = "36.130000", detail: str = "") -> bytes:
    """A small valid CoT event, as a TAK client would write it."""
    text = (
        f'<event version="2.0" uid="{uid}" type="a-u-S" how="m-i" time="{_iso(NOW_S)}" start="{_iso(NOW_S)}" '
        f'stale="{_iso(NOW_S + 30)}"><point lat="{lat}" lon="-5.350000" hae="9999999.0" ce="12.5" le="9999999.0"/>'
        f"<detail>{detail}</detail></event>"
    )
    head = "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n" if declaration else ""
    return (head + text).encode()


FULL_DETAIL = (
    '<contact callsign="Sea Bird" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>'
    '<precisionlocation geopointsrc="GPS" altsrc="DTED0"/><status battery="87"/>'
    '<takv device="drone" platform="borderwatch" os="linux" version="0.1"/><track course="271.5" speed="3.25"/>'
    '<remarks>dark vessel</remarks><borderwatch track="7" class="boat"/>'
)


def decoded(decoder: StreamDecoder, pieces: list[bytes]) -> list:
    out = []
    for piece in pieces:
        out.extend(decoder.feed(piece))
    return out


def test_an_xml_stream_cut_at_every_byte_decodes_to_the_same_events():
    stream = event_xml("a") + b"\n" + event_xml("b", declaration=False) + event_xml("c", detail=FULL_DETAIL)

    for cut in range(1, len(stream)):
        results = decoded(StreamDecoder(), [stream[:cut], stream[cut:]])
        assert [(encoding, e.get("uid")) for encoding, e in results] == [(CotEncoding.XML, u) for u in "abc"], cut
    byte_by_byte = decoded(StreamDecoder(), [stream[i : i + 1] for i in range(len(stream))])
    assert [e.get("uid") for _, e in byte_by_byte] == ["a", "b", "c"]


def test_a_protobuf_stream_cut_at_every_byte_decodes_back_to_the_same_xml():
    frames = [bytes(takproto.xml2proto(event_xml(u, detail=FULL_DETAIL), takproto.TAKProtoVer.STREAM)) for u in "ab"]
    stream = b"".join(frames)

    for cut in range(1, len(stream)):
        results = decoded(StreamDecoder(), [stream[:cut], stream[cut:]])
        assert [(encoding, e.get("uid")) for encoding, e in results] == [(CotEncoding.PROTOBUF, u) for u in "ab"]
    _, event = results[0]
    assert cot_schema_problems(event) == []
    assert event.get("time") == _iso(NOW_S) and event.get("stale") == _iso(NOW_S + 30)
    assert event.find("point").attrib == {
        "lat": "36.13",
        "lon": "-5.35",
        "hae": "9999999.0",
        "ce": "12.5",
        "le": "9999999.0",
    }
    detail = event.find("detail")
    assert detail.find("contact").attrib == {"callsign": "Sea Bird", "endpoint": "*:-1:stcp"}
    assert detail.find("__group").attrib == {"name": "Cyan", "role": "Team Member"}
    assert detail.find("precisionlocation").attrib == {"geopointsrc": "GPS", "altsrc": "DTED0"}
    assert detail.find("status").get("battery") == "87"
    assert detail.find("takv").get("platform") == "borderwatch"
    assert detail.find("track").attrib == {"course": "271.5", "speed": "3.25"}
    assert detail.find("remarks").text == "dark vessel"
    assert detail.find("borderwatch").attrib == {"track": "7", "class": "boat"}


def test_garbage_in_a_stream_is_counted_and_the_events_around_it_still_decode():
    results = decoded(StreamDecoder(), [event_xml("a") + b"\x00\x01HELLO" + event_xml("b") + b"<feed>x</feed>"])

    assert [r[1].get("uid") for r in results if isinstance(r, tuple)] == ["a", "b"]
    problems = [str(r) for r in results if not isinstance(r, tuple)]
    assert len(problems) == 2
    assert "unexpected bytes" in problems[0] and "not a CoT <event>" in problems[1]


def test_a_mesh_datagram_and_an_xml_datagram_decode_and_anything_else_is_undecodable():
    mesh = bytes(takproto.xml2proto(event_xml("m"), takproto.TAKProtoVer.MESH))

    assert decode_datagram(mesh)[0] is CotEncoding.PROTOBUF
    assert decode_datagram(event_xml("x"))[1].get("uid") == "x"
    with TakReceiver.udp() as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in (mesh, b"\xbf\x01\xbf\xff\xff garbage", b"not cot", event_xml("x"), b"\xbf\x05\x01"):
            sock.sendto(datagram, ("127.0.0.1", receiver.port))
        assert receiver.wait_for(2, 3.0)
        assert _wait(lambda: len(receiver.undecodable) == 3)

    assert [(r.encoding, r.uid) for r in receiver.received] == [(CotEncoding.PROTOBUF, "m"), (CotEncoding.XML, "x")]
    assert receiver.url.startswith("udp://127.0.0.1:")


def test_a_tcp_client_writing_in_awkward_pieces_is_decoded_and_later_clients_are_accepted_too():
    stream = event_xml("a") + bytes(takproto.xml2proto(event_xml("b"), takproto.TAKProtoVer.STREAM)) + event_xml("c")
    cuts = [0, 3, 50, 51, stream.index(b"</event>") + 4, len(event_xml("a")) + 1, len(stream) - 2, len(stream)]
    with TakReceiver.tcp() as receiver:
        for round_ in range(2):
            with socket.create_connection(("127.0.0.1", receiver.port)) as client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for start, end in itertools.pairwise(cuts):
                    client.sendall(stream[start:end])
                    time.sleep(0.01)
            assert receiver.wait_for(3 * (round_ + 1), 3.0)

    assert [r.uid for r in receiver.received] == list("abcabc")
    assert [r.encoding for r in receiver.received][:3] == [CotEncoding.XML, CotEncoding.PROTOBUF, CotEncoding.XML]
    assert receiver.connections == 2 and receiver.undecodable == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _client_context(pki: TestPki, p12) -> ssl.SSLContext:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    loaded = pkcs12.load_pkcs12(p12.read_bytes(), pki.client_password.encode())
    folder = p12.parent / f"{p12.stem}-pem"
    folder.mkdir(exist_ok=True)
    (folder / "cert.pem").write_bytes(loaded.cert.certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        loaded.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(cafile=pki.ca_pem)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_tls_lets_in_a_client_of_its_ca_under_its_common_name(pki, server_name):
    with TakReceiver.tls(pki.server_cert_pem, pki.server_key_pem, pki.ca_pem) as receiver:
        raw = socket.create_connection(("127.0.0.1", receiver.port))
        with _client_context(pki, pki.client_p12).wrap_socket(raw, server_hostname=server_name) as client:
            client.sendall(event_xml("a"))
            assert receiver.wait_for(1, 3.0)

    assert receiver.received[0].peer_cn == pki.client_cn
    assert receiver.url == f"tls://127.0.0.1:{receiver.port}"


def test_tls_turns_away_a_client_of_another_ca(pki):
    with TakReceiver.tls(pki.server_cert_pem, pki.server_key_pem, pki.ca_pem) as receiver:
        raw = socket.create_connection(("127.0.0.1", receiver.port))
        with _client_context(pki, pki.other_ca_client_p12).wrap_socket(raw, server_hostname="localhost") as client:
            try:
                client.sendall(event_xml("a"))
                client.recv(1)
            except (ssl.SSLError, OSError):
                pass
        assert _wait(lambda: len(receiver.refused) == 1)

    assert receiver.received == []


def test_the_data_package_holds_a_manifest_a_pref_and_both_p12s(pki):
    with zipfile.ZipFile(pki.data_package_zip) as package:
        names = package.namelist()
        pref = package.read(next(n for n in names if n.endswith(".pref"))).decode()

    assert "MANIFEST/manifest.xml" in names and sum(n.endswith(".p12") for n in names) == 2
    assert 'key="certificateLocation"' in pref and 'key="caLocation"' in pref


def test_close_returns_within_a_second_with_a_client_still_connected():
    receiver = TakReceiver.tcp()
    with socket.create_connection(("127.0.0.1", receiver.port)):
        assert _wait(lambda: receiver.connections == 1)
        started = time.monotonic()
        receiver.close()
        assert time.monotonic() - started < 1.1


def test_a_valid_event_has_no_schema_problems():
    assert cot_schema_problems(ET.fromstring(event_xml("a", detail=FULL_DETAIL))) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e.set("version", "1.0"), "version"),
        (lambda e: e.set("uid", ""), "no uid"),
        (lambda e: e.set("type", "A-u-S"), "type"),
        (lambda e: e.set("type", "a--S"), "type"),
        (lambda e: e.set("how", "machine"), "how"),
        (lambda e: e.set("time", "2025-06-15T15:06:40"), "time"),
        (lambda e: e.set("stale", "yesterday"), "stale"),
        (lambda e: e.set("start", _iso(NOW_S + 60)), "start is after stale"),
        (lambda e: e.set("time", _iso(NOW_S + 60)), "time is after stale"),
        (lambda e: e.remove(e.find("point")), "0 <point>"),
        (lambda e: e.append(ET.Element("point")), "2 <point>"),
        (lambda e: e.find("point").set("lat", "91"), "point lat 91 is out of range"),
        (lambda e: e.find("point").set("lon", "-180.5"), "point lon -180.5 is out of range"),
        (lambda e: e.find("point").set("ce", "-1"), "point ce -1 is out of range"),
        (lambda e: e.find("point").set("le", "1e3"), "point le '1e3' is not a decimal"),
        (lambda e: e.append(ET.Element("detail")), "more than one <detail>"),
        (lambda e: e.append(ET.Element("remarks")), "unexpected elements remarks"),
    ],
)
def test_a_schema_problem_is_named(change, problem):
    event = ET.fromstring(event_xml("a"))
    change(event)

    problems = cot_schema_problems(event)

    assert any(problem in p for p in problems), problems


def _wait(condition, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
