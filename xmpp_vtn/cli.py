"""The ``xmpp-vtn`` command."""
from __future__ import annotations

import argparse
import sys

from . import bundle
from .errors import SchemaBundleError


def _schemas(args: argparse.Namespace) -> int:
    try:
        if args.action == "install":
            directory = bundle.install(wheel=args.wheel)
            print(f"installed the OpenADR 2.0b schema set in {directory}")
        else:
            entry = bundle.verify()
            print(f"schema set OK: {entry}")
    except SchemaBundleError as exc:
        print(f"xmpp-vtn: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``xmpp-vtn``."""
    parser = argparse.ArgumentParser(prog="xmpp-vtn", description="OpenADR 2.0b VTN over XMPP")
    commands = parser.add_subparsers(dest="command", required=True)
    schemas = commands.add_parser("schemas", help="install or verify the OpenADR 2.0b XSD set")
    schemas.add_argument("action", choices=["install", "verify"])
    schemas.add_argument("--wheel", help="install from this openleadr wheel file instead of downloading it")
    schemas.set_defaults(run=_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xmpp-vtn`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
