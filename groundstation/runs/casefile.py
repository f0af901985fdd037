"""Sealed case files: the evidence of chosen alerts, or of a whole run, in one zip that anyone can
check offline with nothing but the public keys they trust.

Layout of ``CASE.zip`` (format ``borderwatch-case/1``), its members in this order::

    manifest.json                 what the case holds (below) and every other member's SHA-256 and size
    seal.json                     the manifest's SHA-256, signed by the exporting station's key
    summary.html                  one page for people: each alert's time, place on a map of the site's
                                  zones, class, zone, snapshot and signer; no script, no network
    site.geojson                  the run's site, as recorded (when the run has one)
    keys/<key id>.pub             the public key (PEM) of every key that signed something in the case
    <log>/evidence.jsonl          records copied byte for byte from a log of the run
    <log>/heads.jsonl             the log's signed heads that fall within those records
    <log>/timestamps.jsonl        the TSA tokens of those heads, when the run had a TSA
    <log>/snapshots/<name>.jpg    the snapshots the records name (see withheld, below)

``<log>`` is the log's own path in the run folder: ``evidence`` (the station's) or
``onboard/unit-N`` (an onboard unit's copy). ``manifest.json`` is JSON (keys sorted) with::

    format     "borderwatch-case/1"
    created    when it was exported, UTC
    run        {folder, site_name, started, ended} from the run's run.json
    alerts     the chosen alert ids, or null: the whole run
    logs       [{path, first_seq, last_seq, anchor_sha256, head_seq}] one per log in the case
    cases      [{log, seq, alert_id}] the records of the alerts the case is about
    withheld   [{log, seq, snapshot, sha256}] snapshots left out
    keys       [{key_id, fingerprint, path}]
    files      [{path, sha256, bytes}] every member but manifest.json and seal.json

and ``seal.json`` is the canonical JSON of ``{format, manifest_sha256, signer, signature}``, the
signature Ed25519 over the ASCII of ``manifest_sha256``, as records are signed.

**A chain segment.** With chosen alerts, a log's records run from the first chosen alert's record to
the newest signed head (to the log's end when no head comes after it). A chain has no gaps, so every
record in between is there, but only the chosen records' snapshots; the others' are ``withheld``,
their hashes still in their signed records. The segment's first record chains to a record that is
not in the case: its ``prev_sha256`` is the log's ``anchor_sha256``, and being inside that record's
hash it is signed too. A whole-run export holds every complete record of every log, from record 1.

**What proves what.** Each record is signed by the unit that wrote it and holds its snapshot's
SHA-256; the links and the signed heads show nothing inside a segment was deleted, inserted,
reordered or rewritten. The seal covers the manifest and the manifest every other member, byte for
byte, so a changed site, summary, key file or token is caught. The zip around them is written the
one way :func:`zip_bytes` writes it (stored, fixed times, no extra fields) and the verifier writes
it again from the members it read: a byte changed in the zip's own headers is caught as well.

**Verification trusts nothing shipped inside.** Signatures are checked against the verifier's trust
store; the shipped keys are there for people to compare fingerprints, and one that is not the key
its name says is named. Timestamp tokens are checked against TSA roots the verifier gives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from groundstation.runs.casesummary import SummaryEntry, summary_html
from groundstation.runs.recorder import EVIDENCE, ONBOARD, RUN_JSON, SITE_FILE
from missions.errors import UserError
from missions.formats import read_site_unvalidated
from missions.site import Site
from vision.evidence import HEADS_NAME, LOG_NAME, SNAPSHOTS, EvidenceRecord, SignedHead, canonical_json, record_sha256
from vision.evidence_verify import verify as verify_folder
from vision.signing import KeyFileError, Signer, TrustStore, fingerprint, key_id, parse_public, public_pem
from vision.stamping import TIMESTAMPS_NAME, StampLine, stamped_data
from vision.timestamps import TokenError, verify_token

FORMAT = "borderwatch-case/1"
SEAL_FORMAT = "borderwatch-case-seal/1"
MANIFEST = "manifest.json"
SEAL = "seal.json"
SUMMARY = "summary.html"
KEYS = "keys"


class CaseFileError(UserError):
    """What is not a case file at all: no such file, not a zip, a zip of something else."""


class EvidenceRefused(Exception):
    """A run whose evidence does not verify here: it is not exported (a finding, not a user error)."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a case file: where (a record, a member) and what."""

    where: str
    reason: str
    log: str | None = None
    seq: int | None = None  # the record named, when it is one
    rank: int = 0  # 0 records and their heads, snapshots and tokens; 1 keys; 2 manifest and seal; 3 the zip

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class LogCheck:
    path: str
    records: int
    first_seq: int | None
    last_seq: int | None
    signers: tuple[str, ...]
    head: SignedHead | None  # the newest signed head in the case
    snapshots: int  # verified
    withheld: int
    tokens: int


