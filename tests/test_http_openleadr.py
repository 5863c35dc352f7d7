"""OpenLEADR's own, unmodified OpenADRClient (0.5.36) against our VTN over loopback simpleHTTP
(plain HTTP with ``http_allow_insecure``; TLS and signatures are in test_http_tls.py)."""
from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from xmpp_vtn import codec
from xmpp_vtn.services import codes
from http_scene import Seen, http_vtn, openleadr_ven, running, until
from xmpp_scene import issue_ids, make_ven, make_vtn, run

MIN = timedelta(minutes=1)


def intervals(levels=(1.0, 2.0)) -> list[dict]:
    start = datetime.now(timezone.utc).replace(microsecond=0) + 10 * MIN
    return [{"dtstart": start + i * 5 * MIN, "duration": 5 * MIN, "signal_payload": level}
            for i, level in enumerate(levels)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_openleadr_client_registers_over_simple_http(prosody):
    registrations = []

    def on_create_party_registration(payload, sender):
        registrations.append((payload, sender))
        return issue_ids(payload)

    async def scenario():
        vtn = http_vtn(prosody, {"on_create_party_registration": on_create_party_registration})
        await vtn.run()
        try:
            client = openleadr_ven(vtn, ven_id="meter-7")
            async with running(client):
                return client.ven_id, client.registration_id, client.poll_frequency, vtn.vens()
        finally:
            await vtn.stop()

    ven_id, registration_id, poll_frequency, [ven] = run(scenario())
    [(payload, sender)] = registrations
    assert sender == "http-claim:meter-7"
    assert payload["transport_name"] == "simpleHttp" and payload["http_pull_model"] is True
    assert (ven.ven_id, ven.registration_id) == (ven_id, registration_id) == ("meter-7", registration_id)
    assert ven.transport_name == "simpleHttp" and ven.pulls
    assert poll_frequency == timedelta(seconds=1)              # requested_oadr_poll_freq, honoured


def test_event_opted_in_modified_and_cancelled(prosody):
    async def scenario():
        answers, updates = Seen(), Seen("optIn")
        vtn = http_vtn(prosody)
        await vtn.run()
        try:
            client = openleadr_ven(vtn)
            client.add_handler("on_update_event", updates)
            async with running(client):
                event_id = vtn.add_event(client.ven_id, "SIMPLE", "level", intervals(), callback=answers)
                await answers.wait(1)
                number = vtn.modify_event(event_id, intervals(levels=(3.0, 3.0)), reason="more shedding")
                [(modified,)] = await updates.wait(1)
                await answers.wait(2)
                vtn.cancel_event(event_id)
                calls = await updates.wait(2)
                await answers.wait(3)
                [state] = vtn.events()
                return client.ven_id, event_id, number, modified, calls[1][0], answers.calls, state
        finally:
            await vtn.stop()

    ven_id, event_id, number, modified, cancelled, answers, state = run(scenario())
    assert answers == [(ven_id, event_id, "optIn")] * 3
    assert number == 1 and modified["event_descriptor"]["modification_number"] == 1
    assert [i["signal_payload"] for i in modified["event_signals"][0]["intervals"]] == [3.0, 3.0]
    assert cancelled["event_descriptor"]["event_status"] == "cancelled"
    assert cancelled["event_descriptor"]["modification_number"] == 2
    delivery = state.deliveries[ven_id]
    assert (delivery.delivered_modification, delivery.delivered_status) == (2, "cancelled")
    assert (delivery.opt_type, delivery.opt_modification) == ("optIn", 2)


def test_telemetry_reports_registered_and_values_delivered(prosody):
    readings = Seen()
    asked = []

    def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling):
        asked.append((ven_id, resource_id, measurement, unit, min_sampling, max_sampling))
        return readings, timedelta(seconds=1)

    async def scenario():
        vtn = http_vtn(prosody, {"on_register_report": on_register_report})
        await vtn.run()
        try:
            client = openleadr_ven(vtn)
            values = iter(range(230, 10_000))
            client.add_report(lambda: float(next(values)), "meter-1", measurement="voltage",
                              report_specifier_id="telemetry", r_id="volt", sampling_rate=timedelta(seconds=1),
                              report_duration=timedelta(hours=1))
            async with running(client):
                calls = await readings.wait(2)
                return client.ven_id, calls, vtn.report_requests(client.ven_id)
        finally:
            await vtn.stop()

    ven_id, calls, [request] = run(scenario())
    assert asked == [(ven_id, "meter-1", "voltage", "V", timedelta(seconds=1), timedelta(seconds=1))]
    assert request.state == "active"
    values = [value for (data,) in calls for _, value in data]
    assert values[:2] == [230.0, 231.0]


