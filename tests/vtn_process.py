"""A VTN in its own process, for fault tests that kill it: ``python tests/vtn_process.py --help``.

Every oadrCreatedEvent answer the application sees is appended to ``--log`` as a JSON line, so a
test can count callbacks across processes. With ``--event-when N`` it adds one event for all VENs
as soon as N are registered and prints ``event-added``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmpp_vtn import VTNComponent  # noqa: E402


async def serve(args: argparse.Namespace) -> None:
    vtn = VTNComponent("VTN-1", args.jid, args.secret, port=args.port, store=args.store, ping_interval=None)
    log = open(args.log, "a", buffering=1)

    def on_created_event(payload: dict) -> None:
        for answer in payload.get("event_responses") or []:
            log.write(json.dumps({"pid": os.getpid(), "ven_id": payload["ven_id"], "event_id": answer["event_id"],
                                  "opt": answer["opt_type"]}) + "\n")
        os.fsync(log.fileno())
    vtn.add_handler("on_create_party_registration", lambda payload: (payload["ven_id"], "reg-" + payload["ven_id"]))
    vtn.add_handler("on_created_event", on_created_event)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await vtn.run()
    print(f"serving {len(vtn.vens())} vens {len(vtn.events())} events", flush=True)
    if args.event_when:
        while len(vtn.vens()) < args.event_when:
            await asyncio.sleep(0.02)                   # polling a count the test drives; no event to await
        start = datetime.now(timezone.utc) + timedelta(hours=1)
        vtn.add_event([ven.ven_id for ven in vtn.vens()], "SIMPLE", "level",
                      [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1.0}],
                      event_id="fault-event")
        print("event-added", flush=True)
    await stopping.wait()
    await vtn.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--jid", "--secret", "--store", "--log"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--event-when", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
