"""CotSender: CoT events to every destination, through outages, without holding anyone up.

One daemon thread runs one asyncio loop with a task per destination, connected through
pytak (``protocol_factory``: UDP unicast and multicast, TCP, TLS with a client certificate).
:meth:`CotSender.send` only queues: each destination keeps the events it has not sent yet,
one per uid, since a CoT event is the whole state of its object and a newer one makes the
older worthless (it takes the older one's place in the queue). So a destination that is down
for an hour gets, when it comes back, each object's latest state once, not an hour of them.

What goes wrong is said in one line and does not stop anything else: a destination that
cannot be reached (its first failure says so, then it retries, waiting twice as long each
time up to ``max_retry_s``, and says so again when it is back), a certificate or data package
that cannot be used (that destination sends nothing; the others go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from missions.errors import UserError
from vision.cot.destinations import CotDestination, import_pytak, pytak_config
from vision.cot.model import CotEncoding, CotMessage

Say = Callable[[str], None]

MAX_PENDING = 10_000  # distinct uids waiting per destination; beyond, the oldest go
BATCH = 100
CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 15.0
# A connection counts as made once it has lasted this long: a TLS server that refuses the
# client's certificate hangs up only after the handshake seems to succeed.
STABLE_S = 1.0
# An event stale for longer than this when its turn comes is not sent: a TAK screen would only
# grey it out. One just gone stale still goes: the events that end a track are stale from the start.
EXPIRED_AFTER_S = 60.0


# The TLS alerts of a server that does not take the client's certificate.
_REFUSED_CERTIFICATE = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "CERTIFICATE_UNKNOWN", "ACCESS_DENIED")


@dataclass(frozen=True)
class DestinationStats:
    """How one destination is doing. ``state`` is 'connecting', 'connected', 'retrying' or 'failed'.

    ``coalesced`` counts events replaced by a newer one of the same uid before they went,
    ``dropped`` those given up (the queue full, too big, not encodable), ``expired`` those
    stale for over ``EXPIRED_AFTER_S`` when their turn came (after an outage), ``failures``
    the connection attempts that failed and the connections lost.
    """

    sent: int
    coalesced: int
    dropped: int
    expired: int
    pending: int
    connects: int
    failures: int
    state: str
    last_error: str | None


class _Link:
    """One destination's queue, counters and state; the queue is shared with send()'s callers."""

    def __init__(self, destination: CotDestination) -> None:
        self.destination = destination
        self.config = None
        self.pending: OrderedDict[str, CotMessage] = OrderedDict()
        self.wake = asyncio.Event()
        self.sent = self.coalesced = self.dropped = self.expired = self.connects = self.failures = 0
        self.state = "connecting"
        self.last_error: str | None = None
        self.outage = False
        self.overflowing = False

    @property
    def url(self) -> str:
        return self.destination.url


class CotSender:
    """Sends CoT events to ``destinations``; ``start()``, ``send()`` from any thread, ``close()``."""

    def __init__(
        self,
        destinations: Sequence[CotDestination],
        *,
        say: Say | None = None,
        first_retry_s: float = 1.0,
        max_retry_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        urls = [d.url for d in destinations]
        for url in urls:
            if urls.count(url) > 1:
                raise UserError(f"{url}: given twice")
        self._links = [_Link(d) for d in destinations]
        self._say = say
        self._first_retry_s = first_retry_s
        self._max_retry_s = max(max_retry_s, first_retry_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._folder: tempfile.TemporaryDirectory | None = None
        self._closing = asyncio.Event()
        self._closed = False
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        """Checks every destination's certificates (one line for each that cannot be used) and starts sending."""
        if self._thread is not None:
            raise RuntimeError("CotSender already started")
        self._folder = tempfile.TemporaryDirectory(prefix="borderwatch-cot-")
        for index, link in enumerate(self._links):
            try:
                link.config = pytak_config(link.destination, Path(self._folder.name) / str(index))
            except UserError as error:
                with self._lock:
                    link.state, link.last_error = "failed", str(error)
                    link.pending.clear()
                self._tell(f"CoT {error}; sending nothing there")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="CoT sender", daemon=True)
        self._thread.start()

    def send(self, message: CotMessage) -> None:
        """Queues ``message`` for every destination; returns at once, never raises."""
        if self._closed:
            return
        overflowed: list[str] = []
        with self._lock:
            for link in self._links:
                if link.state == "failed":
                    continue
                if message.uid in link.pending:
                    link.pending[message.uid] = message
                    link.coalesced += 1
                    continue
                link.pending[message.uid] = message
                if len(link.pending) > MAX_PENDING:
                    link.pending.popitem(last=False)
                    link.dropped += 1
                    if not link.overflowing:
                        link.overflowing = True
                        overflowed.append(link.url)
        for url in overflowed:
            self._tell(f"CoT {url}: more than {MAX_PENDING} objects waiting to be sent; dropping the oldest")
        self._call(self._wake_all)

    def stats(self) -> dict[str, DestinationStats]:
        with self._lock:
            return {
                link.url: DestinationStats(
                    link.sent,
                    link.coalesced,
                    link.dropped,
                    link.expired,
                    len(link.pending),
                    link.connects,
                    link.failures,
                    link.state,
                    link.last_error,
                )
                for link in self._links
            }

    def close(self, flush_s: float = 2.0) -> None:
        """Sends what is waiting for up to ``flush_s``, then stops; returns within about ``flush_s`` + 1 s."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._call(self._begin_close, flush_s)
            self._thread.join(flush_s + 1.0)
        if self._folder is not None:
            self._folder.cleanup()

    def __enter__(self) -> CotSender:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # The loop's side.

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._tasks = [asyncio.create_task(self._drive(link)) for link in self._links if link.state != "failed"]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Readers and waits cancelled on the way out finish here, not as "Task was destroyed" at exit.
        left = asyncio.all_tasks() - {asyncio.current_task()}
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=0.5)

    def _call(self, callback: Callable, *args: object) -> None:
        """Runs ``callback`` on the loop, from any thread; nothing when the loop is not running."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # closed already: nothing left to wake
            self._loop.call_soon_threadsafe(callback, *args)

    def _wake_all(self) -> None:
        for link in self._links:
            link.wake.set()

    def _begin_close(self, flush_s: float) -> None:
        self._closing.set()
        self._wake_all()
        assert self._loop is not None
        self._loop.call_later(flush_s, lambda: [task.cancel() for task in self._tasks])

    async def _drive(self, link: _Link) -> None:
        """Connects, sends, and after a failure waits and connects again, until closed."""
        pytak = import_pytak()
        retry_s = self._first_retry_s
        while not (self._closing.is_set() and not link.pending):
            self._set_state(link, "retrying" if link.outage else "connecting")
            try:
                reader, writer = await asyncio.wait_for(pytak.protocol_factory(link.config), CONNECT_TIMEOUT_S)
            except Exception as error:  # whatever stops a connection is an outage to wait out
                self._fail(link, f"{self._cannot(link)} ({_why(error)})")
                if not await self._pause(retry_s):
                    return
                retry_s = min(self._max_retry_s, retry_s * 2.0)
                continue
            with self._lock:
                link.connects += 1
                link.state = "connected"
            try:
                why, stable = await self._pump(link, reader, writer)
            finally:
                await _close(writer)
            if why is None:
                return
            if stable:
                self._fail(link, f"connection lost ({why})")
                retry_s = self._first_retry_s
            else:
                self._fail(link, f"{self._cannot(link)} ({why})")
                if not await self._pause(retry_s):
                    return
                retry_s = min(self._max_retry_s, retry_s * 2.0)

    async def _pump(self, link: _Link, reader, writer) -> tuple[str | None, bool]:
        """Sends until the connection fails (why, and whether it had lasted) or, closing, nothing is left."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = len(link.pending)
        watch = asyncio.create_task(_watch(reader)) if reader is not None else None
        try:
            while True:
                stable = loop.time() - started >= STABLE_S
                if stable and link.outage:
                    link.outage = False
                    self._tell(f"CoT {link.url}: connected again, {waiting} events pending")
                if watch is not None and watch.done():
                    return watch.result(), stable
                link.wake.clear()
                batch = self._take(link)
                if batch:
                    try:
                        await self._write(link, writer, batch)
                    except Exception as error:  # pytak's closed transports raise their own kind
                        self._requeue(link, batch)
                        if watch is not None:  # the server's own word (a TLS alert) says more than the write's
                            await asyncio.wait([watch], timeout=0.2)
                        return (watch.result() if watch is not None and watch.done() else _why(error)), stable
                    continue
                if self._closing.is_set():
                    return None, stable
                waits = [asyncio.ensure_future(link.wake.wait())] + ([watch] if watch is not None else [])
                timeout = None if stable else STABLE_S - (loop.time() - started)
                try:
                    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waits[0].cancel()
        finally:
            if watch is not None:
                watch.cancel()

    def _take(self, link: _Link) -> list[CotMessage]:
        with self._lock:
            batch = [link.pending.popitem(last=False)[1] for _ in range(min(BATCH, len(link.pending)))]
            if not link.pending:
                link.overflowing = False
        return batch

    def _requeue(self, link: _Link, batch: list[CotMessage]) -> None:
        """Puts back, at the front, what a failed write may not have delivered, unless newer states came since."""
        with self._lock:
            for message in reversed(batch):
                if message.uid not in link.pending and len(link.pending) < MAX_PENDING:
                    link.pending[message.uid] = message
                    link.pending.move_to_end(message.uid, last=False)

    async def _write(self, link: _Link, writer, batch: list[CotMessage]) -> None:
        now_s = self._clock()
        payloads = []
        for message in batch:
            if message.stale_s < now_s - EXPIRED_AFTER_S:
                with self._lock:
                    link.expired += 1
                continue
            try:
                payloads.append(_encode(message, link.destination))
            except Exception as error:  # one event that cannot be encoded is not an outage
                with self._lock:
                    link.dropped += 1
                    link.last_error = f"cannot encode {message.uid} ({_why(error)})"
        too_big = 0
        if link.destination.scheme == "udp":
            for payload in payloads:
                too_big += not await _send_datagram(writer, payload)
        elif payloads:
            writer.write(b"".join(payloads))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        with self._lock:
            link.sent += len(payloads) - too_big
            if too_big:
                link.dropped += too_big
                link.last_error = f"{too_big} event(s) too big for one datagram"

    def _fail(self, link: _Link, problem: str) -> None:
        """Records ``problem``; says it when it begins an outage."""
        with self._lock:
            link.last_error = problem
            link.state = "retrying"
            link.failures += 1
            begins = not link.outage
            link.outage = True
        if begins:
            self._tell(f"CoT {link.url}: {problem}; retrying with backoff")

    def _cannot(self, link: _Link) -> str:
        return "cannot send" if link.destination.scheme == "udp" else "cannot connect"

    def _set_state(self, link: _Link, state: str) -> None:
        with self._lock:
            link.state = state

    async def _pause(self, delay_s: float) -> bool:
        """Waits ``delay_s`` before the next attempt; False when closing (nothing to wait for then)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay_s)
        return not self._closing.is_set()

    def _tell(self, line: str) -> None:
        if self._say is not None:
            with contextlib.suppress(Exception):  # a broken say must not stop the sending
                self._say(line)


