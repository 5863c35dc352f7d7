"""EiEvent over a real Prosody: events pushed the moment they exist, their lifecycle, the VENs'
answers, and the pull paths for VENs that poll. The clock is a ManualScheduler."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.services import codes
from xmpp_scene import make_ven, run, scene

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def intervals(start: datetime = T0 + 10 * MIN, levels=(1.0, 2.0)) -> list[dict]:
    return [{"dtstart": start + i * 5 * MIN, "duration": 5 * MIN, "signal_payload": level}
            for i, level in enumerate(levels)]


class Answers:
    """Collects callback calls and lets a test await the n-th one."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._changed = asyncio.Condition()

    async def __call__(self, *args) -> None:
        async with self._changed:
            self.calls.append(args)
            self._changed.notify_all()

    async def wait(self, count: int, timeout: float = 10) -> list[tuple]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), timeout)
        return list(self.calls)


def manual() -> ManualScheduler:
    return ManualScheduler(T0)


def test_event_is_pushed_without_any_poll_and_answered(prosody):
    async def scenario():
        answers, delivered = Answers(), Answers()
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), callback=answers,
                                     delivery_callback=delivered, market_context="http://grid.example/dr")
            push = await ven.next_push("oadrDistributeEvent")
            await answers.wait(1)
            await delivered.wait(1)
            return event_id, ven.ven_id, push, answers.calls, delivered.calls, vtn.events()

    event_id, ven_id, push, answers, delivered, [state] = run(scenario())
    [event] = push.payload["events"]
    assert event["event_descriptor"]["event_id"] == event_id
    assert event["event_descriptor"]["event_status"] == "far" and event["event_descriptor"]["modification_number"] == 0
    assert event["active_period"]["dtstart"] == T0 + 10 * MIN and event["active_period"]["duration"] == 10 * MIN
    assert [i["signal_payload"] for i in event["event_signals"][0]["intervals"]] == [1.0, 2.0]
    assert event["targets"] == [{"ven_id": ven_id}]
    assert answers == [(ven_id, event_id, "optIn")] and delivered == [(ven_id, event_id)]
    delivery = state.deliveries[ven_id]
    assert (delivery.delivered_modification, delivery.delivered_status) == (0, "far")
    assert (delivery.opt_type, delivery.opt_modification) == ("optIn", 0)


def test_one_event_fans_out_to_many_vens_each_seeing_only_itself(prosody):
    async def scenario():
        answers = Answers()
        async with scene(prosody, vens=5, register=True, scheduler=manual()) as (vtn, vens):
            vens[3].opt = "optOut"
            event_id = vtn.add_event([ven.ven_id for ven in vens], "ELECTRICITY_PRICE", "price", intervals(),
                                     callback=answers)
            pushes = await asyncio.gather(*(ven.next_push("oadrDistributeEvent") for ven in vens))
            await answers.wait(5)
            return event_id, [ven.ven_id for ven in vens], pushes, answers.calls

    event_id, ven_ids, pushes, answers = run(scenario())
    for ven_id, push in zip(ven_ids, pushes):
        assert push.payload["events"][0]["targets"] == [{"ven_id": ven_id}]
    assert sorted(answers) == sorted((ven_id, event_id, "optOut" if i == 3 else "optIn")
                                     for i, ven_id in enumerate(ven_ids))


def test_every_lifecycle_transition_arrives_as_a_push(prosody):
    async def scenario():
        clock = manual()
        async with scene(prosody, register=True, scheduler=clock) as (vtn, [ven]):
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), ramp_up_period=5 * MIN)
            statuses = [(await ven.next_push("oadrDistributeEvent")).payload["events"][0]]
            for step in (5 * MIN, 5 * MIN, 10 * MIN):          # near, active, completed
                await clock.advance(step)
                statuses.append((await ven.next_push("oadrDistributeEvent")).payload["events"][0])
            # A later event's push no longer lists the completed one.
            vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(T0 + 60 * MIN))
            later = await ven.next_push("oadrDistributeEvent")
            return event_id, statuses, later, vtn.events()

    event_id, statuses, later, states = run(scenario())
    assert [e["event_descriptor"]["event_status"] for e in statuses] == ["far", "near", "active", "completed"]
    assert {e["event_descriptor"]["modification_number"] for e in statuses} == {0}   # status is not a modification
    assert {e["event_descriptor"]["created_date_time"] for e in statuses} == {T0}
    assert [e["event_descriptor"]["event_id"] for e in later.payload["events"]] != [event_id]
    assert len(later.payload["events"]) == 1
    assert [s.status for s in states] == ["completed", "far"]


