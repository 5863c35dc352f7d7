"""The path of one inbound OpenADR message: per-account limits, decode, dispatch, effects, the
exchange log, and the encoded answer. Transport-free: the XMPP component and the simpleHTTP
adapter hand it the sender and the payload bytes, and send back what it returns."""
from __future__ import annotations

import asyncio
import time
from typing import Callable, Union

from ..codec import templates
from ..errors import SchemaError
from ..services import Dispatcher, NotImplementedService, Outcome, Polled, Request
from ..services.quotas import QuotaGuard
from ..store import XMPP, Store
from . import exchange_log
from .component import IqRefused
from .effects import EffectRunner
from .observer import NO_OBSERVER, ExchangeObserver
from .parsing import OrderedParser
from .presence import VenPresence, bare
from .stanzas import MAX_STANZA_ELEMENTS, MAX_UNREGISTERED_ELEMENTS


#: How many elements of a stanza count as one request against the account's request rate.
ELEMENTS_PER_REQUEST = 500


class TokenBucket:
    """Requests per second per account: ``rate`` sustained, ``burst`` at once.

    >>> bucket = TokenBucket(rate=1, burst=2, clock=lambda: 0.0)
    >>> [bucket.take("a"), bucket.take("a"), bucket.take("a"), bucket.take("b")]
    [True, True, False, True]
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_accounts: int = 100_000):
        self.rate, self.burst, self.clock, self.max_accounts = rate, burst, clock, max_accounts
        self._buckets: dict[str, tuple[float, float]] = {}     # account -> (tokens, when)

    def take(self, account: str, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens of ``account``'s (at most a full bucket); False (nothing spent)
        when it has fewer."""
        now = self.clock()
        cost = min(cost, float(self.burst))
        tokens, when = self._buckets.get(account, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - when) * self.rate)
        if tokens < cost:
            self._buckets[account] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_accounts and account not in self._buckets:
            self._forget_full(now)
        self._buckets[account] = (tokens - cost, now)
        return True

    def _forget_full(self, now: float) -> None:
        """Drop accounts whose bucket has refilled: they are where a new account would start."""
        for account, (tokens, when) in list(self._buckets.items()):
            if tokens + (now - when) * self.rate >= self.burst:
                del self._buckets[account]


class HeldRefusals:
    """How many "wait" refusals each account has held back (answered late, see
    :attr:`~xmpp_vtn.services.quotas.Quotas.refusal_delay`), at most ``per_account`` each.

    >>> held = HeldRefusals(delay=1.0, per_account=2)
    >>> [held.hold("a"), held.hold("a"), held.hold("a"), held.hold("b")]
    [1.0, 1.0, 0.0, 1.0]
    >>> held.answered("a"); held.hold("a"), held.now
    (1.0, 3)
    """

    def __init__(self, delay: float, per_account: int):
        self.delay, self.per_account = delay, per_account
        self._held: dict[str, int] = {}
        #: Refusals held back since start.
        self.since_start = 0

    @property
    def now(self) -> int:
        """Refusals held back right now, all accounts together."""
        return sum(self._held.values())

    def hold(self, account: str) -> float:
        """Seconds to hold back a refusal of ``account`` (0.0: answer it at once). Each hold is
        ended with :meth:`answered`."""
        held = self._held.get(account, 0)
        if self.delay <= 0 or held >= self.per_account:
            return 0.0
        self._held[account] = held + 1
        self.since_start += 1
        return self.delay

    def answered(self, account: str) -> None:
        """A refusal :meth:`hold` held back has been answered (or given up with its stream)."""
        left = self._held.get(account, 0) - 1
        if left < 0:
            return
        if left:
            self._held[account] = left
        else:
            del self._held[account]


#: Who sent a message: an identity known before the payload is read (a JID, a certificate
#: fingerprint), or, where the transport authenticates nobody, a function of the parsed
#: ``(message_type, payload)`` that names it (or raises IqRefused).
Sender = Union[str, Callable[[str, dict], str]]


