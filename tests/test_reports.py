"""EiReport in both directions and EiOpt, over a real Prosody with simulated VENs."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest

from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.services import codes
from xmpp_scene import run, scene

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SECOND = timedelta(seconds=1)
VOLTAGE = {"name": "voltage", "description": "Voltage", "unit": "V", "scale": "none"}
ENERGY = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"}


class Inbox:
    """Collects calls and lets a test await the n-th one."""

    def __init__(self) -> None:
        self.calls: list = []
        self._changed = asyncio.Condition()

    async def __call__(self, *args):
        async with self._changed:
            self.calls.append(args[0] if len(args) == 1 else args)
            self._changed.notify_all()

    async def wait(self, count: int) -> list:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls) >= count), 10)
        return list(self.calls)


def asks_for(report_request_id: str, r_id: str, specifier_id: str | None = None):
    """A VEN's ``wants_vtn_reports``: one 10-second subscription to ``r_id`` of the offered report."""
    def wants(report):
        return [{"report_request_id": report_request_id, "report_specifier": {
            "report_specifier_id": specifier_id or report["report_specifier_id"], "granularity": 10 * SECOND,
            "report_back_duration": 10 * SECOND,
            "specifier_payloads": [{"r_id": r_id, "reading_type": "Direct Read"}]}}]
    return wants


def offer_telemetry(ven) -> None:
    ven.offer_report("meter", "volt", lambda: 230.5, VOLTAGE, resource_id="dev1",
                     min_period=10 * SECOND, max_period=60 * SECOND)
    ven.offer_report("meter", "energy", lambda: 42.0, ENERGY, resource_id="dev1",
                     min_period=60 * SECOND, max_period=3600 * SECOND)
    ven.offer_report("status", "online", lambda: 1.0, None, report_name="METADATA_TELEMETRY_STATUS",
                     report_type="x-resourceStatus")
    ven.offer_report("history", "hist-energy", lambda: 1.0, ENERGY, report_name="METADATA_HISTORY_USAGE")


def test_compact_handler_chooses_readings_and_they_reach_the_callbacks(prosody, caplog):
    voltage, created = Inbox(), Inbox()
    asked = []

    def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling):
        asked.append((ven_id, resource_id, measurement, unit, min_sampling, max_sampling))
        if measurement == "voltage":
            return voltage, 10 * SECOND
        if measurement == "energyReal":
            return voltage, 5 * SECOND                   # below the VEN's 60 s minimum: refused
        return None

    async def scenario():
        handlers = {"on_register_report": on_register_report, "on_created_report": created}
        async with scene(prosody, register=True, handlers=handlers) as (vtn, [ven]):
            offer_telemetry(ven)
            answer = await ven.register_reports()
            await created.wait(1)
            [request] = answer["report_requests"]
            states = [(d.key, d.state) for d in vtn.report_requests(ven.ven_id)]
            updated = await ven.send_report(request["report_request_id"], {"volt": 229.0})
            await voltage.wait(1)
            return ven.ven_id, request, states, updated, voltage.calls, vtn.report_offers(ven.ven_id)

    with caplog.at_level(logging.WARNING, logger="xmpp_vtn"):
        ven_id, request, states, updated, readings, offers = run(scenario())
    assert sorted(asked, key=str) == sorted([(ven_id, "dev1", "voltage", "V", 10 * SECOND, 60 * SECOND),
                                             (ven_id, "dev1", "energyReal", "Wh", 60 * SECOND, 3600 * SECOND),
                                             (ven_id, None, "x-resourceStatus", None, SECOND, 900 * SECOND)],
                                            key=str)
    specifier = request["report_specifier"]
    assert specifier["report_specifier_id"] == "meter" and specifier["granularity"] == 10 * SECOND
    assert [item["r_id"] for item in specifier["specifier_payloads"]] == ["volt"]
    assert states == [(request["report_request_id"], "active")]
    assert "rID energy of venID" in caplog.text and "not requested" in caplog.text
    assert updated[0] == "oadrUpdatedReport" and updated[1]["response"]["response_code"] == 200
    [[(at, value)]] = readings
    assert value == 229.0 and at.tzinfo is not None
    assert sorted(offer.payload["report_specifier_id"] for offer in offers) == ["history", "meter", "status"]


