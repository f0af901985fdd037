"""`borderwatch keys`: the signing key evidence is signed with, and the keys this station trusts."""

from __future__ import annotations

import argparse
from pathlib import Path

from vision.signing import (
    TrustStore,
    create_key,
    default_key_path,
    default_trust_dir,
    fingerprint,
    key_id,
    load_key,
    load_public,
    public_pem,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "keys",
        help="the Ed25519 key this unit signs evidence with, and the keys this station trusts",
        description=(
            f"The signing key lives outside run folders, readable by its owner only (default {default_key_path()}, "
            f"or $BORDERWATCH_KEY); the trust store is a folder of public keys (default {default_trust_dir()}, "
            "or $BORDERWATCH_TRUST)."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    init = actions.add_parser("init", help="make this unit's signing key (and trust it here)")
    init.add_argument("--key", metavar="FILE", help=f"where the private key goes (default {default_key_path()})")
    init.add_argument("--force", action="store_true", help="replace an existing key (evidence it signed stays valid)")
    init.set_defaults(run=run_init)
    export = actions.add_parser("export", help="print the public key, its id and fingerprint")
    export.add_argument("--key", metavar="FILE", help=f"the private key (default {default_key_path()})")
    export.add_argument("-o", "--output", metavar="FILE", help="also write the public key (PEM) to FILE")
    export.set_defaults(run=run_export)
    trust = actions.add_parser("trust", help="trust a unit's public key (PEM, as `keys export` writes it)")
    trust.add_argument("file", metavar="FILE", help="the public key")
    trust.add_argument("--trust", metavar="DIR", help=f"the trust store (default {default_trust_dir()})")
    trust.set_defaults(run=run_trust)
    listing = actions.add_parser("list", help="the keys this station trusts")
    listing.add_argument("--trust", metavar="DIR", help=f"the trust store (default {default_trust_dir()})")
    listing.set_defaults(run=run_list)


def run_init(args: argparse.Namespace) -> int:
    signer = create_key(Path(args.key) if args.key else default_key_path(), force=args.force)
    TrustStore.load(default_trust_dir()).trust(signer.public)
    print(f"signing key {signer.path} (readable by you only)")
    print(f"key id {signer.key_id}, fingerprint {fingerprint(signer.public)}")
    print("trusted by this station; on a station that verifies this unit's evidence: borderwatch keys trust FILE "
          "with the file `borderwatch keys export -o FILE` writes")  # fmt: skip
    return 0


def run_export(args: argparse.Namespace) -> int:
    signer = load_key(Path(args.key) if args.key else default_key_path())
    pem = public_pem(signer.public)
    if args.output:
        Path(args.output).write_bytes(pem)
    print(f"# key id {signer.key_id}")
    print(f"# fingerprint {fingerprint(signer.public)}")
    print(pem.decode("ascii"), end="")
    return 0


def run_trust(args: argparse.Namespace) -> int:
    key = load_public(args.file)
    store = TrustStore.load(Path(args.trust) if args.trust else default_trust_dir())
    path = store.trust(key)
    print(f"trusted key {key_id(key)} (fingerprint {fingerprint(key)}): {path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    store = TrustStore.load(Path(args.trust) if args.trust else default_trust_dir())
    if not len(store):
        print(f"{store.directory}: no trusted keys")
    for kid, key in sorted(store.keys.items()):
        print(f"{kid}  {fingerprint(key)}")
    return 0
