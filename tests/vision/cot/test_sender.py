"""CotSender against TAK receivers on 127.0.0.1: every transport and encoding, and servers that are away."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from sitl.tak import TakReceiver, TestPki, cot_schema_problems, make_test_pki
from vision.cot.destinations import CotDestination, import_pytak, parse_destination, pytak_config
from vision.cot.model import CotEncoding, CotMessage
from vision.cot.sender import MAX_PENDING, CotSender

# pytak turns TLS 1.0 and 1.1 off with flags Python deprecates, on every TLS connection.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")

GROUP = "239.2.3.1"
FAST = {"first_retry_s": 0.05, "max_retry_s": 0.2}


def _iso(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event(uid: str, lat_deg: float = 36.13, *, stale_after_s: float = 60.0) -> CotMessage:
    """A small drone event, as CoT 2.0 wants it, with TAK's contact and track details."""
    now_s = time.time()
    root = ET.Element(
        "event", version="2.0", uid=uid, type="a-f-A-M-F-Q", how="m-g", time=_iso(now_s), start=_iso(now_s)
    )
    root.set("stale", _iso(now_s + stale_after_s))
    ET.SubElement(root, "point", lat=f"{lat_deg:.6f}", lon="-5.350000", hae="9999999.0", ce="12.5", le="9999999.0")
    detail = ET.SubElement(root, "detail")
    ET.SubElement(detail, "contact", callsign=f"{uid} callsign")
    ET.SubElement(detail, "track", course="90.0", speed="4.5")
    ET.SubElement(detail, "remarks").text = "borderwatch test"
    return CotMessage(uid, now_s + stale_after_s, ET.tostring(root, encoding="utf-8", xml_declaration=True))


