"""The raw ceiling for the fan-out benchmark: bare slixmpp doing the OpenADR push exchange with no
OpenADR work, and no waiting for acknowledgements. A component pushes an ``iq set`` to each
client; each client acknowledges with an empty result and sends an ``iq set`` back, which the
component answers. Clients run in worker processes; the component in the calling process.

By default the stanzas carry **the same bytes the VTN's exchange carries** (:func:`real_payloads`:
the oadrDistributeEvent the VTN pushes for the benchmark's event, a VEN's oadrCreatedEvent, and
the oadrResponse in the result), so the server's per-byte work and slixmpp's parsing are the
same on both sides; ``small=True`` uses tiny placeholder payloads instead, for reference.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, replace
from typing import Callable
from datetime import datetime, timedelta, timezone

from slixmpp import ComponentXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp_vtn.testing.prosody import LOOPBACK
from xmpp_vtn.runtime.stanzas import StreamFailed, attach_payload, send_payloads_raw, wait_for_session
from xmpp_vtn.testing.clients import plain_client

SMALL_PUSH = b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'><push/></oadrPayload>"
SMALL_ANSWER = b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'><answer/></oadrPayload>"
SMALL_RESULT = b""


@dataclass(frozen=True)
class Payloads:
    """The three documents of one exchange: pushed, answered, and returned in the answer's result."""

    push: bytes
    answer: bytes
    result: bytes


def real_payloads(vtn_id: str = "VTN-1", ven_id: str = "fan1000x999") -> Payloads:
    """The bytes of the benchmark's real exchange: the oadrDistributeEvent bench/vtn_process.py
    pushes (one SIMPLE level event, one interval, the VEN among its targets), the oadrCreatedEvent
    a VEN answers with, and the oadrResponse the VTN returns."""
    from xmpp_vtn import codec
    from xmpp_vtn.services.event_arguments import build_event

    now = datetime.now(timezone.utc).replace(microsecond=0)
    event = build_event(ven_ids=[ven_id], signal_name="SIMPLE", signal_type="level",
                        intervals=[{"dtstart": now + timedelta(hours=1), "duration": timedelta(minutes=30),
                                    "signal_payload": 1.0}], event_id="fault-event", created=now,
                        targets=None, targets_by_type=None, market_context="oadr://unknown.context",
                        priority=None, response_required="always", notification_period=None,
                        ramp_up_period=None, recovery_period=None, signal_target_mrid=None,
                        current_value=None, test_event=False, vtn_comment=None)
    event["event_descriptor"]["event_status"] = "far"
    push = codec.serialize("oadrDistributeEvent", {"request_id": "0123456789abcdef0123456789abcdef",
                                                   "vtn_id": vtn_id, "events": [event]})
    answer = codec.serialize("oadrCreatedEvent", {
        "response": {"response_code": 200, "response_description": "OK", "request_id": None},
        "event_responses": [{"response_code": 200, "response_description": "OK",
                             "request_id": "0123456789abcdef0123456789abcdef", "event_id": "fault-event",
                             "modification_number": 0, "opt_type": "optIn"}],
        "ven_id": ven_id})
    result = codec.serialize("oadrResponse", {"response": {"response_code": 200, "response_description": "OK",
                                                           "request_id": None}, "ven_id": ven_id})
    return Payloads(push, answer, result)


SMALL = Payloads(SMALL_PUSH, SMALL_ANSWER, SMALL_RESULT)


async def _clients(jids: list[str], password: str, component: str, port: int, ready, stop,
                   answer_document: bytes, receipts) -> None:
    clients = []
    arrivals: list[float] = []          # wall clock: the component's process reads it too

    for jid in jids:
        client = plain_client(jid, password)

        def on_push(iq, client=client) -> None:
            arrivals.append(time.time())
            iq.reply(clear=True).send()
            answer = client.make_iq_set(ito=component)
            attach_payload(answer, answer_document)
            client.send(answer)             # not answer.send(): no per-iq waiter (see below)
        client.register_handler(Callback("push", StanzaPath("iq@type=set/oadr"), on_push))
        clients.append(client)
    slots = asyncio.Semaphore(50)

    async def up(client) -> None:
        async with slots:
            client.connect(LOOPBACK, port)
            await wait_for_session(client, 60)
    await asyncio.gather(*(up(client) for client in clients))
    ready.put(len(clients))
    while not stop.is_set():
        await asyncio.sleep(0.1)            # the parent says when; no event crosses processes
    receipts.put(arrivals)
    await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)