def test_request_reregistration_and_cancellations_reach_a_polling_ven(prosody):
    registrations = []

    def on_create_party_registration(payload):
        registrations.append(payload.get("registration_id"))
        return issue_ids(payload)

    async def scenario():
        canceled = Seen()
        handlers = {"on_create_party_registration": on_create_party_registration,
                    "on_cancel_party_registration": canceled}
        vtn = http_vtn(prosody, handlers)
        await vtn.run()
        try:
            first, second = openleadr_ven(vtn), openleadr_ven(vtn)
            async with running(first, second):
                registration_id = first.registration_id
                # Owed, and handed out by the VEN's next poll: that is its acknowledgement.
                assert await vtn.request_reregistration(first.ven_id) is True
                await until(lambda: len(registrations) == 3 and first.registration_id != registration_id)
                renewed = first.registration_id
                kept = [ven.registration_id for ven in vtn.vens() if ven.ven_id == first.ven_id]
                # The VTN ends one registration; the VEN learns it by polling, and confirms.
                assert await vtn.cancel_party_registration(second.ven_id) is True
                await until(lambda: second.registration_id is None)
                # The other VEN ends its own.
                await first.cancel_party_registration()
                (payload,) = (await canceled.wait(1))[0]
                return (registration_id, renewed, kept, payload, first.registration_id, vtn.vens(),
                        vtn.store.outbox())
        finally:
            await vtn.stop()

    registration_id, renewed, kept, payload, left, vens, outbox = run(scenario())
    assert registrations[2] == registration_id          # re-registered with the registration it held
    assert kept == [renewed]                            # and holds the one the handler gave it now
    assert payload["registration_id"] == renewed and left is None
    assert vens == [] and outbox == []


def test_restart_in_the_middle_loses_nothing(prosody, tmp_path):
    store, port = str(tmp_path / "vtn.sqlite3"), free_port()

    async def scenario():
        answers_before, answers_after, registrations = Seen(), Seen(), []

        def on_create_party_registration(payload):
            registrations.append(payload.get("registration_id"))
            return issue_ids(payload)
        handlers = {"on_create_party_registration": on_create_party_registration}
        vtn = http_vtn(prosody, handlers, store=store, http_port=port)
        await vtn.run()
        client = openleadr_ven(vtn)
        async with running(client):
            try:
                event_id = vtn.add_event(client.ven_id, "SIMPLE", "level", intervals(), callback=answers_before)
                await answers_before.wait(1)
                held = client.registration_id
            finally:
                await vtn.stop()
            # The VEN keeps polling a VTN that is gone (OpenLEADR logs and carries on), then a new one.
            vtn = http_vtn(prosody, handlers, store=store, http_port=port)
            await vtn.run()
            try:
                assert await vtn.request_reregistration(client.ven_id) is True
                await until(lambda: len(registrations) == 2)
                vtn.event_service.callbacks[event_id] = answers_after     # Python callables live per process
                vtn.modify_event(event_id, intervals(levels=(4.0,)))
                await answers_after.wait(1)
                return (client.ven_id, event_id, held, registrations, answers_after.calls, vtn.events(),
                        vtn.vens())
            finally:
                await vtn.stop()

    ven_id, event_id, held, registrations, answers, [state], [ven] = run(scenario())
    assert registrations == [None, held]       # the new process knew the registration it re-registered
    assert ven.ven_id == ven_id
    assert answers == [(ven_id, event_id, "optIn")]
    assert state.deliveries[ven_id].opt_modification == 1


