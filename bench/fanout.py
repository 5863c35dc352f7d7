"""Event fan-out: time from ``vtn.add_event`` for N VENs until every VEN's oadrCreatedEvent has
reached the event callback, on a private Prosody on loopback.

Baseline, measured in the same run on the same server and the same number of clients: bare
slixmpp doing the same exchange with no OpenADR work. A ComponentXMPP sends each client an iq
set carrying the same oadrDistributeEvent bytes; each client acknowledges with an empty result
and sends back an iq set carrying oadrCreatedEvent bytes, which the component answers. No
parsing, validation, store or state: the transport floor for this exchange.

Each round runs both, alternating; the median of ``--rounds`` counts. Prints both times, the
ratio, and per-VEN throughput. Usage: ``python bench/fanout.py --vens 100 --rounds 5``.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slixmpp import ComponentXMPP  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

from xmpp_vtn import VTNComponent, codec  # noqa: E402
from xmpp_vtn.prosody import LOOPBACK, ProsodyServer  # noqa: E402
from xmpp_vtn.streams import attach_payload, plain_client, send_payloads_raw, wait_for_session  # noqa: E402
from xmpp_vtn.ven import SimulatedVEN  # noqa: E402

PASSWORD = "bench"


def sample_documents(ven_id: str) -> tuple[bytes, bytes]:
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    event = {"event_descriptor": {"event_id": "ev-1", "modification_number": 0, "market_context": "http://mc",
                                  "created_date_time": start, "event_status": "far"},
             "active_period": {"dtstart": start, "duration": timedelta(minutes=10)},
             "event_signals": [{"intervals": [{"dtstart": start, "duration": timedelta(minutes=5), "uid": "0",
                                               "signal_payload": 1.0}], "signal_name": "SIMPLE",
                                "signal_type": "level", "signal_id": "s"}],
             "targets": [{"ven_id": ven_id}], "response_required": "always"}
    distribute = codec.serialize("oadrDistributeEvent", {"request_id": "r", "vtn_id": "V", "events": [event]})
    created = codec.serialize("oadrCreatedEvent", {
        "response": {"response_code": 200, "response_description": "OK", "request_id": "r"},
        "event_responses": [{"response_code": 200, "request_id": "r", "event_id": "ev-1",
                             "modification_number": 0, "opt_type": "optIn"}], "ven_id": ven_id})
    return distribute, created


async def baseline_round(server: ProsodyServer, accounts: list[str]) -> float:
    distribute, created = sample_documents("ven-0")
    component = ComponentXMPP(server.component, server.secret, LOOPBACK, server.component_port)
    send_payloads_raw(component)          # the same bytes-out path the VTN uses
    answers = asyncio.Event()
    count = 0

    def on_answer(iq) -> None:
        nonlocal count
        iq.reply(clear=True).send()
        count += 1
        if count == len(accounts):
            answers.set()
    component.register_handler(Callback("answer", StanzaPath("iq@type=set/oadr"), on_answer))
    clients = []
    for account in accounts:
        client = plain_client(f"{account}/oadr", PASSWORD)

        def on_push(iq, client=client) -> None:
            iq.reply(clear=True).send()
            answer = client.make_iq_set(ito=server.component)
            attach_payload(answer, created)
            answer.send()
        client.register_handler(Callback("push", StanzaPath("iq@type=set/oadr"), on_push))
        clients.append(client)
    component.connect()
    await wait_for_session(component)
    for client in clients:
        client.connect(LOOPBACK, server.c2s_port)
    await asyncio.gather(*(wait_for_session(client) for client in clients))
    started = time.perf_counter()
    for client in clients:
        iq = component.make_iq_set(ito=str(client.boundjid), ifrom=server.component)
        attach_payload(iq, distribute)
        iq.send()
    await asyncio.wait_for(answers.wait(), 60)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(client.disconnect() for client in clients))
    await component.disconnect()
    return elapsed


async def vtn_round(server: ProsodyServer, accounts: list[str], store: str) -> float:
    vtn = VTNComponent("VTN-bench", server.component, server.secret, port=server.component_port, store=store)
    vtn.add_handler("on_create_party_registration", lambda payload: f"reg-{payload['ven_id']}")
    await vtn.run()
    vens = [SimulatedVEN(f"{account}/oadr", PASSWORD, server.component, port=server.c2s_port,
                         ven_id=account.split("@")[0]) for account in accounts]
    await asyncio.gather(*(ven.start() for ven in vens))
    await asyncio.gather(*(ven.register() for ven in vens))
    answered = asyncio.Event()
    count = 0

    def callback(ven_id: str, event_id: str, opt_type: str) -> None:
        nonlocal count
        count += 1
        if count == len(vens):
            answered.set()
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    started = time.perf_counter()
    vtn.add_event([ven.ven_id for ven in vens], "SIMPLE", "level",
                  [{"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 1.0}], callback=callback)
    await asyncio.wait_for(answered.wait(), 60)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(ven.stop() for ven in vens))
    await vtn.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with ProsodyServer() as server:
        accounts = [server.register(f"bench{n}", PASSWORD) for n in range(args.vens)]
        ours, floor, on_disk = [], [], []
        with tempfile.TemporaryDirectory(prefix="xmpp-vtn-bench-") as scratch:
            for round_number in range(args.rounds):
                floor.append(asyncio.run(baseline_round(server, accounts)))
                ours.append(asyncio.run(vtn_round(server, accounts, ":memory:")))
                on_disk.append(asyncio.run(vtn_round(server, accounts, f"{scratch}/round{round_number}.sqlite3")))
                print(f"round {round_number + 1}: xmpp-vtn {ours[-1] * 1000:7.1f} ms (SQLite file "
                      f"{on_disk[-1] * 1000:7.1f} ms)   bare slixmpp {floor[-1] * 1000:7.1f} ms", flush=True)
    ours_ms, floor_ms = statistics.median(ours) * 1000, statistics.median(floor) * 1000
    disk_ms = statistics.median(on_disk) * 1000
    print(f"\nadd_event -> every VEN's oadrCreatedEvent handled, {args.vens} VENs (median of {args.rounds}):")
    print(f"  xmpp-vtn      {ours_ms:8.1f} ms  ({args.vens / ours_ms * 1000:6.0f} VENs/s)")
    print(f"  bare slixmpp  {floor_ms:8.1f} ms  ({args.vens / floor_ms * 1000:6.0f} VENs/s)  (same exchange, no OpenADR work)")
    print(f"  ratio         {ours_ms / floor_ms:8.2f} x the transport floor")
    print(f"  SQLite file   {disk_ms:8.1f} ms  ({disk_ms / ours_ms:.2f} x the in-memory store: the cost of "
          "durable writes, WAL, synchronous=NORMAL)")


if __name__ == "__main__":
    main()
