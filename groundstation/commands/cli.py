"""The `borderwatch` command: one subcommand per job, user errors as one line and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from missions.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr, not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from groundstation.commands import ais, cot, demo, detect, evidence, fly, gui, keys, pki, plan, report, sim

    parser = _Parser(prog="borderwatch", description="Plan, fly and watch drone patrols over ports and coastlines.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log everything, MAVSDK's chatter included")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    plan.add_parser(commands)
    sim.add_parser(commands)
    fly.add_parser(commands)
    evidence.add_parser(commands)
    detect.add_parser(commands)
    gui.add_parser(commands)
    report.add_parser(commands)
    demo.add_parser(commands)
    pki.add_parser(commands)
    keys.add_parser(commands)
    ais.add_parser(commands)
    cot.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="borderwatch: %(name)s: %(message)s"
    )
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"borderwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("borderwatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
