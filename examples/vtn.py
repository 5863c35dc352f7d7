"""An example VTN to copy from: who may register, and what the VTN does when they do.

Run it against your own XMPP server (the component must be declared there with its secret):

    XMPP_VTN_SECRET_FILE=/etc/xmpp-vtn/secret python examples/vtn.py --jid vtn.example.com --port 5347

The component secret comes from the file named by ``--secret-file`` or ``XMPP_VTN_SECRET_FILE``,
or from the ``XMPP_VTN_SECRET`` environment variable: never from the command line, which every
user of the machine can read in ``ps``.

``examples/demo.py`` runs this same VTN against a private Prosody, with three simulated VENs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import logging
import signal
from datetime import timedelta
from typing import Any, Callable

from xmpp_vtn import VTNComponent

# The VENs this utility has contracts with: venID -> (display name, the XMPP account it logs in
# with). A real deployment reads its customer database here.
KNOWN_VENS = {"ven-north": ("North substation", "north"), "ven-east": ("East campus", "east"),
              "ven-south": ("South depot", "south"),
              # An OpenLEADR VEN over simpleHTTP. Its identity is its TLS client certificate's
              # fingerprint ("x509:<fingerprint>"); on the demo's plain loopback HTTP
              # (http_allow_insecure) it is the venID it claims.
              "ven-west": ("West pumping station", "http-claim:ven-west")}


def registration_handler(known: dict[str, tuple[str, str]],
                         on_decision: Callable[[str, str | None], None] = lambda *_: None):
    """``on_create_party_registration``: a known venID, from its own account, gets a registration
    id; anything else is refused. The second argument is the JID the XMPP server authenticated."""
    issued = {}

    def on_create_party_registration(payload: dict, sender: str) -> tuple[str, str] | None:
        ven_id = payload.get("ven_id")
        account = sender.split("@", 1)[0]
        if ven_id not in known or known[ven_id][1] != account:
            on_decision(str(ven_id), None)
            return None
        # A VEN that re-registers keeps its registration id.
        registration_id = payload.get("registration_id") or issued.setdefault(ven_id, f"reg-{ven_id}")
        on_decision(ven_id, registration_id)
        return ven_id, registration_id
    return on_create_party_registration


def usage_report_handler(on_reading: Callable[[str, str, list], None]):
    """``on_register_report`` (OpenLEADR's compact form): ask every VEN for its energy usage
    every 10 seconds, if it can sample that fast; ignore everything else it offers."""
    def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling):
        if measurement != "energyReal":
            return None

        def readings(data: list) -> None:                 # [(datetime, value), ...]
            on_reading(ven_id, unit, data)
        return readings, timedelta(seconds=10)
    return on_register_report


def build_vtn(jid: str, secret: str, host: str = "127.0.0.1", port: int = 5347, store: str = "xmpp-vtn.sqlite3",
              vtn_id: str = "VTN-example", on_decision: Callable[[str, str | None], None] = lambda *_: None,
              on_reading: Callable[[str, str, list], None] = lambda *_: None,
              on_opt: Callable[[dict], None] = lambda _: None, **options: Any) -> VTNComponent:
    """The example VTN, ready to ``await vtn.run()``; ``options`` go to VTNComponent (e.g. control_port)."""
    vtn = VTNComponent(vtn_id, jid, secret, host=host, port=port, store=store, **options)
    vtn.add_handler("on_create_party_registration", registration_handler(KNOWN_VENS, on_decision))
    vtn.add_handler("on_register_report", usage_report_handler(on_reading))
    vtn.add_handler("on_create_opt", on_opt)
    return vtn


def component_secret(secret_file: str | None) -> str:
    """The component secret: the first line of ``secret_file`` (or of $XMPP_VTN_SECRET_FILE), else
    $XMPP_VTN_SECRET. SystemExit with the reason when there is none."""
    path = secret_file or os.environ.get("XMPP_VTN_SECRET_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                secret = handle.readline().strip()
        except OSError as error:
            raise SystemExit(f"cannot read the component secret from {path}: {error.strerror}") from None
    else:
        secret = os.environ.get("XMPP_VTN_SECRET", "")
    if not secret:
        raise SystemExit("no component secret: give --secret-file, or set XMPP_VTN_SECRET_FILE or XMPP_VTN_SECRET")
    return secret


async def serve(args: argparse.Namespace) -> None:
    vtn = build_vtn(args.jid, component_secret(args.secret_file), args.host, args.port, args.store, args.vtn_id)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await vtn.run()
    try:
        await stopping.wait()
    finally:
        await vtn.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jid", required=True, help="the component's JID, e.g. vtn.example.com")
    parser.add_argument("--secret-file", help="file whose first line is the component secret configured on the "
                        "server (default: $XMPP_VTN_SECRET_FILE, else the secret in $XMPP_VTN_SECRET)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5347)
    parser.add_argument("--store", default="xmpp-vtn.sqlite3", help="SQLite file holding the VTN's state")
    parser.add_argument("--vtn-id", default="VTN-example")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