def _encode(message: CotMessage, destination: CotDestination) -> bytes:
    if destination.encoding is CotEncoding.XML:
        return message.xml
    import takproto

    version = takproto.TAKProtoVer.MESH if destination.scheme == "udp" else takproto.TAKProtoVer.STREAM
    return bytes(takproto.xml2proto(message.xml, version))


async def _send_datagram(writer, payload: bytes) -> bool:
    """Sends one datagram; False when it is too big for one.

    A refusal is an earlier datagram's ICMP answer (nobody listens there yet): not an outage.
    """
    for _ in range(3):
        try:
            await writer.send(payload)
            getattr(writer, "exception", None)  # raises what this send's sendto() ran into
            return True
        except ConnectionRefusedError:
            continue
        except OSError as error:
            if error.errno == errno.EMSGSIZE:
                return False
            raise
    return True


async def _watch(reader) -> str:
    """Reads (and discards) what the server sends until it hangs up; returns why."""
    try:
        while True:
            if not await reader.read(65536):
                return "the server closed the connection"
    except OSError as error:
        return _why(error)


async def _close(writer) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        wait_closed = getattr(writer, "wait_closed", None)
        if wait_closed is not None:
            await asyncio.wait_for(wait_closed(), 0.5)


def _why(error: BaseException) -> str:
    """An error in a few words, with pytak's advice to turn verification off left out."""
    cause = error.__cause__
    if isinstance(error, SyntaxError) and isinstance(cause, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted: {cause.verify_message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        if any(alert in reason for alert in _REFUSED_CERTIFICATE):
            return f"the server refused the client certificate: {reason}"
        return reason
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)  # asyncio's "Connect call failed ('…', port)" says less
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
