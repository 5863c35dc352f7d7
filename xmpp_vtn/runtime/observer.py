"""What the runtime tells whoever watches it (metrics, the operator's live view): one call per
exchange, made where the exchange log writes its line.

The hot path pays one method call per exchange: the default :class:`ExchangeObserver` does
nothing, and an observer must return at once (count, set a flag), never read the store or block.
"""
from __future__ import annotations


class ExchangeObserver:
    """Every method is a no-op; subclass and override the ones you need.

    ``outcome`` of an inbound message is the answer's response code as text (``"200"``,
    ``"452"``), ``"empty"`` for an empty result, ``"bad-request"`` for a schema rejection,
    ``"not-implemented"``, or for an answer handed out ready-made (a poller's distribution or
    outbox item) its message type. ``payload`` is the decoded request (None when it did not decode): read
    it, never change it.
    """

    def inbound(self, message_type: str, ven_id: str | None, outcome: str, payload: dict | None) -> None:
        """A request from a VEN was answered."""

    def push_sent(self, message_type: str, ven_id: str) -> None:
        """A push left for ``ven_id``."""

    def push_answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        """``ven_id`` answered a push (``outcome``: ``"acknowledged"``, ``"refused"`` or ``"failed"``)
        ``seconds`` after it left."""

    def liveness(self, ven_id: str, state: str) -> None:
        """``ven_id`` went ``"online"`` or ``"offline"``."""


#: The observer of a runtime nobody watches.
NO_OBSERVER = ExchangeObserver()
