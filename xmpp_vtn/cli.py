"""The ``xmpp-vtn`` command."""
from __future__ import annotations

import argparse
import os
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


def _ven_sim(args: argparse.Namespace) -> int:
    from . import vensim
    try:
        accounts = vensim.load_accounts(args.accounts, args.prefix, args.domain, args.count, args.password)
    except (OSError, ValueError) as exc:
        print(f"xmpp-vtn ven-sim: {exc}", file=sys.stderr)
        return 2
    if not accounts:
        print("xmpp-vtn ven-sim: no accounts: give --count, or --accounts FILE", file=sys.stderr)
        return 2
    if not 0 <= args.opt_in <= 1:
        print("xmpp-vtn ven-sim: --opt-in is a ratio between 0 and 1", file=sys.stderr)
        return 2
    options = vensim.Options(vtn_jid=args.vtn, host=args.host, port=args.port, opt_in_ratio=args.opt_in,
                             answer_delay=args.answer_delay / 1000)
    counts = vensim.run_simulation(accounts, options, processes=args.processes, duration=args.duration)
    print(vensim.summary(counts, len(accounts)))
    return 0 if counts.failed == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``xmpp-vtn``."""
    parser = argparse.ArgumentParser(prog="xmpp-vtn", description="OpenADR 2.0b VTN over XMPP")
    commands = parser.add_subparsers(dest="command", required=True)
    schemas = commands.add_parser("schemas", help="install or verify the OpenADR 2.0b XSD set")
    schemas.add_argument("action", choices=["install", "verify"])
    schemas.add_argument("--wheel", help="install from this openleadr wheel file instead of downloading it")
    schemas.set_defaults(run=_schemas)

    sim = commands.add_parser("ven-sim", help="run many simulated VENs against a VTN (load and behaviour tests)")
    sim.add_argument("--vtn", required=True, help="the VTN component's JID, e.g. vtn.example.com")
    sim.add_argument("--host", default="127.0.0.1", help="the XMPP server's client address")
    sim.add_argument("--port", type=int, default=5222, help="the XMPP server's client port")
    sim.add_argument("--count", type=int, default=0, help="how many VENs (with --accounts: at most this many)")
    sim.add_argument("--accounts", help="file of 'jid password' lines (otherwise PREFIX<n>@DOMAIN)")
    sim.add_argument("--prefix", default="simven", help="account name prefix without --accounts")
    sim.add_argument("--domain", default="localhost", help="account domain without --accounts")
    sim.add_argument("--password", default="simven", help="the accounts' password without --accounts")
    sim.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                     help="worker processes the VENs are spread over")
    sim.add_argument("--opt-in", type=float, default=1.0, help="share of VENs that opt in to events (0..1)")
    sim.add_argument("--answer-delay", type=float, default=0.0, help="milliseconds a VEN waits before answering")
    sim.add_argument("--duration", type=float, default=None,
                     help="seconds to run once all VENs are up (default: until Ctrl-C)")
    sim.set_defaults(run=_ven_sim)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xmpp-vtn`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