class Lines:
    """What the sender says, kept for the test to read."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def all(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def about(self, text: str) -> list[str]:
        return [line for line in self.all() if text in line]


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_delivered(receiver: TakReceiver, uids: list[str], encoding: CotEncoding, lats: list[float] | None = None):
    assert receiver.wait_for(len(uids), 5.0), receiver.undecodable
    got = receiver.received
    assert [r.uid for r in got] == uids
    assert {r.encoding for r in got} == {encoding}
    assert [cot_schema_problems(r.event) for r in got] == [[]] * len(uids)
    assert [r.event.find("detail/contact").get("callsign") for r in got] == [f"{uid} callsign" for uid in uids]
    if lats is not None:
        assert [float(r.event.find("point").get("lat")) for r in got] == pytest.approx(lats)
    assert receiver.undecodable == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def tls_receiver(pki: TestPki) -> TakReceiver:
    return TakReceiver.tls(pki.server_cert_pem, pki.server_key_pem, pki.ca_pem)


@pytest.mark.parametrize("encoding", list(CotEncoding))
def test_udp_unicast_delivers_each_event_as_one_datagram(encoding):
    with TakReceiver.udp() as receiver, CotSender([parse_destination(f"{receiver.url}?format={encoding.value}")]) as s:
        for index in range(3):
            s.send(event(f"drone-{index}", 36.0 + index / 10))

        assert_delivered(receiver, ["drone-0", "drone-1", "drone-2"], encoding, [36.0, 36.1, 36.2])
        assert wait_until(lambda: s.stats()[s_url(s)].sent == 3)


def s_url(sender: CotSender) -> str:
    (url,) = sender.stats()
    return url


def multicast_reaches_the_loopback() -> bool:
    """Whether this kernel loops a group's datagrams back to a member on 127.0.0.1 (Linux does; a
    container without multicast on lo may not)."""
    try:
        with TakReceiver.udp(group=GROUP) as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            sock.sendto(event("probe").xml, (GROUP, receiver.port))
            return receiver.wait_for(1, 1.0)
    except OSError:
        return False


@pytest.mark.parametrize("encoding", list(CotEncoding))
def test_multicast_to_the_tak_group_reaches_a_member_on_the_loopback(encoding):
    if not multicast_reaches_the_loopback():
        pytest.skip("this kernel does not loop multicast back on 127.0.0.1; the socket options are tested below")
    with TakReceiver.udp(group=GROUP) as receiver:
        url = f"udp://{GROUP}:{receiver.port}?ttl=1&iface=127.0.0.1&format={encoding.value}"
        with CotSender([parse_destination(url)]) as sender:
            sender.send(event("drone-1"))
            sender.send(event("drone-2"))

            assert_delivered(receiver, ["drone-1", "drone-2"], encoding)


def test_a_multicast_socket_has_the_ttl_and_the_interface_asked_for(tmp_path):
    destination = parse_destination(f"udp://{GROUP}:6969?ttl=1&iface=127.0.0.1")

    async def options() -> tuple[int, bytes]:
        _, writer = await import_pytak().protocol_factory(pytak_config(destination, tmp_path))
        try:
            sock = writer.socket
            return sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL), sock.getsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4
            )
        finally:
            writer.close()

    ttl, interface = asyncio.run(options())

    assert ttl == 1
    assert socket.inet_ntoa(interface) == "127.0.0.1"


@pytest.mark.parametrize("encoding", list(CotEncoding))
def test_tcp_delivers_a_stream_of_events(encoding):
    with TakReceiver.tcp() as receiver, CotSender([parse_destination(f"{receiver.url}?format={encoding.value}")]) as s:
        for index in range(20):
            s.send(event(f"track-{index}"))

        assert_delivered(receiver, [f"track-{index}" for index in range(20)], encoding)
    assert receiver.connections == 1


@pytest.mark.parametrize("encoding", list(CotEncoding))
def test_tls_with_a_client_p12_is_let_in_under_its_common_name(pki, encoding):
    with tls_receiver(pki) as receiver:
        url = f"{receiver.url}?cert={pki.client_p12}&password={pki.client_password}&ca={pki.ca_pem}"
        with CotSender([parse_destination(f"{url}&format={encoding.value}")]) as sender:
            sender.send(event("drone-1"))

            assert_delivered(receiver, ["drone-1"], encoding)
    assert receiver.received[0].peer_cn == pki.client_cn
    assert receiver.refused == []


def test_tls_with_a_data_package_connects_with_what_the_package_holds(pki):
    with (
        tls_receiver(pki) as receiver,
        CotSender([parse_destination(f"{receiver.url}?package={pki.data_package_zip}&format=protobuf")]) as s,
    ):
        s.send(event("drone-1"))

        assert_delivered(receiver, ["drone-1"], CotEncoding.PROTOBUF)
    assert receiver.received[0].peer_cn == pki.client_cn


def test_a_client_of_another_ca_is_refused_and_said_once_while_the_others_go_on(pki):
    lines = Lines()
    with tls_receiver(pki) as tls, TakReceiver.tcp() as tcp:
        stranger = parse_destination(
            f"{tls.url}?cert={pki.other_ca_client_p12}&password={pki.client_password}&ca={pki.ca_pem}"
        )
        with CotSender([stranger, parse_destination(tcp.url)], say=lines, **FAST) as sender:
            sender.send(event("drone-1"))

            assert_delivered(tcp, ["drone-1"], CotEncoding.XML)
            assert wait_until(lambda: sender.stats()[stranger.url].failures >= 3)
            assert wait_until(lambda: len(tls.refused) >= 3)
            stats = sender.stats()[stranger.url]

    assert tls.received == []
    assert len(lines.all()) == 1
    assert lines.all()[0].startswith(f"CoT {stranger.url}: cannot connect (")
    assert lines.all()[0].endswith("; retrying with backoff")
    assert stats.state in ("retrying", "connecting", "connected")


def test_events_wait_while_the_server_is_down_newest_state_per_uid_in_order(pki):
    port = free_tcp_port()
    lines = Lines()
    destination = parse_destination(f"tcp://127.0.0.1:{port}")
    with CotSender([destination], say=lines, **FAST) as sender:
        for uid, lat in (("a", 1.0), ("b", 2.0), ("a", 1.5), ("c", 3.0), ("b", 2.5), ("a", 1.75)):
            sender.send(event(uid, lat))
        assert wait_until(lambda: sender.stats()[destination.url].failures >= 2)
        stats = sender.stats()[destination.url]
        assert (stats.coalesced, stats.pending, stats.sent, stats.state) == (3, 3, 0, "retrying")

        with TakReceiver.tcp(port) as receiver:
            assert_delivered(receiver, ["a", "b", "c"], CotEncoding.XML, [1.75, 2.5, 3.0])
            assert wait_until(lambda: len(lines.all()) == 2)

    assert lines.all()[:2] == [
        f"CoT {destination.url}: cannot connect (Connection refused); retrying with backoff",
        f"CoT {destination.url}: connected again, 3 events pending",
    ]


def test_an_unreachable_server_is_one_line_however_often_it_is_retried_and_one_when_back():
    port = free_tcp_port()
    lines = Lines()
    destination = parse_destination(f"tcp://127.0.0.1:{port}")
    with CotSender([destination], say=lines, **FAST) as sender:
        sender.send(event("drone-1"))
        assert wait_until(lambda: sender.stats()[destination.url].failures >= 6)
        assert len(lines.all()) == 1
        assert sender.stats()[destination.url].connects == 0

        with TakReceiver.tcp(port) as receiver:
            assert receiver.wait_for(1, 3.0)
            assert wait_until(lambda: len(lines.all()) == 2, 3.0)
            assert sender.stats()[destination.url].state == "connected"

    assert "cannot connect" in lines.all()[0] and "connected again, 1 events pending" in lines.all()[1]


def test_a_server_that_goes_away_is_said_once_and_gets_what_was_sent_meanwhile():
    lines = Lines()
    receiver = TakReceiver.tcp()
    port, destination = receiver.port, parse_destination(receiver.url)
    with CotSender([destination], say=lines, **FAST) as sender:
        sender.send(event("before"))
        assert receiver.wait_for(1, 3.0)
        time.sleep(1.2)  # long enough for the connection to count as made
        receiver.close()
        assert wait_until(lambda: len(lines.all()) == 1, 3.0)
        sender.send(event("meanwhile"))

        with TakReceiver.tcp(port) as again:
            assert_delivered(again, ["meanwhile"], CotEncoding.XML)
            assert wait_until(lambda: len(lines.all()) == 2, 3.0)

    assert (
        lines.all()[0]
        == f"CoT {destination.url}: connection lost (the server closed the connection); retrying with backoff"
    )
    assert lines.all()[1].startswith(f"CoT {destination.url}: connected again")


def test_a_bad_certificate_is_one_line_and_only_that_destination_stops(pki):
    lines = Lines()
    with TakReceiver.udp() as receiver:
        bad = parse_destination(f"tls://127.0.0.1:8089?cert={pki.client_p12}&password=hunter2")
        with CotSender([bad, parse_destination(receiver.url)], say=lines, **FAST) as sender:
            sender.send(event("drone-1"))

            assert_delivered(receiver, ["drone-1"], CotEncoding.XML)
            stats = sender.stats()[bad.url]

    assert (stats.state, stats.sent, stats.pending) == ("failed", 0, 0)
    assert len(lines.all()) == 1
    assert lines.all()[0].startswith(f"CoT {bad.url}: cannot open the client certificate {pki.client_p12}")
    assert "hunter2" not in lines.all()[0]


def test_a_multicast_interface_that_does_not_exist_is_one_line_and_nothing_else_stops():
    lines = Lines()
    with TakReceiver.udp() as receiver:
        nowhere = parse_destination(f"udp://{GROUP}:6969?iface=10.255.255.1")
        with CotSender([nowhere, parse_destination(receiver.url)], say=lines, **FAST) as sender:
            for index in range(3):
                sender.send(event(f"drone-{index}"))
                time.sleep(0.1)

            assert_delivered(receiver, ["drone-0", "drone-1", "drone-2"], CotEncoding.XML)
            assert wait_until(lambda: sender.stats()[nowhere.url].failures >= 3)

    assert len(lines.all()) == 1
    assert lines.all()[0].startswith(f"CoT {nowhere.url}: cannot send (")
    assert "retrying with backoff" in lines.all()[0]


def test_close_returns_promptly_while_retrying_or_stuck_in_a_handshake(pki):
    with socket.socket() as silent:  # accepts TCP connections and never answers a TLS hello
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        stuck = parse_destination(f"tls://127.0.0.1:{silent.getsockname()[1]}?cert={pki.client_p12}&password=atakatak")
        down = parse_destination(f"tcp://127.0.0.1:{free_tcp_port()}")
        sender = CotSender([stuck, down], first_retry_s=5.0, max_retry_s=5.0)
        sender.start()
        sender.send(event("drone-1"))
        assert wait_until(lambda: sender.stats()[down.url].failures >= 1)

        started = time.monotonic()
        sender.close(flush_s=0.5)
        took_s = time.monotonic() - started

    assert took_s < 1.5
    sender.send(event("after"))  # ignored, not raised


@pytest.mark.parametrize("encoding", list(CotEncoding))
def test_close_sends_what_is_waiting_first(encoding):
    with TakReceiver.tcp() as receiver:
        sender = CotSender([parse_destination(f"{receiver.url}?format={encoding.value}")])
        sender.start()
        for index in range(300):
            sender.send(event(f"track-{index}"))
        sender.close(flush_s=2.0)

        assert receiver.wait_for(300, 3.0)
    assert [r.uid for r in receiver.received] == [f"track-{index}" for index in range(300)]


def test_more_than_ten_thousand_objects_waiting_drop_the_oldest_said_once():
    lines = Lines()
    destination = parse_destination(f"tcp://127.0.0.1:{free_tcp_port()}")
    sender = CotSender([destination], say=lines, first_retry_s=10.0, max_retry_s=10.0)
    message = event("template")
    with sender:
        for index in range(MAX_PENDING + 5):
            sender.send(CotMessage(f"uid-{index}", message.stale_s, message.xml))
        stats = sender.stats()[destination.url]

    assert (stats.pending, stats.dropped) == (MAX_PENDING, 5)
    assert len(lines.about("dropping the oldest")) == 1


def test_events_long_stale_when_their_turn_comes_are_not_sent_but_just_stale_ones_are():
    with TakReceiver.udp() as receiver:
        destination = parse_destination(receiver.url)
        with CotSender([destination], clock=lambda: time.time() + 200.0) as sender:
            sender.send(event("long-stale", stale_after_s=60.0))
            sender.send(event("just-stale", stale_after_s=150.0))
            sender.send(event("live", stale_after_s=600.0))

            assert receiver.wait_for(2, 3.0)
            assert wait_until(lambda: sender.stats()[destination.url].expired == 1)
    assert [r.uid for r in receiver.received] == ["just-stale", "live"]


def test_send_from_many_threads_at_once_loses_nothing():
    with TakReceiver.tcp() as receiver, CotSender([parse_destination(receiver.url)]) as sender:

        def send_many(thread: int) -> None:
            for index in range(50):
                sender.send(event(f"t{thread}-{index}"))

        threads = [threading.Thread(target=send_many, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert receiver.wait_for(200, 5.0)
    assert sorted(r.uid for r in receiver.received) == sorted(f"t{t}-{i}" for t in range(4) for i in range(50))
    assert all(cot_schema_problems(r.event) == [] for r in receiver.received)


def test_events_sent_before_start_go_when_it_starts_and_the_stats_name_each_destination():
    with TakReceiver.udp() as receiver:
        destinations: list[CotDestination] = [parse_destination(receiver.url)]
        sender = CotSender(destinations)
        sender.send(event("early"))
        assert sender.stats()[receiver.url].pending == 1
        with sender:
            assert receiver.wait_for(1, 3.0)
    assert set(sender.stats()) == {receiver.url}
