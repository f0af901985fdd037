"""`borderwatch evidence`: check an evidence log or a case file for tampering, list a log, export a case file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groundstation.runs.casefile import CaseReport, EvidenceRefused, export_case, verify_case_file
from missions.errors import UserError
from vision.evidence import EvidenceRecord
from vision.evidence_verify import read_records, verify
from vision.signing import TrustStore, default_trust_dir, load_key, station_key
from vision.timestamps import load_tsa_roots

EXIT_TAMPERED = 1  # not 2: a tampered log is a finding about the evidence, not a mistake on the command line
_PAYLOAD_WIDTH = 48


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evidence",
        help="verify or list a tamper-evident evidence log",
        description="Verify or list an evidence directory written during a patrol (evidence.jsonl + snapshots/), "
        "or export and verify a sealed case file.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    check = actions.add_parser(
        "verify",
        help="check every record, link and snapshot of a log or a case file; exit 1 naming the first bad record",
        description="Check the hash chain, signatures and snapshots of an evidence directory, or everything in a "
        "case file (CASE.zip) against your own trusted keys. Exit 0 when intact, 1 when tampered with.",
    )
    check.add_argument("dir", metavar="DIR|CASE.zip", help="evidence directory, or a case file")
    check.add_argument("--trust", metavar="DIR",
                       help=f"the trusted public keys (default {default_trust_dir()})")  # fmt: skip
    check.add_argument("--unsigned", action="store_true",
                       help="check hashes, links and snapshots only (a log kept before signing existed)")  # fmt: skip
    check.add_argument("--tsa-roots", metavar="FILE",
                       help="PEM certificates of the TSA roots to check the timestamp tokens against")  # fmt: skip
    check.set_defaults(run=run_verify)
    export = actions.add_parser(
        "export",
        help="write a sealed case file of a run's evidence, all of it or the chosen alerts",
        description="Write CASE.zip: the evidence records (all, or the chosen alerts and the chain segment that "
        "proves them), their snapshots, signed heads, timestamp tokens, public keys, a manifest of SHA-256 hashes "
        "sealed by this station's key, and a one-page HTML summary. `borderwatch evidence verify CASE.zip` checks "
        "it offline with only the trusted keys.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder")
    export.add_argument("-o", "--output", metavar="CASE.zip", required=True, help="the case file to write")
    export.add_argument(
        "--alert",
        metavar="ID",
        action="append",
        dest="alerts",
        help="an alert the case is about (repeat for more); default: every record of the run",
    )
    export.add_argument("--key", metavar="FILE", help="the key that seals the case (default: this station's)")
    export.add_argument(
        "--trust", metavar="DIR", help=f"the trusted keys the evidence is checked with (default {default_trust_dir()})"
    )
    export.add_argument("--force", action="store_true", help="replace CASE.zip when it is there")
    export.set_defaults(run=run_export)
    show = actions.add_parser("show", help="list the records", description="List the records of an evidence log.")
    show.add_argument("dir", metavar="DIR", help="evidence directory")
    show.add_argument("--last", type=int, metavar="N", help="only the newest N records")
    show.set_defaults(run=run_show)


def run_verify(args: argparse.Namespace) -> int:
    trust = None if args.unsigned else TrustStore.load(Path(args.trust) if args.trust else default_trust_dir())
    roots = load_tsa_roots(args.tsa_roots) if args.tsa_roots else None
    if not Path(args.dir).is_dir() and (Path(args.dir).is_file() or args.dir.lower().endswith(".zip")):
        return _say_case(args.dir, verify_case_file(args.dir, trust, roots))
    report = verify(args.dir, trust, roots)
    for warning in report.warnings:
        print(f"borderwatch: warning: {args.dir}: {warning}", file=sys.stderr)
    if report.torn_tail:
        print(
            f"borderwatch: warning: {args.dir}: the last line was cut off mid-write (a crash) and is not counted",
            file=sys.stderr,
        )
    if report.ok:
        signed = "hashes and links only, signatures not checked"
        if report.signatures_checked:
            head = report.last_signed_head
            signed = f"signed by {', '.join(report.signers) or 'nobody'}, every signature verified"
            signed += f"; head signed at {head.time} (record {head.seq})" if head else "; no signed head"
        if report.tokens_checked:
            missing = ", ".join(map(str, report.heads_without_token))
            signed += f"; heads without a timestamp token: {missing}" if missing else "; every head timestamped"
        print(f"{args.dir}: {report.records} records, chain intact (snapshots: {report.snapshots_verified} verified; "
              f"{signed})")  # fmt: skip
        return 0
    where = f"line {report.first_bad}"
    if report.first_bad_seq is not None:
        where = f"record {report.first_bad_seq} ({where})"
    print(f"{args.dir}: {where}: {report.reason}")
    return EXIT_TAMPERED


def _say_case(source: str, report: CaseReport) -> int:
    for warning in report.warnings:
        print(f"borderwatch: warning: {source}: {warning}", file=sys.stderr)
    if not report.ok:
        more = len(report.problems) - 1
        print(f"{source}: {report.problems[0]}" + (f" (and {more} more problem(s))" if more else ""))
        return EXIT_TAMPERED
    spans = ", ".join(f"{c.path} {c.first_seq}–{c.last_seq}" for c in report.logs if c.records)
    records = sum(c.records for c in report.logs)
    snapshots = sum(c.snapshots for c in report.logs)
    withheld = sum(c.withheld for c in report.logs)
    line = f"{source}: case file intact: {records} records ({spans}), {len(report.alerts)} alert(s), "
    line += f"snapshots: {snapshots} verified" + (f", {withheld} withheld" if withheld else "")
    if report.signatures_checked:
        signers = dict.fromkeys(k for c in report.logs for k in c.signers)
        line += f"; signed by {', '.join(signers) or 'nobody'}, every signature verified; sealed by {report.sealed_by}"
    else:
        line += "; hashes and links only, signatures not checked"
    tokens = sum(c.tokens for c in report.logs)
    if tokens and report.tokens_checked:
        line += f"; {tokens} timestamp token(s) verified"
    elif tokens:
        line += f"; {tokens} timestamp token(s), not checked (no --tsa-roots)"
    if report.heads_without_token:
        line += f"; heads without a token: {', '.join(report.heads_without_token)}"
    print(line)
    for key in report.keys:
        trusted = "trusted here" if key.trusted else "NOT trusted here"
        trusted = trusted if report.signatures_checked else "not checked: --unsigned"
        print(f"  {key.path}: key {key.key_id}, fingerprint {key.fingerprint} ({trusted})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    trust = TrustStore.load(Path(args.trust) if args.trust else default_trust_dir())
    signer = load_key(args.key) if args.key else station_key(say=lambda line: print(f"borderwatch: {line}"))
    try:
        result = export_case(args.run_dir, args.output, signer, trust, alert_ids=args.alerts, force=args.force)
    except EvidenceRefused as exc:
        print(f"borderwatch: {exc}", file=sys.stderr)
        return EXIT_TAMPERED
    withheld = f", {result.withheld} withheld" if result.withheld else ""
    print(f"{result.path}: {result.alerts} alert(s), {result.records} records from {result.logs} log(s), "
          f"{result.snapshots} snapshot(s){withheld}, {result.heads} signed head(s), {result.tokens} timestamp "
          f"token(s); sealed by key {result.sealed_by} ({result.bytes} bytes)")  # fmt: skip
    return 0


def run_show(args: argparse.Namespace) -> int:
    if args.last is not None and args.last < 1:
        raise UserError(f"--last must be at least 1, not {args.last}")
    rows = list(read_records(args.dir))
    if args.last is not None:
        rows = rows[-args.last :]
    table = [("SEQ", "TIME (UTC)", "KIND", "PAYLOAD", "SNAPSHOT")]
    unreadable = 0
    for line, record in rows:
        if isinstance(record, EvidenceRecord):
            table.append((str(record.seq), record.time, record.kind, _summary(record.payload), record.snapshot or "-"))
        else:
            unreadable += 1
            table.append(("?", "-", "-", f"line {line} unreadable: {record}", "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if unreadable:
        print(f"borderwatch: warning: {args.dir}: {unreadable} unreadable line(s); run `borderwatch evidence verify`")
    return 0


def _summary(payload: object) -> str:
    if not isinstance(payload, dict) and not hasattr(payload, "items"):
        return str(payload)
    text = ", ".join(f"{k}={_scalar(v)}" for k, v in payload.items())
    return text if len(text) <= _PAYLOAD_WIDTH else text[: _PAYLOAD_WIDTH - 1] + "…"


def _scalar(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str | int | bool) or value is None:
        return str(value)
    return "…"