class InboundPipeline:
    """``await pipeline(sender, addressed, data)``: the answer's bytes (None: an empty result), or
    :class:`~xmpp_vtn.runtime.component.IqRefused` for a transport-level error. ``sender`` is a
    :data:`Sender`; ``account`` (default: the sender's bare JID) is what the limits count.

    It is also the XMPP component's gate (:class:`~xmpp_vtn.runtime.component.RequestGate`):
    each stanza is admitted or refused when it arrives, before it is parsed, so the limits engage
    whatever the handlers do (synchronous handlers never yield, so requests counted only once
    they run would never be seen in flight together). Requests from other transports (simpleHTTP)
    are admitted by :meth:`__call__` itself.
    """

    def __init__(self, store: Store, dispatcher: Dispatcher, effects: EffectRunner, presence: VenPresence,
                 max_requests_in_flight: int = 16, quotas: QuotaGuard | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.dispatcher, self.effects, self.presence = store, dispatcher, effects, presence
        self.max_requests_in_flight = max_requests_in_flight
        self.quotas = quotas or QuotaGuard()
        limits = self.quotas.quotas
        self.rate = TokenBucket(limits.requests_per_second, limits.request_burst, clock)
        self.held_refusals = HeldRefusals(limits.refusal_delay, limits.held_refusals)
        self._in_flight: dict[str, int] = {}
        #: Parses each account's documents in order, large ones off the event loop.
        self.parser = OrderedParser()
        #: Told of every answered request (metrics, the operator's live view).
        self.observer: ExchangeObserver = NO_OBSERVER

    # -- the gate: at arrival, before parsing --------------------------------------------------------

    def admit(self, sender: str, elements: int = 0) -> tuple[str, str, str] | None:
        """Take a request from ``sender`` (counted in flight until :meth:`release`), or the XMPP
        error refusing it: too many in flight, or over the account's request rate. A large
        request costs more of the rate: one request per :data:`ELEMENTS_PER_REQUEST` elements,
        since parsing and validating it costs the VTN in proportion."""
        return self._admit_account(bare(sender), elements)

    def _admit_account(self, account: str, elements: int = 0) -> tuple[str, str, str] | None:
        if self._in_flight.get(account, 0) >= self.max_requests_in_flight:
            self.quotas.note("requests_in_flight", account, f"more than {self.max_requests_in_flight} in flight")
            return ("resource-constraint", f"more than {self.max_requests_in_flight} requests in flight from this "
                    "account; wait for answers", "wait")
        if not self.rate.take(account, max(1.0, elements / ELEMENTS_PER_REQUEST)):
            self.quotas.note("requests_per_second", account, f"more than {self.rate.rate:g} requests per second")
            return ("resource-constraint", f"more than {self.rate.rate:g} requests per second from this account; "
                    "slow down", "wait")
        self._in_flight[account] = self._in_flight.get(account, 0) + 1
        return None

    def release(self, sender: str) -> None:
        """A request :meth:`admit` took has been answered."""
        self._release_account(bare(sender))

    def _release_account(self, account: str) -> None:
        left = self._in_flight.get(account, 0) - 1
        if left > 0:
            self._in_flight[account] = left
        else:
            self._in_flight.pop(account, None)

    def hold_refusal(self, sender: str) -> float:
        """Seconds by which to answer a "wait" refusal of ``sender`` late (0.0: at once); a hold
        is ended with :meth:`refusal_answered`. A client that waits for its answers is slowed so;
        one that does not is bounded by the server's rate limit (docs/servers.md)."""
        return self.held_refusals.hold(bare(sender))

    def refusal_answered(self, sender: str) -> None:
        """A refusal held back by :meth:`hold_refusal` has been answered."""
        self.held_refusals.answered(bare(sender))

    def accept_size(self, sender: str, elements: int) -> bool:
        """Whether a stanza of ``elements`` elements from ``sender`` may be looked at: an account
        with no registration may send only the few small registration messages. A refusal is
        counted (``stanza_elements``) and logged, rate-limited per account."""
        if elements > MAX_STANZA_ELEMENTS:
            allowed = MAX_STANZA_ELEMENTS
        elif elements > MAX_UNREGISTERED_ELEMENTS and self.store.ven_by_jid(bare(sender)) is None:
            allowed = MAX_UNREGISTERED_ELEMENTS
        else:
            return True
        self.quotas.note("stanza_elements", bare(sender), f"a stanza of more than {allowed} elements")
        return False

    def oversized(self, sender: str, size: int) -> None:
        """The XMPP component refused a stanza from ``sender`` unread for its bytes: counted
        (``stanza_bytes``) and logged, rate-limited per account."""
        self.quotas.note("stanza_bytes", bare(sender), f"a stanza of more than {size} bytes")

    # -- the request --------------------------------------------------------------------------------

    async def __call__(self, sender: Sender, addressed: str, data: bytes, account: str | None = None,
                       admitted: bool = False, answered: bool = True) -> bytes | None:
        """One inbound request. ``admitted``: the XMPP component took it at arrival (:meth:`admit`);
        otherwise it is admitted here, and an account over its limits is told to wait, late (see
        :meth:`hold_refusal`) unless nobody receives the answer (``answered=False``: a message in
        the body of a simpleHTTP push's response, say)."""
        if admitted:
            return await self._answer(sender, data)
        account = account or (bare(sender) if isinstance(sender, str) else "(unauthenticated)")
        # About as many elements as the document has tags over two: counted in C, unparsed.
        refusal = self._admit_account(account, data.count(b"<") // 2)
        if refusal is not None:
            delay = self.held_refusals.hold(account) if answered else 0.0
            if delay:
                try:
                    await asyncio.sleep(delay)
                finally:
                    self.held_refusals.answered(account)
            raise IqRefused(*refusal)
        try:
            return await self._answer(sender, data)
        finally:
            self._release_account(account)

    async def _answer(self, sender: Sender, data: bytes) -> bytes | None:
        try:
            message_type, payload = await self.parser.parse(bare(sender) if isinstance(sender, str) else None, data)
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

    def close(self) -> None:
        """Release the parser's worker thread (the VTN is stopping)."""
        self.parser.close()

    def _heard_from(self, sender: str, outcome: Outcome) -> None:
        """A registered VEN that speaks is reachable: it is online, and is delivered what it is owed."""
        if outcome.refused:
            return
        ven = self.store.ven_by_jid(bare(sender))
        if ven is not None:
            self.presence.alive(ven.ven_id, polled=any(isinstance(effect, Polled) for effect in outcome.effects),
                                heard_here=ven.transport_name == XMPP)
