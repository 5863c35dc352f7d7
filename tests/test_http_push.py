"""simpleHTTP push: a VEN that registers with oadrHttpPullModel false is POSTed to at its transport
address, with the outbox's retries; and polling VENs that go quiet are reported offline."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import aiohttp
from aiohttp import web

from xmpp_vtn import codec
from http_scene import Seen, http_vtn, openleadr_ven, running
from xmpp_scene import run


class PushedVEN:
    """A minimal HTTP VEN server on loopback: records each POST; the first is answered 503."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict]] = []
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> "PushedVEN":
        app = web.Application()
        app.router.add_post("/oadr/{service}", self._on_post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/oadr"
        return self

    async def _on_post(self, request: web.Request) -> web.Response:
        message_type, payload = codec.parse(await request.read())
        self.received.append((request.match_info["service"], message_type, payload))
        self.arrived.set()
        if len(self.received) == 1:
            return web.Response(status=503, text="busy")      # the VTN must retry
        if message_type == "oadrDistributeEvent":
            # Answered in the response body, which the VTN takes as this VEN's oadrCreatedEvent.
            [event] = payload["events"]
            descriptor = event["event_descriptor"]
            answer = codec.serialize("oadrCreatedEvent", {
                "response": {"response_code": 200, "response_description": "OK", "request_id": payload["request_id"]},
                "ven_id": "pushed-1", "event_responses": [{
                    "response_code": 200, "response_description": "OK", "request_id": payload["request_id"],
                    "event_id": descriptor["event_id"], "modification_number": descriptor["modification_number"],
                    "opt_type": "optIn"}]})
            return web.Response(body=answer, content_type="application/xml")
        return web.Response(status=200)

    async def stop(self) -> None:
        await self.runner.cleanup()


def test_a_ven_that_wants_pushes_is_posted_to_with_retries(prosody):
    async def scenario():
        answers = Seen()
        vtn = http_vtn(prosody)
        await vtn.run()
        ven = await PushedVEN().start()
        try:
            registration = codec.serialize("oadrCreatePartyRegistration", {
                "request_id": "r1", "ven_id": "pushed-1", "profile_name": "2.0b", "transport_name": "simpleHttp",
                "transport_address": ven.url, "http_pull_model": False, "report_only": False,
                "xml_signature": False})
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{vtn.http_url}/EiRegisterParty", data=registration,
                                        headers={"Content-Type": "application/xml"}) as response:
                    registered = codec.parse(await response.read())[1]
            start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=10)
            event_id = vtn.add_event("pushed-1", "SIMPLE", "level", [
                {"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 1.0}], callback=answers)
            calls = await answers.wait(1)
            return registered, event_id, calls, ven.received, vtn.vens(), vtn.store.outbox()
        finally:
            await ven.stop()
            await vtn.stop()

    registered, event_id, calls, received, [record], outbox = run(scenario())
    assert registered["response"]["response_code"] == 200 and registered["ven_id"] == "pushed-1"
    assert record.transport_address.endswith("/oadr") and not record.pulls
    # The VTN's report offer, refused once (503) and sent again, then the event.
    assert [(service, message_type) for service, message_type, _ in received] == [
        ("EiReport", "oadrRegisterReport"), ("EiReport", "oadrRegisterReport"), ("EiEvent", "oadrDistributeEvent")]
    assert calls == [("pushed-1", event_id, "optIn")]
    assert outbox == []


def test_a_polling_ven_that_stops_polling_goes_offline(prosody):
    async def scenario():
        online, offline = Seen(), Seen()
        vtn = http_vtn(prosody, {"on_ven_online": online, "on_ven_offline": offline}, ping_interval=None,
                       offline_after=2)
        await vtn.run()
        try:
            client = openleadr_ven(vtn)
            async with running(client):
                await online.wait(1)
            # Stopped: no more polls. Two poll intervals (1 s each) later it is offline.
            [(ven_id,)] = await offline.wait(1, timeout=10)
            return client.ven_id, ven_id, vtn.is_online(ven_id)
        finally:
            await vtn.stop()

    expected, ven_id, online = run(scenario())
    assert ven_id == expected and online is False
