"""Event status as a function of time, and the manual clock, with plain calls."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from xmpp_vtn.testing.clock import ManualScheduler
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


def _service(now):
    from xmpp_vtn.services import Handlers
    from xmpp_vtn.services.events import EventService
    from xmpp_vtn.store import SQLiteStore
    store = SQLiteStore(":memory:")
    return store, EventService(store, Handlers(), "VTN-1", lambda: now[0])


def _event(event_id, duration):
    return {"event_descriptor": {"event_id": event_id, "modification_number": 0, "market_context": "http://mc",
                                 "created_date_time": T0, "event_status": "far"},
            "active_period": {"dtstart": T0, "duration": duration},
            "event_signals": [{"intervals": [{"duration": duration, "signal_payload": 1.0, "uid": "0"}],
                               "signal_name": "SIMPLE", "signal_type": "level", "signal_id": "s"}],
            "targets": [{"ven_id": "v"}]}


def test_acknowledgements_never_move_backwards():
    now = [T0 - 10 * MIN]
    store, events = _service(now)
    events.add(_event("e", 10 * MIN), ["v"])
    events.replace("e", _event("e", 10 * MIN))                     # modification 1
    assert events.acknowledged("v", [("e", 1, "far")]) == ["e"]
    assert events.acknowledged("v", [("e", 0, "far")]) == []          # a late ack of an older push
    assert events.acknowledged("v", [("e", 1, "far")]) == []
    delivery = store.deliveries("e", "v")[0]
    assert (delivery.delivered_modification, delivery.delivered_status) == (1, "far")


def test_owing_names_the_vens_whose_event_list_differs_from_what_they_acknowledged():
    now = [T0 - 10 * MIN]
    store, events = _service(now)
    events.add(_event("e", 10 * MIN), ["up-to-date", "behind", "never-told"])
    events.acknowledged("up-to-date", [("e", 0, "far")])
    events.replace("e", _event("e", 10 * MIN))                     # modification 1
    events.acknowledged("up-to-date", [("e", 1, "far")])
    events.acknowledged("behind", [("e", 0, "far")])
    everyone = {"up-to-date", "behind", "never-told", "unknown"}
    assert events.owing(everyone) == {"behind", "never-told"}
    now[0] = T0 + MIN                                              # active now: owed to all three
    assert events.owing(everyone) == {"up-to-date", "behind", "never-told"}
    assert {v for v in everyone if events.distribution(v) is not None} == events.owing(everyone)


def test_cancelled_open_ended_event_leaves_the_list_once_the_ven_has_it():
    now = [T0 + MIN]
    store, events = _service(now)
    events.add(_event("open", timedelta(0)), ["v"])
    events.cancel("open")
    payload, included = events.distribution("v")
    assert [e["event_descriptor"]["event_status"] for e in payload["events"]] == ["cancelled"]
    events.acknowledged("v", included)
    now[0] = T0 + timedelta(days=365)
    assert events.distribution("v") is None
    assert events.distribution("v", only_if_owed=False)[0]["events"] == []


def test_a_durable_store_warns_once_that_per_event_callbacks_do_not_survive_a_restart(tmp_path, caplog):
    from xmpp_vtn.services import Handlers
    from xmpp_vtn.services.events import EventService
    from xmpp_vtn.store import SQLiteStore
    said = lambda: [r.getMessage() for r in caplog.records if "live in this process only" in r.getMessage()]
    for path, expected in ((tmp_path / "vtn.db", 1), (":memory:", 0)):
        caplog.clear()
        events = EventService(SQLiteStore(path), Handlers(), "VTN-1", lambda: T0)
        events.add(_event("plain", 10 * MIN), ["v"])                         # no callback: nothing to lose
        assert said() == []
        events.add(_event("first", 10 * MIN), ["v"], callback=lambda *args: None)
        events.add(_event("second", 10 * MIN), ["v"], delivery_callback=lambda *args: None)
        assert len(said()) == expected, path
        if expected:
            assert said()[0].startswith("event first: ") and "on_created_event" in said()[0]
