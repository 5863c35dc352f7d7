"""A lean answering mode for simulated VENs under load (``ven-sim --lean``, the fan-out benchmark).

A :class:`~xmpp_vtn.testing.ven.SimulatedVEN` validates every push and builds every answer with
the codec, as a real VEN should. Hundreds of them on the VTN's machine then spend more CPU than
the VTN does and starve it, so the benchmark would measure the simulators. In lean mode a VEN
reads only what it must from a pushed oadrDistributeEvent (each event's id, modification and
status, straight from the parsed stanza), and answers with an oadrCreatedEvent rendered (and
validated) once per event state and opt type, its venID and requestID spliced in.

Use it for load only: the validating mode stays the default wherever behaviour matters.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Callable
from xml.sax.saxutils import escape, quoteattr

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from .. import codec
from ..codec.values import parse_datetime
from ..schema import NS_EI, NS_OADR
from .ven import SimulatedVEN

_DESCRIPTOR = f".//{{{NS_EI}}}eventDescriptor"
_PUSH_HANDLER = "OpenADR push"

# Stand-ins for the per-VEN parts of an answer template: random, so no other text has them.
_VEN_STAND_IN = "ven" + uuid.uuid4().hex
_REQUEST_STAND_IN = "req" + uuid.uuid4().hex

EventState = tuple[str, int, str, datetime | None]      # event id, modification, status, created
Arrival = Callable[[list[EventState]], None]


class _Templates:
    """oadrCreatedEvent documents, one per (events and opt) combination, shared by a worker's VENs."""

    def __init__(self) -> None:
        self._documents: dict[tuple, bytes] = {}

    def answer(self, ven_id: str, request_id: str, answers: tuple[tuple[str, int, str], ...]) -> str:
        template = self._documents.get(answers)
        if template is None:
            template = codec.serialize("oadrCreatedEvent", {
                "response": {"response_code": 200, "response_description": "OK", "request_id": None},
                "event_responses": [{"response_code": 200, "response_description": "OK",
                                     "request_id": _REQUEST_STAND_IN, "event_id": event_id,
                                     "modification_number": modification, "opt_type": opt}
                                    for event_id, modification, opt in answers],
                "ven_id": _VEN_STAND_IN})
            template = template[template.index(b"?>") + 2:].lstrip() if template.startswith(b"<?xml") else template
            self._documents[answers] = template
        return template.decode().replace(_REQUEST_STAND_IN, escape(request_id)).replace(_VEN_STAND_IN, escape(ven_id))


TEMPLATES = _Templates()


def make_lean(ven: SimulatedVEN, on_arrival: Arrival | None = None,
              on_answer: Callable[[int], None] | None = None) -> SimulatedVEN:
    """Switch ``ven`` (not started yet) to lean answering of event pushes.

    ``on_arrival(states)`` is called with each push's events; ``on_answer(count)`` after an
    answer carrying ``count`` new opt answers went out. Every other push is answered as the
    validating VEN answers it.
    """
    xmpp = ven.xmpp
    validating = ven._on_push

    def lean_push(iq) -> None:
        payload = iq.xml.find(f"{{{NS_OADR}}}oadrPayload")
        distribution = None if payload is None else payload.find(f".//{{{NS_OADR}}}oadrDistributeEvent")
        if distribution is None:                           # not an event push: the validating path
            xmpp.loop.create_task(validating(iq))
            return
        sender, iq_id = iq.xml.get("from", ""), iq.xml.get("id", "")
        xmpp.send_raw(f"<iq type='result' id={quoteattr(iq_id)} to={quoteattr(sender)} />")
        request_id = distribution.findtext(f"{{{NS_OADR}}}requestID") or ""
        states, answers = [], []
        for descriptor in distribution.iterfind(_DESCRIPTOR):
            event_id = descriptor.findtext(f"{{{NS_EI}}}eventID") or ""
            modification = int(descriptor.findtext(f"{{{NS_EI}}}modificationNumber") or 0)
            status = descriptor.findtext(f"{{{NS_EI}}}eventStatus") or ""
            created = descriptor.findtext(f"{{{NS_EI}}}createdDateTime")
            states.append((event_id, modification, status, parse_datetime(created) if created else None))
            if status in ("completed", "cancelled") or ven.answered.get(event_id, (None,))[0] == modification:
                continue
            opt = ven.opt if isinstance(ven.opt, str) else "optIn"
            answers.append((event_id, modification, opt))
        if on_arrival is not None:
            on_arrival(states)
        if not answers:
            return
        for event_id, modification, opt in answers:
            ven.answered[event_id] = (modification, opt)
        document = TEMPLATES.answer(ven.ven_id or "", request_id, tuple(answers))
        xmpp.send_raw(f"<iq type='set' id={quoteattr(xmpp.new_id())} to={quoteattr(ven.vtn_jid)}>{document}</iq>")
        if on_answer is not None:
            on_answer(len(answers))

    xmpp.remove_handler(_PUSH_HANDLER)
    xmpp.register_handler(Callback(_PUSH_HANDLER, StanzaPath("iq@type=set/oadr"), lean_push))
    return ven
