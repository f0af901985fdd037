"""AIS sources on 127.0.0.1 and on log files: lines delivered, in order, at pace, and feeds that go away."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyais
import pytest

from missions.errors import UserError
from vision.ais.decode import AisDecoder
from vision.ais.sources import (
    FeedState,
    FileAisSource,
    TcpAisSource,
    UdpAisSource,
    open_ais_source,
    split_time,
)

LINES = [
    *pyais.encode_dict(
        {"msg_type": 1, "mmsi": 244123456, "lat": 36.1, "lon": -5.4}, talker_id="AI", sentence_type="VDM"
    ),
    *pyais.encode_dict({"msg_type": 5, "mmsi": 244123456, "shipname": "SEA BIRD"}, talker_id="AI", sentence_type="VDM"),
]


class Received:
    def __init__(self) -> None:
        self.lines: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def __call__(self, line: str, time_s: float) -> None:
        with self._lock:
            self.lines.append((line, time_s))

    def texts(self) -> list[str]:
        with self._lock:
            return [line for line, _ in self.lines]

    def wait_for(self, count: int, timeout_s: float = 2.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while len(self.texts()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.texts()


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_udp_datagram_with_several_lines_is_delivered_line_by_line() -> None:
    received = Received()
    source = UdpAisSource("127.0.0.1", 0, received)
    source.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(("\r\n".join(LINES) + "\r\n").encode(), source.address)
        assert received.wait_for(3) == LINES
        assert source.last_line_s is not None
        assert source.status(time.time()).state == FeedState.LIVE
    finally:
        started = time.monotonic()
        source.close()
        assert time.monotonic() - started < 1.5


def test_udp_lines_decode_into_reports() -> None:
    decoder = AisDecoder("udp")
    reports = []
    source = UdpAisSource("127.0.0.1", 0, lambda line, t: reports.extend(decoder.feed(line, t)))
    with source, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for line in LINES:
            sender.sendto(line.encode(), source.address)
        assert wait_until(lambda: len(reports) == 2, 2.0)
    assert {r.msg_type for r in reports} == {1, 5}


def test_udp_port_taken_is_a_user_error_naming_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"udp://127.0.0.1:{port}"):
            UdpAisSource("127.0.0.1", port, Received()).start()


class LineServer:
    """A TCP server on 127.0.0.1 that sends LINES to each client, then can drop it and come back."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(3.0)

    def serve_one(self) -> None:
        """Serve one client, then go away: stop listening first, so no retry can wait in the old backlog."""
        client, _ = self.listener.accept()
        with client:
            client.sendall(("\n".join(LINES) + "\n").encode())
            client.sendall(LINES[0][:10].encode())  # half a line, then the server goes away
            time.sleep(0.05)
            self.listener.close()

    def close(self) -> None:
        self.listener.close()


def test_tcp_reconnects_when_the_server_goes_away_and_comes_back() -> None:
    server = LineServer()
    received = Received()
    said: list[str] = []
    source = TcpAisSource("127.0.0.1", server.port, received, say=said.append, first_retry_s=0.05, max_retry_s=0.2)
    source.start()
    try:
        server.serve_one()
        assert received.wait_for(3) == LINES
        port = server.port
        time.sleep(0.6)  # several failed tries while nothing listens
        server = LineServer(port)
        server.serve_one()
        assert received.wait_for(6, timeout_s=3.0) == LINES + LINES
        assert source.connections == 2
    finally:
        source.close()
        server.close()
    lost = [m for m in said if "connection lost" in m]
    assert len(lost) >= 1 and all(f"tcp://127.0.0.1:{port}" in m for m in said)
    # One line per outage, not one per failed try.
    assert len(said) <= 4, said


def test_tcp_close_stops_within_a_second_while_retrying() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    said: list[str] = []
    source = TcpAisSource("127.0.0.1", port, Received(), say=said.append, first_retry_s=0.05, max_retry_s=5.0)
    source.start()
    time.sleep(0.3)
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.5
    assert len(said) == 1 and "cannot connect" in said[0]


