"""The XMPP side of the VTN: a slixmpp external component (XEP-0114).

It carries bytes, nothing more: every ``iq set`` with an ``oadrPayload`` child goes to one
``on_request(sender, addressed_to, payload_bytes)`` coroutine whose return value becomes the iq
result; pushes go out as ``iq set`` and the VEN's empty result is the acknowledgement. The
component also answers disco and ping, and reconnects by itself when the server goes away.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from slixmpp import JID, ComponentXMPP, Iq, InvalidJID
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

from .backoff import Backoff
from ..schema import NS_OADR
from .stanza_gate import START_TAG, StanzaGate, start_tag_attributes
from .stanzas import (MAX_STANZA_DEPTH, MAX_STANZA_ELEMENTS, MAX_UNREGISTERED_ELEMENTS, OADR_FEATURE, SERVICE_NODE_PREFIX, SERVICES, SERVICES_NODE, StreamFailed, close_stream,
                      element_bytes,
                      element_count, guard_inbound, raw_iq, raw_iq_error, send_payloads_raw, too_deep, wait_for_session)

log = logging.getLogger("xmpp_vtn.component")

RequestHandler = Callable[[str, str, bytes], Awaitable["bytes | None"]]

class RequestGate(Protocol):
    """Decides at arrival, before parsing, whether a request is taken (see :func:`guard_inbound`)."""

    def admit(self, sender: str, elements: int) -> "tuple[str, str, str] | None":
        """None to take the request (until :meth:`release`), or (condition, text, error type)."""

    def release(self, sender: str) -> None:
        """A request that was admitted has been answered."""

    def accept_size(self, sender: str, elements: int) -> bool:
        """Whether a stanza of ``elements`` elements from ``sender`` may be looked at. Asked before
        the stanza is parsed (see :class:`StanzaGate`) for stanzas of more than
        ``MAX_UNREGISTERED_ELEMENTS``, which must all be accepted from anyone."""

    def oversized(self, sender: str, size: int) -> None:
        """A stanza from ``sender`` was refused unread for its size in bytes (over ``size``)."""

    def hold_refusal(self, sender: str) -> float:
        """Seconds by which to answer a "wait" refusal of ``sender`` late (0.0: at once), ended
        with :meth:`refusal_answered`."""

    def refusal_answered(self, sender: str) -> None:
        """A refusal held back by :meth:`hold_refusal` has been answered."""


# The XEP-0114 handshake is SHA-1(stream id + secret): with both, a weak secret can be guessed
# offline. slixmpp logs the stream header and every stanza sent at DEBUG; these never reach a log.
_HANDSHAKE = re.compile(r"<handshake\b[^>]*>[^<]*</handshake>|<handshake\b[^>]*/>")
_STREAM_ID = re.compile(r"""(<stream:stream\b[^>]*?\bid=)(["'])[^"']*\2""")


class SecretRedactor(logging.Filter):
    """Removes the handshake digest and the stream id from slixmpp's log records, at every level."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if "handshake" not in message and "stream:stream" not in message:
            return True
        redacted = _STREAM_ID.sub(r"\1\2(redacted)\2", _HANDSHAKE.sub("<handshake>(redacted)</handshake>", message))
        record.msg, record.args = redacted, None
        return True


_REDACTOR = SecretRedactor()


def redact_secrets_in_slixmpp_logs() -> None:
    """Install :class:`SecretRedactor` on the slixmpp loggers that write stream traffic (idempotent)."""
    for name in ("slixmpp.xmlstream.xmlstream", "slixmpp.componentxmpp", "slixmpp.basexmpp"):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


_IQ = "{jabber:component:accept}iq"
_NS_OADR = NS_OADR.encode()
_PAYLOAD = f"{{{NS_OADR}}}oadrPayload"


class _ComponentStream(ComponentXMPP):
    """slixmpp's component stream with one fast path in front of its stanza machinery.

    slixmpp turns every incoming element into stanza objects and matches it against every
    registered handler (disco, ping, ad-hoc commands, ours), which cost more CPU per OpenADR
    exchange than all the OpenADR work. ``fast_path(element)`` sees each top-level element first
    and returns True when it handled it: the OpenADR requests and the answers to our own pushes.
    Everything else takes slixmpp's usual way.
    """

    fast_path: Callable[[ET.Element], bool] | None = None
    #: Reads the bytes before the parser does, and refuses a stanza too large for its sender unread.
    gate: StanzaGate | None = None

    def init_parser(self) -> None:
        super().init_parser()
        if self.gate is not None:
            self.gate.reset()                   # a new connection, a new stream

    def data_received(self, data: bytes | str) -> None:
        if self.gate is not None and self.parser is not None and isinstance(data, bytes):
            data = self.gate.feed(data)
            if not data:
                return
        super().data_received(data)

    def parse(self, data: bytes) -> None:
        """Hand ``data`` to slixmpp's parser, past the gate (which has read it already)."""
        super().data_received(data)

    def _spawn_event(self, xml: ET.Element) -> None:
        if self.fast_path is not None and self.fast_path(xml):
            return
        super()._spawn_event(xml)


# The hooks above need slixmpp's per-stanza entry point and its parser's; refuse to run without
# them rather than silently fall back to the slow path or to parsing everything.
for _hook in ("_spawn_event", "init_parser", "data_received"):
    if not callable(getattr(ComponentXMPP, _hook, None)):  # pragma: no cover - a slixmpp we do not know
        raise ImportError(f"this slixmpp has no XMLStream.{_hook}; xmpp-vtn needs slixmpp 1.17")


#: How the id of every push begins, whichever instance sent it: an acknowledgement the server hands
#: to an instance that did not send the push is known for one by its id alone, and passed on
#: from its bytes (a ping's or slixmpp's own iq ids are bare uuids and take the parsed way).
PUSH_ID_PREFIX = "oadr-"


class IqRefused(Exception):
    """Raised by the request handler to answer with an XMPP error instead of a payload."""

    def __init__(self, condition: str, text: str, error_type: str = "modify"):
        super().__init__(f"{error_type}/{condition}: {text}")
        self.condition, self.text, self.error_type = condition, text, error_type


class PushFailed(Exception):
    """A push was not acknowledged: the VEN answered with an error, timed out, or we are offline.

    ``refused`` is True when the recipient itself answered with a permanent error (``cancel`` or
    ``modify``, other than "nobody is there"): sending the same bytes again cannot succeed.
    """

    def __init__(self, to: str, reason: str, refused: bool = False):
        super().__init__(f"push to {to} failed: {reason}")
        self.to, self.reason, self.refused = to, reason, refused


# Error conditions meaning "nobody at that JID" when they answer a ping.
_GONE = frozenset({"service-unavailable", "recipient-unavailable", "item-not-found", "remote-server-not-found",
                   "remote-server-timeout"})

#: What :meth:`OadrComponent.probe` found.
THERE, GONE, UNSURE = "there", "gone", "unsure"

# Error text goes back to a VEN inside its iq error: keep it readable, and never large.
MAX_ERROR_TEXT = 1024


class OadrComponent:
    """slixmpp ``ComponentXMPP`` adapter for OpenADR.

    >>> component = OadrComponent("vtn.localhost", "secret", "127.0.0.1", 5347, on_request)  # doctest: +SKIP
    >>> await component.start()                                                              # doctest: +SKIP
    """

    def __init__(self, jid: str, secret: str, host: str, port: int, on_request: RequestHandler,
                 backoff: Backoff | None = None, on_session_start: Callable[[], object] | None = None,
                 on_presence: Callable[[str, bool], object] | None = None,
                 on_foreign_answer: Callable[["Answer"], object] | None = None):
        self.jid = JID(jid)
        if self.jid.resource or self.jid.user:
            raise ValueError(f"a component JID is a bare domain such as 'vtn.example.com', not {jid!r}")
        self.on_request = on_request
        self.on_session_start = on_session_start
        self.on_presence = on_presence
        #: Called with answers to iqs this connection did not send: with several instances behind
        #: one component domain, the server may hand a VEN's answer to any of them.
        self.on_foreign_answer = on_foreign_answer
        #: Answers passed on to ``on_foreign_answer`` since start, by the way they came in: "bytes"
        #: (an acknowledgement of a push, by its id: see :data:`PUSH_ID_PREFIX`), "parsed result"
        #: or "parsed error" (an error answer, or an iq not known for a push by its id).
        self.foreign_answers: Counter[str] = Counter()
        self.backoff = backoff or Backoff()
        self.connected = False
        self._stopping = False
        self._reconnect: asyncio.Task | None = None
        self._requests: set[asyncio.Task] = set()
        #: "wait" refusals held back, answered when their time comes or at :meth:`quiesce`.
        self._held_refusals: dict[int, tuple[asyncio.TimerHandle, str, bytes]] = {}
        self._held_key = 0
        redact_secrets_in_slixmpp_logs()
        self.xmpp = _ComponentStream(jid, secret, host, port)
        self.xmpp.fast_path = self._fast_path
        self.xmpp.gate = StanzaGate(self._accept_size, check_above=MAX_UNREGISTERED_ELEMENTS,
                                    on_lost=self._lost_place, claim=self._claim, flush=self.xmpp.parse,
                                    on_oversized=self._oversized)
        #: Admits requests at arrival (the inbound pipeline, set by the VTN); None takes everything.
        self.gate: RequestGate | None = None
        #: OpenADR requests served straight from their bytes (:meth:`_claim`), since start.
        self.served_from_bytes = 0
        # The slow path's guard; the fast path asks the gate itself (_admitted).
        guard_inbound(self.xmpp, accept_size=self._accept_size,
                      admit=lambda sender, elements: None if self.gate is None else
                      self.gate.admit(sender, elements), refuse_request=self._refuse_at_arrival)
        send_payloads_raw(self.xmpp)
        self.xmpp.register_plugin("xep_0030")
        self.xmpp.register_plugin("xep_0199")
        self._advertise()
        self.xmpp.register_handler(CoroutineCallback(
            "OpenADR payload", StanzaPath("iq@type=set/oadr"), self._on_payload_iq))
        self._pending: dict[str, tuple[str, asyncio.Future]] = {}
        for answer_type in ("result", "error"):
            self.xmpp.register_handler(Callback(f"push {answer_type}", StanzaPath(f"iq@type={answer_type}"),
                                                self._on_push_answer))
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        self.xmpp.add_event_handler("disconnected", self._on_disconnected)
        self.xmpp.add_event_handler("connection_failed", self._on_connection_failed)
        self.xmpp.add_event_handler("stream_error", self._on_stream_error)
        self.xmpp.add_event_handler("presence_available", lambda presence: self._presence(presence, True))
        self.xmpp.add_event_handler("presence_unavailable", lambda presence: self._presence(presence, False))

    def _presence(self, presence, available: bool) -> None:
        if self.on_presence is not None:
            self.on_presence(str(presence["from"]), available)

    def _advertise(self) -> None:
        """Disco: the OpenADR feature on the component and on every service resource, and the
        services list on its node, as the OpenADR 2.0b XMPP binding describes."""
        disco = self.xmpp.plugin["xep_0030"]
        bare = self.jid.bare
        for jid in (bare, *(f"{bare}/{service}" for service in SERVICES)):
            disco.add_identity(category="component", itype="generic", name="OpenADR 2.0b VTN", jid=jid)
            disco.add_feature(OADR_FEATURE, jid=jid)
            disco.add_feature("urn:xmpp:ping", jid=jid)
            for service in SERVICES:
                # slixmpp's naming is inverted here: ``jid`` is the item's JID, ``ijid`` the entity's.
                disco.add_item(jid=f"{bare}/{service}", node=SERVICES_NODE, name=service,
                               subnode=SERVICE_NODE_PREFIX + service, ijid=jid)

    async def start(self, timeout: float = 30.0) -> None:
        """Connect and wait for the session. Connection refusals are retried until ``timeout``;
        a refused handshake (wrong secret, JID already connected) raises :class:`StreamFailed`."""
        self._stopping = False
        self.xmpp.connect()
        try:
            await wait_for_session(self.xmpp, timeout)
        except StreamFailed:
            await self.stop()
            raise

    async def quiesce(self) -> None:
        """Stop taking requests and finish (or, after 5 s, cancel) the ones in flight; stay connected
        so that what the VTN does next can still go out."""
        self._stopping = True                   # from here on, requests are no longer taken
        for key in list(self._held_refusals):   # refusals held back are answered now
            self._answer_held_refusal(key)
        if self._requests:
            _, unfinished = await asyncio.wait(set(self._requests), timeout=5)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def stop(self) -> None:
        """Quiesce, disconnect and stop reconnecting; leaves no task behind."""
        await self.quiesce()
        if self._reconnect is not None:
            self._reconnect.cancel()
            await asyncio.gather(self._reconnect, return_exceptions=True)
            self._reconnect = None
        await close_stream(self.xmpp)
        self.connected = False

    # -- connection life -------------------------------------------------------------------------

    def _on_session_start(self, _event: object) -> None:
        self.connected = True
        self.backoff.reset()
        log.info("component %s connected", self.jid)
        if self.on_session_start is not None:
            self.on_session_start()

    def _on_disconnected(self, reason: object) -> None:
        was_connected, self.connected = self.connected, False
        # Pushes in flight will not be answered on a dead stream: fail them now, not at timeout.
        for _, answer in self._pending.values():
            if not answer.done():
                answer.set_exception(PushFailed("(pending)", "the connection to the server was lost"))
        if not self._stopping:
            if was_connected:
                log.warning("component %s lost its server connection (%s)", self.jid, reason or "closed")
            self._schedule_reconnect()

    def _lost_place(self, why: str) -> None:
        # The parser can no longer be kept in step with the stream: start it again (reconnect).
        self.xmpp.disconnect_reason = why
        self.xmpp.abort()

    def _on_connection_failed(self, error: object) -> None:
        # slixmpp would retry on its own schedule (up to 300 s apart); ours is capped and jittered.
        self.xmpp.cancel_connection_attempt()
        if not self._stopping:
            log.info("component %s could not connect: %s", self.jid, error)
            self._schedule_reconnect()

    def _on_stream_error(self, error: object) -> None:
        # After the first start a refused handshake (a second component took the JID, the secret
        # changed) is retried with backoff, but it needs a person: say so loudly.
        if self.connected or not self._stopping:
            log.error("component %s: stream error from the server: %s", self.jid, error)

    def _schedule_reconnect(self) -> None:
        if self._reconnect is not None and not self._reconnect.done():
            return
        delay = self.backoff.next()
        log.info("component %s reconnecting in %.2f s", self.jid, delay)
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_after(delay))

    async def _reconnect_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            self.xmpp.connect()

    # -- requests from VENs ----------------------------------------------------------------------

    def _claim(self, stanza: bytes, head: int, elements: int) -> bool:
        """The fast path from bytes, before any parsing: an OpenADR request whose oadrPayload can be
        handed on as it came (saving slixmpp's tree and re-serializing it for lxml), and a plain
        result answering one of our pushes. Anything else (False) takes the parsed way below."""
        try:
            return self._claim_bytes(stanza, head, elements)
        except Exception:                       # a bug here must not cost every VEN the stream
            log.exception("the byte fast path failed on a stanza; it takes the parsed way")
            return False

    def _claim_bytes(self, stanza: bytes, head: int, elements: int) -> bool:
        attributes = start_tag_attributes(stanza[:head])
        kind = attributes.get("type")
        if kind == "result" and head == len(stanza):
            iq_id = attributes.get("id", "")
            # Ours, or (by its id) another instance's push, which the server may hand to us: it is
            # passed on from here, not parsed into a stanza object for slixmpp's handlers to match.
            if iq_id not in self._pending and not (iq_id.startswith(PUSH_ID_PREFIX)
                                                   and self.on_foreign_answer is not None):
                return False
            answer = Answer(iq_id, attributes.get("from", ""), "result", "", "", "", "")
            if not self.settle(answer) and self.on_foreign_answer is not None:
                self.foreign_answers["bytes"] += 1
                self.on_foreign_answer(answer)
            return True
        if kind != "set" or not attributes.get("from"):
            return False
        # The payload must mean the same without the stanza around it: no namespace declared on
        # the iq (the payload's prefixes are then declared inside it: the stream declares none a
        # payload may use), and one oadrPayload child that declares its own namespace, as
        # Prosody writes it (<oadrPayload xmlns=...>) or ejabberd passes it on (<oadr:oadrPayload
        # xmlns:oadr=...>).
        if any(name == "xmlns" and value != "jabber:component:accept" or name.startswith("xmlns:")
               for name, value in attributes.items()):
            return False
        payload = stanza[head:stanza.rindex(b"</")].strip()
        opening = START_TAG.match(payload)
        if opening is None or opening.group(2):
            return False
        name = opening.group(1)
        prefix, _, local = name.rpartition(b":")
        if local != b"oadrPayload" or not payload.endswith(b"</" + name + b">"):
            return False
        # Its namespace declared on it, quoted either way (a value with the same text inside
        # another attribute would only make the document invalid, as it is).
        declaration = b"xmlns:" + prefix if prefix else b"xmlns"
        tag = opening.group(0)
        if declaration + b'="' + _NS_OADR + b'"' not in tag and declaration + b"='" + _NS_OADR + b"'" not in tag:
            return False
        sender, iq_id = attributes["from"], attributes.get("id", "")
        addressed = attributes.get("to") or self.jid.bare
        refusal = None if self.gate is None else self.gate.admit(sender, elements)
        if refusal is not None:
            self._refuse_at_arrival(iq_id, sender, addressed, refusal)
        elif self._stopping:
            self._release_sender(sender)
        else:
            self._start_request(self._serve_bytes(iq_id, sender, addressed, payload))
        return True

    def _start_request(self, serving: Awaitable[None]) -> None:
        """Serve one admitted request in a task of its own, awaited by :meth:`quiesce`."""
        task = asyncio.get_running_loop().create_task(serving)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _refuse_at_arrival(self, iq_id: str, sender: str, addressed: str, refusal: tuple[str, str, str]) -> None:
        """Answer a request refused at arrival with its iq error, as bytes: refusing a flood must
        cost less than serving it. A "wait" refusal (the account's rate or requests in flight)
        is answered late when the gate says so (:meth:`RequestGate.hold_refusal`): an account
        sending as fast as it is answered then slows down, instead of costing the server two
        stanzas per refusal as fast as it can send."""
        if not self.connected:
            return
        condition, text, error_type = refusal
        data = raw_iq_error(iq_id, sender, addressed or self.jid.bare, error_type, condition, text[:MAX_ERROR_TEXT])
        held = error_type == "wait" and self.gate is not None and not self._stopping
        delay = self.gate.hold_refusal(sender) if held else 0.0
        if not delay:
            self.xmpp.send_raw(data)
            return
        self._held_key += 1
        handle = asyncio.get_running_loop().call_later(delay, self._answer_held_refusal, self._held_key)
        self._held_refusals[self._held_key] = (handle, sender, data)

    def _answer_held_refusal(self, key: int) -> None:
        handle, sender, data = self._held_refusals.pop(key)
        handle.cancel()
        if self.gate is not None:
            self.gate.refusal_answered(sender)
        # A stream lost meanwhile: the server answered the request's sender for us, or the VEN
        # lost its session too. A stream regained: the VEN still waits for this answer.
        if self.connected:
            self.xmpp.send_raw(data)

    async def _serve_bytes(self, iq_id: str, sender: str, addressed: str, payload: bytes) -> None:
        try:
            self.served_from_bytes += 1
            await self._answer(iq_id, sender, addressed, payload)
        finally:
            self._release_sender(sender)          # admitted at arrival (_claim)

    def _fast_path(self, xml: ET.Element) -> bool:
        """OpenADR requests and answers to our pushes, straight from the parsed element."""
        if xml.tag != _IQ:
            return False
        kind = xml.get("type")
        if kind == "set":
            if len(xml) != 1 or xml[0].tag != _PAYLOAD or not xml.get("from"):
                return False                    # slixmpp answers or refuses it
            # Admission first: counting the elements is cheaper than walking them for depth, and
            # a stanza refused for its size or its sender's rate needs no more looking at.
            if not self._admitted(xml):
                return True
            if too_deep(xml):
                self._release(xml)              # the slow path refuses it (depth guard), unadmitted
                return False
            if self._stopping:
                self._release(xml)
            else:
                self._start_request(self._serve(xml))
            return True
        if kind in ("result", "error") and xml.get("id") in self._pending:
            self._on_push_answer_element(xml)
            return True
        return False

    def _admitted(self, xml: ET.Element) -> bool:
        """The gate's verdict on a request at arrival (its size, the account's rate and requests
        in flight); a refusal is answered here, before anything is parsed."""
        if self.gate is None:
            return True
        sender = xml.get("from", "")
        elements = element_count(xml)
        if not self.gate.accept_size(sender, elements):
            if elements <= MAX_STANZA_ELEMENTS and too_deep(xml):      # say the worse of the two
                refusal = ("bad-request", f"stanza nested deeper than {MAX_STANZA_DEPTH} levels", "modify")
            else:
                refusal = ("bad-request", f"stanza of {elements} elements refused unread: larger than any "
                           "OpenADR message this sender may send", "modify")
        else:
            refusal = self.gate.admit(sender, elements)
        if refusal is None:
            return True
        self._refuse_at_arrival(xml.get("id", ""), sender, xml.get("to") or self.jid.bare, refusal)
        return False

    def _accept_size(self, sender: str, elements: int) -> bool:
        return self.gate is None or self.gate.accept_size(sender, elements)

    def _oversized(self, sender: str, size: int) -> None:
        if self.gate is not None:
            self.gate.oversized(sender, size)

    def _release(self, xml: ET.Element) -> None:
        self._release_sender(xml.get("from", ""))

    def _release_sender(self, sender: str) -> None:
        if self.gate is not None:
            self.gate.release(sender)

    async def _on_payload_iq(self, iq: Iq) -> None:
        """An OpenADR request the fast path left to slixmpp (one with other children, say)."""
        if self._stopping:
            self._release(iq.xml)
            return
        task = asyncio.current_task()
        if task is not None:
            self._requests.add(task)
        try:
            await self._serve(iq.xml)
        finally:
            if task is not None:
                self._requests.discard(task)

    async def _serve(self, xml: ET.Element) -> None:
        """Answer one OpenADR request: its payload to ``on_request``, the answer back from the JID
        it was addressed to. Built as bytes, not stanza objects: see :class:`_ComponentStream`."""
        try:
            await self._serve_admitted(xml)
        finally:
            self._release(xml)                   # admitted at arrival (_admitted, guard_inbound)

    async def _serve_admitted(self, xml: ET.Element) -> None:
        payload = xml.find(_PAYLOAD)
        await self._answer(xml.get("id", ""), xml.get("from", ""), xml.get("to") or self.jid.bare,
                           b"" if payload is None else element_bytes(payload))

    async def _answer(self, iq_id: str, sender: str, addressed: str, payload: bytes) -> None:
        """``on_request``'s answer to one request, sent back from the JID it was addressed to."""
        try:
            document = await self.on_request(sender, addressed, payload)
        except IqRefused as refusal:
            if self.connected:
                self._error_reply(iq_id, sender, addressed, refusal.condition, refusal.text, refusal.error_type).send()
            return
        except Exception:
            log.exception("request from %s could not be answered", sender)
            if self.connected:
                self._error_reply(iq_id, sender, addressed, "internal-server-error",
                                  "the VTN failed to process this request", "wait").send()
            return
        if self.connected:
            self.xmpp.send_raw(raw_iq("result", iq_id, sender, addressed, document))

    def _error_reply(self, iq_id: str, to: str, sender: str, condition: str, text: str, error_type: str) -> Iq:
        if len(text) > MAX_ERROR_TEXT:
            text = text[:MAX_ERROR_TEXT - 3] + "..."
        return self.xmpp.make_iq_error(iq_id, type=error_type, condition=condition, text=text, ito=to, ifrom=sender)

    async def ping(self, to: str, timeout: float = 10.0) -> bool:
        """XEP-0199 ping of a full JID: whether it is there (:meth:`probe` says "there")."""
        return await self.probe(to, timeout) == THERE

    async def probe(self, to: str, timeout: float = 10.0) -> str:
        """Whether the full JID ``to`` is there: :data:`THERE`, :data:`GONE` or :data:`UNSURE`.

        A client that does not do ping answers ``service-unavailable`` (RFC 6120's answer to an
        iq it does not understand) or ``feature-not-implemented`` (slixmpp's). A server bouncing
        a ping to a resource that is gone answers ``service-unavailable`` too, and Prosody sends
        that bounce from the resource's own JID with no ``by``. So: an error visibly from the
        server (another address, or ``by`` naming it) is GONE; a ``service-unavailable`` that may
        be either is asked again with disco#info (XEP-0030, which nearly every client answers):
        a result is THERE; a second such error is UNSURE, for the caller to settle with what
        else it knows (a directed presence from that resource). No answer at all is GONE.
        """
        if not self.connected:
            return GONE
        try:
            iq = self.xmpp.make_iq_get(ito=JID(to), ifrom=self.jid.bare)
        except InvalidJID:
            return GONE
        iq.enable("ping")
        verdict = await self._ask(iq, to, timeout)
        if verdict != UNSURE:
            return verdict
        disco = self.xmpp.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info", ito=JID(to),
                                      ifrom=self.jid.bare)
        return await self._ask(disco, to, timeout)

    async def _ask(self, iq: Iq, to: str, timeout: float) -> str:
        try:
            answer = await self._exchange(iq, timeout)
        except PushFailed:
            return GONE
        if answer.type == "result" or answer.condition not in _GONE:
            return THERE
        return GONE if _bounced_by_server(answer, to) else UNSURE

    # -- pushes to VENs --------------------------------------------------------------------------

    async def push(self, to: str, document: bytes, timeout: float = 10.0) -> None:
        """Send ``document`` (an oadrPayload) as ``iq set`` to the full JID ``to`` and wait for its
        acknowledgement, the VEN's empty iq result. Raises :class:`PushFailed` otherwise.

        Not ``Iq.send()``: slixmpp registers one handler per pending iq and matches every incoming
        stanza against all of them, which made a 1,000-VEN fan-out quadratic (most of its CPU).
        Pending pushes wait in a dict keyed by iq id instead, answered by one handler.
        """
        if not self.connected:
            raise PushFailed(to, "the component is not connected to its server")
        try:
            to = JID(to).full
        except InvalidJID as error:
            raise PushFailed(to, f"invalid JID: {error}") from None
        iq_id = PUSH_ID_PREFIX + self.xmpp.new_id()
        try:
            answer = await self._await_answer(iq_id, to, raw_iq("set", iq_id, to, self.jid.bare, document), timeout)
        except PushFailed as failure:
            raise PushFailed(to, failure.reason) from None
        if answer.type == "error":
            raise PushFailed(to, f"{answer.condition}: {answer.text}" if answer.text else answer.condition,
                             refused=answer.error_type in ("cancel", "modify") and answer.condition not in _GONE)

    async def _exchange(self, iq: Iq, timeout: float) -> "Answer":
        """Send ``iq`` and wait for its answer (result or error); PushFailed on timeout or disconnect."""
        return await self._await_answer(iq["id"], str(iq["to"]), iq, timeout)

    async def _await_answer(self, iq_id: str, to: str, stanza: "Iq | bytes", timeout: float) -> "Answer":
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future = loop.create_future()
        self._pending[iq_id] = (to, waiter)
        # A timer on our own future rather than asyncio.wait_for, which wraps it in more futures
        # and callbacks: this runs once per push.
        expiry = loop.call_later(timeout, _expire, waiter)
        try:
            if isinstance(stanza, bytes):
                self.xmpp.send_raw(stanza)
            else:
                self.xmpp.send(stanza)
            return await waiter
        except asyncio.TimeoutError:
            raise PushFailed(to, f"no answer within {timeout} s") from None
        finally:
            expiry.cancel()
            self._pending.pop(iq_id, None)

    def _on_push_answer(self, iq: Iq) -> None:
        self._on_push_answer_element(iq.xml)

    def _on_push_answer_element(self, xml: ET.Element) -> None:
        condition, text, error_type = ("", "", "")
        if xml.get("type") == "error":
            condition, text = error_condition(xml)
            error_type = next((child.get("type") for child in xml
                               if child.tag.rsplit("}", 1)[-1] == "error"), None) or "cancel"
        by = ""
        if xml.get("type") == "error":
            by = next((child.get("by") or "" for child in xml if child.tag.rsplit("}", 1)[-1] == "error"), "")
        answer = Answer(xml.get("id", ""), xml.get("from", ""), xml.get("type", ""), condition, text, error_type, by)
        if not self.settle(answer) and self.on_foreign_answer is not None:
            self.foreign_answers[f"parsed {answer.type}"] += 1
            self.on_foreign_answer(answer)

    def settle(self, answer: "Answer") -> bool:
        """Hand ``answer`` to the push or ping waiting for it; False if none here waits for it.

        Only the JID we sent to may answer: an id guessed by someone else settles nothing.
        """
        pending = self._pending.get(answer.iq_id)
        if pending is None:
            return False
        # Errors may also come from the recipient's server (its account or domain address): only
        # the server can send from those.
        if answer.sender != pending[0] and not (answer.type == "error" and
                                                answer.sender in _servers_of(pending[0])):
            return False
        if not pending[1].done():
            pending[1].set_result(answer)
        return True


