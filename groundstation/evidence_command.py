"""`borderwatch evidence`: check an evidence log for tampering, or list what it holds."""

from __future__ import annotations

import argparse
import sys

from missions.errors import UserError
from vision.evidence import EvidenceRecord
from vision.evidence_verify import read_records, verify

EXIT_TAMPERED = 1  # not 2: a tampered log is a finding about the evidence, not a mistake on the command line
_PAYLOAD_WIDTH = 48


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evidence",
        help="verify or list a tamper-evident evidence log",
        description="Verify or list an evidence directory written during a patrol (evidence.jsonl + snapshots/).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    check = actions.add_parser(
        "verify",
        help="check every record, link and snapshot; exit 1 naming the first bad record",
        description="Check the hash chain and snapshots. Exit 0 when intact, 1 when tampered with.",
    )
    check.add_argument("dir", metavar="DIR", help="evidence directory")
    check.set_defaults(run=run_verify)
    show = actions.add_parser("show", help="list the records", description="List the records of an evidence log.")
    show.add_argument("dir", metavar="DIR", help="evidence directory")
    show.add_argument("--last", type=int, metavar="N", help="only the newest N records")
    show.set_defaults(run=run_show)


def run_verify(args: argparse.Namespace) -> int:
    report = verify(args.dir)
    for warning in report.warnings:
        print(f"borderwatch: warning: {args.dir}: {warning}", file=sys.stderr)
    if report.torn_tail:
        print(
            f"borderwatch: warning: {args.dir}: the last line was cut off mid-write (a crash) and is not counted",
            file=sys.stderr,
        )
    if report.ok:
        print(f"{args.dir}: {report.records} records, chain intact (snapshots: {report.snapshots_verified} verified)")
        return 0
    where = f"line {report.first_bad}"
    if report.first_bad_seq is not None:
        where = f"record {report.first_bad_seq} ({where})"
    print(f"{args.dir}: {where}: {report.reason}")
    return EXIT_TAMPERED


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