@dataclass(frozen=True)
class ShippedKey:
    path: str
    key_id: str | None  # of the key the file holds; None when it holds none
    fingerprint: str | None
    trusted: bool


@dataclass(frozen=True)
class CaseReport:
    ok: bool
    problems: tuple[Finding, ...]  # the most telling first: a record named before a file
    logs: tuple[LogCheck, ...] = ()
    alerts: tuple[str, ...] = ()  # the ids of the alerts the case is about
    keys: tuple[ShippedKey, ...] = ()
    sealed_by: str | None = None
    signatures_checked: bool = False
    tokens_checked: bool = False
    heads_without_token: tuple[str, ...] = ()  # "evidence record 5"
    warnings: tuple[str, ...] = ()

    @property
    def first_bad_record(self) -> tuple[str, int] | None:
        """(log, seq) of the first record a problem names."""
        named = next((p for p in self.problems if p.seq is not None and p.log is not None), None)
        return None if named is None else (named.log, named.seq)  # type: ignore[return-value]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    bytes: int
    alerts: int
    records: int
    logs: int
    snapshots: int
    withheld: int
    heads: int
    tokens: int
    sealed_by: str


# ---------------------------------------------------------------------------------------------- the zip

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_VERSION, _MADE_BY = 20, 0x0314  # zip 2.0, made on Unix
_DOS_DATE = 0x21  # 1980-01-01 00:00: member times say nothing; the records hold the times that count
_MODE = 0o100644 << 16
_ZIP_LIMIT = 1 << 32


