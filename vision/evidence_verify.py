"""Reading an evidence folder back and checking it: every record, every link, every snapshot.

The writer lives in :mod:`vision.evidence`; this side never writes, so it can be pointed
at a copy handed over as evidence.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vision.evidence import (
    HEADS_NAME,
    LOG_NAME,
    SNAPSHOTS,
    ZERO_SHA256,
    EvidenceError,
    EvidenceRecord,
    SignedHead,
    record_sha256,
)
from vision.signing import TrustStore
from vision.stamping import check_stamps, read_stamps


class Problem(enum.Enum):
    MALFORMED = "malformed line"
    EDITED = "record edited"
    REHASHED = "record edited and rehashed"
    DELETED = "record deleted"
    INSERTED = "record inserted"
    REORDERED = "records reordered"
    CHAIN_BROKEN = "chain broken"
    SNAPSHOT_MISSING = "snapshot missing"
    SNAPSHOT_ALTERED = "snapshot altered"
    UNSIGNED = "record not signed"
    UNTRUSTED = "signed by an unknown key"
    BAD_SIGNATURE = "signature does not match"
    TRUNCATED = "records cut off the end"
    BAD_HEAD = "signed head does not verify"
    BAD_TOKEN = "timestamp token does not verify"


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    records: int  # complete lines in the log
    first_bad: int | None = None  # 1-based line number
    reason: str = ""
    torn_tail: bool = False
    problem: Problem | None = None
    first_bad_seq: int | None = None  # the seq the bad line claims, when it has one
    snapshots_verified: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    signers: tuple[str, ...] = ()  # the key ids that signed records, in order of first appearance
    signatures_checked: bool = False  # False: verified without a trust store (hashes and links only)
    last_signed_head: SignedHead | None = None  # the newest head that verified, when heads were checked
    tokens_checked: bool = False  # whether the heads' timestamp tokens were checked (a TSA's roots given)
    heads_without_token: tuple[int, ...] = ()  # signed heads (by record seq) that no TSA has timestamped yet

    @property
    def unsigned(self) -> bool:
        return not self.signers


def log_path(directory: str | os.PathLike[str]) -> Path:
    """DIR/evidence.jsonl, or EvidenceError naming DIR when there is no evidence there."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EvidenceError(f"{directory}: no such evidence directory")
    path = directory / LOG_NAME
    if not path.is_file():
        raise EvidenceError(f"{directory}: not an evidence directory (it holds no {LOG_NAME})")
    return path


def _split(data: bytes) -> tuple[list[bytes], bool]:
    """Complete lines (without newline) and whether a final line was cut off before its newline."""
    lines = data.split(b"\n")
    torn = lines.pop() != b""
    return lines, torn


def read_records(directory: str | os.PathLike[str]) -> Iterator[tuple[int, EvidenceRecord | str]]:
    """(line number, record or what is wrong with the line) for each complete line; hashes not checked."""
    lines, _ = _split(log_path(directory).read_bytes())
    for number, raw in enumerate(lines, 1):
        yield number, _parse(raw)


def _parse(raw: bytes) -> EvidenceRecord | str:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not a JSON record (cut short or overwritten?)"
    try:
        return EvidenceRecord.from_json(obj)
    except ValueError as exc:
        return str(exc)


def verify(
    directory: str | os.PathLike[str], trust: TrustStore | None = None, tsa_roots: list | None = None
) -> VerifyReport:
    """Check every hash, link and snapshot, and with ``trust`` every signature and signed head, and with
    ``tsa_roots`` every head's timestamp token; name the first line where the log stops being trustworthy."""
    directory = Path(directory)
    lines, torn = _split(log_path(directory).read_bytes())
    parsed = [_parse(raw) for raw in lines]
    referenced = {r.snapshot for r in parsed if isinstance(r, EvidenceRecord) and r.snapshot}
    warnings = _stray_snapshots(directory, referenced)
    signers = tuple(dict.fromkeys(r.signer for r in parsed if isinstance(r, EvidenceRecord) and r.signer))
    bad = _first_bad(directory, parsed)
    if bad is None and trust is not None:
        bad = _first_unsigned(parsed, trust)
    head = None
    if bad is None and trust is not None:
        head, bad = _heads(directory, parsed, trust)
        if bad is None and head is None and parsed:
            warnings += ("no signed head: records cut off the end cannot be ruled out",)
    unstamped: tuple[int, ...] = ()
    if bad is None and trust is not None and tsa_roots is not None:
        heads = [h for h in read_heads(directory) if isinstance(h, SignedHead)]
        missing, wrong = check_stamps(heads, read_stamps(directory), tsa_roots)
        if wrong is not None:
            bad = (0, Problem.BAD_TOKEN, wrong)
        unstamped = tuple(missing)
    if bad is None:
        verified = sum(1 for r in parsed if isinstance(r, EvidenceRecord) and r.snapshot)
        return VerifyReport(
            True, len(lines), torn_tail=torn, snapshots_verified=verified, warnings=warnings, signers=signers,
            signatures_checked=trust is not None, last_signed_head=head,
            tokens_checked=tsa_roots is not None and trust is not None, heads_without_token=unstamped,
        )  # fmt: skip
    line, problem, reason = bad
    record = parsed[line - 1] if 0 < line <= len(parsed) else None
    return VerifyReport(
        ok=False,
        records=len(lines),
        first_bad=line,
        reason=reason,
        torn_tail=torn,
        problem=problem,
        first_bad_seq=record.seq if isinstance(record, EvidenceRecord) else None,
        warnings=warnings,
        signers=signers,
        signatures_checked=trust is not None,
    )


