"""on_ven_online / on_ven_offline from presence, requests, pings and polls: once per transition."""
from __future__ import annotations

import pytest

import asyncio
from datetime import datetime, timedelta, timezone

from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.services.liveness import Liveness
from xmpp_scene import make_ven, run, scene

T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


class Transitions:
    """Records (ven_id, 'online'|'offline') and lets a test await the n-th."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._changed = asyncio.Condition()

    def handlers(self) -> dict:
        async def online(ven_id):
            await self._add((ven_id, "online"))

        async def offline(ven_id):
            await self._add((ven_id, "offline"))
        return {"on_ven_online": online, "on_ven_offline": offline}

    async def _add(self, item) -> None:
        async with self._changed:
            self.seen.append(item)
            self._changed.notify_all()

    async def wait(self, count: int) -> list:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.seen) >= count), 10)
        return list(self.seen)


def test_presence_and_requests_fire_each_transition_once(prosody):
    transitions = Transitions()

    async def scenario():
        async with scene(prosody, register=True, handlers=transitions.handlers(),
                         scheduler=ManualScheduler(T0), ping_interval=None) as (vtn, [ven]):
            await transitions.wait(1)
            await ven.query_registration()                     # more life: no new transition
            account, ven_id = ven.jid.split("/")[0], ven.ven_id
            await ven.stop()                                   # unavailable presence
            await transitions.wait(2)
            back = await make_ven(prosody, account, ven_id=ven_id)
            await transitions.wait(3)
            await back.query_registration()
            await back.stop()
            await transitions.wait(4)
            return ven_id, transitions.seen, vtn.is_online(ven_id)

    ven_id, seen, online = run(scenario())
    assert seen == [(ven_id, "online"), (ven_id, "offline"), (ven_id, "online"), (ven_id, "offline")]
    assert online is False


def test_unanswered_pings_make_a_silent_ven_offline_after_three(prosody):
    transitions = Transitions()
    clock = ManualScheduler(T0)

    async def scenario():
        async with scene(prosody, handlers=transitions.handlers(), scheduler=clock, ping_interval=MINUTE) as (vtn, _):
            # A VEN that never told the VTN its presence, then vanished: only pings can tell.
            ven = await make_ven(prosody, announce_presence=False)
            await ven.register()
            await transitions.wait(1)
            await clock.advance(MINUTE)                        # answered: still online, no transition
            ven_id = ven.ven_id
            await ven.stop()
            for _ in range(2):
                await clock.advance(MINUTE)
            before_third = list(transitions.seen)
            await clock.advance(MINUTE)
            await transitions.wait(2)
            return ven_id, before_third, transitions.seen

    ven_id, before_third, seen = run(scenario())
    assert before_third == [(ven_id, "online")]
    assert seen == [(ven_id, "online"), (ven_id, "offline")]


@pytest.mark.parametrize("answers_disco, announce_presence", [(True, False), (False, True)],
                         ids=["answers-disco", "present-only"])
def test_a_ven_without_ping_stays_online_and_goes_offline_once_it_is_gone(prosody, answers_disco,
                                                                          announce_presence):
    """A compliant VEN lacking XEP-0199 answers service-unavailable, like the server's bounce for
    a resource that is gone (Prosody sends both from the VEN's full JID): disco, or its presence,
    tells them apart. Once it has really gone, three rounds make it offline as for any VEN."""
    transitions = Transitions()
    clock = ManualScheduler(T0)

    async def scenario():
        async with scene(prosody, handlers=transitions.handlers(), scheduler=clock, ping_interval=MINUTE) as (vtn, _):
            ven = await make_ven(prosody, answers_ping=False, answers_disco=answers_disco,
                                 announce_presence=announce_presence)
            await ven.register()
            await transitions.wait(1)
            for _ in range(4):
                await clock.advance(MINUTE)
            still = list(transitions.seen)
            ven_id = ven.ven_id
            # Gone without a word (no unavailable presence reaches the VTN): the server bounces.
            ven.xmpp.abort()
            for _ in range(3):
                await clock.advance(MINUTE)
            await transitions.wait(2)
            return ven_id, still, transitions.seen

    ven_id, still, seen = run(scenario())
    assert still == [(ven_id, "online")]
    assert seen == [(ven_id, "online"), (ven_id, "offline")]


def test_polling_ven_that_stops_polling_goes_offline(prosody):
    transitions = Transitions()
    clock = ManualScheduler(T0)

    async def scenario():
        async with scene(prosody, handlers=transitions.handlers(), scheduler=clock, ping_interval=None,
                         requested_poll_freq=timedelta(seconds=10)) as (vtn, _):
            ven = await make_ven(prosody, announce_presence=False)
            answer = await ven.register()
            await ven.request("oadrPoll", {"ven_id": ven.ven_id})
            await transitions.wait(1)
            await clock.advance(timedelta(seconds=20))
            still = list(transitions.seen)
            await clock.advance(timedelta(seconds=20))        # three intervals without a poll
            await transitions.wait(2)
            await ven.stop()
            return ven.ven_id, answer, still, transitions.seen

    ven_id, answer, still, seen = run(scenario())
    assert answer["requested_oadr_poll_freq"] == timedelta(seconds=10)
    assert still == [(ven_id, "online")] and seen == [(ven_id, "online"), (ven_id, "offline")]


def test_liveness_bookkeeping():
    liveness = Liveness(misses_allowed=2)
    assert liveness.seen("v", T0) == "online" and liveness.seen("v", T0) is None
    assert liveness.ping_missed("v") is None and liveness.ping_missed("v") == "offline"
    assert liveness.ping_missed("v") is None                       # once per transition
    assert liveness.seen("v", T0) == "online"
    assert liveness.ping_missed("v") is None                       # the count restarted
    assert liveness.gone("v") == "offline" and liveness.gone("v") is None
    assert liveness.gone("never-seen") == "offline"
    liveness.polled("p", T0)
    assert liveness.overdue_pollers(T0 + MINUTE, MINUTE) == []
    assert liveness.overdue_pollers(T0 + 2 * MINUTE, MINUTE) == []              # two intervals: allowed
    assert liveness.overdue_pollers(T0 + 2 * MINUTE + timedelta(seconds=1), MINUTE) == ["p"]
    assert liveness.overdue_pollers(T0 + 9 * MINUTE, MINUTE) == []