def test_file_replays_in_order_at_the_recorded_pace(tmp_path: Path) -> None:
    log = tmp_path / "harbour.nmea"
    t = 1_750_000_000.0
    log.write_text(f"{t:.1f} {LINES[0]}\n{t + 0.2:.1f} {LINES[1]}\n{LINES[2]}\n\n{t + 0.4:.1f},{LINES[0]}\n")
    received = Received()
    source = FileAisSource(log, received, speed=1.0, clock=lambda: 100.0)
    started = time.monotonic()
    with source:
        assert wait_until(lambda: source.finished, 2.0)
    elapsed = time.monotonic() - started
    assert [line for line, _ in received.lines] == [LINES[0], LINES[1], LINES[2], LINES[0]]
    assert [time_s for _, time_s in received.lines] == pytest.approx([100.0, 100.2, 100.2, 100.4])
    assert 0.35 <= elapsed < 1.5
    assert source.status(1000.0).state == FeedState.ENDED


def test_file_replay_speed_and_as_fast_as_possible(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    t = 1_750_000_000
    log.write_text("".join(f"\\s:rec,c:{t + 10 * n}*00\\{LINES[0]}\n" for n in range(4)))
    for speed, at_least_s, below_s in ((100.0, 0.28, 1.0), (None, 0.0, 0.2)):
        received = Received()
        started = time.monotonic()
        with FileAisSource(log, received, speed=speed, clock=lambda: 0.0) as source:
            assert wait_until(lambda s=source: s.finished, 2.0)
        assert at_least_s <= time.monotonic() - started < below_s
        assert [time_s for _, time_s in received.lines] == [0.0, 10.0, 20.0, 30.0]
        assert received.lines[0][0].startswith("\\s:rec,c:")


@pytest.mark.parametrize(
    ("raw", "line", "time_s"),
    [
        ("1750000000.5 !AIVDM,x", "!AIVDM,x", 1750000000.5),
        ("1750000000123;!AIVDM,x", "!AIVDM,x", 1750000000.123),
        ("\\s:a,c:1750000001*7F\\!AIVDM,x", "\\s:a,c:1750000001*7F\\!AIVDM,x", 1750000001.0),
        ("!AIVDM,x\n", "!AIVDM,x", None),
    ],
)
def test_log_line_times(raw: str, line: str, time_s: float | None) -> None:
    assert split_time(raw) == (line, time_s)


def test_open_names_each_kind_and_rejects_bad_urls(tmp_path: Path) -> None:
    log = tmp_path / "a.nmea"
    log.write_text(LINES[0] + "\n")
    for url in (f"file://{log}", str(log)):
        source = open_ais_source(url, Received(), speed=None)
        try:
            assert isinstance(source, FileAisSource)
        finally:
            source.close()
    udp = open_ais_source("udp://127.0.0.1:0", Received())
    udp.close()
    assert isinstance(udp, UdpAisSource)
    for bad in ("udp://127.0.0.1", "tcp://:10110", "http://example.org/ais", "harbour.csv", "udp://h:notaport"):
        with pytest.raises(UserError, match="expected udp://HOST:PORT") as caught:
            open_ais_source(bad, Received())
        assert bad in str(caught.value)


def test_a_log_that_cannot_be_opened_is_a_user_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.nmea"
    with pytest.raises(UserError, match=r"missing\.nmea"):
        open_ais_source(str(missing), Received())


def test_status_in_words() -> None:
    source = UdpAisSource("127.0.0.1", 0, Received(), clock=lambda: 1000.0)
    source.start()
    source.close()
    assert source.status(1010.0).state == FeedState.WAITING
    assert "no line" in source.status(1100.0).text and source.status(1100.0).state == FeedState.DEAD
    source.last_line_s = 1000.0
    assert str(source.status(1005.0)) == "live"
    assert source.status(1030.0).text == "silent for 30 s"
    assert source.status(1125.0, dead_after_s=60.0).text == "dead: no line for 2m05s"
