"""One simpleHTTP VTN in its own process for bench/http_fanout.py: ours or OpenLEADR's.

``--server ours`` runs :class:`~xmpp_vtn.VTNComponent` with a SQLite file store and plain HTTP
(``http_allow_insecure=True``: no TLS on either side), connected to the XMPP server it is given
(the HTTP listener lives beside the component). ``--server openleadr`` runs OpenLEADR's
``OpenADRServer`` as its documentation shows: ``on_create_party_registration`` returns the VEN's
venID and a registration id, and ``add_event`` is called once per VEN (OpenLEADR's events have
one VEN each). Both offer the same poll frequency and the same event.

It is driven by lines on stdin and answers each on stdout:

- at start it prints ``serving <port>``;
- ``event`` adds the event for every VEN registered so far, waits for the VTN to settle and prints
  ``event-added <venCount> <CPU ms the process used for it>``;
- ``go`` starts the profiler (with ``--profile-fanout``) and prints ``going``;
- ``report`` stops it, writes the profile and prints ``answers <count>``: how many optIn answers
  the application's callback saw.

The process ends on SIGTERM or when stdin closes.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVENT_ID = "http-fanout-event"
POLL_FREQ = timedelta(seconds=60)      # far longer than a run: no VEN polls on its own in the window
SETTLE = 0.5                           # seconds after add_event in which deferred work may still run


def intervals() -> list[dict]:
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    return [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1.0}]


class Ours:
    """xmpp-vtn: one event for all VENs."""

    def __init__(self, args: argparse.Namespace):
        from xmpp_vtn import VTNComponent
        self.answers = 0
        self.vtn = VTNComponent("VTN-1", args.jid, args.secret, port=args.xmpp_port, store=args.store,
                                ping_interval=None, http_port=args.port, http_allow_insecure=True,
                                requested_poll_freq=POLL_FREQ)
        self.vtn.add_handler("on_create_party_registration",
                             lambda payload: (payload["ven_id"], "reg-" + payload["ven_id"]))

    async def start(self) -> int:
        await self.vtn.run()
        return self.vtn.http.port

    def add_event(self) -> int:
        ven_ids = [ven.ven_id for ven in self.vtn.vens()]
        self.vtn.add_event(ven_ids, "SIMPLE", "level", intervals(), callback=self.callback, event_id=EVENT_ID)
        return len(ven_ids)

    def callback(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.answers += opt_type == "optIn"

    async def stop(self) -> None:
        await self.vtn.stop()


class OpenLEADR:
    """OpenLEADR's OpenADRServer: one add_event per VEN, as its API takes one ven_id."""

    def __init__(self, args: argparse.Namespace):
        from openleadr import OpenADRServer
        self.answers = 0
        self.ven_ids: list[str] = []
        self.server = OpenADRServer(vtn_id="VTN-1", http_host="127.0.0.1", http_port=args.port,
                                    requested_poll_freq=POLL_FREQ, show_fingerprint=False)
        self.server.add_handler("on_create_party_registration", self.on_create_party_registration)

    def on_create_party_registration(self, registration_info: dict):
        ven_id = registration_info["ven_id"]
        self.ven_ids.append(ven_id)
        return ven_id, "reg-" + ven_id

    async def start(self) -> int:
        with contextlib.redirect_stdout(sys.stderr):     # its banner; stdout carries the answers
            await self.server.run()
        return self.server.http_port

    def add_event(self) -> int:
        for ven_id in self.ven_ids:
            self.server.add_event(ven_id=ven_id, signal_name="SIMPLE", signal_type="level",
                                  intervals=intervals(), callback=self.callback)
        return len(self.ven_ids)

    def callback(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.answers += opt_type == "optIn"

    async def stop(self) -> None:
        await self.server.stop()


async def serve(args: argparse.Namespace) -> None:
    server = Ours(args) if args.server == "ours" else OpenLEADR(args)
    port = await server.start()
    print(f"serving {port}", flush=True)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    profiler = None
    if args.profile_fanout:
        import cProfile
        profiler = cProfile.Profile()

    async def commands() -> None:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            if line == "event":
                before = time.process_time()
                count = server.add_event()
                await asyncio.sleep(SETTLE)
                print(f"event-added {count} {(time.process_time() - before) * 1000:.1f}", flush=True)
            elif line == "go":
                if profiler is not None:
                    profiler.enable()
                print("going", flush=True)
            elif line == "report":
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.profile_fanout)
                print(f"answers {server.answers}", flush=True)
        stopping.set()                               # stdin closed: the bench is gone

    task = asyncio.create_task(commands())
    await stopping.wait()
    task.cancel()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("ours", "openleadr"), required=True)
    parser.add_argument("--port", type=int, required=True, help="the HTTP port")
    parser.add_argument("--store", help="ours: the SQLite file")
    parser.add_argument("--jid", help="ours: the component JID")
    parser.add_argument("--secret", help="ours: the component secret")
    parser.add_argument("--xmpp-port", type=int, help="ours: the XMPP server's component port")
    parser.add_argument("--profile-fanout", help="cProfile the process from 'go' to 'report' into this file")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
