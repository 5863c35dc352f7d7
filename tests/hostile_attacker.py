"""One hostile account, in a process of its own (so its CPU is not the VTN's), for test_hostile.py.

    python tests/hostile_attacker.py MODE JID PASSWORD VTN_JID C2S_PORT SECONDS

Runs the attack MODE for SECONDS (or until its work is done), then prints one JSON line of what
the VTN answered: {"answers": {outcome: count}, ...}. The attacker never answers a push: a silent
account holding pushes open is the worst a VEN can do to the VTN's push slots.
"""
from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from datetime import datetime, timedelta, timezone

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp_vtn.testing.ven import OpenADRRefusal, SimulatedVEN, VTNError

SECOND = timedelta(seconds=1)
T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


def outcome_of(answer) -> str:
    if answer is None:
        return "empty result"
    return f"{answer[0]} {answer[1].get('response', {}).get('response_code')}"


async def churn(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """Register under a fresh venID and cancel, again and again; each registration leaves the VTN
    a push (its report offer) the silent account never acknowledges."""
    while time.monotonic() < deadline:
        try:
            ven.ven_id = ven.registration_id = None
            await ven.register()
            answers["registered"] += 1
            await ven.cancel_registration()
            answers["cancelled"] += 1
        except (VTNError, OpenADRRefusal) as error:
            answers[type(error).__name__ + " " + str(getattr(error, "condition", getattr(error, "code", "")))] += 1
            await asyncio.sleep(0.05)


#: Requests the flood keeps in flight, each sent again as soon as it is answered.
FLOOD_IN_FLIGHT = 50


async def flood(ven: SimulatedVEN, answers: collections.Counter, deadline: float,
                in_flight: int = FLOOD_IN_FLIGHT) -> None:
    """As many oadrRequestEvent as the VTN takes, ``in_flight`` at a time."""
    await ven.register()

    async def worker() -> None:
        while time.monotonic() < deadline:
            try:
                answers[outcome_of(await ven.request("oadrRequestEvent", {
                    "request_id": "r", "ven_id": ven.ven_id}))] += 1
            except VTNError as error:
                answers[f"xmpp {error.error_type}/{error.condition}"] += 1
    await asyncio.gather(*(worker() for _ in range(in_flight)))


def _subscriptions(count: int, period: timedelta, prefix: str) -> list[dict]:
    return [{"report_request_id": f"{prefix}-{index}", "report_specifier": {
        "report_specifier_id": "vtn-load", "granularity": period, "report_back_duration": period,
        "specifier_payloads": [{"r_id": "load", "reading_type": "Direct Read"}]}} for index in range(count)]


async def subscribe(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """Five oadrCreateReport of 200 subscriptions each at PT1S (the VTN offers 10 s), then 200 at
    the offered 10 s, 1 by 1."""
    await ven.register()
    for batch in range(5):
        answers["PT1S " + outcome_of(await ven.request("oadrCreateReport", {
            "request_id": f"s{batch}", "ven_id": ven.ven_id,
            "report_requests": _subscriptions(200, SECOND, f"fast{batch}")}))] += 1
    for index in range(200):
        if time.monotonic() > deadline:
            break
        try:
            answers["PT10S " + outcome_of(await ven.request("oadrCreateReport", {
                "request_id": f"t{index}", "ven_id": ven.ven_id,
                "report_requests": _subscriptions(1, 10 * SECOND, f"slow{index}")}))] += 1
        except VTNError as error:
            answers[f"xmpp {error.error_type}/{error.condition}"] += 1
            await asyncio.sleep(0.1)


def _offer(index: int, readings: int) -> dict:
    return {"report_specifier_id": f"spec-{index}", "report_name": "METADATA_TELEMETRY_USAGE",
            "report_request_id": "0", "created_date_time": T0, "duration": timedelta(hours=1),
            "report_descriptions": [{
                "r_id": f"r{index}-{n}", "report_type": "usage", "reading_type": "Direct Read",
                "report_data_source": {"resource_id": [f"dev{n}"]}, "market_context": "http://mc.example",
                "measurement": {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "none"},
                "sampling_rate": {"min_period": 10 * SECOND, "max_period": 60 * SECOND, "on_change": False}}
                for n in range(readings)]}


async def register_reports(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """oadrRegisterReport again and again: one report of 300 readings (over the quota), and
    four reports of 30 (within it)."""
    await ven.register()
    for round_ in range(150):
        if time.monotonic() > deadline:
            break
        reports = [_offer(0, 300)] if round_ % 2 == 0 else [_offer(n, 30) for n in range(4)]
        try:
            answers[outcome_of(await ven.request("oadrRegisterReport", {
                "request_id": f"rr{round_}", "ven_id": ven.ven_id, "reports": reports}))] += 1
        except VTNError as error:
            answers[f"xmpp {error.error_type}/{error.condition}"] += 1
            await asyncio.sleep(0.1)


async def opts(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """100 oadrCreateOpt of about 70 KB (over the size quota, under the server's stanza limit),
    then 200 small ones with fresh optIDs (over the count quota)."""
    await ven.register()
    window = {"components": [{"dtstart": T0 + timedelta(hours=n), "duration": timedelta(minutes=30)}
                             for n in range(500)]}
    small = {"components": [{"dtstart": T0, "duration": timedelta(hours=1)}]}
    for index in range(300):
        if time.monotonic() > deadline:
            break
        try:
            answers[outcome_of(await ven.request("oadrCreateOpt", {
                "opt_id": f"opt-{index}", "opt_type": "optOut", "opt_reason": "x-schedule", "request_id": "o",
                "created_date_time": T0, "ven_id": ven.ven_id, "targets": [], "targets_by_type": {},
                "vavailability": window if index < 100 else small}))] += 1
        except VTNError as error:
            answers[f"xmpp {error.error_type}/{error.condition}"] += 1
            await asyncio.sleep(0.1)


def _empty_elements(count: int) -> bytes:
    """An oadrPayload of ``count`` empty elements: the most parser work per byte (4 bytes each)."""
    body = ("<oadrSignedObject xmlns='http://openadr.org/oadr-2.0b/2012/07'><oadrQueryRegistration>"
            + "<x/>" * count + "</oadrQueryRegistration></oadrSignedObject>")
    return f"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'>{body}</oadrPayload>".encode()


async def big_stanzas(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """Unregistered: 40 stanzas of 30,000 empty elements (120 KB, under the server's stanza limit), 8 in flight."""
    document = _empty_elements(30_000)
    slots = asyncio.Semaphore(8)

    async def one() -> None:
        async with slots:
            try:
                answers[outcome_of(await ven.request_raw(document))] += 1
            except VTNError as error:
                answers[f"xmpp {error.error_type}/{error.condition}"] += 1
    await asyncio.gather(*(one() for _ in range(40)))


async def oversized_stanzas(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """Unregistered: stanzas of 80,000 empty elements (320 KB, over a 256 KiB server limit), 8 in
    flight; records the stream error the server closes the connection with."""
    ended = asyncio.get_running_loop().create_future()
    ven.xmpp.add_event_handler("stream_error", lambda error: answers.update([f"stream error {error['condition']}"]))
    ven.xmpp.add_event_handler("disconnected", lambda *_: ended.done() or ended.set_result(None))
    document = _empty_elements(80_000)
    sent = []
    for _ in range(8):
        sent.append(asyncio.ensure_future(ven.request_raw(document)))
    try:
        await asyncio.wait_for(ended, max(1.0, deadline - time.monotonic()))
        answers["disconnected"] += 1
    except asyncio.TimeoutError:
        answers["still connected"] += 1
    for request in sent:
        request.cancel()
    results = await asyncio.gather(*sent, return_exceptions=True)
    # Anything the VTN said back (an answer or an iq error) means the stanza reached it.
    answers["answered by the VTN"] += sum(1 for result in results if not isinstance(result, asyncio.CancelledError))


async def silent(ven: SimulatedVEN, answers: collections.Counter, deadline: float) -> None:
    """Online, never answering a push, for the whole time."""
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


MODES = {"silent": silent, "churn": churn, "flood": flood, "subscribe": subscribe, "register_reports": register_reports,
         "opts": opts, "big_stanzas": big_stanzas, "oversized_stanzas": oversized_stanzas}


async def main(mode: str, jid: str, password: str, vtn_jid: str, port: int, seconds: float) -> None:
    ven = SimulatedVEN(jid, password, vtn_jid, port=port, request_timeout=30.0)
    # Silent: every push is swallowed, never acknowledged (the VTN waits its push timeout).
    ven.xmpp.remove_handler("OpenADR push")
    ven.xmpp.register_handler(Callback("swallow", StanzaPath("iq@type=set/oadr"), lambda iq: None))
    await ven.start()
    answers: collections.Counter = collections.Counter()
    started = time.monotonic()
    print("ready", flush=True)
    await MODES[mode](ven, answers, started + seconds)
    elapsed = time.monotonic() - started
    ven.xmpp.abort()
    print(json.dumps({"answers": answers, "elapsed": elapsed}), flush=True)


if __name__ == "__main__":
    mode, jid, password, vtn_jid, port, seconds = sys.argv[1:7]
    asyncio.run(main(mode, jid, password, vtn_jid, int(port), float(seconds)))