def test_modification_and_cancellation_are_pushed_with_new_modification_numbers(prosody):
    async def scenario():
        answers = Answers()
        clock = manual()
        async with scene(prosody, register=True, scheduler=clock) as (vtn, [ven]):
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), callback=answers)
            first = await ven.next_push("oadrDistributeEvent")
            await answers.wait(1)
            await clock.advance(MIN)
            number = vtn.modify_event(event_id, intervals(levels=(3.0, 3.0)), reason="more shedding")
            modified = await ven.next_push("oadrDistributeEvent")
            await answers.wait(2)
            vtn.cancel_event(event_id)
            cancelled = await ven.next_push("oadrDistributeEvent")
            return number, first, modified, cancelled, answers.calls, vtn.events()

    number, first, modified, cancelled, answers, [state] = run(scenario())
    descriptor = modified.payload["events"][0]["event_descriptor"]
    assert number == 1 and descriptor["modification_number"] == 1
    assert descriptor["modification_reason"] == "more shedding"
    assert descriptor["modification_date_time"] == T0 + MIN and descriptor["created_date_time"] == T0
    assert [i["signal_payload"] for i in modified.payload["events"][0]["event_signals"][0]["intervals"]] == [3.0, 3.0]
    assert [call[2] for call in answers] == ["optIn", "optIn"]          # answered each modification once
    cancelled_descriptor = cancelled.payload["events"][0]["event_descriptor"]
    assert (cancelled_descriptor["event_status"], cancelled_descriptor["modification_number"]) == ("cancelled", 2)
    assert state.status == "cancelled"


def test_stale_unknown_and_foreign_answers_are_refused_and_change_nothing(prosody):
    async def scenario():
        answers = Answers()
        async with scene(prosody, vens=2, register=True, scheduler=manual()) as (vtn, [ven, other]):
            ven.opt = other.opt = lambda event: None                  # the test answers by hand
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), callback=answers)
            await ven.next_push("oadrDistributeEvent")
            vtn.modify_event(event_id, priority=2)
            await ven.next_push("oadrDistributeEvent")

            def answer(modification, target=event_id, opt="optOut"):
                return [{"response_code": 200, "request_id": None, "event_id": target,
                         "modification_number": modification, "opt_type": opt}]
            stale = await ven.created_event(answer(0))
            future = await ven.created_event(answer(5))
            unknown = await ven.created_event(answer(1, target="no-such-event"))
            foreign = await other.created_event(answer(1))
            before = vtn.events()[0].deliveries
            good = await ven.created_event(answer(1))
            repeated = await ven.created_event(answer(1))             # the same answer again
            return before, [stale, future, unknown, foreign, good, repeated], answers.calls, vtn.events()[0]

    before, results, calls, state = run(scenario())
    codes_seen = [payload["response"]["response_code"] for _, payload in results]
    assert codes_seen == [codes.OUT_OF_SEQUENCE, codes.INVALID_ID, codes.INVALID_ID, codes.TARGET_MISMATCH, 200, 200]
    assert all(delivery.opt_type is None for delivery in before.values())
    assert len(calls) == 1 and calls[0][2] == "optOut"                  # fired once, not for the repeat
    assert next(iter(state.deliveries.values())).opt_type == "optOut"


def test_response_required_never_gets_no_answer(prosody):
    async def scenario():
        answers, delivered = Answers(), Answers()
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), response_required="never",
                          callback=answers, delivery_callback=delivered)
            push = await ven.next_push("oadrDistributeEvent")
            await delivered.wait(1)
            return push, answers.calls, ven.answered

    push, answers, answered = run(scenario())
    assert push.payload["events"][0]["response_required"] == "never" and answers == [] and answered == {}