def _first_unsigned(parsed: list[EvidenceRecord | str], trust: TrustStore) -> tuple[int, Problem, str] | None:
    for n, rec in enumerate(parsed, 1):
        assert isinstance(rec, EvidenceRecord)  # _first_bad found every malformed line
        if rec.signer is None or rec.signature is None:
            return n, Problem.UNSIGNED, f"record {rec.seq} is not signed"
        if rec.signer not in trust:
            return n, Problem.UNTRUSTED, f"record {rec.seq} is signed by key {rec.signer}, which is not trusted"
        if trust.verify(rec.signer, rec.sha256.encode("ascii"), rec.signature) is not None:
            return n, Problem.BAD_SIGNATURE, f"record {rec.seq}: its signature does not match key {rec.signer}"
    return None


def read_heads(directory: str | os.PathLike[str]) -> list[SignedHead | str]:
    """Each line of heads.jsonl: a head, or what is wrong with the line; [] when there is none."""
    path = Path(directory) / HEADS_NAME
    if not path.is_file():
        return []
    heads: list[SignedHead | str] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            heads.append(SignedHead.from_json(json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, ValueError) as exc:
            heads.append(f"{HEADS_NAME} line {number}: {exc}")
    return heads


def _heads(
    directory: Path, parsed: list[EvidenceRecord | str], trust: TrustStore
) -> tuple[SignedHead | None, tuple[int, Problem, str] | None]:
    """The newest signed head, checked; or the problem: a head that does not verify, or records cut off."""
    records = [r for r in parsed if isinstance(r, EvidenceRecord)]
    newest: SignedHead | None = None
    for head in read_heads(directory):
        if isinstance(head, str):
            return None, (0, Problem.BAD_HEAD, head)
        why = trust.verify(head.signer, head.signed_bytes(), head.signature)
        if why is not None:
            return None, (0, Problem.BAD_HEAD, f"the head signed at {head.time} (record {head.seq}): {why}")
        if newest is None or head.seq >= newest.seq:
            newest = head
    if newest is None:
        return None, None  # said as a warning: a log that never closed (a crash) may have none yet
    if newest.seq > len(records):
        last = f"ends at record {records[-1].seq}" if records else "holds no record"
        first = len(records) + 1
        gone = f"record {first} was" if first == newest.seq else f"records {first}–{newest.seq} were"
        return None, (
            first,
            Problem.TRUNCATED,
            f"the log {last}, but the head signed at {newest.time} is record {newest.seq}: {gone} cut off",
        )
    if records[newest.seq - 1].sha256 != newest.sha256:
        return None, (
            newest.seq,
            Problem.TRUNCATED,
            f"record {newest.seq} is not the one signed at {newest.time}: the log was rewritten from there",
        )
    return newest, None


def _stray_snapshots(directory: Path, referenced: set[str]) -> tuple[str, ...]:
    folder = directory / SNAPSHOTS
    if not folder.is_dir():
        return ()
    warnings = []
    for path in sorted(folder.iterdir()):
        if path.name in referenced:
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            warnings.append(f"{SNAPSHOTS}/{path.name}: an unfinished snapshot write (a crash?), in no record")
        else:
            warnings.append(f"{SNAPSHOTS}/{path.name}: not referenced by any record (injected?)")
    return tuple(warnings)


def _first_bad(directory: Path, parsed: list[EvidenceRecord | str]) -> tuple[int, Problem, str] | None:
    line_of_hash = {r.sha256: n for n, r in enumerate(parsed, 1) if isinstance(r, EvidenceRecord)}
    line_of_hash.setdefault(ZERO_SHA256, 0)  # "follows line 0": claims to start the log
    follower_of: dict[str, int] = {}  # sha256 -> first line whose prev_sha256 it is
    for n, r in enumerate(parsed, 1):
        if isinstance(r, EvidenceRecord):
            follower_of.setdefault(r.prev_sha256, n)
    prev: EvidenceRecord | None = None
    for n, rec in enumerate(parsed, 1):
        if isinstance(rec, str):
            return n, Problem.MALFORMED, f"line {n} is malformed: {rec}"
        if record_sha256(rec.to_json()) != rec.sha256:
            return n, Problem.EDITED, f"record {rec.seq} was edited: its sha256 does not match its content"
        expected = prev.sha256 if prev else ZERO_SHA256
        if rec.prev_sha256 != expected:
            return _broken_link(n, rec, prev, parsed, line_of_hash, follower_of)
        if rec.seq != (prev.seq + 1 if prev else 1):
            before = f"record {prev.seq}" if prev else "the start of the log"
            return n, Problem.CHAIN_BROKEN, f"record {rec.seq} follows {before}: its sequence number is wrong"
        if rec.snapshot:
            path = directory / SNAPSHOTS / rec.snapshot
            if not path.is_file():
                return n, Problem.SNAPSHOT_MISSING, f"snapshot {SNAPSHOTS}/{rec.snapshot} is missing"
            if hashlib.sha256(path.read_bytes()).hexdigest() != rec.snapshot_sha256:
                return (
                    n,
                    Problem.SNAPSHOT_ALTERED,
                    f"snapshot {SNAPSHOTS}/{rec.snapshot} was altered: its sha256 does not match the record",
                )
        prev = rec
    return None


def _broken_link(
    n: int,
    rec: EvidenceRecord,
    prev: EvidenceRecord | None,
    parsed: list[EvidenceRecord | str],
    line_of_hash: dict[str, int],
    follower_of: dict[str, int],
) -> tuple[int, Problem, str]:
    """Line n does not chain to line n-1: say what most likely happened, and which line is the first bad one."""

    def name(line: int) -> str:
        r = parsed[line - 1]
        return f"record {r.seq} (line {line})" if isinstance(r, EvidenceRecord) else f"line {line}"

    before = line_of_hash.get(rec.prev_sha256)
    if before is not None and before < n - 1:
        anchor = name(before) if before else "the start of the log"
        intruders = f"{name(before + 1)} was" if before + 1 == n - 1 else f"lines {before + 1}–{n - 1} were"
        return before + 1, Problem.INSERTED, f"{intruders} inserted: {name(n)} chains directly to {anchor}"
    if before is not None and before > n - 1:
        return n, Problem.REORDERED, f"record {rec.seq} is out of order: the record it follows is {name(before)}"
    # What this line follows is not in the log: it was deleted, altered, or this line is a forgery.
    expected = prev.sha256 if prev else ZERO_SHA256
    successor = follower_of.get(expected)
    if successor is not None and successor > n:
        after = f"record {prev.seq}" if prev else "the start of the log"
        intruders = f"{name(n)} was" if successor == n + 1 else f"lines {n}–{successor - 1} were"
        return n, Problem.INSERTED, f"{intruders} inserted: {name(successor)} is what follows {after}"
    if prev is None:
        if rec.seq > 1:
            gone = "record 1 was" if rec.seq == 2 else f"records 1–{rec.seq - 1} were"
            return n, Problem.DELETED, f"the log starts at record {rec.seq}: {gone} deleted"
        return n, Problem.CHAIN_BROKEN, "the first record does not start a chain (its prev_sha256 is not zeros)"
    if rec.seq == prev.seq + 1:
        nxt = parsed[n] if n < len(parsed) else None
        vouched = isinstance(nxt, EvidenceRecord) and nxt.prev_sha256 == rec.sha256
        if vouched or nxt is None:
            return (
                n - 1,
                Problem.REHASHED,
                f"record {prev.seq} was edited and its sha256 recomputed: "
                f"record {rec.seq} was chained to a different record {prev.seq}",
            )
        return n, Problem.CHAIN_BROKEN, f"record {rec.seq} was forged or replaced: it chains to no record in the log"
    if rec.seq > prev.seq + 1:
        first, last = prev.seq + 1, rec.seq - 1
        gone = f"record {first} was" if first == last else f"records {first}–{last} were"
        return n, Problem.DELETED, f"record {rec.seq} follows record {prev.seq}: {gone} deleted"
    return (
        n,
        Problem.REORDERED,
        f"record {rec.seq} follows record {prev.seq}: out of order, or inserted (its predecessor is not in the log)",
    )
