"""Collect the VENs' telemetry with ``on_register_report`` in OpenLEADR's compact form.

A VEN offers its reports after it registers (oadrRegisterReport). For each reading offered in a
TELEMETRY_USAGE or TELEMETRY_STATUS report, the VTN calls

    on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling)

This one asks for real power and real energy, sampled every minute (or as near as the VEN allows)
and reported every five minutes, and writes each reading to a sqlite3 table and prints it.
VENs register when their venID is their account's name (``ven-north`` logs in as
``ven-north@xmpp.example.com``).

    XMPP_VTN_SECRET_FILE=/etc/xmpp-vtn/secret python examples/report_consumer.py --jid vtn.example.com \
        --readings readings.db
    python examples/report_consumer.py --check      # build the VTN, try the handler, no connection
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

from vtn import component_secret             # examples/vtn.py: the secret from a file or the environment
from xmpp_vtn import VTNComponent

WANTED = ("powerReal", "energyReal")        # item names, as the schema spells them
SAMPLING = timedelta(minutes=1)
REPORT_EVERY = timedelta(minutes=5)

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    ven_id TEXT NOT NULL, resource_id TEXT, measurement TEXT NOT NULL, unit TEXT, scale TEXT,
    at TEXT, value TEXT NOT NULL
)
"""


class Readings:
    """Where readings go: one row per (VEN, resource, measurement, time)."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute(SCHEMA)

    def on_register_report(self, ven_id: str, resource_id: str | None, measurement: str, unit: str | None,
                           scale: str | None, min_sampling: timedelta | None, max_sampling: timedelta | None):
        """Called once per offered reading; returns (callback, sampling_interval, report_interval) or None."""
        if measurement not in WANTED:
            return None
        sampling = SAMPLING
        if min_sampling is not None and sampling < min_sampling:
            sampling = min_sampling                 # the VEN cannot sample that often
        if max_sampling and sampling > max_sampling:
            sampling = max_sampling
        callback = functools.partial(self.store, ven_id, resource_id, measurement, unit, scale)
        return callback, sampling, max(REPORT_EVERY, sampling)

    def store(self, ven_id: str, resource_id: str | None, measurement: str, unit: str | None, scale: str | None,
              data: list[tuple[datetime | None, Any]]) -> None:
        """The callback: ``data`` is [(datetime, value), ...] from one oadrUpdateReport."""
        for at, value in data:
            # A status reading's value is a dict (oadrPayloadResourceStatus); numbers stay numbers.
            text = json.dumps(value, default=str) if isinstance(value, dict) else repr(value)
            self.db.execute("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (ven_id, resource_id, measurement, unit, scale, at.isoformat() if at else None, text))
            print(f"{ven_id} {resource_id or '-'} {measurement} at {at.isoformat() if at else '?'}: "
                  f"{text} {scale if scale not in (None, 'none') else ''}{unit or ''}", flush=True)


def on_create_party_registration(payload: dict, sender: str) -> tuple[str, str] | None:
    """A VEN may register when its venID is the name of the account it logs in with."""
    account = sender.split("@", 1)[0]
    ven_id = payload.get("ven_id") or account
    if ven_id != account:
        return None
    return ven_id, payload.get("registration_id") or f"reg-{ven_id}"


def build_vtn(readings: Readings, jid: str, secret: str, host: str = "127.0.0.1", port: int = 5347,
              store: str = "xmpp-vtn.sqlite3") -> VTNComponent:
    vtn = VTNComponent("VTN-reports", jid, secret, host=host, port=port, store=store)
    vtn.add_handler("on_create_party_registration", on_create_party_registration)
    vtn.add_handler("on_register_report", readings.on_register_report)
    return vtn


async def serve(args: argparse.Namespace) -> None:
    vtn = build_vtn(Readings(args.readings), args.jid, args.secret, args.host, args.port, args.store)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await vtn.run()
    try:
        await stopping.wait()
    finally:
        await vtn.stop()


def check() -> None:
    """Build the VTN and try the handler and its callback on made-up values, without connecting."""
    readings = Readings(":memory:")
    vtn = build_vtn(readings, "vtn.example.com", "not-needed-for-check", store=":memory:")
    assert readings.on_register_report("ven-north", "meter1", "voltage", "V", "none", None, None) is None
    callback, sampling, report_every = readings.on_register_report(
        "ven-north", "meter1", "energyReal", "Wh", "k", timedelta(minutes=5), timedelta(hours=1))
    assert (sampling, report_every) == (timedelta(minutes=5), timedelta(minutes=5)), (sampling, report_every)
    callback([(datetime(2030, 1, 1, 12, tzinfo=timezone.utc), 1.5)])
    rows = readings.db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    assert rows == 1, rows
    print(f"OK: VTN {vtn.vtn_id} as {vtn.jid}; energyReal requested every {sampling}, one reading stored")
    vtn.store.close()


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jid", default=env("XMPP_VTN_JID", "vtn.localhost"), help="the component's domain")
    parser.add_argument("--secret-file", help="file whose first line is the component secret (default: "
                        "$XMPP_VTN_SECRET_FILE, else the secret in $XMPP_VTN_SECRET)")
    parser.add_argument("--host", default=env("XMPP_VTN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("XMPP_VTN_PORT", "5347")))
    parser.add_argument("--store", default="xmpp-vtn.sqlite3", help="the VTN's own state (SQLite file)")
    parser.add_argument("--readings", default="readings.db", help="the SQLite file readings are written to")
    parser.add_argument("--check", action="store_true", help="build the VTN and try the handler, then exit")
    args = parser.parse_args()
    if args.check:
        check()
        return
    args.secret = component_secret(args.secret_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
