"""Nothing lost: 100-VEN fan-outs through a Prosody restart and a SIGKILLed VTN, a VEN that comes
back after 30 s, and a hostile VEN, each checking that every owed message arrives and every
callback fires exactly once. These run against real servers and real processes."""
from __future__ import annotations

import asyncio
import collections
import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from xmpp_vtn.services.quotas import Quotas
from xmpp_vtn.testing.prosody import ProsodyServer
from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.testing.ven import SimulatedVEN
from waiting import Strike, until
from xmpp_scene import PASSWORD, make_ven, make_vtn, next_event, run, scene

HERE = Path(__file__).resolve().parent
VENS = 100


@pytest.fixture(scope="module")
def server():
    """A Prosody of this module's own: these tests stop and start it."""
    with ProsodyServer() as prosody:
        yield prosody


def accounts(server: ProsodyServer, prefix: str, count: int = VENS) -> list[str]:
    return [server.register(f"{prefix}{n}", PASSWORD) for n in range(count)]


def start_event(vtn, ven_ids, event_id="fan-out"):
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    return vtn.add_event(ven_ids, "SIMPLE", "level",
                         [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1.0}],
                         event_id=event_id, callback=None)


async def ven_for(server: ProsodyServer, account: str, **options) -> SimulatedVEN:
    ven = SimulatedVEN(f"{account}/oadr", PASSWORD, server.component, port=server.c2s_port,
                       request_timeout=3.0, **options)
    return await ven.start()


# Pushes in flight at once in the mid fan-out tests: few, so that a fault struck while the tenth
# VEN takes the event finds most VENs still waiting for theirs.
FEW_IN_FLIGHT = 4
STRIKE_AFTER = 10


async def answered_by_all(vens, event_id: str, timeout: float = 60) -> None:
    await until(lambda: all(event_id in ven.answered for ven in vens), timeout,
                f"every VEN answers {event_id} (missing: "
                f"{[ven.ven_id for ven in vens if event_id not in ven.answered][:5]})")


def test_prosody_restart_in_the_middle_of_a_100_ven_fan_out(server):
    names = accounts(server, "pr")
    calls = collections.Counter()

    strike = Strike(STRIKE_AFTER, server.stop)

    async def scenario():
        vtn = make_vtn(server, store=":memory:", ping_interval=None, push_concurrency=FEW_IN_FLIGHT)
        vtn.add_handler("on_create_party_registration", lambda p: (p["ven_id"], "reg-" + p["ven_id"]))
        await vtn.run()
        vens = await asyncio.gather(*(ven_for(server, name, ven_id=name.split("@")[0], opt=strike)
                                      for name in names))
        try:
            await asyncio.gather(*(ven.register() for ven in vens))
            lost = next_event(vtn.component.xmpp, "disconnected")
            start_event(vtn, [ven.ven_id for ven in vens])
            vtn.event_service.callbacks["fan-out"] = lambda ven_id, event_id, opt: calls.update([ven_id])
            await asyncio.wait_for(lost, 10)           # Prosody stopped as the tenth VEN took the event
            before = sum("fan-out" in ven.events for ven in vens)
            await asyncio.gather(*(ven.stop() for ven in vens))
            back = next_event(vtn.component.xmpp, "session_start")
            server.start()
            await asyncio.wait_for(back, 20)
            # The VENs log in again (a real VEN reconnects by itself), remembering what they answered.
            reborn = await asyncio.gather(*(ven_for(server, ven.jid.split("/")[0], ven_id=ven.ven_id,
                                                    registration_id=ven.registration_id) for ven in vens))
            for old, new in zip(vens, reborn):
                new.answered.update(old.answered)
                new.events.update(old.events)
            vens = reborn
            # A VEN whose answer died with the old connection answers again once back.
            await asyncio.gather(*(ven.answer_pending() for ven in vens))
            await answered_by_all(vens, "fan-out")
            await vtn.courier.idle()
            return before, vtn.events()[0].deliveries
        finally:
            await asyncio.gather(*(ven.stop() for ven in vens))
            await vtn.stop()

    before, deliveries = run(scenario(), timeout=120)
    print(f"{strike.holders_at_strike} of {VENS} VENs had the event when Prosody stopped, {before} once it was down")
    assert strike.holders_at_strike == STRIKE_AFTER
    assert 0 < before < VENS, "the fault must strike mid fan-out"
    assert len(deliveries) == VENS
    assert all((d.delivered_modification, d.opt_type) == (0, "optIn") for d in deliveries.values())
    assert len(calls) == VENS and set(calls.values()) == {1}


