"""The smallest VTN that registers VENs and pushes them one event.

Give it the XMPP server's component settings as arguments or environment variables:

    XMPP_VTN_JID=vtn.example.com XMPP_VTN_SECRET_FILE=/etc/xmpp-vtn/secret python examples/minimal_vtn.py
    python examples/minimal_vtn.py --jid vtn.example.com --secret-file /etc/xmpp-vtn/secret --port 5347

The component secret comes from the file named by ``--secret-file`` or ``XMPP_VTN_SECRET_FILE``,
or else from ``XMPP_VTN_SECRET``: never from the command line, where ``ps`` shows it to everyone.

It accepts every VEN that registers (its venID, or its account name when it sends none): fine
for a first test, never for production (see examples/database_registration.py). When the first
VEN has registered it waits ``--wait`` seconds for others, then creates one event for every
registered VEN (level 1.0 for 10 minutes, starting in one minute) and prints their answers.
Ctrl-C or SIGTERM stops it. ``--check`` builds the VTN and exits without connecting.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from datetime import datetime, timedelta, timezone

from vtn import component_secret             # examples/vtn.py: the secret from a file or the environment
from xmpp_vtn import VTNComponent


def on_create_party_registration(payload: dict, sender: str) -> tuple[str, str]:
    """Accept everyone. ``sender`` is the full JID the XMPP server authenticated."""
    ven_id = payload.get("ven_id") or sender.split("@", 1)[0]
    return ven_id, payload.get("registration_id") or f"reg-{ven_id}"


def on_answer(ven_id: str, event_id: str, opt_type: str) -> None:
    """The event's callback: one call per VEN answer (oadrCreatedEvent)."""
    print(f"{ven_id} answered {opt_type} for event {event_id}", flush=True)


def build_vtn(args: argparse.Namespace) -> VTNComponent:
    vtn = VTNComponent(args.vtn_id, args.jid, args.secret, host=args.host, port=args.port, store=args.store)
    vtn.add_handler("on_create_party_registration", on_create_party_registration)
    return vtn


async def serve(args: argparse.Namespace) -> None:
    vtn = build_vtn(args)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await vtn.run()                          # returns once connected; serves in the background
    print(f"serving as {vtn.jid}; waiting for VENs to register", flush=True)
    try:
        while not vtn.vens() and not stopping.is_set():
            await asyncio.sleep(1)
        if not stopping.is_set():
            await asyncio.sleep(args.wait)
            ven_ids = [ven.ven_id for ven in vtn.vens()]
            start = datetime.now(timezone.utc) + timedelta(minutes=1)
            event_id = vtn.add_event(ven_ids, "SIMPLE", "level",
                                     [{"dtstart": start, "duration": timedelta(minutes=10), "signal_payload": 1.0}],
                                     callback=on_answer)
            print(f"event {event_id} pushed to {', '.join(ven_ids)}", flush=True)
        await stopping.wait()
    finally:
        await vtn.stop()


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jid", default=env("XMPP_VTN_JID", "vtn.localhost"),
                        help="the component's domain ($XMPP_VTN_JID)")
    parser.add_argument("--secret-file", help="file whose first line is the component secret (default: "
                        "$XMPP_VTN_SECRET_FILE, else the secret in $XMPP_VTN_SECRET)")
    parser.add_argument("--host", default=env("XMPP_VTN_HOST", "127.0.0.1"),
                        help="the XMPP server's address ($XMPP_VTN_HOST)")
    parser.add_argument("--port", type=int, default=int(env("XMPP_VTN_PORT", "5347")),
                        help="the server's component port ($XMPP_VTN_PORT)")
    parser.add_argument("--store", default=env("XMPP_VTN_STORE", "minimal-vtn.sqlite3"),
                        help="the SQLite file holding the VTN's state ($XMPP_VTN_STORE)")
    parser.add_argument("--vtn-id", default="VTN-minimal")
    parser.add_argument("--wait", type=float, default=10.0,
                        help="seconds to wait for more VENs after the first registers")
    parser.add_argument("--check", action="store_true", help="build the VTN and exit without connecting")
    args = parser.parse_args(argv)
    if args.check:
        args.store = ":memory:"
        args.secret = "not-needed-for-check"
    else:
        args.secret = component_secret(args.secret_file)
    return args


def main() -> None:
    args = arguments()
    if args.check:
        vtn = build_vtn(args)
        print(f"OK: VTN {vtn.vtn_id} as {vtn.jid}, would connect to {args.host}:{args.port}")
        vtn.store.close()
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
