"""Registration backed by a table of known VENs (sqlite3).

The table ``vens`` lists the VENs the utility has a contract with: the venID, the XMPP account
the VEN logs in with, a display name, and the registration id issued to it (NULL until it
registers). ``on_create_party_registration`` looks the VEN up, refuses unknown VENs and VENs
speaking from the wrong account, and returns ``(ven_id, registration_id)``.

    python examples/database_registration.py --db vens.db add ven-north north@xmpp.example.com "North substation"
    python examples/database_registration.py --db vens.db list
    XMPP_VTN_SECRET_FILE=/etc/xmpp-vtn/secret python examples/database_registration.py --db vens.db serve \
        --jid vtn.example.com
    python examples/database_registration.py --check      # build the VTN, try the handler, no connection
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import uuid

from vtn import component_secret             # examples/vtn.py: the secret from a file or the environment
from xmpp_vtn import VTNComponent

log = logging.getLogger("vtn.registration")

SCHEMA = """
CREATE TABLE IF NOT EXISTS vens (
    ven_id          TEXT PRIMARY KEY,
    account         TEXT NOT NULL UNIQUE,     -- the bare JID the VEN logs in with
    ven_name        TEXT,
    registration_id TEXT UNIQUE               -- NULL until the VEN registers
)
"""


class KnownVENs:
    """The utility's list of VENs, and the registration handlers that consult it.

    The calls are synchronous: a local SQLite file answers in microseconds. A handler that asks
    a database server should be a coroutine using an asynchronous driver, so that the VTN keeps
    serving other VENs while it waits.
    """

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute(SCHEMA)

    def add(self, ven_id: str, account: str, ven_name: str | None = None) -> None:
        self.db.execute("INSERT INTO vens (ven_id, account, ven_name) VALUES (?, ?, ?)",
                        (ven_id, account.lower(), ven_name))

    def rows(self) -> list[tuple]:
        return self.db.execute("SELECT ven_id, account, ven_name, registration_id FROM vens ORDER BY ven_id").fetchall()

    def on_create_party_registration(self, payload: dict, sender: str) -> tuple[str, str] | None:
        """Look the VEN up; None refuses it (the VEN gets 463, the same answer whatever the reason)."""
        account = sender.split("/", 1)[0].lower()
        ven_id = payload.get("ven_id")
        if ven_id is not None:
            row = self.db.execute("SELECT ven_id, account, registration_id FROM vens WHERE ven_id = ?",
                                  (ven_id,)).fetchone()
        else:
            # A VEN that does not know its venID yet is told it: the account identifies it.
            row = self.db.execute("SELECT ven_id, account, registration_id FROM vens WHERE account = ?",
                                  (account,)).fetchone()
        if row is None:
            log.warning("registration refused: %s (venID %s) is not a known VEN", account, ven_id)
            return None
        known_ven_id, known_account, registration_id = row
        if known_account != account:
            log.warning("registration refused: venID %s belongs to %s, not %s", known_ven_id, known_account, account)
            return None
        if registration_id is None:
            registration_id = uuid.uuid4().hex
            self.db.execute("UPDATE vens SET registration_id = ? WHERE ven_id = ?", (registration_id, known_ven_id))
        log.info("venID %s (%s) registered as %s", known_ven_id, account, registration_id)
        return known_ven_id, registration_id

    def on_cancel_party_registration(self, payload: dict) -> None:
        """The VEN cancelled its registration: its next registration gets a new id."""
        self.db.execute("UPDATE vens SET registration_id = NULL WHERE registration_id = ?",
                        (payload["registration_id"],))


def build_vtn(known: KnownVENs, jid: str, secret: str, host: str = "127.0.0.1", port: int = 5347,
              store: str = "xmpp-vtn.sqlite3") -> VTNComponent:
    vtn = VTNComponent("VTN-database", jid, secret, host=host, port=port, store=store)
    vtn.add_handler("on_create_party_registration", known.on_create_party_registration)
    vtn.add_handler("on_cancel_party_registration", known.on_cancel_party_registration)
    return vtn


async def serve(known: KnownVENs, args: argparse.Namespace) -> None:
    vtn = build_vtn(known, args.jid, args.secret, args.host, args.port, args.store)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await vtn.run()
    try:
        await stopping.wait()
    finally:
        await vtn.stop()


def check() -> None:
    """Build the VTN on an in-memory table and try the handler, without connecting anywhere."""
    known = KnownVENs(":memory:")
    known.add("ven-north", "north@xmpp.example.com", "North substation")
    vtn = build_vtn(known, "vtn.example.com", "not-needed-for-check", store=":memory:")
    accepted = known.on_create_party_registration({"ven_id": "ven-north"}, "north@xmpp.example.com/oadr")
    again = known.on_create_party_registration({}, "north@xmpp.example.com/oadr")
    assert accepted is not None and again == accepted, (accepted, again)
    assert known.on_create_party_registration({"ven_id": "ven-north"}, "south@xmpp.example.com/oadr") is None
    assert known.on_create_party_registration({"ven_id": "ven-west"}, "west@xmpp.example.com/oadr") is None
    print(f"OK: VTN {vtn.vtn_id} as {vtn.jid}; ven-north accepted as {accepted[1]}, strangers refused")
    vtn.store.close()


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="vens.db", help="the SQLite file listing the known VENs")
    parser.add_argument("--check", action="store_true", help="build the VTN and try the handler, then exit")
    commands = parser.add_subparsers(dest="command")
    add = commands.add_parser("add", help="add a known VEN")
    add.add_argument("ven_id")
    add.add_argument("account", help="the bare JID the VEN logs in with, e.g. north@xmpp.example.com")
    add.add_argument("ven_name", nargs="?")
    commands.add_parser("list", help="list the known VENs")
    run = commands.add_parser("serve", help="run the VTN")
    run.add_argument("--jid", default=env("XMPP_VTN_JID", "vtn.localhost"), help="the component's domain")
    run.add_argument("--secret-file", help="file whose first line is the component secret (default: "
                     "$XMPP_VTN_SECRET_FILE, else the secret in $XMPP_VTN_SECRET)")
    run.add_argument("--host", default=env("XMPP_VTN_HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(env("XMPP_VTN_PORT", "5347")))
    run.add_argument("--store", default="xmpp-vtn.sqlite3", help="the VTN's own state (SQLite file)")
    args = parser.parse_args()
    if args.check:
        check()
        return
    if args.command is None:
        parser.error("give a command (add, list, serve) or --check")
    known = KnownVENs(args.db)
    if args.command == "add":
        known.add(args.ven_id, args.account, args.ven_name)
    elif args.command == "list":
        for row in known.rows():
            print("  ".join("-" if value is None else str(value) for value in row))
    else:
        args.secret = component_secret(args.secret_file)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        asyncio.run(serve(known, args))


if __name__ == "__main__":
    main()