def test_vtn_sigkilled_in_the_middle_of_a_100_ven_fan_out_and_started_again(server, tmp_path):
    names = accounts(server, "kill")
    store, log = tmp_path / "vtn.sqlite3", tmp_path / "answers.jsonl"
    command = [sys.executable, str(HERE.parent / "bench" / "vtn_process.py"), "--jid", server.component,
               "--secret", server.secret, "--port", str(server.component_port), "--store", str(store),
               "--log", str(log), "--fsync"]

    replayed = []

    def launch(*extra: str) -> subprocess.Popen:
        process = subprocess.Popen([*command, *extra], stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline()
        assert line.startswith("serving"), "the VTN process did not start"
        replayed.append(int(line.split()[5]))
        return process

    processes: list[subprocess.Popen] = []
    strike = Strike(STRIKE_AFTER, lambda: processes[0].send_signal(signal.SIGKILL))

    async def scenario():
        first = launch("--event-when", str(VENS), "--push-concurrency", str(FEW_IN_FLIGHT))
        processes.append(first)
        vens = []
        try:
            vens = await asyncio.gather(*(ven_for(server, name, ven_id=name.split("@")[0], opt=strike)
                                          for name in names))
            await asyncio.gather(*(ven.register() for ven in vens))
            assert await asyncio.to_thread(first.stdout.readline) == "event-added\n"
            await asyncio.to_thread(first.wait, 30)     # SIGKILLed as the tenth VEN took the event
            before = sum("fault-event" in ven.events for ven in vens)
            second = launch()
            try:
                await answered_by_all(vens, "fault-event")
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(30)
            third = launch()                             # starts again on the store the second left
            third.send_signal(signal.SIGTERM)
            third.wait(30)
            return before
        finally:
            await asyncio.gather(*(ven.stop() for ven in vens))
            for process in (first,):
                if process.poll() is None:
                    process.kill()

    before = run(scenario(), timeout=150)
    answers = [json.loads(line) for line in log.read_text().splitlines()]
    per_ven = collections.Counter(answer["ven_id"] for answer in answers if answer["event_id"] == "fault-event")
    print(f"{strike.holders_at_strike} of {VENS} VENs had the event when the VTN was killed, {before} once it "
          f"was dead; {len({a['pid'] for a in answers})} processes saw answers")
    assert strike.holders_at_strike == STRIKE_AFTER and processes[0].returncode == -signal.SIGKILL
    assert 0 < before < VENS, "the fault must strike mid fan-out"
    assert len(per_ven) == VENS
    # Exactly once, except that an answer whose handler had run when the first process died, but
    # not yet been marked done (a window of one small SQLite commit), is handed over again by the
    # second: at-least-once, and every such repeat is one the second process reports replaying.
    repeats = sum(count - 1 for count in per_ven.values())
    assert max(per_ven.values()) <= 2 and repeats <= replayed[1], (per_ven, replayed)
    from xmpp_vtn.store import open_store
    kept = open_store(store)
    try:
        assert len(kept.vens()) == VENS and [e.event_id for e in kept.events()] == ["fault-event"]
        assert all(d.opt_type == "optIn" and d.delivered_modification == 0 for d in kept.deliveries("fault-event"))
        assert kept.outbox() == []
    finally:
        kept.close()


def test_ven_offline_for_30_simulated_seconds_gets_its_event_within_2_s_of_return(server):
    clock = ManualScheduler(datetime(2026, 11, 23, 12, tzinfo=timezone.utc))

    async def scenario():
        async with scene(server, register=True, scheduler=clock, ping_interval=timedelta(seconds=10)) as (vtn, [ven]):
            account, ven_id = ven.jid.split("/")[0], ven.ven_id
            await ven.stop()
            start_event(vtn, [ven_id])
            await vtn.courier.idle()
            await clock.advance(timedelta(seconds=30))   # three liveness rounds while it is away
            owed = vtn.events()[0].deliveries[ven_id].delivered_modification
            returned = time.monotonic()
            back = await make_ven(server, account, ven_id=ven_id)
            try:
                await back.next_push("oadrDistributeEvent")
                took = time.monotonic() - returned
                online = vtn.is_online(ven_id)
            finally:
                await back.stop()
            return owed, took, online

    owed, took, online = run(scenario())
    print(f"delivered {took * 1000:.0f} ms after the VEN logged in again")
    assert owed is None and took < 2.0 and online is True


FUZZ_COUNT = 10_000


def test_10000_hostile_payloads_are_each_answered_and_change_nobody_elses_state(server):
    from hostile import hostile_payloads
    from xmpp_vtn.testing.ven import VTNError

    outcomes = collections.Counter()
    served = collections.Counter()

    def snapshot(vtn, ven_ids):
        return ([v for v in vtn.vens() if v.ven_id in ven_ids],
                [(s.event_id, s.modification_number, {k: d for k, d in s.deliveries.items() if k in ven_ids})
                 for s in vtn.events()],
                [(d.kind, d.key, d.state) for kind in ("report_offer", "report_request", "vtn_report_request", "opt")
                 for d in vtn.store.documents(kind) if d.ven_id in ven_ids])

    async def well_behaved(ven, stop: asyncio.Event, event_id: str) -> None:
        while not stop.is_set():
            await ven.query_registration()
            answer = await ven.created_event([{"response_code": 200, "request_id": None, "event_id": event_id,
                                               "modification_number": 0, "opt_type": "optIn"}])
            assert answer[1]["response"]["response_code"] == 200
            served[ven.ven_id] += 1

    async def attack(hostile, others):
        slots = asyncio.Semaphore(24)          # more in flight than the VTN allows one account (16)

        async def one(kind, document):
            async with slots:
                try:
                    answer = await hostile.request_raw(document)
                except VTNError as error:
                    outcomes[f"xmpp {error.error_type}/{error.condition}"] += 1
                    return
                if answer is None:
                    outcomes["empty result"] += 1
                else:
                    outcomes[f"{answer[0]} {answer[1].get('response', {}).get('response_code')}"] += 1
        await asyncio.gather(*(one(kind, document) for kind, document in
                               hostile_payloads(FUZZ_COUNT, hostile.ven_id, others)))

    async def scenario():
        # The request-rate quota is lifted: this test is about what parsing survives, and the
        # well-behaved VENs here send as fast as they can (tests/test_hostile.py covers the rate).
        unlimited = Quotas(requests_per_second=1e9, request_burst=10**9)
        async with scene(server, vens=4, register=True, ping_interval=None, quotas=unlimited) as (vtn, vens):
            good, hostile = vens[:3], vens[3]
            good_ids = {ven.ven_id for ven in good}
            event_id = start_event(vtn, [ven.ven_id for ven in vens])
            await vtn.courier.idle()
            # The VENs answer the push after acknowledging it: the state before the attack is the
            # one with every good VEN's answer recorded (courier.idle() is only the pushes).
            await until(lambda: all(d.opt_type is not None for d in vtn.store.deliveries(event_id)
                                    if d.ven_id in good_ids), 10, "every good VEN's answer recorded")
            before = snapshot(vtn, good_ids)
            stop = asyncio.Event()
            workers = [asyncio.ensure_future(well_behaved(ven, stop, event_id)) for ven in good]
            started = time.monotonic()
            await attack(hostile, sorted(good_ids))
            elapsed = time.monotonic() - started
            stop.set()
            await asyncio.gather(*workers)
            return before, snapshot(vtn, good_ids), elapsed, vtn.component.connected

    before, after, elapsed, connected = run(scenario(), timeout=300)
    print(f"{FUZZ_COUNT} hostile payloads in {elapsed:.1f} s ({FUZZ_COUNT / elapsed:.0f}/s): "
          + ", ".join(f"{name}: {count}" for name, count in outcomes.most_common()))
    print(f"well-behaved VENs served meanwhile: {dict(served)}")
    assert sum(outcomes.values()) == FUZZ_COUNT                 # every one answered, none timed out
    allowed = ("xmpp modify/bad-request", "xmpp wait/resource-constraint", "empty result")
    assert all(name in allowed or name.split()[0].startswith("oadr") for name in outcomes), outcomes
    assert outcomes["xmpp modify/bad-request"] > FUZZ_COUNT / 3
    assert before == after and connected
    assert len(served) == 3 and min(served.values()) > 0