def zip_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """The one zip of ``members`` (ASCII names, in this order): stored, fixed times, no extras."""
    if len(members) >= 0xFFFF:
        raise UserError(f"a case file holds at most {0xFFFF - 1} files, not {len(members)}: choose alerts with --alert")
    out, central = bytearray(), bytearray()
    for name, data in members:
        encoded, crc = name.encode("ascii"), zlib.crc32(data)
        if len(out) + len(data) >= _ZIP_LIMIT:
            raise UserError("a case file is at most 4 GiB: choose alerts with --alert")
        central += _CENTRAL.pack(_CENTRAL_SIG, _MADE_BY, _VERSION, 0, 0, 0, _DOS_DATE, crc, len(data), len(data),
                                 len(encoded), 0, 0, 0, 0, _MODE, len(out)) + encoded  # fmt: skip
        out += _LOCAL.pack(_LOCAL_SIG, _VERSION, 0, 0, 0, _DOS_DATE, crc, len(data), len(data), len(encoded), 0)
        out += encoded + data
    end = _END.pack(_END_SIG, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def _read_zip(data: bytes, source: str) -> tuple[list[tuple[str, bytes]], list[Finding]]:
    """The members' names and bytes, in the zip's order, and what is wrong with the zip itself."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CaseFileError(f"{source}: not a zip file (a case file is what `borderwatch evidence export` writes)")
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, struct.error, EOFError, OverflowError, NotImplementedError) as exc:
        return [], [Finding("the zip", f"damaged: its directory cannot be read ({exc})", rank=3)]
    names = {info.filename for info in infos}
    if MANIFEST not in names and SEAL not in names:
        raise CaseFileError(f"{source}: a zip, but not a case file (it holds no {MANIFEST})")
    members: list[tuple[str, bytes]] = []
    findings: list[Finding] = []
    for info in infos:
        start = info.header_offset
        header = data[start : start + _LOCAL.size]
        if len(header) < _LOCAL.size or _LOCAL.unpack(header)[0] != _LOCAL_SIG:
            findings.append(Finding(info.filename, "damaged in the zip: its header is not where the directory says",
                                    rank=3))  # fmt: skip
            continue
        begin = start + _LOCAL.size + sum(_LOCAL.unpack(header)[9:])
        content = data[begin : begin + info.compress_size]
        if info.compress_type != zipfile.ZIP_STORED or len(content) != info.file_size:
            findings.append(Finding(info.filename, "not stored as export stores it (compressed or cut short)", rank=3))
            continue
        if zlib.crc32(content) != info.CRC:
            findings.append(Finding(info.filename, "its bytes do not match the zip's CRC: changed after export",
                                    rank=3))  # fmt: skip
        members.append((info.filename, content))
    if not findings:
        try:
            same = zip_bytes(members) == data
        except (UnicodeEncodeError, UserError):
            same = False
        if not same:
            findings.append(Finding("the zip", "not byte for byte what export wrote: its headers were changed", rank=3))
    return members, findings


# ---------------------------------------------------------------------------------------------- verify


def verify_case_file(
    path: str | os.PathLike[str], trust: TrustStore | None, tsa_roots: list | None = None
) -> CaseReport:
    """Check the case file at ``path``; CaseFileError (a user error) when it is missing or no case file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CaseFileError(f"{path}: no such case file") from None
    except IsADirectoryError:
        raise CaseFileError(f"{path}: a folder, not a case file") from None
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot read the case file ({exc.strerror or exc})") from None
    return verify_case(data, trust, tsa_roots, source=str(path))


def verify_case(
    data: bytes, trust: TrustStore | None, tsa_roots: list | None = None, source: str = "case file"
) -> CaseReport:
    """Check a case file's bytes: every record, signature, head, snapshot, token, key and member, and
    the zip itself. ``trust`` None checks hashes and links only; ``tsa_roots`` None leaves the tokens'
    own signatures unchecked (they are still sealed)."""
    members_list, findings = _read_zip(data, source)
    members: dict[str, bytes] = {}
    for name, content in members_list:
        if name in members:
            findings.append(Finding(name, "in the zip twice", rank=3))
        members[name] = content
    manifest = _manifest(members, findings)
    before = len(findings)
    sealed_by = _check_seal(members, trust, findings)
    # What the records are checked against in the manifest counts as a finding about a record only when
    # the manifest is the one sealed; otherwise the broken seal is the finding that comes first.
    by_manifest = 0 if manifest and len(findings) == before else 2
    _check_files(members, manifest, findings)
    keys = _check_keys(members, trust, findings)
    shipped = {k.path: k for k in keys}
    checker = _LogChecker(members, manifest, trust, tsa_roots, shipped, findings, by_manifest)
    logs = tuple(checker.check(path) for path in _log_paths(members, manifest))
    if not logs and not findings:
        findings.append(Finding(MANIFEST, "the case holds no evidence log", rank=2))
    problems = tuple(sorted(findings, key=lambda f: f.rank))
    return CaseReport(
        ok=not problems,
        problems=problems,
        logs=logs,
        alerts=tuple(str(c.get("alert_id")) for c in manifest.get("cases") or () if isinstance(c, Mapping)),
        keys=keys,
        sealed_by=sealed_by,
        signatures_checked=trust is not None,
        tokens_checked=trust is not None and tsa_roots is not None,
        heads_without_token=tuple(checker.unstamped),
        warnings=tuple(checker.warnings),
    )


def _manifest(members: Mapping[str, bytes], findings: list[Finding]) -> dict[str, Any]:
    raw = members.get(MANIFEST)
    if raw is None:
        findings.append(Finding(MANIFEST, "missing: nothing says what the case holds", rank=2))
        return {}
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        findings.append(Finding(MANIFEST, f"not JSON ({exc})", rank=2))
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        findings.append(Finding(MANIFEST, f"not a {FORMAT} manifest", rank=2))
        return {}
    for key in ("logs", "cases", "withheld", "keys", "files"):
        if not isinstance(manifest.get(key), list) or not all(isinstance(x, dict) for x in manifest[key]):
            findings.append(Finding(MANIFEST, f"its {key!r} is not a list of objects", rank=2))
            manifest[key] = []
    return manifest


def _check_seal(members: Mapping[str, bytes], trust: TrustStore | None, findings: list[Finding]) -> str | None:
    raw = members.get(SEAL)
    if raw is None:
        findings.append(Finding(SEAL, "missing: nothing vouches for the manifest", rank=2))
        return None
    try:
        seal = json.loads(raw.decode("utf-8"))
        fields_ok = isinstance(seal, dict) and set(seal) == {"format", "manifest_sha256", "signer", "signature"}
        canonical = fields_ok and (canonical_json(seal) + "\n").encode("utf-8") == raw
        signature = seal["signature"] if fields_ok else ""
        # A base64 string that decodes to the same bytes but is spelled otherwise is not the seal that was written.
        canonical = canonical and base64.b64encode(base64.b64decode(signature, validate=True)).decode() == signature
    except (UnicodeDecodeError, ValueError, TypeError, binascii.Error):
        canonical = False
    if not canonical or seal["format"] != SEAL_FORMAT:
        findings.append(Finding(SEAL, "not a seal as export writes it (changed?)", rank=2))
        return None
    manifest = members.get(MANIFEST)
    if manifest is not None and hashlib.sha256(manifest).hexdigest() != seal["manifest_sha256"]:
        findings.append(Finding(MANIFEST, "changed after it was sealed: its SHA-256 is not the one seal.json signs",
                                rank=2))  # fmt: skip
    if trust is not None and isinstance(seal["signer"], str):
        why = trust.verify(seal["signer"], str(seal["manifest_sha256"]).encode("ascii", "replace"), seal["signature"])
        if why is not None:
            findings.append(Finding(SEAL, f"the manifest's seal: {why}", rank=2))
    return seal["signer"] if isinstance(seal["signer"], str) else None


def _check_files(members: Mapping[str, bytes], manifest: Mapping[str, Any], findings: list[Finding]) -> None:
    if not manifest:
        return
    listed = {str(f.get("path")): f for f in manifest["files"]}
    for name, content in members.items():
        if name in (MANIFEST, SEAL):
            continue
        entry = listed.get(name)
        if entry is None:
            findings.append(Finding(name, "in the zip but not in the manifest (added?)", rank=2))
        elif entry.get("sha256") != hashlib.sha256(content).hexdigest() or entry.get("bytes") != len(content):
            findings.append(Finding(name, "not the file that was sealed: its SHA-256 is not the manifest's", rank=2))
    for name in listed:
        if name not in members:
            findings.append(Finding(name, "in the manifest but missing from the zip", rank=2))


def _check_keys(members: Mapping[str, bytes], trust: TrustStore | None, findings: list[Finding]) -> tuple:
    shipped = []
    for name, content in members.items():
        match = re.fullmatch(rf"{KEYS}/([0-9a-f]{{16}})\.pub", name)
        if match is None:
            if name.startswith(f"{KEYS}/"):
                findings.append(Finding(name, "not a key file name (keys/<key id>.pub)", rank=1))
            continue
        try:
            key = parse_public(content, name)
        except KeyFileError as exc:
            findings.append(Finding(name, f"not an Ed25519 public key ({str(exc).removeprefix(name + ': ')})", rank=1))
            shipped.append(ShippedKey(name, None, None, False))
            continue
        held = key_id(key)
        if held != match[1]:
            findings.append(Finding(name, f"holds key {held}, not {match[1]}: the public key was replaced", rank=1))
        trusted = trust is not None and held in trust and _same(trust.keys[held], key)
        shipped.append(ShippedKey(name, held, fingerprint(key), trusted))
    return tuple(shipped)


def _same(a: Ed25519PublicKey, b: Ed25519PublicKey) -> bool:
    return public_pem(a) == public_pem(b)


def _log_paths(members: Mapping[str, bytes], manifest: Mapping[str, Any]) -> list[str]:
    found = [name.removesuffix(f"/{LOG_NAME}") for name in members if name.endswith(f"/{LOG_NAME}")]
    found += [str(entry.get("path")) for entry in manifest.get("logs") or ()]
    return list(dict.fromkeys(found))


def _lines(raw: bytes) -> tuple[list[bytes], bool]:
    lines = raw.split(b"\n")
    return lines, lines.pop() != b""


class _LogChecker:
    """Each log of a case file against the manifest, the trust store and the TSA roots."""

    def __init__(self, members, manifest, trust, tsa_roots, shipped, findings: list[Finding], by_manifest: int) -> None:
        self.members, self.trust, self.roots, self.shipped, self.findings = members, trust, tsa_roots, shipped, findings
        self.by_manifest = by_manifest  # the rank of a finding that rests on the manifest's word
        self.entries = {str(e.get("path")): e for e in manifest.get("logs") or ()}
        self.withheld = {(str(w.get("log")), w.get("seq")): w for w in manifest.get("withheld") or ()}
        self.chosen = {(str(c.get("log")), c.get("seq")) for c in manifest.get("cases") or ()}
        self.unstamped: list[str] = []
        self.warnings: list[str] = []

    def problem(self, where: str, reason: str, log: str, seq: int | None = None, rank: int = 0) -> None:
        self.findings.append(Finding(where, reason, log, seq, rank))

    def check(self, path: str) -> LogCheck:
        entry = self.entries.get(path)
        if entry is None and self.entries:
            self.problem(path, "a log the manifest does not list", path, rank=2)
        raw = self.members.get(f"{path}/{LOG_NAME}")
        if raw is None:
            self.problem(f"{path}/{LOG_NAME}", "missing from the zip", path, rank=self.by_manifest)
            return LogCheck(path, 0, None, None, (), None, 0, 0, 0)
        lines, torn = _lines(raw)
        if torn:
            self.problem(f"{path}/{LOG_NAME}", "its last line is cut short", path)
        records = self._records(path, lines, entry)
        head = self._heads(path, records, entry)
        snapshots, withheld = self._snapshots(path, records)
        tokens = self._tokens(path, head)
        signers = tuple(dict.fromkeys(r.signer for r in records if r.signer))
        first, last = (records[0].seq, records[-1].seq) if records else (None, None)
        return LogCheck(path, len(records), first, last, signers, head[-1] if head else None, snapshots, withheld,
                        tokens)  # fmt: skip

    def _records(self, path: str, lines: list[bytes], entry: Mapping[str, Any] | None) -> list[EvidenceRecord]:
        """Each record checked; against the manifest's entry for the log only when there is one (a manifest
        that is missing or unreadable is a finding of its own)."""
        records: list[EvidenceRecord] = []
        prev: EvidenceRecord | None = None
        for number, line in enumerate(lines, 1):
            try:
                rec = EvidenceRecord.from_json(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, ValueError) as exc:
                first = entry.get("first_seq") if entry else None
                seq = first + number - 1 if type(first) is int else None
                where = f"{path} line {number}" if seq is None else f"{path} record {seq} (line {number})"
                self.problem(where, f"damaged: not a record ({exc})", path, seq)
                prev = None
                continue
            name = f"{path} record {rec.seq}"
            if record_sha256(rec.to_json()) != rec.sha256:
                self.problem(name, "edited: its sha256 does not match its content", path, rec.seq)
            if prev is not None and rec.prev_sha256 != prev.sha256:
                self.problem(name, f"does not chain to record {prev.seq}: a record deleted, inserted or reordered",
                             path, rec.seq)  # fmt: skip
            elif prev is not None and rec.seq != prev.seq + 1:
                self.problem(name, f"follows record {prev.seq}: its sequence number is wrong", path, rec.seq)
            elif (
                number == 1
                and entry
                and (rec.seq, rec.prev_sha256) != (entry.get("first_seq"), entry.get("anchor_sha256"))
            ):
                self.problem(name, "not where the manifest says the segment starts (a record deleted or inserted)",
                             path, rec.seq, self.by_manifest)  # fmt: skip
            self._signature(name, path, rec)
            records.append(rec)
            prev = rec
        if entry and records and records[-1].seq != entry.get("last_seq"):
            last = entry.get("last_seq")
            self.problem(f"{path} record {records[-1].seq}", f"the segment ends at record {last} in the manifest: "
                         "records cut off the end or added", path, records[-1].seq, self.by_manifest)  # fmt: skip
        return records

    def _signature(self, name: str, path: str, rec: EvidenceRecord) -> None:
        if self.trust is None:
            return
        if rec.signer is None or rec.signature is None:
            self.problem(name, "not signed", path, rec.seq)
            return
        why = self.trust.verify(rec.signer, rec.sha256.encode("ascii"), rec.signature)
        if why is not None:
            self.problem(name, f"{why}{self._replaced(rec.signer)}", path, rec.seq)

    def _replaced(self, signer: str) -> str:
        key = self.shipped.get(f"{KEYS}/{signer}.pub")
        if key is not None and key.key_id != signer:
            return f"; the case file's {key.path} holds another key ({key.key_id}): it was replaced"
        return ""

    def _heads(self, path: str, records: list[EvidenceRecord], entry: Mapping[str, Any] | None) -> list[SignedHead]:
        raw = self.members.get(f"{path}/{HEADS_NAME}", b"")
        by_seq = {r.seq: r for r in records}
        heads: list[SignedHead] = []
        lines, torn = _lines(raw)
        if torn:
            self.problem(f"{path}/{HEADS_NAME}", "its last line is cut short", path)
        for number, line in enumerate(lines, 1):
            try:
                head = SignedHead.from_json(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, ValueError) as exc:
                self.problem(f"{path}/{HEADS_NAME} line {number}", f"not a signed head ({exc})", path)
                continue
            name = f"{path} record {head.seq}"
            if self.trust is not None:
                why = self.trust.verify(head.signer, head.signed_bytes(), head.signature)
                if why is not None:
                    self.problem(name, f"the head signed at {head.time} is {why}{self._replaced(head.signer)}",
                                 path, head.seq)  # fmt: skip
            record = by_seq.get(head.seq)
            if record is None:
                self.problem(name, f"signed as the head at {head.time}, but not in the case: records cut off", path,
                             head.seq)  # fmt: skip
            elif record.sha256 != head.sha256:
                self.problem(name, f"not the record the head signed at {head.time} vouches for: rewritten", path,
                             head.seq)  # fmt: skip
            heads.append(head)
        heads.sort(key=lambda h: h.seq)
        newest = heads[-1].seq if heads else None
        if entry and newest != entry.get("head_seq"):
            self.problem(f"{path}/{HEADS_NAME}", f"its newest head is record {newest}, the manifest says "
                         f"{entry.get('head_seq')}: a head removed or added", path, rank=self.by_manifest)  # fmt: skip
        if records and (newest is None or newest < records[-1].seq):
            after = f"after record {newest}" if newest else "at all"
            self.warnings.append(f"{path}: no signed head {after}: the unit never vouched for its last records")
        return heads

    def _snapshots(self, path: str, records: list[EvidenceRecord]) -> tuple[int, int]:
        verified = withheld = 0
        named = set()
        for rec in records:
            if not rec.snapshot:
                continue
            member = f"{path}/{SNAPSHOTS}/{rec.snapshot}"
            named.add(member)
            content = self.members.get(member)
            name = f"{path} record {rec.seq}"
            if content is not None:
                if hashlib.sha256(content).hexdigest() != rec.snapshot_sha256:
                    self.problem(name, f"its snapshot {rec.snapshot} was altered: its SHA-256 is not the record's",
                                 path, rec.seq)  # fmt: skip
                else:
                    verified += 1
                if (path, rec.seq) in self.withheld:
                    self.problem(member, "listed as withheld, yet in the zip", path, rank=2)
            elif (path, rec.seq) in self.chosen:
                self.problem(name, f"its snapshot {rec.snapshot} is missing, and the case is about it", path, rec.seq,
                             self.by_manifest)  # fmt: skip
            elif self.withheld.get((path, rec.seq), {}).get("snapshot") == rec.snapshot:
                withheld += 1
            else:
                self.problem(name, f"its snapshot {rec.snapshot} is missing", path, rec.seq)
        prefix = f"{path}/{SNAPSHOTS}/"
        for member in self.members:
            if member.startswith(prefix) and member not in named:
                self.problem(member, "a snapshot no record in the case names (injected?)", path)
        return verified, withheld

    def _tokens(self, path: str, heads: list[SignedHead]) -> int:
        raw = self.members.get(f"{path}/{TIMESTAMPS_NAME}")
        if raw is None:
            return 0
        by_seq = {h.seq: h for h in heads}
        lines, torn = _lines(raw)
        if torn:
            self.problem(f"{path}/{TIMESTAMPS_NAME}", "its last line is cut short", path)
        stamped: set[int] = set()
        for number, line in enumerate(lines, 1):
            try:
                obj = json.loads(line.decode("utf-8"))
                stamp = StampLine(obj["seq"], obj["sha256"], obj["tsa"], obj["time"],
                                  base64.b64decode(obj["token_b64"], validate=True))  # fmt: skip
            except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error) as exc:
                self.problem(f"{path}/{TIMESTAMPS_NAME} line {number}", f"not a timestamp line ({exc})", path)
                continue
            seq = stamp.seq if isinstance(stamp.seq, int) else None
            head = by_seq.get(stamp.seq)
            where = f"{path} record {seq}" if seq else f"{path}/{TIMESTAMPS_NAME} line {number}"
            if head is None or head.sha256 != stamp.sha256:
                self.problem(
                    where, f"the timestamp token from {stamp.tsa} is for no signed head of the case", path, seq
                )
                continue
            if self.roots is not None and self.trust is not None:
                try:
                    verify_token(stamp.token, stamped_data(head), self.roots)
                except (TokenError, ValueError) as exc:
                    self.problem(where, f"the timestamp token of its head does not verify: {exc}", path, seq)
                    continue
            stamped.add(head.seq)
        if self.roots is not None and self.trust is not None:
            self.unstamped += [f"{path} record {seq}" for seq in sorted(set(by_seq) - stamped)]
        return len(lines)