def test_full_form_handler_and_on_update_report(prosody):
    seen_reports, updates = [], Inbox()

    def on_register_report(report):
        seen_reports.append(report["report_name"])
        if report["report_specifier_id"] == "meter":
            return [(None, "energy", 60 * SECOND, 300 * SECOND), (None, "nope", 60 * SECOND)]
        return []

    async def scenario():
        handlers = {"on_register_report": on_register_report, "on_update_report": updates}
        async with scene(prosody, register=True, handlers=handlers) as (vtn, [ven]):
            offer_telemetry(ven)
            answer = await ven.register_reports()
            [request] = answer["report_requests"]
            await ven.send_report(request["report_request_id"])
            [payload] = await updates.wait(1)
            return request, payload

    request, payload = run(scenario())
    assert sorted(seen_reports) == ["METADATA_HISTORY_USAGE", "METADATA_TELEMETRY_STATUS",
                                    "METADATA_TELEMETRY_USAGE"]
    specifier = request["report_specifier"]
    assert (specifier["granularity"], specifier["report_back_duration"]) == (60 * SECOND, 300 * SECOND)
    assert payload["reports"][0]["intervals"][0]["report_payload"] == {"r_id": "energy", "value": 42.0}


def test_vtn_requests_and_cancels_a_history_report(prosody):
    history = Inbox()

    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            offer_telemetry(ven)
            await ven.register_reports()
            with pytest.raises(ValueError, match="offers no report"):
                await vtn.request_report(ven.ven_id, "nothing", None, SECOND, SECOND)
            with pytest.raises(ValueError, match="no rID"):
                await vtn.request_report(ven.ven_id, "history", ["bogus"], SECOND, SECOND)
            report_request_id = await vtn.request_report(
                ven.ven_id, "history", ["hist-energy"], timedelta(hours=1), timedelta(days=1),
                start=T0 - timedelta(days=1), duration=timedelta(days=1), callback=history)
            pushed = await ven.next_push("oadrCreateReport")          # recorded once answered
            await ven.send_report(report_request_id, {"hist-energy": 7.5})
            await history.wait(1)
            await vtn.cancel_report(ven.ven_id, report_request_id)
            await ven.next_push("oadrCancelReport")
            late = await ven.request("oadrUpdateReport", {"request_id": "late", "ven_id": ven.ven_id, "reports": [{
                "report_request_id": report_request_id, "report_specifier_id": "history",
                "report_name": "HISTORY_USAGE", "created_date_time": T0, "report_descriptions": [],
                "intervals": [{"dtstart": T0, "report_payload": {"r_id": "hist-energy", "value": 1.0}}]}]})
            return report_request_id, pushed, history.calls, late, vtn.report_requests(ven.ven_id), ven.report_requests

    report_request_id, pushed, readings, late, requests, ven_side = run(scenario())
    [request] = pushed.payload["report_requests"]
    assert request["report_request_id"] == report_request_id
    assert request["report_specifier"]["report_interval"] == {"dtstart": T0 - timedelta(days=1),
                                                             "duration": timedelta(days=1)}
    assert [value for (_, value) in readings[0]] == [7.5]
    assert late[0] == "oadrUpdatedReport" and late[1]["response"]["response_code"] == codes.INVALID_ID
    assert requests == [] and ven_side == {}


def test_update_for_an_rid_that_was_not_requested_is_refused(prosody):
    voltage = Inbox()

    async def scenario():
        handlers = {"on_register_report": lambda *args: (voltage, 10 * SECOND) if args[2] == "voltage" else None}
        async with scene(prosody, register=True, handlers=handlers) as (vtn, [ven]):
            offer_telemetry(ven)
            [request] = (await ven.register_reports())["report_requests"]
            request["report_specifier"]["specifier_payloads"].append({"r_id": "energy", "reading_type": "Direct Read"})
            answer = await ven.send_report(request["report_request_id"])      # claims energy too
            return answer, voltage.calls

    (answer_type, answer), calls = run(scenario())
    assert answer_type == "oadrUpdatedReport" and answer["response"]["response_code"] == codes.INVALID_ID
    assert calls == []                                              # nothing delivered, not even voltage


