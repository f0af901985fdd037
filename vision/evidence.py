"""Tamper-evident evidence: an append-only, hash-chained JSON-lines log with a JPEG per alert.

Layout of an evidence directory::

    DIR/evidence.jsonl                     one record per line, oldest first
    DIR/snapshots/<seq:08d>-<sha[:16]>.jpg  the JPEG a record names, its SHA-256 in the record
    DIR/evidence.jsonl.torn-<n>            a half-written final line moved aside after a crash
    DIR/torn-snapshots/                    snapshots written for a record that never made it to the log

Each line is the canonical JSON (sorted keys, no spaces, UTF-8) of::

    {"seq", "time", "kind", "payload", "snapshot", "snapshot_sha256", "prev_sha256", "sha256"}

``sha256`` is over the canonical JSON of the record without ``sha256`` and ``signature``; ``prev_sha256``
is the previous line's ``sha256`` (64 zeros for the first). So an edit changes a record's hash, and an edit that also
recomputes the hash breaks the next record's ``prev_sha256``; a deletion, insertion or reordering breaks
the chain where it happened. What a chain alone cannot show is the loss of the newest records: cutting
the file at a line boundary leaves a shorter, valid chain. Keep the last ``sha256`` somewhere else (a
report, the ground station) when that matters.

Signatures: a log opened with a `vision.signing.Signer` adds ``signer`` (its key id, inside the hash)
and ``signature`` (Ed25519 over the ASCII of ``sha256``, base64) to every record, so a record edited
and rehashed by someone without the key no longer verifies. It also signs the chain's **head** (the
newest record's seq and sha256) into ``DIR/heads.jsonl`` when it closes and every few minutes while
records come: records cut off the end are caught against the last signed head. A record without
``signer`` is unsigned (a log kept before signing existed).

Crash safety: the snapshot is written, fsynced and renamed into place before its record; the record is
one ``os.write`` on an ``O_APPEND`` descriptor followed by ``fsync``. A kill -9 therefore leaves at worst
a final line without its newline, which :meth:`EvidenceLog.open` moves aside before appending and
:func:`verify` reports as ``torn_tail`` without failing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from missions.errors import UserError
from vision.signing import Signer

log = logging.getLogger(__name__)

LOG_NAME = "evidence.jsonl"
HEADS_NAME = "heads.jsonl"
HEAD_EVERY_S = 120.0  # a head is signed at least this often while records come
SNAPSHOTS = "snapshots"
TORN_SNAPSHOTS = "torn-snapshots"
ZERO_SHA256 = "0" * 64
JPEG_MAGIC = b"\xff\xd8"

_FIELDS = ("seq", "time", "kind", "payload", "snapshot", "snapshot_sha256", "prev_sha256", "sha256")
_SIGNED = ("signer", "signature")  # present together, or not at all (an unsigned record)
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SNAPSHOT_NAME = re.compile(r"(\d{8})-[0-9a-f]{16}\.jpg")
_TAIL_CHUNK = 64 * 1024


class EvidenceError(UserError):
    """An evidence directory that cannot be opened or read: missing, locked, or its last record unreadable."""


def canonical_json(value: Any) -> str:
    """The one serialisation hashes are taken over; other tools can reproduce it byte for byte."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_sha256(body: Mapping[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON, its own ``sha256`` and ``signature`` fields left out."""
    fields = {k: v for k, v in body.items() if k not in ("sha256", "signature")}
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EvidenceRecord:
    seq: int
    time: str  # ISO 8601, UTC
    kind: str
    payload: Mapping[str, Any]
    snapshot: str | None  # file name under snapshots/
    snapshot_sha256: str | None
    prev_sha256: str
    sha256: str
    signer: str | None = None  # the key id that signed it; None: unsigned
    signature: str | None = None  # Ed25519 over the ASCII of sha256, base64

    def to_json(self) -> dict[str, Any]:
        body = {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "payload": _thaw(self.payload),
            "snapshot": self.snapshot,
            "snapshot_sha256": self.snapshot_sha256,
            "prev_sha256": self.prev_sha256,
            "sha256": self.sha256,
        }
        if self.signer is not None:
            body["signer"], body["signature"] = self.signer, self.signature
        return body

    @classmethod
    def from_json(cls, obj: Any) -> EvidenceRecord:
        """A record from a parsed line; ValueError saying what is wrong with it (hashes are not checked)."""
        problem = _shape_problem(obj)
        if problem:
            raise ValueError(problem)
        signed = {k: obj[k] for k in _SIGNED if k in obj}
        return cls(**{k: obj[k] for k in _FIELDS if k != "payload"}, payload=_freeze(obj["payload"]), **signed)


