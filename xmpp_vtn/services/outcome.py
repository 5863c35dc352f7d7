"""What a service returns: the answer to send and every effect that follows it, never I/O itself.

Each effect is a small named value, the way h11 names its events: the runtime reads them in one
place (:mod:`xmpp_vtn.runtime.effects`) and does the I/O. A service never wakes a delivery,
schedules a timer or queues a push itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Union

from ..store import CERTIFICATE_IDENTITY, transport_of
from . import codes


@dataclass(frozen=True)
class Request:
    """One OpenADR message as it arrived: who sent it (the full JID the server authenticated, or a
    simpleHTTP VEN's identity: see :data:`~xmpp_vtn.store.HTTP_IDENTITIES`)."""

    sender: str
    message_type: str
    payload: dict
    #: The validated oadrPayload as received, when the transport has it (kept as is, e.g. in the
    #: answer journal, instead of being serialized again).
    document: bytes | None = None

    @property
    def bare_jid(self) -> str:
        return self.sender.split("/", 1)[0]

    @property
    def request_id(self) -> str | None:
        return self.payload.get("request_id")

    @property
    def transport(self) -> str:
        """The OpenADR transport the message came by: ``"xmpp"`` or ``"simpleHttp"``."""
        return transport_of(self.sender)

    @property
    def fingerprint(self) -> str | None:
        """The TLS client certificate fingerprint of a simpleHTTP sender, when it has one."""
        if self.sender.startswith(CERTIFICATE_IDENTITY):
            return self.sender[len(CERTIFICATE_IDENTITY):]
        return None


@dataclass(frozen=True)
class Push:
    """A VTN-initiated message owed to one VEN."""

    ven_id: str
    message_type: str
    payload: dict


@dataclass(frozen=True)
class Delivered:
    """The answer itself delivers these events to the VEN (a pull): record them as acknowledged."""

    ven_id: str
    included: list


@dataclass(frozen=True)
class Polled:
    """The VEN polled: liveness counts polls for VENs that pull."""

    ven_id: str


@dataclass(frozen=True)
class Registered:
    """A VEN (re-)registered: deliver what it is owed and offer it the VTN's reports."""

    ven_id: str


@dataclass(frozen=True)
class HandedOut:
    """An owed outbox item went to a VEN that pulls, as the answer to its poll: it is delivered."""

    ven_id: str
    item_id: int
    message_type: str


@dataclass(frozen=True)
class Forget:
    """A registration is gone: the store has purged what it owned (:meth:`Store.purge_ven`); what
    the runtime keeps of it (report schedules, reading callbacks, liveness) goes too."""

    ven_id: str


@dataclass(frozen=True)
class ScheduleReport:
    """Serve a VEN's subscription to one of the VTN's reports on its schedule."""

    key: str


@dataclass(frozen=True)
class UnscheduleReport:
    """Stop serving a VEN's subscription to one of the VTN's reports."""

    key: str


Effect = Union[Delivered, Polled, HandedOut, Registered, Forget, ScheduleReport, UnscheduleReport]


@dataclass
class Outcome:
    """The answer to a request (None: an empty iq result) and the effects that follow it.

    The answer's payload is a dict, or the bytes of a document already built (an owed outbox item
    handed to a polling VEN as it was queued)."""

    answer: tuple[str, dict | bytes] | None
    effects: tuple[Effect, ...] = ()
    refused: bool = False


def response(code: int = codes.OK, request_id: str | None = None, description: str | None = None) -> dict:
    """An ``eiResponse`` dict: ``response(452, "req-1", "unknown venID")``."""
    return {"response_code": code, "response_description": description or codes.DESCRIPTIONS.get(code, ""),
            "request_id": request_id}


class Refusal(Exception):
    """An OpenADR-level refusal: the message was valid XML but the VTN will not act on it.

    Raised inside services before any state changes; the dispatcher turns it into the request's
    answer type carrying ``code`` and ``description``.
    """

    def __init__(self, code: int, description: str, **answer_fields: Any):
        super().__init__(f"{code} {description}")
        self.code, self.description, self.answer_fields = code, description, answer_fields


class NotImplementedService(Exception):
    """The message belongs to a service this VTN does not offer (yet)."""


@dataclass(frozen=True)
class Route:
    """How the dispatcher serves one message type.

    ``handler(request, ven)`` for a ``bound`` route (only registered VENs, speaking for their own
    venID), ``handler(request)`` otherwise. A refusal travels in ``answer_type``;
    ``refusal_fields(request_id)`` gives what such an answer must carry besides the response.
    ``unregistered(request)``, on a bound route, answers a sender that holds no registration (or
    None to refuse it as usual): a VEN whose registration the VTN cancelled still polls for that news.
    """

    handler: Callable[..., Awaitable[Outcome]]
    answer_type: str = "oadrResponse"
    bound: bool = True
    refusal_fields: Callable[[str | None], dict] | None = None
    unregistered: Callable[[Request], Awaitable["Outcome | None"]] | None = None


def acknowledge(request: Request, ven_id: str | None, *effects: Effect) -> Outcome:
    """The plain OK ``oadrResponse`` to ``request`` from ``ven_id``: ``acknowledge(request, ven.ven_id)``."""
    return Outcome(("oadrResponse", {"response": response(codes.OK, request.request_id), "ven_id": ven_id}),
                   effects)