def test_vtn_reports_are_offered_at_registration_and_sent_on_schedule_until_cancelled(prosody):
    clock = ManualScheduler(T0)
    prices = iter([0.21, 0.25, 0.30])

    wants = asks_for("ven-wants-price", "price")

    async def scenario():
        async with scene(prosody, scheduler=clock) as (vtn, [ven]):
            vtn.add_report(lambda: next(prices), "vtn-prices", r_id="price", measurement="currencyPerKWh",
                           unit="EUR", sampling_rate=10 * SECOND)
            ven.wants_vtn_reports = wants
            await ven.register()
            offer = await ven.next_push("oadrRegisterReport")
            await clock.advance(10 * SECOND)
            first = await ven.next_push("oadrUpdateReport")
            await clock.advance(10 * SECOND)
            second = await ven.next_push("oadrUpdateReport")
            cancelled = await ven.request("oadrCancelReport", {
                "request_id": "c1", "report_request_ids": ["ven-wants-price"], "report_request_id": "ven-wants-price",
                "report_to_follow": False, "ven_id": ven.ven_id})
            await clock.advance(60 * SECOND)
            later = list(prices)                    # the VTN read no more values after the cancel
            unknown = await ven.request("oadrCancelReport", {
                "request_id": "c2", "report_request_ids": ["never"], "report_request_id": "never",
                "report_to_follow": False, "ven_id": ven.ven_id})
            return offer, first, second, cancelled, later, unknown

    offer, first, second, cancelled, later, unknown = run(scenario())
    [report] = offer.payload["reports"]
    assert report["report_name"] == "METADATA_TELEMETRY_USAGE" and report["report_specifier_id"] == "vtn-prices"
    values = [push.payload["reports"][0]["intervals"][0]["report_payload"]["value"] for push in (first, second)]
    assert values == [0.21, 0.25]
    assert first.payload["reports"][0]["report_request_id"] == "ven-wants-price"
    assert cancelled[0] == "oadrCanceledReport" and cancelled[1]["pending_reports"] == []
    assert later == [0.30]
    assert unknown[1]["response"]["response_code"] == codes.INVALID_ID


