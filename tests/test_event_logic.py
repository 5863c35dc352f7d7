"""Event status as a function of time, and the manual clock, with plain calls."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from xmpp_vtn.scheduler import ManualScheduler
from xmpp_vtn.services import lifecycle

T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
PERIOD = {"dtstart": T0, "duration": 10 * MIN, "ramp_up_period": 5 * MIN}


def test_status_follows_the_clock():
    at = [T0 - 6 * MIN, T0 - 5 * MIN, T0 - MIN, T0, T0 + 9 * MIN, T0 + 10 * MIN]
    assert [lifecycle.status_at(PERIOD, moment) for moment in at] == [
        "far", "near", "near", "active", "active", "completed"]
    assert lifecycle.status_at(PERIOD, T0, cancelled=True) == "cancelled"


def test_open_ended_event_never_completes_and_no_ramp_up_means_no_near():
    period = {"dtstart": T0, "duration": timedelta(0)}
    assert lifecycle.status_at(period, T0 + timedelta(days=400)) == "active"
    assert lifecycle.status_at(period, T0 - timedelta(seconds=1)) == "far"
    assert lifecycle.transitions(period) == [T0]


def test_transitions_in_order():
    assert lifecycle.transitions(PERIOD) == [T0 - 5 * MIN, T0, T0 + 10 * MIN]
    assert lifecycle.next_transition(PERIOD, T0) == T0 + 10 * MIN
    assert lifecycle.next_transition(PERIOD, T0 + 10 * MIN) is None


def test_manual_scheduler_runs_due_jobs_in_time_order_at_their_times():
    clock = ManualScheduler(T0)
    ran = []

    async def scenario():
        clock.start()
        clock.at(T0 + 2 * MIN, "b", lambda: ran.append(("b", clock.now())))
        clock.at(T0 + MIN, "a", lambda: ran.append(("a", clock.now())))
        clock.at(T0 + 3 * MIN, "c", lambda: ran.append(("c", clock.now())))
        clock.at(T0 + 9 * MIN, "b", lambda: ran.append(("b2", clock.now())))   # replaces b
        clock.cancel("c")
        await clock.advance(5 * MIN)
        return clock.now()

    assert asyncio.run(scenario()) == T0 + 5 * MIN
    assert ran == [("a", T0 + MIN)]