# ---------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class _Segment:
    """The part of one log of the run that goes into the case."""

    path: str
    records: list[tuple[bytes, EvidenceRecord]]
    heads: list[tuple[bytes, SignedHead]]
    stamps: list[bytes]
    chosen: list[EvidenceRecord]  # the records of the alerts the case is about
    folder: Path


def _alert_of(record: EvidenceRecord) -> Mapping[str, Any] | None:
    alert = record.payload.get("alert") if record.kind == "alert" else None
    return alert if isinstance(alert, Mapping) and isinstance(alert.get("alert_id"), str) else None


def _run_logs(run_dir: Path) -> list[str]:
    units = sorted(run_dir.glob(f"{ONBOARD}/unit-*"), key=lambda p: (len(p.name), p.name))
    paths = [EVIDENCE] + [f"{ONBOARD}/{unit.name}" for unit in units]
    return [p for p in paths if (run_dir / p / LOG_NAME).is_file()]


def _segment(run_dir: Path, path: str, trust: TrustStore, wanted: Mapping[str, None] | None) -> _Segment | None:
    folder = run_dir / path
    report = verify_folder(folder, trust)
    if not report.ok:
        where = f"record {report.first_bad_seq}" if report.first_bad_seq is not None else f"line {report.first_bad}"
        raise EvidenceRefused(f"{folder}: {where}: {report.reason}; not exported")
    lines, _ = _lines((folder / LOG_NAME).read_bytes())
    records = [(line, EvidenceRecord.from_json(json.loads(line))) for line in lines]
    chosen = [r for _, r in records if (a := _alert_of(r)) is not None and (wanted is None or a["alert_id"] in wanted)]
    if not records or (wanted is not None and not chosen):
        return None
    head_lines = _lines((folder / HEADS_NAME).read_bytes())[0] if (folder / HEADS_NAME).is_file() else []
    heads = [(line, SignedHead.from_json(json.loads(line))) for line in head_lines]
    first, last = 1, records[-1][1].seq
    if wanted is not None:
        first, newest = chosen[0].seq, max((h.seq for _, h in heads), default=0)
        last = newest if newest >= chosen[-1].seq else last
    heads = [(line, h) for line, h in heads if first <= h.seq <= last]
    stamps = []
    if (folder / TIMESTAMPS_NAME).is_file():
        kept = {(h.seq, h.sha256) for _, h in heads}
        for number, line in enumerate(_lines((folder / TIMESTAMPS_NAME).read_bytes())[0], 1):
            try:
                obj = json.loads(line)
                wanted_token = (obj["seq"], obj["sha256"]) in kept
            except (ValueError, KeyError, TypeError):
                raise EvidenceRefused(f"{folder / TIMESTAMPS_NAME}: line {number} is not a timestamp line") from None
            if wanted_token:
                stamps.append(line)
    segment = [(line, r) for line, r in records if first <= r.seq <= last]
    return _Segment(path, segment, heads, stamps, chosen, folder)