def test_ven_create_report_for_vtn_reports(prosody):
    async def scenario():
        async with scene(prosody, register=True, scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            vtn.add_report(lambda: 1.0, "vtn-load", r_id="load")
            def asking(report_request_id: str, period: timedelta) -> dict:
                return {"request_id": "q", "ven_id": ven.ven_id, "report_requests": [
                    {"report_request_id": report_request_id, "report_specifier": {
                        "report_specifier_id": "vtn-load", "granularity": period, "report_back_duration": period,
                        "specifier_payloads": [{"r_id": "load", "reading_type": "Direct Read"}]}}]}
            # The VTN offers a reading every 10 s (add_report's default): one a second is refused.
            too_often = await ven.request("oadrCreateReport", asking("rr-fast", SECOND))
            good = await ven.request("oadrCreateReport", asking("rr-load", 10 * SECOND))
            unsupported = await ven.request("oadrCreateReport", {"request_id": "q2", "ven_id": ven.ven_id,
                                                                 "report_requests": [
                {"report_request_id": "rr-x", "report_specifier": {
                    "report_specifier_id": "no-such-report", "granularity": SECOND, "report_back_duration": SECOND,
                    "specifier_payloads": [{"r_id": "x", "reading_type": "Direct Read"}]}}]})
            return too_often, good, unsupported

    (fast_type, fast), (good_type, good), (bad_type, bad) = run(scenario())
    assert fast_type == "oadrCreatedReport" and fast["response"]["response_code"] == codes.INVALID_DATA
    assert "shorter than the offered sampling period" in fast["response"]["response_description"]
    assert fast["pending_reports"] == []
    assert good_type == "oadrCreatedReport" and good["pending_reports"] == [{"report_request_id": "rr-load"}]
    assert bad_type == "oadrCreatedReport" and bad["response"]["response_code"] == codes.REPORT_NOT_SUPPORTED


def test_opt_schedules_and_event_opt_outs(prosody):
    created, cancelled, event_answers = Inbox(), Inbox(), Inbox()
    window = {"components": [{"dtstart": T0 + timedelta(hours=1), "duration": timedelta(hours=2)}]}

    async def scenario():
        handlers = {"on_create_opt": created, "on_cancel_opt": cancelled}
        async with scene(prosody, vens=2, register=True, handlers=handlers,
                         scheduler=ManualScheduler(T0)) as (vtn, [ven, other]):
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", [
                {"dtstart": T0 + timedelta(hours=1), "duration": timedelta(hours=1), "signal_payload": 1.0}],
                callback=event_answers)
            await ven.next_push("oadrDistributeEvent")
            await event_answers.wait(1)                                        # optIn from the push
            base = {"created_date_time": T0, "ven_id": ven.ven_id, "targets": [], "targets_by_type": {}}
            schedule = await ven.request("oadrCreateOpt", {**base, "opt_id": "o-window", "opt_type": "optOut",
                                                          "opt_reason": "x-schedule", "request_id": "o1",
                                                          "vavailability": window})
            tied = await ven.request("oadrCreateOpt", {**base, "opt_id": "o-event", "opt_type": "optOut",
                                                      "opt_reason": "economic", "request_id": "o2",
                                                      "event_id": event_id, "modification_number": 0})
            await event_answers.wait(2)
            refusals = [
                await ven.request("oadrCreateOpt", {**base, "opt_id": "o-x", "opt_type": "optOut",
                                                   "opt_reason": "economic", "request_id": "o3",
                                                   "event_id": "no-such-event", "modification_number": 0}),
                await other.request("oadrCreateOpt", {**base, "ven_id": other.ven_id, "opt_id": "o-y",
                                                     "opt_type": "optOut", "opt_reason": "economic",
                                                     "request_id": "o4", "event_id": event_id, "modification_number": 0}),
                await other.request("oadrCancelOpt", {"request_id": "o5", "opt_id": "o-window",
                                                      "ven_id": other.ven_id}),
            ]
            opts_before = [opt["opt_id"] for opt in vtn.opts(ven.ven_id)]
            cancel = await ven.request("oadrCancelOpt", {"request_id": "o6", "opt_id": "o-window",
                                                        "ven_id": ven.ven_id})
            return (schedule, tied, refusals, cancel, opts_before, [opt["opt_id"] for opt in vtn.opts()],
                    event_answers.calls, vtn.events()[0].deliveries[ven.ven_id], created.calls, cancelled.calls)

    (schedule, tied, refusals, cancel, opts_before, opts_after, answers, delivery,
     created_calls, cancelled_calls) = run(scenario())
    assert schedule == ("oadrCreatedOpt", {"response": {"response_code": 200, "response_description": "OK",
                                                        "request_id": "o1"}, "opt_id": "o-window"})
    assert tied[1]["response"]["response_code"] == 200
    assert [answer[2] for answer in answers] == ["optIn", "optOut"]
    assert (delivery.opt_type, delivery.opt_modification) == ("optOut", 0)
    assert [r[1]["response"]["response_code"] for r in refusals] == [codes.INVALID_ID, codes.TARGET_MISMATCH,
                                                                     codes.INVALID_ID]
    assert [r[0] for r in refusals] == ["oadrCreatedOpt", "oadrCreatedOpt", "oadrCanceledOpt"]
    assert opts_before == ["o-window", "o-event"] and opts_after == ["o-event"]
    assert cancel[0] == "oadrCanceledOpt" and cancel[1]["response"]["response_code"] == 200
    assert [c["opt_id"] for c in created_calls] == ["o-window", "o-event"]
    assert [c["opt_id"] for c in cancelled_calls] == ["o-window"]


def test_two_vens_may_choose_the_same_report_request_id(prosody):
    clock = ManualScheduler(T0)

    wants = asks_for("same-id", "load", "vtn-load")

    async def scenario():
        async with scene(prosody, vens=2, scheduler=clock) as (vtn, vens):
            vtn.add_report(lambda: 5.0, "vtn-load", r_id="load")
            for ven in vens:
                ven.wants_vtn_reports = wants
                await ven.register()
                await ven.next_push("oadrRegisterReport")
            await clock.advance(10 * SECOND)
            return await asyncio.gather(*(ven.next_push("oadrUpdateReport") for ven in vens))

    updates = run(scenario())
    assert [u.payload["reports"][0]["report_request_id"] for u in updates] == ["same-id", "same-id"]


def test_cancelled_registration_takes_its_reports_and_opts_along(prosody):
    clock = ManualScheduler(T0)
    reads = []

    wants = asks_for("mine", "load", "vtn-load")

    async def scenario():
        async with scene(prosody, scheduler=clock) as (vtn, [ven]):
            vtn.add_report(lambda: reads.append(1) or 5.0, "vtn-load", r_id="load")
            ven.wants_vtn_reports = wants
            offer_telemetry(ven)
            await ven.register()
            await ven.next_push("oadrRegisterReport")
            await ven.register_reports()
            await ven.request("oadrCreateOpt", {
                "opt_id": "o1", "opt_type": "optOut", "opt_reason": "x-schedule", "request_id": "o", "ven_id":
                ven.ven_id, "created_date_time": T0, "targets": [], "targets_by_type": {},
                "vavailability": {"components": [{"dtstart": T0, "duration": timedelta(hours=1)}]}})
            await ven.cancel_registration()
            await clock.advance(60 * SECOND)
            return reads, vtn.report_offers(), vtn.report_requests(), vtn.opts(), vtn.store.documents(
                "vtn_report_request")

    reads, offers, requests, opts, subscriptions = run(scenario())
    assert reads == [] and offers == [] and requests == [] and opts == [] and subscriptions == []


