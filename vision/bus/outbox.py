"""What a unit has to send and the broker has not yet acknowledged, on disk, in order.

A SQLite database (the standard library's ``sqlite3``) rather than a hand-rolled JSON Lines
file with an offset file: each ``put`` and each ``ack`` is one transaction that is either on
disk whole or not at all (``synchronous=FULL``), so a kill -9 or a power cut in the middle
leaves neither a torn line to repair nor an offset pointing past it; rows keep their order by
an ``AUTOINCREMENT`` id that is never reused, so an acknowledgement for an entry acked before
a restart can never delete a newer one. An acked entry is deleted: the outbox holds only what
is owed, and its size bound is a bound on what an outage may pile up.

One process at a time: a second would send everything twice, so ``open`` takes an exclusive
lock beside the database, as the evidence log does.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from missions.errors import UserError

DB_NAME = "outbox.sqlite3"
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a few thousand evidence records with their snapshots

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, put_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(UserError):
    """An outbox that cannot be opened (locked, unreadable) or written (full)."""


class OutboxFull(OutboxError):
    pass


@dataclass(frozen=True)
class Entry:
    id: int
    topic: str
    payload: bytes
    qos: int
    put_s: float


class Outbox:
    """Append with `put`, read the oldest with `peek`, forget with `ack` once the broker has it.

    Safe to use from several threads of one process (the pipeline puts, the publisher acks).
    ``mark`` names a number stored in the same transaction as a put, for a producer to know
    after a restart how far it got (the last evidence record it queued, say).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / f"{DB_NAME}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutboxError(f"{self.directory}: cannot open the outbox ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OutboxError(f"{self.directory}: another process is sending from this outbox") from None
        try:
            # isolation_level=None: we say where transactions begin, so each put is exactly one.
            self._db = sqlite3.connect(self.directory / DB_NAME, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._count, self._bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM entries"
            ).fetchone()
        except sqlite3.Error as exc:
            os.close(self._lock_fd)
            raise OutboxError(f"{self.directory / DB_NAME}: not a readable outbox ({exc})") from None

    def put(self, topic: str, payload: bytes, qos: int = 1, mark: tuple[str, int] | None = None) -> int:
        """Queue a message; on disk when this returns. Its id; OutboxFull when over either bound."""
        with self._lock:
            if self._count + 1 > self.max_entries or self._bytes + len(payload) > self.max_bytes:
                raise OutboxFull(
                    f"{self.directory}: outbox full ({self._count} messages, {self._bytes} bytes owed to the broker; "
                    f"bounds {self.max_entries} messages, {self.max_bytes} bytes): is the broker reachable?"
                )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT INTO entries (topic, payload, qos, put_s) VALUES (?, ?, ?, ?)",
                    (topic, payload, qos, time.time()),
                )
                if mark is not None:
                    self._db.execute("INSERT OR REPLACE INTO marks (name, value) VALUES (?, ?)", mark)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1
            self._bytes += len(payload)
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def peek(self, limit: int = 1, after_id: int = 0) -> list[Entry]:
        """The oldest ``limit`` entries not yet acked whose id is above ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, put_s FROM entries WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Entry(i, t, bytes(p), q, s) for i, t, p, q, s in rows]

    def ack(self, entry_id: int) -> None:
        """Forget an entry the broker has; ValueError for one not pending (never put, or acked already)."""
        with self._lock:
            row = self._db.execute("SELECT length(payload) FROM entries WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise ValueError(f"outbox entry {entry_id}: not pending (acked already, or never put)")
            self._db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
            self._count -= 1
            self._bytes -= row[0]

    def mark(self, name: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def __len__(self) -> int:
        return self._count

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            if self._lock_fd >= 0:
                self._db.close()
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