def _client_worker(jids, password, component, port, ready, stop, answer_document, receipts) -> None:
    asyncio.run(_clients(jids, password, component, port, ready, stop, answer_document, receipts))


@dataclass(frozen=True)
class RawResult:
    seconds: float                  # the whole exchange with every client
    cpu_seconds: float              # the component process's CPU meanwhile (user + system)
    started_at: float = 0.0         # wall clock when the first push was written
    server_cpu_seconds: float | None = None   # the XMPP server's CPU meanwhile, when its PID was given
    latencies: tuple[float, ...] = ()   # seconds from then to each push's arrival at its client
    written_seconds: float = 0.0    # from the first push queued to the last one's bytes written


class _PushWrites:
    """When the component's last push was written to its socket. ``XMLStream.send`` only queues a
    stanza; slixmpp's filters serialize it and ``send_raw`` writes it later, so the time is taken
    there, when the ``count``-th ``iq set`` goes out (the component sends no other)."""

    def __init__(self, component: ComponentXMPP, count: int):
        self.count, self.seen, self.last = count, 0, 0.0
        self._write = component.send_raw
        component.send_raw = self._send_raw

    def _send_raw(self, data: str | bytes) -> None:
        self._write(data)
        head = data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")
        if self.seen < self.count and head.startswith("<iq") and 'type="set"' in head:
            self.seen += 1
            self.last = time.perf_counter()


async def _push_round(jids: list[str], component_jid: str, secret: str, port: int, payloads: Payloads,
                      server_cpu: Callable[[], float] | None = None) -> RawResult:
    component = ComponentXMPP(component_jid, secret, LOOPBACK, port)
    send_payloads_raw(component)
    done = asyncio.Event()
    answered = 0

    def on_answer(iq) -> None:
        nonlocal answered
        reply = iq.reply(clear=True)
        if payloads.result:
            attach_payload(reply, payloads.result)
        reply.send()
        answered += 1
        if answered == len(jids):
            done.set()
    component.register_handler(Callback("answer", StanzaPath("iq@type=set/oadr"), on_answer))
    for attempt in range(50):
        component.connect()
        try:
            await wait_for_session(component)
            break
        except StreamFailed as failure:
            # The previous round's component is gone from our side, but the server may still
            # hold its session for a moment ("Component already connected").
            if "conflict" not in str(failure) or attempt == 49:
                raise
            await asyncio.sleep(0.1)
    written = _PushWrites(component, len(jids))
    started, cpu_started, started_at = time.perf_counter(), time.process_time(), time.time()
    server_started = server_cpu() if server_cpu is not None else 0.0
    for jid in jids:
        iq = component.make_iq_set(ito=jid, ifrom=component_jid)
        attach_payload(iq, payloads.push)
        # XMLStream.send, not Iq.send: Iq.send registers a handler per pending iq that every
        # incoming stanza is tested against, quadratic at thousands in flight (the VTN avoids it
        # the same way). The acknowledgements are not awaited here; the answers are counted.
        component.send(iq)
    await asyncio.wait_for(done.wait(), 300)
    server_used = None if server_cpu is None else server_cpu() - server_started
    result = RawResult(time.perf_counter() - started, time.process_time() - cpu_started, started_at, server_used,
                       written_seconds=written.last - started)
    await component.disconnect()
    return result


def raw_ceiling(accounts: list[str], password: str, component: str, secret: str, c2s_port: int,
                component_port: int, processes: int, payloads: Payloads = SMALL,
                server_cpu: Callable[[], float] | None = None) -> RawResult:
    """The whole exchange with every account (clients in ``processes`` workers): its seconds and
    the component's CPU seconds, each push's receipt latency (from the first push written) and,
    with ``server_cpu`` (the XMPP server's CPU seconds so far), what the server used meanwhile."""
    context = multiprocessing.get_context("spawn")
    ready, stop, receipts = context.Queue(), context.Event(), context.Queue()
    jids = [f"{account}/raw" for account in accounts]
    shares = [jids[i::processes] for i in range(processes)]
    workers = [context.Process(target=_client_worker, args=(share, password, component, c2s_port, ready, stop,
                                                                  payloads.answer, receipts),
                               daemon=True) for share in shares if share]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=600)
        result = asyncio.run(_push_round(jids, component, secret, component_port, payloads, server_cpu))
        stop.set()
        arrivals = [moment for _ in workers for moment in receipts.get(timeout=60)]
        return replace(result, latencies=tuple(moment - result.started_at for moment in arrivals))
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