def export_case(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    signer: Signer,
    trust: TrustStore,
    alert_ids: Sequence[str] | None = None,
    force: bool = False,
) -> ExportResult:
    """Write the case file of ``run_dir`` (its chosen alerts, or everything) to ``out``, sealed by
    ``signer``. The run's evidence is verified against ``trust`` first, and the case file after: what
    does not verify here is not exported (EvidenceRefused)."""
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not force:
        raise UserError(f"{out}: already there (--force replaces it)")
    run = _run_info(run_dir)
    wanted = None if alert_ids is None else dict.fromkeys(alert_ids)
    segments = [s for p in _run_logs(run_dir) if (s := _segment(run_dir, p, trust, wanted)) is not None]
    found = {a["alert_id"] for s in segments for r in s.chosen if (a := _alert_of(r)) is not None}
    unknown = [a for a in wanted or () if a not in found]
    if unknown:
        raise UserError(f"{run_dir}: no alert {unknown[0]!r} in its evidence (`borderwatch evidence show` lists them)")
    if not segments:
        raise UserError(f"{run_dir}: no evidence to export (no records in evidence/ or {ONBOARD}/unit-N/)")
    files, manifest = _case_files(run_dir, run, segments, signer, trust, wanted, out.name)
    manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    seal = {"format": SEAL_FORMAT, "manifest_sha256": digest, "signer": signer.key_id,
            "signature": signer.sign(digest.encode("ascii"))}  # fmt: skip
    data = zip_bytes([(MANIFEST, manifest_bytes), (SEAL, (canonical_json(seal) + "\n").encode("utf-8")), *files])
    check = verify_case(data, trust)
    if not check.ok:
        raise EvidenceRefused(f"{out}: the case file would not verify here ({check.problems[0]}); not written")
    _write_atomically(out, data)
    return ExportResult(
        path=out, bytes=len(data), alerts=len(manifest["cases"]), records=sum(len(s.records) for s in segments),
        logs=len(segments), snapshots=sum(c.snapshots for c in check.logs), withheld=len(manifest["withheld"]),
        heads=sum(len(s.heads) for s in segments), tokens=sum(len(s.stamps) for s in segments),
        sealed_by=signer.key_id,
    )  # fmt: skip


