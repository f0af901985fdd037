"""Each signed head of an evidence log timestamped by a TSA, on a thread of its own.

A `HeadStamper` is handed every head the log signs (``EvidenceLog.on_head``) and asks the TSA
for a token over ``f"{head.sha256}:{head.signature}"`` (ASCII), so that a third party proves the
records up to that head existed at that time. Tokens go to ``DIR/timestamps.jsonl``, one JSON
line each: ``seq``, ``sha256`` (the head's), ``tsa`` (its URL), ``time`` (when the station got it,
for people: the time that counts is the one inside the token) and ``token_b64``.

A TSA that does not answer stops nothing: the run goes on, the line says so once, and the head
is asked for again later (every ``retry_s``) and at close; a head still without a token then is
what `vision.evidence_verify` reports as such.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.evidence import SignedHead, canonical_json
from vision.timestamps import TokenError, TsaError, request_token, verify_token

log = logging.getLogger(__name__)

TIMESTAMPS_NAME = "timestamps.jsonl"
RETRY_S = 30.0


def stamped_data(head: SignedHead) -> bytes:
    """What a head's token is over: its hash and its signature, so the token vouches for both."""
    return f"{head.sha256}:{head.signature}".encode("ascii")


@dataclass(frozen=True)
class StampLine:
    seq: int
    sha256: str
    tsa: str
    time: str
    token: bytes

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "sha256": self.sha256, "tsa": self.tsa, "time": self.time,
                "token_b64": base64.b64encode(self.token).decode("ascii")}  # fmt: skip


def read_stamps(directory: str | os.PathLike[str]) -> list[StampLine | str]:
    """Each line of timestamps.jsonl: a token, or what is wrong with the line; [] when there is none."""
    path = Path(directory) / TIMESTAMPS_NAME
    if not path.is_file():
        return []
    found: list[StampLine | str] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            obj = json.loads(raw.decode("utf-8"))
            found.append(StampLine(obj["seq"], obj["sha256"], obj["tsa"], obj["time"],
                                   base64.b64decode(obj["token_b64"], validate=True)))  # fmt: skip
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            found.append(f"{TIMESTAMPS_NAME} line {number}: not a timestamp line ({exc})")
    return found


def unstamped_heads(heads: list[SignedHead], stamps: list[StampLine | str]) -> list[int]:
    """The seqs of the heads no line of timestamps.jsonl names (the tokens themselves unchecked: `check_stamps`)."""
    named = {(s.seq, s.sha256) for s in stamps if isinstance(s, StampLine)}
    return [h.seq for h in heads if (h.seq, h.sha256) not in named]


def check_stamps(heads: list[SignedHead], stamps: list[StampLine | str], roots) -> tuple[list[int], str | None]:
    """The seqs of heads with no token, and the first token that does not verify (in words), if any."""
    by_seq = {h.seq: h for h in heads}
    stamped: set[int] = set()
    for stamp in stamps:
        if isinstance(stamp, str):
            return [], stamp
        head = by_seq.get(stamp.seq)
        if head is None or head.sha256 != stamp.sha256:
            return [], f"the token from {stamp.tsa} for record {stamp.seq} is for no signed head"
        try:
            verify_token(stamp.token, stamped_data(head), roots)
        except (TokenError, ValueError) as exc:
            return [], f"the token for the head at record {stamp.seq} does not verify: {exc}"
        stamped.add(stamp.seq)
    return sorted(set(by_seq) - stamped), None


class HeadStamper:
    """Tokens for the heads of the log in ``directory`` from the TSA at ``url``, until ``close``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        url: str,
        *,
        timeout_s: float = 10.0,
        retry_s: float = RETRY_S,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.url = url
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._say = say or (lambda line: log.warning("%s", line))
        self._heads: queue.Queue[SignedHead | None] = queue.Queue()
        self._pending: list[SignedHead] = []
        self._failing = False
        self.stamped = 0
        self._thread = threading.Thread(target=self._run, name="tsa-stamper", daemon=True)
        self._thread.start()

    def __call__(self, head: SignedHead) -> None:
        """`EvidenceLog.on_head`: called under the log's lock, so it only queues."""
        self._heads.put(head)

    @property
    def pending(self) -> list[int]:
        return [h.seq for h in self._pending]

    def close(self, within_s: float = 15.0) -> None:
        """One last try for what waits (the head signed at close among it), then stop."""
        self._heads.put(None)
        self._thread.join(timeout=within_s)

    def _run(self) -> None:
        next_try = 0.0
        closing = False
        while True:
            try:
                head = self._heads.get(timeout=0.5)
            except queue.Empty:
                head = False  # type: ignore[assignment]
            if head is None:
                closing = True
            elif head:
                self._pending.append(head)
            due = self._pending and (closing or time.monotonic() >= next_try)
            if due and not self._stamp_pending():
                next_try = time.monotonic() + self.retry_s
            if closing:
                if self._pending:
                    self._say(
                        f"TSA {self.url}: the head(s) at record {', '.join(map(str, self.pending))} "
                        "have no timestamp token; the report says so"
                    )
                return

    def _stamp_pending(self) -> bool:
        while self._pending:
            head = self._pending[0]
            try:
                token = request_token(self.url, stamped_data(head), self.timeout_s)
            except TsaError as exc:
                if not self._failing:
                    self._failing = True
                    self._say(f"{exc}; the run goes on, head {head.seq} will be timestamped later")
                return False
            if self._failing:
                self._failing = False
                self._say(f"TSA {self.url}: answering again; timestamping the heads that waited")
            received = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            line = StampLine(head.seq, head.sha256, self.url, received, token)
            self._append(line)
            self._pending.pop(0)
            self.stamped += 1
        return True

    def _append(self, line: StampLine) -> None:
        data = (canonical_json(line.to_json()) + "\n").encode("utf-8")
        fd = os.open(self.directory / TIMESTAMPS_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