def _shape_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not a JSON object"
    missing = [k for k in _FIELDS if k not in obj]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    extra = sorted(set(obj) - set(_FIELDS) - set(_SIGNED))
    if extra:
        return f"unexpected field(s) {', '.join(extra)}"
    if ("signer" in obj) != ("signature" in obj):
        return "signer and signature must both be there or both be absent"
    if "signer" in obj:
        if not isinstance(obj["signer"], str) or not _KEY_ID.fullmatch(obj["signer"]):
            return "signer is not a key id (16 hex digits)"
        if not isinstance(obj["signature"], str) or not obj["signature"]:
            return "signature is not a base64 string"
    if type(obj["seq"]) is not int or obj["seq"] < 1:
        return "seq is not a positive integer"
    for key in ("time", "kind"):
        if not isinstance(obj[key], str):
            return f"{key} is not a string"
    if not isinstance(obj["payload"], dict):
        return "payload is not an object"
    for key in ("prev_sha256", "sha256"):
        if not isinstance(obj[key], str) or not _HEX64.fullmatch(obj[key]):
            return f"{key} is not a SHA-256 hex digest"
    snap, snap_sha = obj["snapshot"], obj["snapshot_sha256"]
    if (snap is None) != (snap_sha is None):
        return "snapshot and snapshot_sha256 must both be set or both be null"
    if snap is not None:
        if not isinstance(snap, str) or not _SNAPSHOT_NAME.fullmatch(snap):
            return "snapshot is not a snapshot file name"
        if not isinstance(snap_sha, str) or not _HEX64.fullmatch(snap_sha):
            return "snapshot_sha256 is not a SHA-256 hex digest"
    return None