def test_request_event_returns_the_vens_events(prosody):
    async def scenario():
        async with scene(prosody, vens=2, register=True, scheduler=manual()) as (vtn, [ven, other]):
            first = vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals())
            await ven.next_push("oadrDistributeEvent")
            vtn.add_event(other.ven_id, "SIMPLE", "level", intervals())
            await other.next_push("oadrDistributeEvent")
            return first, await ven.request("oadrRequestEvent", {"request_id": "req-9", "ven_id": ven.ven_id})

    first, (message_type, payload) = run(scenario())
    assert message_type == "oadrDistributeEvent" and payload["request_id"] == "req-9"
    assert [e["event_descriptor"]["event_id"] for e in payload["events"]] == [first]


def test_poll_gets_what_is_owed_then_an_empty_response(prosody):
    async def scenario():
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            account = ven.jid.split("/")[0]
            ven_id = ven.ven_id
            await ven.stop()
            event_id = vtn.add_event(ven_id, "SIMPLE", "level", intervals())
            await vtn.courier.idle()                         # the push failed: the VEN is offline
            poller = await make_ven(prosody, account, ven_id=ven_id, announce_presence=False)
            try:
                owed = await poller.request("oadrPoll", {"ven_id": ven_id})
                nothing = await poller.request("oadrPoll", {"ven_id": ven_id})
            finally:
                await poller.stop()
            return event_id, owed, nothing

    event_id, (owed_type, owed), (nothing_type, nothing) = run(scenario())
    assert owed_type == "oadrDistributeEvent" and owed["events"][0]["event_descriptor"]["event_id"] == event_id
    assert nothing_type == "oadrResponse" and nothing["response"]["response_code"] == 200


def test_on_poll_and_on_request_event_handlers_answer_instead(prosody):
    event = {"event_descriptor": {"event_id": "app-ev", "modification_number": 4, "market_context": "http://mc",
                                  "created_date_time": T0, "event_status": "far"},
             "active_period": {"dtstart": T0, "duration": 10 * MIN},
             "event_signals": [{"intervals": [{"duration": 10 * MIN, "signal_payload": 1.0}],
                                "signal_name": "SIMPLE", "signal_type": "level", "signal_id": "s1"}],
             "targets": [{"ven_id": "x"}]}
    polled = []

    async def on_poll(ven_id):
        polled.append(ven_id)
        return None

    handlers = {"on_poll": on_poll, "on_request_event": lambda ven_id: [event]}

    async def scenario():
        async with scene(prosody, register=True, handlers=handlers, scheduler=manual()) as (vtn, [ven]):
            poll = await ven.request("oadrPoll", {"ven_id": ven.ven_id})
            request = await ven.request("oadrRequestEvent", {"request_id": "r", "ven_id": ven.ven_id})
            return ven.ven_id, poll, request

    ven_id, (poll_type, poll), (request_type, request) = run(scenario())
    assert polled == [ven_id] and poll_type == "oadrResponse" and poll["response"]["response_code"] == 200
    assert request_type == "oadrDistributeEvent"
    assert request["events"][0]["event_descriptor"]["event_id"] == "app-ev"


def test_offline_ven_gets_its_events_when_it_returns(prosody):
    async def scenario():
        answers = Answers()
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            account, ven_id = ven.jid.split("/")[0], ven.ven_id
            await ven.stop()
            event_id = vtn.add_event(ven_id, "SIMPLE", "level", intervals(), callback=answers)
            await vtn.courier.idle()
            waiting = vtn.events()[0].deliveries[ven_id]
            back = await make_ven(prosody, account, ven_id=ven_id)          # presence tells the VTN
            try:
                push = await back.next_push("oadrDistributeEvent")
                await answers.wait(1)
            finally:
                await back.stop()
            return event_id, waiting, push, vtn.events()[0].deliveries[ven_id]

    event_id, waiting, push, delivered = run(scenario())
    assert waiting.delivered_modification is None
    assert push.payload["events"][0]["event_descriptor"]["event_id"] == event_id
    assert (delivered.delivered_modification, delivered.opt_type) == (0, "optIn")


