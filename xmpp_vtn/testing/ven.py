"""A simulated VEN on slixmpp, for tests, the demo and load tools.

It registers, answers pushes the way the OpenADR 2.0b XMPP binding says (an empty iq result at
once, then its OpenADR answer as a new iq set to the VTN) and records everything it received.

>>> ven = SimulatedVEN("ven1@localhost/oadr", "pw", "vtn.localhost", port=5222)   # doctest: +SKIP
>>> await ven.start(); await ven.register()                                       # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from slixmpp import Iq
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from .. import codec
from ..errors import SchemaError
from ..runtime.stanzas import attach_payload, close_stream, guard_depth, payload_bytes
from .clients import PLAIN, Security, make_client, wait_for_login

log = logging.getLogger("xmpp_vtn.ven")


class VTNError(Exception):
    """The VTN answered a request with an XMPP error (``condition``, ``text``) instead of a payload."""

    def __init__(self, condition: str, text: str, error_type: str):
        super().__init__(f"{error_type}/{condition}: {text}")
        self.condition, self.text, self.error_type = condition, text, error_type


class OpenADRRefusal(Exception):
    """The VTN answered with an OpenADR response code other than 200."""

    def __init__(self, message_type: str, payload: dict):
        response = payload.get("response", {})
        super().__init__(f"{message_type} {response.get('response_code')}: {response.get('response_description')}")
        self.message_type, self.payload = message_type, payload
        self.code = response.get("response_code")


@dataclass
class Received:
    """One push from the VTN, as decoded."""

    message_type: str
    payload: dict
    sender: str


@dataclass
class SimulatedVEN:
    """A VEN that speaks OpenADR 2.0b over XMPP to ``vtn_jid``."""

    jid: str
    password: str
    vtn_jid: str
    host: str = "127.0.0.1"
    port: int = 5222
    ven_name: str | None = None
    ven_id: str | None = None
    registration_id: str | None = None
    request_timeout: float = 10.0
    #: Re-register by itself when the VTN pushes oadrRequestReregistration.
    reregister_on_request: bool = True
    #: How it answers events: "optIn", "optOut", or a function of the event dict returning one
    #: of them (or None to stay silent).
    opt: "str | Callable[[dict], str | None]" = "optIn"
    received: list[Received] = field(default_factory=list)
    #: Send directed presence to the VTN at start (how a returning VEN says it is back).
    announce_presence: bool = True
    #: Its view of its events: event_id -> the event as last distributed.
    events: dict[str, dict] = field(default_factory=dict)
    #: What it answered: event_id -> (modification_number, opt_type).
    answered: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: The reports it offers: report_specifier_id -> METADATA report dict (see :meth:`offer_report`).
    offered_reports: dict[str, dict] = field(default_factory=dict)
    #: What the VTN asked it to report: report_request_id -> report request dict.
    report_requests: dict[str, dict] = field(default_factory=dict)
    #: Which of the VTN's offered reports it asks for: a function of the VTN's METADATA report
    #: returning report request dicts (None: it asks for none).
    wants_vtn_reports: "Callable[[dict], list[dict]] | None" = None
    #: Send readings on the requested schedule by itself (else call :meth:`send_report`).
    report_on_schedule: bool = False
    #: How it logs in: plain PLAIN by default (the loopback test servers); ``Security("starttls",
    #: ca_file=...)`` or ``Security("direct", ...)`` for a server that requires TLS (SCRAM then).
    security: Security = PLAIN
    #: XEP-0199 ping and XEP-0030 disco answered. A VEN without them answers those iqs with
    #: ``service-unavailable``, as RFC 6120 tells an entity to answer what it does not understand.
    answers_ping: bool = True
    answers_disco: bool = True

    def __post_init__(self) -> None:
        self.xmpp = make_client(self.jid, self.password, self.security)
        guard_depth(self.xmpp)
        # Disco and ping answered, as any well-behaved XMPP client does (the VTN pings VENs).
        if self.answers_disco:
            self.xmpp.register_plugin("xep_0030")
        else:
            self._refuse_iq("{http://jabber.org/protocol/disco#info}query")
        if self.answers_ping:
            self.xmpp.register_plugin("xep_0199")
        else:
            self._refuse_iq("{urn:xmpp:ping}ping")
        self.xmpp.register_handler(CoroutineCallback("OpenADR push", StanzaPath("iq@type=set/oadr"), self._on_push))
        self._arrivals: asyncio.Condition | None = None
        self._answers: dict[str, Callable[[Received], Any]] = {
            "oadrRequestReregistration": self._answer_reregistration_request,
            "oadrCancelPartyRegistration": self._answer_cancellation,
            "oadrDistributeEvent": self._answer_events,
            "oadrRegisterReport": self._answer_vtn_offer,
            "oadrCreateReport": self._answer_report_request,
            "oadrCancelReport": self._answer_report_cancel,
            "oadrUpdateReport": self._answer_vtn_update,
        }
        self._sources: dict[tuple[str, str], Callable[[], Any]] = {}
        self._stopping = False
        self._report_loops: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()

    def _refuse_iq(self, child: str) -> None:
        """Answer iq gets carrying ``child`` with cancel/service-unavailable."""
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        def refuse(iq: Iq) -> None:
            self.xmpp.make_iq_error(iq["id"], type="cancel", condition="service-unavailable",
                                    ito=iq["from"], ifrom=iq["to"]).send()
        self.xmpp.register_handler(Callback(f"refuse {child}", MatchXPath(f"{{jabber:client}}iq/{child}"), refuse))

    @property
    def full_jid(self) -> str:
        """The full JID the server bound (the VEN's transport address)."""
        return str(self.xmpp.boundjid)

    async def start(self, timeout: float = 10.0) -> "SimulatedVEN":
        """Log in and wait for the session (and send available presence).

        Raises :class:`~xmpp_vtn.testing.clients.LoginFailed` saying why at the first sign of
        trouble (connection refused, certificate not trusted, TLS required, login refused).
        """
        self._arrivals = asyncio.Condition()
        self.xmpp.connect(self.host, self.port)
        await wait_for_login(self.xmpp, self.host, self.port, timeout)
        self.xmpp.send_presence()
        if self.announce_presence:
            self.xmpp.send_presence(pto=self.vtn_jid)   # directed: the VTN learns we are back
        return self

    async def stop(self) -> None:
        """Finish answering pushes, stop reporting, then log out. Pushes arriving meanwhile are
        not answered (their acknowledgement is, so the VTN knows they arrived)."""
        self._stopping = True
        for loop in list(self._report_loops.values()):
            loop.cancel()
        await asyncio.gather(*self._report_loops.values(), return_exceptions=True)
        self._report_loops.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        await close_stream(self.xmpp)
        # Answers cut short by the disconnect end now, not after we return.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- requests to the VTN ---------------------------------------------------------------------

    async def request(self, message_type: str, payload: Any, to: str | None = None) -> tuple[str, dict] | None:
        """Send one OpenADR message as ``iq set`` and return the decoded answer (None: empty result).

        Raises :class:`VTNError` when the VTN answers with an XMPP error.
        """
        return await self.request_raw(codec.serialize(message_type, payload), to)

    async def request_raw(self, document: bytes, to: str | None = None) -> tuple[str, dict] | None:
        """Send any bytes as the iq's oadrPayload (tests use it for hostile input)."""
        iq = self.xmpp.make_iq_set(ito=to or self.vtn_jid)
        attach_payload(iq, document)
        try:
            result = await iq.send(timeout=self.request_timeout)
        except IqError as error:
            raise VTNError(error.condition, error.text, error.etype) from None
        data = payload_bytes(result)
        return None if data is None else codec.parse(data)

    async def _expect(self, message_type: str, payload: dict, answer_type: str) -> dict:
        answer = await self.request(message_type, payload)
        if answer is None or answer[0] != answer_type:
            raise AssertionError(f"{message_type} was answered with {answer!r}, expected {answer_type}")
        code = answer[1].get("response", {}).get("response_code")
        if code != 200:
            raise OpenADRRefusal(*answer)
        return answer[1]

    async def query_registration(self) -> dict:
        """oadrQueryRegistration: what the VTN offers."""
        return await self._expect("oadrQueryRegistration", {"request_id": _request_id()},
                                  "oadrCreatedPartyRegistration")

    async def register(self) -> dict:
        """oadrCreatePartyRegistration for profile 2.0b over xmpp; keeps the ids the VTN gives.

        Re-registers when this VEN already holds a registration id. Raises
        :class:`OpenADRRefusal` when the VTN refuses.
        """
        request = {"request_id": _request_id(), "ven_id": self.ven_id, "registration_id": self.registration_id,
                   "profile_name": "2.0b", "transport_name": "xmpp", "transport_address": self.full_jid,
                   "report_only": False, "xml_signature": False, "ven_name": self.ven_name,
                   "http_pull_model": False}
        answer = await self._expect("oadrCreatePartyRegistration",
                                    {key: value for key, value in request.items() if value is not None},
                                    "oadrCreatedPartyRegistration")
        self.ven_id, self.registration_id = answer.get("ven_id"), answer.get("registration_id")
        return answer

    async def cancel_registration(self) -> dict:
        """oadrCancelPartyRegistration of this VEN's registration; forgets the ids when accepted."""
        answer = await self._expect("oadrCancelPartyRegistration",
                                    {"request_id": _request_id(), "registration_id": self.registration_id,
                                     "ven_id": self.ven_id}, "oadrCanceledPartyRegistration")
        self.registration_id = None
        return answer

    # -- pushes from the VTN ---------------------------------------------------------------------

    def on_push(self, message_type: str, answer: Callable[[Received], Any]) -> None:
        """Answer pushes of ``message_type`` with ``answer(received)`` (sync or async), run after the ack."""
        self._answers[message_type] = answer

    async def next_push(self, message_type: str | None = None, timeout: float = 10.0) -> Received:
        """Wait for (and remove from :attr:`received`) the oldest push of ``message_type`` (any when None)."""
        assert self._arrivals is not None, "start() the VEN first"

        def first() -> Received | None:
            return next((item for item in self.received
                         if message_type is None or item.message_type == message_type), None)
        async with self._arrivals:
            await asyncio.wait_for(self._arrivals.wait_for(first), timeout)
            found = first()
            self.received.remove(found)
            return found

    async def _on_push(self, iq: Iq) -> None:
        try:
            message_type, payload = codec.parse(payload_bytes(iq) or b"")
        except SchemaError as error:
            reply = iq.reply(clear=True)
            reply["type"] = "error"
            reply["error"]["condition"] = "bad-request"
            reply["error"]["text"] = str(error)[:1024]
            reply.send()
            return
        iq.reply(clear=True).send()          # the acknowledgement: an empty result, at once
        item = Received(message_type, payload, str(iq["from"]))
        log.debug("%s received %s", self.jid, message_type)
        answer = None if self._stopping else self._answers.get(message_type)
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            if answer is not None:
                result = answer(item)
                if asyncio.iscoroutine(result):
                    await result
        except (VTNError, OpenADRRefusal, IqTimeout) as error:
            log.warning("%s: answering %s failed: %s", self.jid, message_type, error)
        finally:
            # Recorded once answered (or failing to), so a test awaiting it sees the answer's effects.
            self._tasks.discard(task)
            assert self._arrivals is not None
            async with self._arrivals:
                self.received.append(item)
                self._arrivals.notify_all()

    async def _answer_reregistration_request(self, item: Received) -> None:
        await self.request("oadrResponse", {"response": {"response_code": 200, "response_description": "OK",
                                                         "request_id": None}, "ven_id": self.ven_id})
        if self.reregister_on_request:
            await self.register()

    async def _answer_events(self, item: Received) -> None:
        """oadrCreatedEvent for every event that needs an answer this VEN has not given yet."""
        self.events = {event["event_descriptor"]["event_id"]: event for event in item.payload["events"]}
        answers = []
        for event_id, event in self.events.items():
            descriptor = event["event_descriptor"]
            modification = descriptor["modification_number"]
            if event.get("response_required") == "never" or descriptor.get("event_status") in ("completed",
                                                                                                   "cancelled"):
                continue
            if self.answered.get(event_id, (None,))[0] == modification:
                continue
            opt_type = self.opt(event) if callable(self.opt) else self.opt
            if opt_type is None:
                continue
            answers.append({"response_code": 200, "response_description": "OK",
                            "request_id": item.payload.get("request_id"), "event_id": event_id,
                            "modification_number": modification, "opt_type": opt_type})
        if answers:
            await self._with_retries(lambda: self.created_event(answers))

    async def _with_retries(self, send: Callable[[], Any], attempts: int = 6) -> Any:
        """Send an answer, retrying (0.5 s doubling) while the VTN is unreachable or silent, as a
        VEN must: the answer is owed even if the VTN restarts meanwhile."""
        delay = 0.5
        for attempt in range(attempts):
            try:
                return await send()
            except (VTNError, IqTimeout) as error:
                if attempt == attempts - 1 or self._stopping:
                    raise
                log.info("%s: answer not taken (%s); retrying in %.1f s", self.jid, error, delay)
                await asyncio.sleep(delay)               # backoff before the retry, not a wait for an event
                delay = min(delay * 2, 8)

    async def answer_pending(self) -> None:
        """Answer the events it holds but has not answered yet, as a VEN does after a reconnect
        (its answer may have been lost with the connection it was sent on)."""
        if self.events:
            await self._answer_events(Received("oadrDistributeEvent", {
                "events": list(self.events.values()), "request_id": None}, self.vtn_jid))

    async def created_event(self, answers: list[dict]) -> tuple[str, dict] | None:
        """Send oadrCreatedEvent with these event responses; remembers them when the VTN accepts."""
        answer = await self.request("oadrCreatedEvent", {
            "response": {"response_code": 200, "response_description": "OK", "request_id": None},
            "event_responses": answers, "ven_id": self.ven_id})
        if answer is not None and answer[1].get("response", {}).get("response_code") == 200:
            for response in answers:
                self.answered[response["event_id"]] = (response["modification_number"], response["opt_type"])
        return answer

    # -- reports -----------------------------------------------------------------------------------

    def offer_report(self, report_specifier_id: str, r_id: str, source: Callable[[], Any],
                     measurement: dict | None = None, resource_id: str | None = None,
                     report_name: str = "METADATA_TELEMETRY_USAGE", report_type: str = "usage",
                     min_period: timedelta = timedelta(seconds=1), max_period: timedelta = timedelta(minutes=15)
                     ) -> None:
        """Offer a reading; ``source()`` gives its current value. Sent with :meth:`register_reports`."""
        report = self.offered_reports.setdefault(report_specifier_id, {
            "report_specifier_id": report_specifier_id, "report_name": report_name, "report_request_id": "0",
            "created_date_time": datetime.now(timezone.utc), "report_descriptions": []})
        description = {"r_id": r_id, "report_type": report_type, "reading_type": "Direct Read",
                       "sampling_rate": {"min_period": min_period, "max_period": max_period, "on_change": False}}
        if measurement is not None:
            description["measurement"] = measurement
        if resource_id is not None:
            description["report_data_source"] = {"resource_id": [resource_id]}
        report["report_descriptions"].append(description)
        self._sources[(report_specifier_id, r_id)] = source

    async def register_reports(self) -> dict:
        """oadrRegisterReport with the offered reports; accepts the requests in the VTN's answer
        (answering oadrCreatedReport) and returns that answer."""
        answer = await self._expect("oadrRegisterReport", {
            "request_id": _request_id(), "reports": list(self.offered_reports.values()), "ven_id": self.ven_id,
            "report_request_id": "0"}, "oadrRegisteredReport")
        if answer.get("report_requests"):
            await self._accept_report_requests(answer["report_requests"])
        return answer

    async def _accept_report_requests(self, report_requests: list[dict]) -> None:
        for report_request in report_requests:
            self.report_requests[report_request["report_request_id"]] = report_request
            if self.report_on_schedule:
                self._start_loop(report_request)
        await self.request("oadrCreatedReport", {
            "response": _ok(None), "pending_reports": [{"report_request_id": key} for key in self.report_requests],
            "ven_id": self.ven_id})

    def _start_loop(self, report_request: dict) -> None:
        specifier = report_request["report_specifier"]
        every = specifier.get("report_back_duration") or specifier.get("granularity")
        if not every:
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(every.total_seconds())      # the device's own reporting cadence
                await self.send_report(report_request["report_request_id"])
        self._report_loops[report_request["report_request_id"]] = asyncio.get_running_loop().create_task(loop())

    async def send_report(self, report_request_id: str, readings: dict[str, Any] | None = None,
                          report_id: str | None = None) -> tuple[str, dict] | None:
        """oadrUpdateReport for a request: ``readings`` (rID -> value) or each source's value now.
        ``report_id`` repeats an earlier update's id (a resend); a fresh one by default."""
        report_request = self.report_requests[report_request_id]
        specifier = report_request["report_specifier"]
        now = datetime.now(timezone.utc).replace(microsecond=0)
        payloads = []
        for item in specifier["specifier_payloads"]:
            value = (readings or {}).get(item["r_id"])
            if value is None:
                value = self._sources[(specifier["report_specifier_id"], item["r_id"])]()
            payloads.append({"r_id": item["r_id"], "value": float(value)})
        interval = {"dtstart": now, "duration": specifier.get("granularity") or timedelta(0)}
        interval.update({"report_payload": payloads[0]} if len(payloads) == 1 else {"report_payloads": payloads})
        report_name = self.offered_reports[specifier["report_specifier_id"]]["report_name"].removeprefix("METADATA_")
        return await self.request("oadrUpdateReport", {"request_id": _request_id(), "ven_id": self.ven_id, "reports": [{
            "report_id": report_id or _request_id(), "report_request_id": report_request_id,
            "report_specifier_id": specifier["report_specifier_id"], "report_name": report_name,
            "created_date_time": now, "intervals": [interval], "report_descriptions": []}]})

    async def _answer_report_request(self, item: Received) -> None:
        await self._accept_report_requests(item.payload.get("report_requests") or [])

    async def _answer_report_cancel(self, item: Received) -> None:
        for report_request_id in item.payload.get("report_request_ids") or []:
            self.report_requests.pop(report_request_id, None)
            loop = self._report_loops.pop(report_request_id, None)
            if loop is not None:
                loop.cancel()
        await self.request("oadrCanceledReport", {
            "response": _ok(item.payload.get("request_id")),
            "pending_reports": [{"report_request_id": key} for key in self.report_requests], "ven_id": self.ven_id})

    async def _answer_vtn_offer(self, item: Received) -> None:
        requests = [request for report in item.payload.get("reports") or []
                    for request in (self.wants_vtn_reports(report) if self.wants_vtn_reports else [])]
        await self.request("oadrRegisteredReport", {"response": _ok(item.payload.get("request_id")),
                                                    "report_requests": requests, "ven_id": self.ven_id})

    async def _answer_vtn_update(self, item: Received) -> None:
        await self.request("oadrUpdatedReport", {"response": _ok(item.payload.get("request_id")),
                                                 "ven_id": self.ven_id})

    async def _answer_cancellation(self, item: Received) -> None:
        await self.request("oadrCanceledPartyRegistration", {
            "response": {"response_code": 200, "response_description": "OK",
                         "request_id": item.payload.get("request_id")},
            "registration_id": item.payload.get("registration_id"), "ven_id": self.ven_id})
        self.registration_id = None


def _ok(request_id: str | None) -> dict:
    return {"response_code": 200, "response_description": "OK", "request_id": request_id}


def _request_id() -> str:
    return uuid.uuid4().hex[:16]