def _freeze(value: Any) -> Any:
    # Records cross threads (detector workers to the alert sinks), so their payload is read-only all the way down.
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def _iso_utc(time_s: float) -> str:
    return dt.datetime.fromtimestamp(time_s, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _owner_only_folder(folder: Path) -> None:
    """Make ``folder`` (and its parents) and leave it readable by its owner only: evidence names places and people."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        try:
            folder.chmod(0o700)
        except OSError as exc:
            log.warning("%s: cannot make the evidence folder readable by its owner only: %s", folder, exc)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _tail(fd: int, size: int) -> tuple[bytes, int]:
    """The last complete line (b"" if none) and the offset just past it, reading backwards from the end."""
    buf, pos = b"", size
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        end = buf.rfind(b"\n")
        if end >= 0:
            start = buf.rfind(b"\n", 0, end)
            if start >= 0 or pos == 0:
                return buf[start + 1 : end + 1], pos + end + 1
    return b"", 0


@dataclass(frozen=True)
class SignedHead:
    """The chain's newest record as its signer vouched for it at ``time``: what proves nothing was
    cut off the end. ``signature`` is over the canonical JSON of the other fields."""

    seq: int
    sha256: str
    time: str
    signer: str
    signature: str

    @classmethod
    def make(cls, seq: int, sha256: str, signer: Signer) -> SignedHead:
        body = {"seq": seq, "sha256": sha256, "time": _iso_utc(time.time()), "signer": signer.key_id}
        return cls(**body, signature=signer.sign(canonical_json(body).encode("utf-8")))

    def signed_bytes(self) -> bytes:
        body = {"seq": self.seq, "sha256": self.sha256, "time": self.time, "signer": self.signer}
        return canonical_json(body).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "sha256": self.sha256, "time": self.time, "signer": self.signer,
                "signature": self.signature}  # fmt: skip

    @classmethod
    def from_json(cls, obj: Any) -> SignedHead:
        if not isinstance(obj, dict) or set(obj) != {"seq", "sha256", "time", "signer", "signature"}:
            raise ValueError("not a signed head (seq, sha256, time, signer, signature)")
        if type(obj["seq"]) is not int or obj["seq"] < 1 or not isinstance(obj["sha256"], str):
            raise ValueError("seq or sha256 of the wrong type")
        if not all(isinstance(obj[k], str) for k in ("time", "signer", "signature")):
            raise ValueError("time, signer and signature must be strings")
        return cls(**obj)


class EvidenceLog:
    """The writer. One per directory (an exclusive lock says so); ``append`` may be called from any thread."""

    def __init__(
        self, directory: Path, fd: int, last_seq: int, last_sha256: str, size: int, signer: Signer | None = None
    ) -> None:
        self.directory = directory
        self.signer = signer
        self._fd = fd
        self._last_seq = last_seq
        self._last_sha256 = last_sha256
        self._size = size
        self._lock = threading.Lock()
        self._head_signed = (last_seq, time.monotonic())  # what the newest signed head says, and when
        # Told of each head as it is signed (a TSA's stamper); called under the log's lock, so it must only queue.
        self.on_head: Callable[[SignedHead], None] | None = None

    @classmethod
    def open(cls, directory: str | os.PathLike[str], signer: Signer | None = None) -> EvidenceLog:
        """Open (or start) the log in ``directory``; with ``signer`` every record and head is signed."""
        directory = Path(directory)
        _owner_only_folder(directory)
        _owner_only_folder(directory / SNAPSHOTS)
        path = directory / LOG_NAME
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EvidenceError(f"{directory}: another process is writing this evidence log") from None
            size = os.fstat(fd).st_size
            last, end = _tail(fd, size)
            if end < size:
                _set_aside_torn_line(directory, fd, end, size)
                size = end
            last_seq, last_sha256 = 0, ZERO_SHA256
            if last:
                try:
                    record = EvidenceRecord.from_json(json.loads(last))
                except ValueError as exc:
                    raise EvidenceError(
                        f"{path}: the last record is unreadable ({exc}); run `borderwatch evidence verify {directory}`"
                    ) from None
                last_seq, last_sha256 = record.seq, record.sha256
            _set_aside_orphan_snapshots(directory, last_seq)
            _fsync_dir(directory)
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, fd, last_seq, last_sha256, size, signer)

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def last_sha256(self) -> str:
        """Worth keeping outside the log: it is what proves no newer records were cut off."""
        return self._last_sha256

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any],
        snapshot_jpeg: bytes | None = None,
        time_s: float | None = None,
    ) -> EvidenceRecord:
        if snapshot_jpeg is not None and not snapshot_jpeg.startswith(JPEG_MAGIC):
            raise ValueError("snapshot_jpeg is not a JPEG (it does not start with FF D8)")
        stamp = _iso_utc(time.time() if time_s is None else time_s)
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.directory}: evidence log is closed")
            seq = self._last_seq + 1
            snapshot = snapshot_sha256 = None
            if snapshot_jpeg is not None:
                snapshot_sha256 = hashlib.sha256(snapshot_jpeg).hexdigest()
                snapshot = f"{seq:08d}-{snapshot_sha256[:16]}.jpg"
                self._write_snapshot(snapshot, snapshot_jpeg)
            body = {
                "seq": seq,
                "time": stamp,
                "kind": kind,
                "payload": dict(payload),
                "snapshot": snapshot,
                "snapshot_sha256": snapshot_sha256,
                "prev_sha256": self._last_sha256,
            }
            if self.signer is not None:
                body["signer"] = self.signer.key_id
            # Hash what a reader will parse back (tuples become lists, keys become strings), not the caller's dict.
            body = json.loads(canonical_json(body))
            body["sha256"] = record_sha256(body)
            if self.signer is not None:
                body["signature"] = self.signer.sign(body["sha256"].encode("ascii"))
            self._write_record(body)
            if self.signer is not None and time.monotonic() - self._head_signed[1] >= HEAD_EVERY_S:
                self._sign_head()
            return EvidenceRecord.from_json(body)

    def sign_head(self) -> SignedHead | None:
        """Sign the newest record's seq and hash into heads.jsonl (None without a signer or a record)."""
        with self._lock:
            return self._sign_head()

    def _sign_head(self) -> SignedHead | None:
        if self.signer is None or self._fd < 0 or not self._last_seq:
            return None
        head = SignedHead.make(self._last_seq, self._last_sha256, self.signer)
        line = (canonical_json(head.to_json()) + "\n").encode("utf-8")
        fd = os.open(self.directory / HEADS_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._head_signed = (self._last_seq, time.monotonic())
        if self.on_head is not None:
            self.on_head(head)
        return head

    def append_copy(self, record: EvidenceRecord, snapshot_jpeg: bytes | None) -> None:
        """Append a record another log wrote (a unit's, received over the bus), exactly as it was.

        The copy is the same chain: `record` must be the next one (``seq`` one more than this
        log's newest, ``prev_sha256`` its hash) and its snapshot the one it names; a ValueError
        saying which otherwise, and nothing is written.
        """
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.directory}: evidence log is closed")
            if record.seq != self._last_seq + 1:
                raise ValueError(f"record {record.seq} does not follow record {self._last_seq} of {self.directory}")
            if record.prev_sha256 != self._last_sha256:
                raise ValueError(f"record {record.seq}: its prev_sha256 is not the hash of record {self._last_seq}")
            body = record.to_json()
            if record_sha256(body) != record.sha256:
                raise ValueError(f"record {record.seq}: its sha256 does not match its content")
            if (snapshot_jpeg is None) != (record.snapshot is None):
                raise ValueError(f"record {record.seq}: snapshot given for a record without one, or missing")
            if snapshot_jpeg is not None:
                if hashlib.sha256(snapshot_jpeg).hexdigest() != record.snapshot_sha256:
                    raise ValueError(f"record {record.seq}: the snapshot does not match its snapshot_sha256")
                self._write_snapshot(record.snapshot, snapshot_jpeg)
            self._write_record(body)

    def _write_record(self, body: dict[str, Any]) -> None:
        """One line, fsynced, then the newest record; the caller holds the lock."""
        line = (canonical_json(body) + "\n").encode("utf-8")
        try:
            _write_all(self._fd, line)
            os.fsync(self._fd)
        except BaseException:
            # A partial line left behind would glue the next record onto it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(line)
        self._last_seq, self._last_sha256 = body["seq"], body["sha256"]

    def _write_snapshot(self, name: str, data: bytes) -> None:
        folder = self.directory / SNAPSHOTS
        temp = folder / f".{name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, folder / name)
        _fsync_dir(folder)

    def close(self) -> None:
        """Sign the head (when there is something new to sign) and close."""
        with self._lock:
            if self._fd >= 0:
                if self._head_signed[0] != self._last_seq:
                    self._sign_head()
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> EvidenceLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_aside_torn_line(directory: Path, fd: int, end: int, size: int) -> None:
    torn = os.pread(fd, size - end, end)
    n = 1
    while (directory / f"{LOG_NAME}.torn-{n}").exists():
        n += 1
    aside = os.open(directory / f"{LOG_NAME}.torn-{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write_all(aside, torn)
        os.fsync(aside)
    finally:
        os.close(aside)
    os.ftruncate(fd, end)
    os.fsync(fd)


def _set_aside_orphan_snapshots(directory: Path, last_seq: int) -> None:
    """Half-written snapshots, and whole ones whose record never got written, go to torn-snapshots/."""
    folder = directory / SNAPSHOTS
    orphans = []
    for path in folder.iterdir():
        match = _SNAPSHOT_NAME.fullmatch(path.name)
        if (path.name.startswith(".") and path.name.endswith(".tmp")) or (match and int(match[1]) > last_seq):
            orphans.append(path)
    if orphans:
        (directory / TORN_SNAPSHOTS).mkdir(mode=0o700, exist_ok=True)
        for path in orphans:
            os.replace(path, directory / TORN_SNAPSHOTS / path.name)
        _fsync_dir(folder)
