"""Where AIS sentences come from: a UDP port, a TCP server, or a recorded log replayed.

Each source reads on its own daemon thread and hands every line to ``on_line(line, time_s)``
with the time it was received (``clock()``, or the log's own time for a replay); ``start()``
begins, ``close()`` stops it within about a second. A feed that goes quiet is not an error, so
nothing is raised after ``start()``: :meth:`AisSource.status` says whether lines are coming,
for the app to show a dead feed, and a TCP connection that drops is retried with a growing
delay (one line when it goes, one when it comes back).

:func:`open_ais_source` makes and starts the source a URL names::

    udp://HOST:PORT   listen (rtl_ais and AIS-catcher send to 10110 by convention)
    tcp://HOST:PORT   connect to a server that streams sentences (AIS-catcher, a ship's gateway)
    file://PATH       replay a log; a plain path ending .nmea, .txt or .log does the same

A log line may start with a Unix time (``1750000000.25 !AIVDM,…``), which is taken off, or
carry it in a tag block's ``c:`` field, which is left for the decoder; either paces the replay.
"""

from __future__ import annotations

import enum
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from missions.errors import UserError

OnLine = Callable[[str, float], None]
Say = Callable[[str], None]

SILENT_AFTER_S = 10.0
DEFAULT_DEAD_AFTER_S = 60.0
POLL_S = 0.2
CLOSE_WAIT_S = 1.0
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 10.0
# A line longer than this has no newline coming: a stream of binary noise, not NMEA.
MAX_LINE_CHARS = 4096
LOG_SUFFIXES = (".nmea", ".txt", ".log")

_STAMP = re.compile(r"^\s*(\d{9,13}(?:\.\d*)?)[\s,;]+(.*)$")
_TAG_TIME = re.compile(r"(?:^|,)c:(\d{9,13}(?:\.\d*)?)")


class FeedState(enum.Enum):
    WAITING = "waiting"
    LIVE = "live"
    SILENT = "silent"
    DEAD = "dead"
    ENDED = "ended"


@dataclass(frozen=True)
class FeedStatus:
    """How a feed is doing: ``state`` to act on, ``text`` to show ("silent for 25 s")."""

    state: FeedState
    text: str

    def __str__(self) -> str:
        return self.text


