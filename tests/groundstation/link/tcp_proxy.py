"""A TCP proxy on loopback that a test can cut and restore, to play an onboard radio link.

Clients connect to the proxy's address and are relayed to the target, one thread per link.
``cut`` starts an outage, of one of two kinds:

- ``Outage.SILENCE``, a drone out of radio range: nothing passes either way and no socket is
  closed, so each end finds out only by its own keepalive; a client that connects meanwhile
  is accepted and hears nothing back;
- ``Outage.RESET``, the other end's host gone: every link is reset and so is each new
  connection, at once.

``restore`` ends it: the links that lived through it are closed (their ends gave up on them,
or will), and new connections are relayed again. Bounded: at most ``max_links`` links at once,
and after ``lifetime_s`` the proxy closes everything and stops by itself, so a test that dies
half-way leaves no thread behind for long.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import struct
import threading
import time

_POLL_S = 0.1
_CHUNK = 65536


class Outage(enum.Enum):
    SILENCE = "silence"
    RESET = "reset"


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST rather than a FIN: the peer sees ECONNRESET, as from a host that is gone."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client's connection and ours to the target, relayed until either end closes."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client, self.upstream = client, upstream
        self.silenced = False  # set by a SILENCE outage; the link then dies at restore
        self.done = threading.Event()

    def close(self) -> None:
        self.done.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                _reset(sock)

    def relay(self) -> None:
        open_ends = [s for s in (self.client, self.upstream) if s is not None]
        try:
            while open_ends and not self.done.is_set():
                try:
                    readable, _, _ = select.select(open_ends, [], [], _POLL_S)
                except (OSError, ValueError):  # closed under us by cut or restore
                    return
                for sock in readable:
                    try:
                        data = sock.recv(_CHUNK)
                    except OSError:
                        data = b""
                    if self.silenced:
                        # Swallowed. An end that closes now closes only itself: across a dead
                        # radio link the other end would not hear of it either.
                        if not data:
                            open_ends.remove(sock)
                        continue
                    other = self.upstream if sock is self.client else self.client
                    if not data or other is None:
                        return
                    try:
                        other.sendall(data)
                    except OSError:
                        return
        finally:
            # A silenced link stays open for restore to drop, unless both its ends gave up first.
            if not self.silenced or not open_ends:
                self.close()


class TcpProxy:
    """``127.0.0.1:<port>`` relayed to ``target``, from ``start`` (or ``with``) to ``close``."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_links: int = 32,
        lifetime_s: float = 300.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.target = target
        self.max_links, self.lifetime_s, self.connect_timeout_s = max_links, lifetime_s, connect_timeout_s
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(_POLL_S)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._outage: Outage | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.accepted = 0  # connections the proxy took, relayed or not

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    def is_cut(self) -> bool:
        with self._lock:
            return self._outage is not None

    def start(self) -> TcpProxy:
        thread = threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def cut(self, outage: Outage = Outage.SILENCE) -> None:
        with self._lock:
            self._outage = outage
            for link in self._links:
                if outage is Outage.SILENCE:
                    link.silenced = True
                else:
                    link.close()

    def restore(self) -> None:
        with self._lock:
            self._outage = None
            for link in self._links:
                if link.silenced:
                    link.close()
            self._links = [link for link in self._links if not link.done.is_set()]

    def close(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(timeout=2 * _POLL_S + self.connect_timeout_s)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        deadline = time.monotonic() + self.lifetime_s
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                self.accepted += 1
                self._take(client)
        finally:
            self._listener.close()
            with self._lock:
                for link in self._links:
                    link.close()
                self._links.clear()

    def _take(self, client: socket.socket) -> None:
        with self._lock:
            outage = self._outage
            self._links = [link for link in self._links if not link.done.is_set()]
            full = len(self._links) >= self.max_links
        if outage is Outage.RESET or full:
            _reset(client)
            return
        upstream = None
        if outage is None:
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout_s)
            except OSError:
                _reset(client)  # the target is down: the client hears so, as it would without us
                return
            upstream.settimeout(None)
        link = _Link(client, upstream)
        with self._lock:
            # Accepted during a silence (or the outage began while we connected): it stays open,
            # hears nothing, and is dropped at restore.
            link.silenced = self._outage is Outage.SILENCE or upstream is None
            if self._outage is Outage.RESET:
                link.close()
                return
            self._links.append(link)
        thread = threading.Thread(target=link.relay, name=f"tcp-proxy-{self.port}-link", daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
