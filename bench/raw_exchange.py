"""The raw ceiling for the fan-out benchmark: bare slixmpp doing the OpenADR push exchange with a
small fixed payload and no OpenADR work, and no waiting for acknowledgements. A component pushes an ``iq set`` to each client; each
client acknowledges with an empty result and sends an ``iq set`` back, which the component
answers. Clients run in worker processes; the component in the calling process.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import time

from slixmpp import ComponentXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp_vtn.testing.prosody import LOOPBACK
from xmpp_vtn.runtime.stanzas import attach_payload, send_payloads_raw, wait_for_session
from xmpp_vtn.testing.clients import plain_client

PUSH = b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'><push/></oadrPayload>"
ANSWER = b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'><answer/></oadrPayload>"


async def _clients(jids: list[str], password: str, component: str, port: int, ready, stop) -> None:
    clients = []
    for jid in jids:
        client = plain_client(jid, password)

        def on_push(iq, client=client) -> None:
            iq.reply(clear=True).send()
            answer = client.make_iq_set(ito=component)
            attach_payload(answer, ANSWER)
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
    await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)


def _client_worker(jids, password, component, port, ready, stop) -> None:
    asyncio.run(_clients(jids, password, component, port, ready, stop))


async def _push_round(jids: list[str], component_jid: str, secret: str, port: int) -> float:
    component = ComponentXMPP(component_jid, secret, LOOPBACK, port)
    send_payloads_raw(component)
    done = asyncio.Event()
    answered = 0

    def on_answer(iq) -> None:
        nonlocal answered
        iq.reply(clear=True).send()
        answered += 1
        if answered == len(jids):
            done.set()
    component.register_handler(Callback("answer", StanzaPath("iq@type=set/oadr"), on_answer))
    component.connect()
    await wait_for_session(component)
    started = time.perf_counter()
    for jid in jids:
        iq = component.make_iq_set(ito=jid, ifrom=component_jid)
        attach_payload(iq, PUSH)
        # XMLStream.send, not Iq.send: Iq.send registers a handler per pending iq that every
        # incoming stanza is tested against, quadratic at thousands in flight (the VTN avoids it
        # the same way). The acknowledgements are not awaited here; the answers are counted.
        component.send(iq)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await component.disconnect()
    return elapsed


def raw_ceiling(accounts: list[str], password: str, component: str, secret: str, c2s_port: int,
                component_port: int, processes: int) -> float:
    """Seconds for the whole exchange with every account, clients in ``processes`` workers."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    jids = [f"{account}/raw" for account in accounts]
    shares = [jids[i::processes] for i in range(processes)]
    workers = [context.Process(target=_client_worker, args=(share, password, component, c2s_port, ready, stop),
                               daemon=True) for share in shares if share]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=600)
        return asyncio.run(_push_round(jids, component, secret, component_port))
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