def test_xmpp_ven_and_http_ven_in_one_event(prosody):
    async def scenario():
        answers = Seen()
        vtn = http_vtn(prosody)
        await vtn.run()
        xmpp_ven = await make_ven(prosody)
        try:
            await xmpp_ven.register()
            xmpp_ven.opt = "optOut"
            http_ven = openleadr_ven(vtn)
            async with running(http_ven):
                event_id = vtn.add_event([xmpp_ven.ven_id, http_ven.ven_id], "SIMPLE", "level", intervals(),
                                         callback=answers)
                calls = await answers.wait(2)
                return event_id, xmpp_ven.ven_id, http_ven.ven_id, calls, vtn.vens()
        finally:
            await xmpp_ven.stop()
            await vtn.stop()

    event_id, xmpp_id, http_id, calls, vens = run(scenario())
    assert sorted(calls) == sorted([(xmpp_id, event_id, "optOut"), (http_id, event_id, "optIn")])
    assert {ven.ven_id: ven.transport_name for ven in vens} == {xmpp_id: "xmpp", http_id: "simpleHttp"}


def test_bad_input_gets_http_errors_and_changes_nothing(prosody, caplog):
    async def scenario():
        vtn = http_vtn(prosody)
        await vtn.run()
        try:
            async with aiohttp.ClientSession() as session:
                async def post(service: str, body: bytes, content_type: str = "application/xml"):
                    async with session.post(f"{vtn.http_url}/{service}", data=body,
                                            headers={"Content-Type": content_type}) as response:
                        return response.status, await response.text()
                poll = codec.serialize("oadrPoll", {"ven_id": "nobody"})
                results = {
                    "not xml": await post("EiEvent", b"<oadrPayload"),
                    "invalid": await post("EiEvent", b"<a/>"),
                    "too large": await post("EiEvent", b"<a>" + b"x" * (2 << 20) + b"</a>"),
                    "content type": await post("EiEvent", poll, "text/plain"),
                    "wrong endpoint": await post("EiEvent", poll),
                    "unregistered": await post("OadrPoll", poll),
                    "no venID": await post("EiRegisterParty", codec.serialize("oadrCreatePartyRegistration", {
                        "request_id": "r1", "profile_name": "2.0b", "transport_name": "simpleHttp",
                        "http_pull_model": True})),
                }
                return results, vtn.vens()
        finally:
            await vtn.stop()

    with caplog.at_level("INFO", logger="xmpp_vtn.exchange"):
        results, vens = run(scenario())
    assert results["not xml"][0] == 400 and results["not xml"][1]          # the parser's reason, in words
    assert results["invalid"][0] == 400
    assert results["too large"][0] == 413
    assert results["content type"][0] == 415
    assert results["wrong endpoint"] == (400, "oadrPoll is not sent to EiEvent; POST it to OadrPoll")
    status, body = results["unregistered"]
    assert status == 200 and codec.parse(body)[1]["response"]["response_code"] == codes.NOT_REGISTERED_OR_AUTHORIZED
    assert results["no venID"][0] == 400 and "venID" in results["no venID"][1]
    assert vens == []
    lines = [record.getMessage() for record in caplog.records if record.name == "xmpp_vtn.exchange"]
    assert any("HTTP 413" in line for line in lines) and any("bad-request" in line for line in lines)


def test_plain_http_is_refused_unless_allowed(prosody):
    with pytest.raises(ValueError, match="http_allow_insecure"):
        make_vtn(prosody, http_port=0)


def test_vens_on_one_address_are_not_limited_together(prosody):
    # Without client certificates the in-flight limit (16) counts per connection: VENs behind one
    # NAT or proxy, each with its own connection, may all have a request in flight at once.
    count = 20
    inside = Seen()

    async def on_create_party_registration(payload):
        await inside(payload["ven_id"])
        await inside.wait(count, timeout=15)        # held until all of them are in flight together
        return issue_ids(payload)

    async def scenario():
        vtn = http_vtn(prosody, {"on_create_party_registration": on_create_party_registration})
        await vtn.run()
        clients = [openleadr_ven(vtn) for _ in range(count)]
        try:
            await asyncio.gather(*(client.run() for client in clients))
            return [client.registration_id for client in clients], vtn.vens()
        finally:
            for client in clients:
                if client.client_session is not None:
                    await client.stop()
            await vtn.stop()

    registration_ids, vens = run(scenario())
    assert all(registration_ids) and len(vens) == count
