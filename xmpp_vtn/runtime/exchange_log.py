"""One log line per OpenADR exchange, on the ``xmpp_vtn.exchange`` logger.

At info level: direction, message type, venID, the peer's JID and the outcome. At debug level,
the payload too. Changes operators make (through the control API or the dashboard) are written
here as well, with who made them, so that one log tells everything that changed the VTN's state. Operators filter or route this logger on its own (``logging.getLogger
("xmpp_vtn.exchange").setLevel(...)``). Payloads carry no secrets; the component secret and VEN
passwords never reach this module.
"""
from __future__ import annotations

import logging

log = logging.getLogger("xmpp_vtn.exchange")


def inbound(message_type: str, sender: str, ven_id: str | None, outcome: str, payload: bytes) -> None:
    """A request from a VEN and how it was answered (``outcome``: the answer type and code, or the error)."""
    log.info("in  %s venID=%s from=%s -> %s", message_type, ven_id or "-", sender, outcome)
    _payload("in ", sender, payload)


def outbound(message_type: str, to: str, ven_id: str, outcome: str, payload: bytes) -> None:
    """A push to a VEN and what became of it (acknowledged, or why not)."""
    log.info("out %s venID=%s to=%s -> %s", message_type, ven_id, to, outcome)
    _payload("out", to, payload)


def operator(action: str, subject: str, who: str, outcome: str) -> None:
    """A change an operator made (``action`` such as ``create-event`` on ``subject``, an event id),
    who made it (a token's name, a certificate's subject) and how it ended."""
    log.info("op  %s %s by=%s -> %s", action, subject, who, outcome)


def _payload(direction: str, peer: str, payload: bytes) -> None:
    # Decoding a payload costs more than the line itself: only when someone reads it.
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s payload %s: %s", direction, peer, payload.decode("utf-8", errors="replace"))