class AisSource:
    """What every source shares: the thread, the callback, the time of the last line, the status."""

    def __init__(self, url: str, on_line: OnLine, *, clock: Callable[[], float], say: Say | None) -> None:
        self.url = url
        self._on_line = on_line
        self._clock = clock
        self._say = say
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_s: float | None = None
        self._ended = False
        self.last_line_s: float | None = None
        self.lines = 0

    def start(self) -> None:
        self._open()
        self._started_s = self._clock()
        self._thread = threading.Thread(target=self._run_guarded, name=f"AIS {self.url}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_WAIT_S)

    def __enter__(self) -> AisSource:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def status(self, now_s: float, dead_after_s: float = DEFAULT_DEAD_AFTER_S) -> FeedStatus:
        if self._ended:
            return FeedStatus(FeedState.ENDED, f"ended after {self.lines} line(s)")
        if self.last_line_s is None:
            waited_s = now_s - (self._started_s if self._started_s is not None else now_s)
            if waited_s > dead_after_s:
                return FeedStatus(FeedState.DEAD, f"dead: no line in {_duration(waited_s)} since it opened")
            return FeedStatus(FeedState.WAITING, "waiting for the first line")
        age_s = max(0.0, now_s - self.last_line_s)
        if age_s <= SILENT_AFTER_S:
            return FeedStatus(FeedState.LIVE, "live")
        if age_s <= dead_after_s:
            return FeedStatus(FeedState.SILENT, f"silent for {_duration(age_s)}")
        return FeedStatus(FeedState.DEAD, f"dead: no line for {_duration(age_s)}")

    def _open(self) -> None:
        """Claims what the source reads (a port, a file); raises UserError naming it when it cannot."""

    def _interrupt(self) -> None:
        """Unblocks the reading thread so that it sees the stop."""

    def _run(self) -> None:
        raise NotImplementedError

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as error:  # a thread that died silently would look like a quiet sea
            self._tell(f"AIS {self.url}: stopped reading ({type(error).__name__}: {error})")
        finally:
            self._interrupt()

    def _deliver(self, line: str, time_s: float | None = None) -> None:
        line = line.strip()
        if not line:
            return
        stamp = self._clock() if time_s is None else time_s
        self.last_line_s = stamp
        self.lines += 1
        self._on_line(line, stamp)

    def _deliver_text(self, text: str) -> None:
        for line in text.splitlines():
            self._deliver(line)

    def _tell(self, message: str) -> None:
        if self._say is not None:
            self._say(message)


class UdpAisSource(AisSource):
    """Listens on ``host:port``; one datagram may hold several lines. ``port`` 0 takes a free one (see ``address``)."""

    def __init__(
        self,
        host: str,
        port: int,
        on_line: OnLine,
        *,
        clock: Callable[[], float] = time.time,
        say: Say | None = None,
    ) -> None:
        super().__init__(f"udp://{host}:{port}", on_line, clock=clock, say=say)
        self._host, self._port = host, port
        self._socket: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._socket is None:
            return self._host, self._port
        host, port = self._socket.getsockname()[:2]
        return host, port

    def _open(self) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self._host, self._port))
            except OSError:
                sock.close()
                raise
        except OSError as error:
            raise UserError(f"{self.url}: cannot listen for AIS there ({error.strerror or error})") from error
        sock.settimeout(POLL_S)
        self._socket = sock

    def _interrupt(self) -> None:
        if self._socket is not None and self._stop.is_set():
            self._socket.close()

    def _run(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                data, _ = self._socket.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self._deliver_text(data.decode("ascii", errors="replace"))


class TcpAisSource(AisSource):
    """Connects to ``host:port`` and reads lines; after a loss retries, waiting twice as long each time up to a cap."""

    def __init__(
        self,
        host: str,
        port: int,
        on_line: OnLine,
        *,
        clock: Callable[[], float] = time.time,
        say: Say | None = None,
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
    ) -> None:
        super().__init__(f"tcp://{host}:{port}", on_line, clock=clock, say=say)
        self._address = (host, port)
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self.connections = 0

    def _interrupt(self) -> None:
        with self._lock:
            if self._socket is not None and self._stop.is_set():
                self._socket.close()

    def _run(self) -> None:
        retry_s = self._first_retry_s
        tries = 0
        lost: str | None = None
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(self._address, timeout=min(2.0, self._max_retry_s))
            except OSError as error:
                tries += 1
                if lost is None:
                    lost = f"cannot connect ({error.strerror or error})" if self.connections == 0 else str(error)
                    self._tell(f"AIS {self.url}: {lost}; retrying, at most every {self._max_retry_s:g} s")
                self._stop.wait(retry_s)
                retry_s = min(self._max_retry_s, retry_s * 2.0)
                continue
            with self._lock:
                self._socket = sock
            if self._stop.is_set():
                sock.close()
                return
            self.connections += 1
            if lost is not None:
                self._tell(f"AIS {self.url}: connected after {tries} failed attempt(s)")
            retry_s, tries = self._first_retry_s, 0
            why = self._read(sock)
            sock.close()
            if self._stop.is_set():
                return
            lost = f"connection lost ({why})"
            self._tell(f"AIS {self.url}: {lost}; reconnecting, at most every {self._max_retry_s:g} s")

    def _read(self, sock: socket.socket) -> str:
        """Reads until the server goes away; returns why."""
        sock.settimeout(POLL_S)
        pending = ""
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as error:
                return error.strerror or str(error)
            if not data:
                return "the server closed it"
            pending += data.decode("ascii", errors="replace")
            *lines, pending = re.split(r"\r?\n|\r", pending)
            for line in lines:
                self._deliver(line)
            if len(pending) > MAX_LINE_CHARS:
                pending = ""
        return "closed"


class FileAisSource(AisSource):
    """Replays a recorded log at its recorded pace times ``speed``, or as fast as it can with ``speed=None``.

    Each line is delivered at the log's own time moved so that the first recorded time falls at
    ``clock()`` when the replay starts: a minute of log is a minute of ``time_s`` whatever the
    speed. A line with no time of its own takes the one before it.
    """

    def __init__(
        self,
        path: str | Path,
        on_line: OnLine,
        *,
        speed: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        say: Say | None = None,
    ) -> None:
        super().__init__(f"file://{path}", on_line, clock=clock, say=say)
        if speed is not None and not speed > 0.0:
            raise UserError(f"{self.url}: replay speed must be above 0 (or None for as fast as possible), not {speed}")
        self.path = Path(path)
        self.speed = speed
        self._file = None

    @property
    def finished(self) -> bool:
        return self._ended

    def _open(self) -> None:
        try:
            self._file = self.path.open("r", encoding="ascii", errors="replace", newline=None)
        except OSError as error:
            raise UserError(f"{self.url}: cannot open the AIS log ({error.strerror or error})") from error

    def _run(self) -> None:
        assert self._file is not None
        start_s = self._clock()
        start_wall = time.monotonic()
        first_recorded: float | None = None
        time_s = start_s
        with self._file:
            for raw in self._file:
                if self._stop.is_set():
                    return
                line, recorded = split_time(raw)
                if recorded is not None:
                    if first_recorded is None:
                        first_recorded = recorded
                    offset_s = recorded - first_recorded
                    time_s = start_s + offset_s
                    if self.speed is not None:
                        delay_s = start_wall + offset_s / self.speed - time.monotonic()
                        if delay_s > 0.0 and self._stop.wait(delay_s):
                            return
                self._deliver(line, time_s)
        self._ended = True
        self._tell(f"AIS {self.url}: replay finished ({self.lines} line(s))")


def split_time(raw: str) -> tuple[str, float | None]:
    """A log line without its leading Unix time, and that time (or a tag block's ``c:``); None when it has none."""
    line = raw.strip()
    match = _STAMP.match(line)
    if match:
        return match.group(2).strip(), _seconds(match.group(1))
    if line.startswith("\\"):
        end = line.find("\\", 1)
        if end > 0:
            tag = _TAG_TIME.search(line[1:end].split("*", 1)[0])
            if tag:
                return line, _seconds(tag.group(1))
    return line, None


def open_ais_source(
    url: str,
    on_line: OnLine,
    clock: Callable[[], float] = time.time,
    say: Say | None = None,
    *,
    speed: float | None = 1.0,
) -> AisSource:
    """The source ``url`` names, started; close() it when done. Raises UserError for a URL it cannot use."""
    source = _source_for(url.strip(), on_line, clock, say, speed)
    source.start()
    return source


def _source_for(url: str, on_line: OnLine, clock: Callable[[], float], say: Say | None, speed: float | None):
    expected = (
        "expected udp://HOST:PORT (listen), tcp://HOST:PORT (connect), "
        f"file://PATH or a path ending {', '.join(LOG_SUFFIXES)}"
    )
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("udp", "tcp"):
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname
        if port is None or host is None or parts.path not in ("", "/"):
            raise UserError(f"{url}: not an AIS source address; {expected}")
        if scheme == "udp":
            return UdpAisSource(host, port, on_line, clock=clock, say=say)
        return TcpAisSource(host, port, on_line, clock=clock, say=say)
    if scheme == "file":
        path = url[len("file://") :]
        if not path:
            raise UserError(f"{url}: no file named; {expected}")
        return FileAisSource(path, on_line, speed=speed, clock=clock, say=say)
    if not scheme and url.lower().endswith(LOG_SUFFIXES):
        return FileAisSource(url, on_line, speed=speed, clock=clock, say=say)
    raise UserError(f"{url}: not an AIS source; {expected}")


def _seconds(text: str) -> float:
    value = float(text)
    return value / 1000.0 if value > 1e11 else value  # some loggers write milliseconds


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