def test_add_event_arguments_are_checked(prosody):
    async def scenario():
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            errors = {}
            for name, call in {
                "unknown ven": lambda: vtn.add_event("nobody", "SIMPLE", "level", intervals()),
                "signal name": lambda: vtn.add_event(ven.ven_id, "LOUD", "level", intervals()),
                "signal type": lambda: vtn.add_event(ven.ven_id, "SIMPLE", "loud", intervals()),
                "gap": lambda: vtn.add_event(ven.ven_id, "SIMPLE", "level", [
                    intervals()[0], {**intervals()[1], "dtstart": T0 + 30 * MIN}]),
                "fraction": lambda: vtn.add_event(ven.ven_id, "SIMPLE", "level", [
                    {**intervals()[0], "duration": timedelta(seconds=1.5)}]),
                "response": lambda: vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(),
                                                  response_required="sometimes"),
                "duplicate": lambda: [vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), event_id="dup")
                                      for _ in range(2)],
            }.items():
                with pytest.raises(ValueError) as error:
                    call()
                errors[name] = str(error.value)
            with pytest.warns(UserWarning, match="no timezone"):
                vtn.add_event(ven.ven_id, "x-custom", "level",
                              [{"dtstart": datetime(2026, 11, 23, 13), "duration": MIN, "signal_payload": 1}])
            return errors

    errors = run(scenario())
    assert "nobody" in errors["unknown ven"] and "LOUD" in errors["signal name"] and "loud" in errors["signal type"]
    assert "contiguous" in errors["gap"] and "sometimes" in errors["response"]
    assert "whole seconds" in errors["fraction"] and "dup" in errors["duplicate"]


def test_wall_clock_transitions_are_pushed_by_apscheduler(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):           # the default, real-time scheduler
            start = datetime.now(timezone.utc) + timedelta(seconds=1.5)     # the first push arrives "far"
            vtn.add_event(ven.ven_id, "SIMPLE", "level",          # OpenADR durations are whole seconds
                          [{"dtstart": start, "duration": timedelta(seconds=1), "signal_payload": 1.0}])
            seen = []
            for _ in range(3):
                push = await ven.next_push("oadrDistributeEvent")
                seen.append((push.payload["events"][0]["event_descriptor"]["event_status"],
                             datetime.now(timezone.utc) - start))
            return seen

    seen = run(scenario())
    assert [status for status, _ in seen] == ["far", "active", "completed"]
    # Each transition arrives within a second of its time (the bound), never before it.
    assert timedelta(0) <= seen[1][1] < timedelta(seconds=1)
    assert timedelta(seconds=1) <= seen[2][1] < timedelta(seconds=2)


def test_group_targets_are_resolved_through_on_targets(prosody):
    groups: dict[str, list[str]] = {}

    def on_targets(targets):
        return [ven_id for target in targets for ven_id in groups.get(target.get("group_id"), [])]

    async def scenario():
        async with scene(prosody, vens=3, register=True, scheduler=manual(),
                         handlers={"on_targets": on_targets}) as (vtn, vens):
            groups["north"] = [vens[0].ven_id, vens[2].ven_id]
            vtn.add_event(None, "SIMPLE", "level", intervals(), targets=[{"group_id": "north"}])
            pushes = await asyncio.gather(vens[0].next_push("oadrDistributeEvent"),
                                          vens[2].next_push("oadrDistributeEvent"))
            await vtn.courier.idle()
            with pytest.raises(ValueError, match="no VEN"):
                vtn.add_event(None, "SIMPLE", "level", intervals(), targets=[{"group_id": "south"}])
            untouched = [item for item in vens[1].received if item.message_type == "oadrDistributeEvent"]
            return pushes, untouched, [state.deliveries.keys() for state in vtn.events()]

    pushes, untouched, [targeted] = run(scenario())
    assert all(push.payload["events"][0]["targets"] == [{"group_id": "north"}] for push in pushes)
    assert untouched == [] and len(targeted) == 2


