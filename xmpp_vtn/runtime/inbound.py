"""The path of one inbound OpenADR message: per-account limits, decode, dispatch, effects, the
exchange log, and the encoded answer. Transport-free: the XMPP component and the simpleHTTP
adapter hand it the sender and the payload bytes, and send back what it returns."""
from __future__ import annotations

from typing import Callable, Union

from .. import codec
from ..codec import templates
from ..errors import SchemaError
from ..services import Dispatcher, NotImplementedService, Outcome, Polled, Request
from ..store import Store
from . import exchange_log
from .component import IqRefused
from .effects import EffectRunner
from .observer import NO_OBSERVER, ExchangeObserver
from .presence import VenPresence, bare

#: Who sent a message: an identity known before the payload is read (a JID, a certificate
#: fingerprint), or, where the transport authenticates nobody, a function of the parsed
#: ``(message_type, payload)`` that names it (or raises IqRefused).
Sender = Union[str, Callable[[str, dict], str]]


class InboundPipeline:
    """``await pipeline(sender, addressed, data)``: the answer's bytes (None: an empty result), or
    :class:`~xmpp_vtn.runtime.component.IqRefused` for a transport-level error. ``sender`` is a
    :data:`Sender`; ``account`` (default: the sender's bare JID) is what the in-flight limit counts."""

    def __init__(self, store: Store, dispatcher: Dispatcher, effects: EffectRunner, presence: VenPresence,
                 max_requests_in_flight: int = 16):
        self.store, self.dispatcher, self.effects, self.presence = store, dispatcher, effects, presence
        self.max_requests_in_flight = max_requests_in_flight
        self._in_flight: dict[str, int] = {}
        #: Told of every answered request (metrics, the operator's live view).
        self.observer: ExchangeObserver = NO_OBSERVER

    async def __call__(self, sender: Sender, addressed: str, data: bytes, account: str | None = None) -> bytes | None:
        """One inbound request. An account with too many requests in flight is told to wait, so it
        cannot starve the others."""
        account = account or (bare(sender) if isinstance(sender, str) else "(unauthenticated)")
        if self._in_flight.get(account, 0) >= self.max_requests_in_flight:
            raise IqRefused("resource-constraint", f"more than {self.max_requests_in_flight} requests in flight "
                            "from this account; wait for answers", "wait")
        self._in_flight[account] = self._in_flight.get(account, 0) + 1
        try:
            return await self._answer(sender, data)
        finally:
            left = self._in_flight[account] - 1
            if left:
                self._in_flight[account] = left
            else:
                del self._in_flight[account]

    async def _answer(self, sender: Sender, data: bytes) -> bytes | None:
        try:
            message_type, payload = codec.parse(data)
        except SchemaError as error:
            exchange_log.inbound("(invalid)", sender if isinstance(sender, str) else "(unauthenticated)", None,
                                 f"bad-request: {str(error).splitlines()[0]}", data)
            self.observer.inbound("(invalid)", None, "bad-request", None)
            raise IqRefused("bad-request", str(error)) from None
        if not isinstance(sender, str):
            try:
                sender = sender(message_type, payload)
            except IqRefused as refusal:
                exchange_log.inbound(message_type, "(unauthenticated)", payload.get("ven_id"),
                                     f"{refusal.condition}: {refusal.text}", data)
                raise
        ven_id = payload.get("ven_id")
        try:
            outcome = await self.dispatcher.handle(Request(sender, message_type, payload, data))
        except NotImplementedService as error:
            exchange_log.inbound(message_type, sender, ven_id, "feature-not-implemented", data)
            self.observer.inbound(message_type, ven_id, "not-implemented", payload)
            raise IqRefused("feature-not-implemented", str(error), "cancel") from None
        await self.effects.apply(outcome.effects)
        self._heard_from(sender, outcome)
        await self.store.committed()                 # the VEN is answered once its message is recorded
        if outcome.answer is None:
            exchange_log.inbound(message_type, sender, ven_id, "empty result", data)
            self.observer.inbound(message_type, ven_id, "empty", payload)
            return None
        answer_type, answer = outcome.answer
        if isinstance(answer, bytes):                # a document built before (an outbox item, a template)
            exchange_log.inbound(message_type, sender, ven_id, answer_type, data)
            self.observer.inbound(message_type, ven_id, answer_type, payload)
            return answer
        code = (answer.get("response") or {}).get("response_code")
        ven_id = ven_id or answer.get("ven_id")
        exchange_log.inbound(message_type, sender, ven_id, f"{answer_type} {code}" if code is not None else answer_type,
                             data)
        self.observer.inbound(message_type, ven_id, str(code) if code is not None else "empty", payload)
        return templates.serialize(answer_type, answer)

    def _heard_from(self, sender: str, outcome: Outcome) -> None:
        """A registered VEN that speaks is reachable: it is online, and is delivered what it is owed."""
        if outcome.refused:
            return
        ven = self.store.ven_by_jid(bare(sender))
        if ven is not None:
            self.presence.alive(ven.ven_id, polled=any(isinstance(effect, Polled) for effect in outcome.effects))