def test_report_subscriptions_and_schedules_survive_a_vtn_restart(prosody, tmp_path):
    from xmpp_scene import make_vtn
    store = str(tmp_path / "vtn.sqlite3")
    clock = ManualScheduler(T0)

    wants = asks_for("keep-me", "load", "vtn-load")

    async def scenario():
        async with scene(prosody, vens=0, scheduler=clock, store=store) as (vtn, _):
            vtn.add_report(lambda: 1.0, "vtn-load", r_id="load")
            from xmpp_scene import make_ven
            ven = await make_ven(prosody)
            ven.wants_vtn_reports = wants
            await ven.register()
            await ven.next_push("oadrRegisterReport")
        # Same store, new process state: registrations and the subscription come back.
        again = make_vtn(prosody, store=store, scheduler=clock)
        again.add_report(lambda: 2.0, "vtn-load", r_id="load")     # the application configures its reports again
        await again.run()
        try:
            back = await make_ven(prosody, ven.jid.split("/")[0], ven_id=ven.ven_id,
                                  registration_id=ven.registration_id)
            await clock.advance(10 * SECOND)
            update = await back.next_push("oadrUpdateReport")
            await back.stop()
            return again.vens(), update
        finally:
            await again.stop()

    vens, update = run(scenario())
    assert len(vens) == 1
    report = update.payload["reports"][0]
    assert report["report_request_id"] == "keep-me" and report["intervals"][0]["report_payload"]["value"] == 2.0


def test_a_failing_reading_callback_is_logged_and_the_update_still_acknowledged(prosody, caplog):
    readings = Inbox()

    async def flaky(data):
        await readings(data)
        if len(readings.calls) == 1:
            raise RuntimeError("the meter database is down")

    def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling):
        return (flaky, 10 * SECOND) if measurement == "voltage" else None

    async def scenario():
        async with scene(prosody, register=True, handlers={"on_register_report": on_register_report}) as (vtn, [ven]):
            offer_telemetry(ven)
            [request] = (await ven.register_reports())["report_requests"]
            first = await ven.send_report(request["report_request_id"], {"volt": 229.0})
            second = await ven.send_report(request["report_request_id"], {"volt": 231.0})
            return first, second, await readings.wait(2)

    with caplog.at_level(logging.ERROR, logger="xmpp_vtn"):
        first, second, calls = run(scenario())
    assert [answer[1]["response"]["response_code"] for answer in (first, second)] == [200, 200]
    assert [value for [(_, value)] in calls] == [229.0, 231.0]
    assert "report callback for rID volt" in caplog.text and "the meter database is down" in caplog.text


def test_readings_refused_by_on_update_report_reach_it_again_when_resent(prosody):
    updates = Inbox()

    async def on_update_report(payload):
        await updates(payload)
        if len(updates.calls) == 1:
            raise RuntimeError("not now")

    def on_register_report(report):
        return [(None, "volt", 10 * SECOND)] if report["report_specifier_id"] == "meter" else []

    async def scenario():
        handlers = {"on_register_report": on_register_report, "on_update_report": on_update_report}
        async with scene(prosody, register=True, handlers=handlers) as (vtn, [ven]):
            offer_telemetry(ven)
            [request] = (await ven.register_reports())["report_requests"]
            refused = await ven.send_report(request["report_request_id"], {"volt": 229.0}, report_id="r-1")
            resent = await ven.send_report(request["report_request_id"], {"volt": 229.0}, report_id="r-1")
            again = await ven.send_report(request["report_request_id"], {"volt": 229.0}, report_id="r-1")
            return refused, resent, again, await updates.wait(2)

    refused, resent, again, calls = run(scenario())
    assert refused[1]["response"]["response_code"] == codes.DEPLOYMENT_ERROR_OR_OTHER
    assert resent[1]["response"]["response_code"] == 200
    assert again[1]["response"]["response_code"] == 200          # a resend of accepted readings: not news
    assert len(calls) == 2 and all(call["reports"][0]["report_id"] == "r-1" for call in calls)
