"""`borderwatch report`: a run folder in, an offline HTML report and a KPI summary out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groundstation.runs.kpis import compute_run_kpis, format_run_kpis
from groundstation.runs.reader import read_run
from groundstation.runs.report import default_report_path, write_report


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "report",
        help="write an offline HTML report (map and KPIs) of a recorded patrol run",
        description="Report on a run folder written by the ground station or the demo: a map of zones, planned "
        "and flown tracks, the ground seen, detections and alerts with their evidence snapshots, and KPIs.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (it holds run.json)")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.html",
        help="the report page; its assets go to OUT_files/ beside it (default RUN_DIR/report/report.html)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print no KPI summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = read_run(args.run_dir)
    for warning in data.warnings:
        print(f"borderwatch: warning: {warning}", file=sys.stderr)
    kpis = compute_run_kpis(data)
    out = write_report(data, Path(args.output) if args.output else default_report_path(args.run_dir), kpis)
    if not args.quiet:
        print(format_run_kpis(kpis))
    print(f"wrote {out}")
    return 0
