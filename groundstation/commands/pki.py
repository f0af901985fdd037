"""`borderwatch pki`: the CA and certificates that let units, stations and headquarters on the bus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groundstation.link import identity as ids
from groundstation.link import pki
from missions.errors import UserError


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "pki",
        help="make the CA and the certificates of the event bus (broker, stations, units, headquarters)",
        description="Make and extend a PKI folder: the CA the broker trusts, the broker's certificate, and one "
        "client certificate per identity (station-<site>, unit-<site>-<n>, bridge-<site>, hq). See docs/events.md.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    init = actions.add_parser(
        "init",
        help="make a CA, the broker's certificate and, optionally, a site's certificates",
        description="Make a CA and the broker's certificate in DIR; with --site, its station's and units' too.",
    )
    init.add_argument("dir", metavar="DIR", help="the PKI folder (made if missing)")
    init.add_argument("--site", metavar="NAME", help="issue station-NAME (and --units) for this site")
    init.add_argument("--units", type=int, default=0, metavar="N", help="issue unit-NAME-1 … unit-NAME-N")
    init.add_argument(
        "--bridge", action="store_true", help="issue bridge-NAME, which the site's broker forwards to headquarters with"
    )
    init.add_argument("--hq", action="store_true", help="issue hq, headquarters' certificate")
    init.add_argument(
        "--broker-name",
        nargs="+",
        action="extend",
        default=[],
        metavar="HOST",
        help="more names or addresses the broker is reached by (localhost and 127.0.0.1 always)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing CA and what it issued")
    init.set_defaults(run=run_init)
    issue = actions.add_parser(
        "issue",
        help="issue one client certificate",
        description="Issue a client certificate signed by DIR's CA; "
        "IDENTITY is station-<site>, unit-<site>-<n>, bridge-<site> or hq.",
    )
    issue.add_argument("dir", metavar="DIR", help="the PKI folder made by `borderwatch pki init`")
    issue.add_argument("identity", metavar="IDENTITY", help="station-<site>, unit-<site>-<n>, bridge-<site> or hq")
    issue.add_argument("--force", action="store_true", help="replace an existing certificate of IDENTITY")
    issue.set_defaults(run=run_issue)


def run_init(args: argparse.Namespace) -> int:
    pki_dir = Path(args.dir)
    if args.units < 0:
        raise UserError(f"--units must be 0 or more, not {args.units}")
    if args.units and not args.site:
        raise UserError("--units needs --site: a unit belongs to a site")
    if args.bridge and not args.site:
        raise UserError("--bridge needs --site: a bridge forwards one site's messages")
    wanted = []
    if args.site:
        wanted.append(ids.station(args.site))
        wanted.extend(ids.unit(args.site, n) for n in range(1, args.units + 1))
        if args.bridge:
            wanted.append(ids.bridge(args.site))
    if args.hq:
        wanted.append(ids.hq())
    for path in pki.init(pki_dir, args.broker_name, force=args.force):
        print(f"wrote {path}")
    for who in wanted:
        _print_issued(pki.issue(pki_dir, who, force=args.force))
    for path in pki.stale(pki_dir):
        print(
            f"borderwatch: warning: {path}: issued by the replaced CA, no longer accepted; "
            f"`borderwatch pki issue {pki_dir} {path.stem} --force` issues a new one",
            file=sys.stderr,
        )
    return 0


def run_issue(args: argparse.Namespace) -> int:
    _print_issued(pki.issue(Path(args.dir), ids.parse(args.identity), force=args.force))
    return 0


def _print_issued(creds: pki.Credentials) -> None:
    print(f"wrote {creds.cert}")
    print(f"wrote {creds.key}")