@dataclass(frozen=True)
class Answer:
    """A VEN's answer to an iq the VTN sent: ``type`` is "result" or "error" (with its condition)."""

    iq_id: str
    sender: str
    type: str
    condition: str = ""
    text: str = ""
    error_type: str = ""
    #: The error's ``by`` attribute: who generated it, when the answer says.
    by: str = ""

    def encode(self) -> str:
        """One line, to pass the answer to another instance."""
        return json.dumps([self.iq_id, self.sender, self.type, self.condition, self.text[:MAX_ERROR_TEXT],
                           self.error_type, self.by])

    @classmethod
    def decode(cls, line: str) -> "Answer":
        """The answer :meth:`encode` wrote."""
        return cls(*json.loads(line))


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


_STANZA_ERRORS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def _servers_of(jid: str) -> set[str]:
    """The addresses a server answers from on behalf of ``jid``: its bare JID and its domain."""
    bare = jid.split("/", 1)[0]
    return {bare, bare.split("@", 1)[-1]}


def _bounced_by_server(answer: "Answer", to: str) -> bool:
    """Whether an error answer visibly comes from a server, not the client at ``to``: sent from
    another address (the bare account or the domain), or naming a server in the error's ``by``."""
    if answer.sender != to:
        return True
    return bool(answer.by) and answer.by != to


def error_condition(xml: ET.Element) -> tuple[str, str]:
    """(condition, text) of an error iq's element, read from the XML itself.

    slixmpp's ``iq['error']`` looks for the error in ``jabber:client``; on a component stream it
    is in ``jabber:component:accept``, so slixmpp invents a default ``feature-not-implemented``.
    (ComponentXMPP's ``fix_error_ns`` would fix it by changing a class shared with every client
    in the process.)
    """
    for child in xml:
        if child.tag.rsplit("}", 1)[-1] != "error":
            continue
        condition, text = "undefined-condition", ""
        for item in child:
            if item.tag == _STANZA_ERRORS + "text":
                text = item.text or ""
            elif item.tag.startswith(_STANZA_ERRORS):
                condition = item.tag[len(_STANZA_ERRORS):]
        return condition, text
    return "undefined-condition", ""
