"""What a service returns: the answer to send and the pushes it owes, never I/O itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import codes


@dataclass(frozen=True)
class Request:
    """One OpenADR message as it arrived: who sent it (the full JID the server authenticated)."""

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


@dataclass(frozen=True)
class Push:
    """A VTN-initiated message owed to one VEN."""

    ven_id: str
    message_type: str
    payload: dict


@dataclass
class Outcome:
    """The answer to a request (None: an empty iq result) and the pushes that follow it."""

    answer: tuple[str, dict] | None
    pushes: list[Push] = field(default_factory=list)
    refused: bool = False
    #: (ven_id, included events): the answer itself delivers these events to the VEN (pull).
    acknowledged: tuple[str, list] | None = None


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