def test_raw_events_with_several_signals_are_added_and_modified_whole(prosody):
    from payloads import EVENT_FULL

    async def scenario():
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            event_id = vtn.add_raw_event(ven.ven_id, EVENT_FULL)
            first = await ven.next_push("oadrDistributeEvent")
            with pytest.raises(ValueError, match="modify_raw_event"):
                vtn.modify_event(event_id, priority=3)
            changed = {**EVENT_FULL, "event_descriptor": {**EVENT_FULL["event_descriptor"], "priority": 3}}
            number = vtn.modify_raw_event(event_id, changed, reason="priority")
            second = await ven.next_push("oadrDistributeEvent")
            return event_id, first, number, second

    event_id, first, number, second = run(scenario())
    [sent] = first.payload["events"]
    assert event_id == "ev-00042" and sent["event_descriptor"]["modification_number"] == 0
    assert len(sent["event_signals"]) == 3 and sent["event_baseline"]["baseline_id"] == "bl-1"
    [modified] = second.payload["events"]
    assert number == 1 and modified["event_descriptor"]["modification_number"] == 1
    assert modified["event_descriptor"]["priority"] == 3 and len(modified["event_signals"]) == 3


def test_failing_callbacks_are_logged_and_failing_handlers_refuse(prosody, caplog):
    calls = []

    def callback(ven_id, event_id, opt_type):
        calls.append(opt_type)
        raise RuntimeError("callback broke")

    async def scenario():
        async with scene(prosody, register=True, scheduler=manual()) as (vtn, [ven]):
            ven.opt = lambda event: None
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", intervals(), callback=callback)
            await ven.next_push("oadrDistributeEvent")
            answer = [{"response_code": 200, "request_id": None, "event_id": event_id, "modification_number": 0,
                       "opt_type": "optOut"}]
            first = await ven.created_event(answer)
            again = await ven.created_event(answer)
            vtn.add_handler("on_created_event", lambda payload: 1 / 0)
            refused = await ven.created_event([{**answer[0], "opt_type": "optIn"}])
            return first, again, refused, vtn.events()[0].deliveries[ven.ven_id]

    first, again, refused, delivery = run(scenario())
    assert first[1]["response"]["response_code"] == 200 and again[1]["response"]["response_code"] == 200
    assert calls == ["optOut"]                                   # logged once, not fired again on a resend
    assert "callback of event" in caplog.text and "callback broke" in caplog.text
    assert refused[1]["response"]["response_code"] == codes.DEPLOYMENT_ERROR_OR_OTHER
    assert delivery.opt_type == "optOut"                          # the refused answer changed nothing


def test_modify_event_changes_targets_and_other_arguments(prosody):
    async def scenario():
        async with scene(prosody, vens=2, register=True, scheduler=manual()) as (vtn, [first, second]):
            event_id = vtn.add_event(first.ven_id, "SIMPLE", "level", intervals(), signal_target_mrid="Water_Heater")
            await first.next_push("oadrDistributeEvent")
            vtn.modify_event(event_id, ven_ids=[first.ven_id, second.ven_id], market_context="http://mc/2")
            pushes = await asyncio.gather(first.next_push("oadrDistributeEvent"),
                                          second.next_push("oadrDistributeEvent"))
            with pytest.raises(ValueError, match="not registered"):
                vtn.modify_event(event_id, ven_ids=["nobody"])
            state = vtn.events()[0]
            state.event["event_descriptor"]["priority"] = 99              # a copy: changes nothing stored
            return pushes, state, vtn.events()[0]

    pushes, state, fresh = run(scenario())
    for push in pushes:
        [event] = push.payload["events"]
        assert event["event_descriptor"]["market_context"] == "http://mc/2"
        assert event["event_descriptor"]["modification_number"] == 1
        assert event["event_signals"][0]["targets"] == [{"end_device_asset": {"mrid": "Water_Heater"}}]
    assert sorted(state.deliveries) == sorted(push.payload["events"][0]["targets"][0]["ven_id"] for push in pushes)
    assert fresh.event["event_descriptor"].get("priority") is None