def _run_info(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    path = run_dir / RUN_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file: not a run folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: not a JSON object")
    return {"folder": run_dir.resolve().name, **{k: document.get(k) for k in ("site_name", "started", "ended")}}


def _case_files(run_dir, run, segments: list[_Segment], signer: Signer, trust: TrustStore, wanted, name: str):
    """The members after the seal, in order, and the manifest that lists them."""
    body: list[tuple[str, bytes]] = []
    logs, cases, withheld, entries = [], [], [], []
    signers: dict[str, None] = {signer.key_id: None}
    for s in segments:
        body.append((f"{s.path}/{LOG_NAME}", b"".join(line + b"\n" for line, _ in s.records)))
        if s.heads:
            body.append((f"{s.path}/{HEADS_NAME}", b"".join(line + b"\n" for line, _ in s.heads)))
        if s.stamps:
            body.append((f"{s.path}/{TIMESTAMPS_NAME}", b"".join(line + b"\n" for line in s.stamps)))
        chosen = {r.seq for r in s.chosen}
        first = s.records[0][1]
        head_seq = s.heads[-1][1].seq if s.heads else None
        logs.append({"path": s.path, "first_seq": first.seq, "last_seq": s.records[-1][1].seq,
                     "anchor_sha256": first.prev_sha256, "head_seq": head_seq})  # fmt: skip
        for _, rec in s.records:
            signers.update(dict.fromkeys(k for k in [rec.signer] if k))
            if not rec.snapshot:
                continue
            if wanted is None or rec.seq in chosen:
                snapshot = (s.folder / SNAPSHOTS / rec.snapshot).read_bytes()
                body.append((f"{s.path}/{SNAPSHOTS}/{rec.snapshot}", snapshot))
                if rec.seq in chosen:
                    entries.append(SummaryEntry(s.path, rec, _alert_of(rec) or {}, snapshot))
            else:
                withheld.append({"log": s.path, "seq": rec.seq, "snapshot": rec.snapshot,
                                 "sha256": rec.snapshot_sha256})  # fmt: skip
        entries += [SummaryEntry(s.path, r, _alert_of(r) or {}, None) for r in s.chosen if not r.snapshot]
        signers.update(dict.fromkeys(h.signer for _, h in s.heads))
        cases += [{"log": s.path, "seq": r.seq, "alert_id": (_alert_of(r) or {})["alert_id"]} for r in s.chosen]
    keys = []
    for k in signers:
        if k not in trust:  # only the sealing key can get here: the logs were verified against this trust store
            raise UserError(f"key {k}, which seals the case, is not in this station's trust store, so no verifier "
                            "would trust it either (`borderwatch keys trust` its public key)")  # fmt: skip
        keys.append({"key_id": k, "fingerprint": fingerprint(trust.keys[k]), "path": f"{KEYS}/{k}.pub"})
    site_path = run_dir / SITE_FILE
    site = _site(site_path)
    entries.sort(key=lambda e: (str(e.alert.get("iso_time") or e.record.time), e.log, e.record.seq))
    manifest = {
        "format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "run": run, "alerts": None if wanted is None else list(wanted), "logs": logs, "cases": cases,
        "withheld": withheld, "keys": keys,
    }  # fmt: skip
    files = [(SUMMARY, summary_html(manifest, site, entries, signer.key_id, name))]
    if site_path.is_file():
        files.append((SITE_FILE, site_path.read_bytes()))
    files += [(key["path"], public_pem(trust.keys[key["key_id"]])) for key in keys]
    files += body
    manifest["files"] = [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for p, d in files]
    return files, manifest


def _site(path: Path) -> Site | None:
    """The run's site for the maps; a run without a readable one gets a summary without maps."""
    try:
        return read_site_unvalidated(path) if path.is_file() else None
    except UserError:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
