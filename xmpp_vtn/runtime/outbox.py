"""Everything the VTN owes VENs, delivered: the outbox, event distributions, retries.

Two kinds of debt, one delivery per VEN (:class:`~xmpp_vtn.runtime.delivery_loop.DeliveryLoop`):

* **Outbox** items (oadrRequestReregistration, oadrCreateReport, oadrUpdateReport, ...): written to
  the store, as the exact bytes to send, before the first attempt; removed only when the VEN
  acknowledges. They go out in order.
* **Event distributions**: not queued messages but a rule. A VEN is owed an oadrDistributeEvent
  whenever the (modification, status) it acknowledged differs from the truth; the newest state
  is built at send time, so a newer distribution always supersedes an unsent one.

A failed delivery leaves everything owed and retries with capped, jittered backoff on the VTN's
scheduler (so a test clock drives it); a push queued for a VEN in backoff waits for that retry
rather than forcing one (a changed event still goes at once: it supersedes what was unsent). A VEN that shows life (presence, any request) is served at once; a VTN
that starts serves everyone owed.

Bounds (the quota model, :mod:`xmpp_vtn.services.quotas`): at most ``outbox_per_ven`` items per VEN;
a report update replaces the one still queued for the same subscription and expires when stale;
pushes for a venID that is no longer registered are given up after a few failed attempts; one
account's deliveries run one at a time (:class:`~xmpp_vtn.runtime.delivery_loop.DeliveryLoop`).

Where a delivery goes depends on the address: a full JID is pushed to through the XMPP component,
an ``http(s)://`` URL through the simpleHTTP pusher, and a simpleHTTP VEN that pulls is not pushed
to at all: its polls take the same items, in the same order (:meth:`Courier.handed_out`).

With several instances (:mod:`~xmpp_vtn.runtime.cluster`) a delivery to one VEN runs under that VEN's lease,
so one instance at a time pushes to it; the others try again shortly, and take over if it dies.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Awaitable, Callable

from .. import codec
from . import exchange_log
from .backoff import Backoff
from .cluster import Cluster
from .component import OadrComponent, PushFailed
from .delivery_loop import DeliveryLoop
from .observer import NO_OBSERVER, ExchangeObserver
from .scheduler import Scheduler
from ..services import Push
from ..services.events import EventService
from ..services.quotas import QuotaGuard
from ..store import SIMPLE_HTTP, UNREGISTERED_VENS, OutboxItem, Store, transport_of

log = logging.getLogger("xmpp_vtn.courier")

EventsAcknowledged = Callable[[str, list], Awaitable[None]]

#: Pushes in flight at once, by default. Each waits for its acknowledgement, so this is the
#: window of a fan-out: at 1,000 VENs, 1,024 against 256 took the fan-out from 0.54-0.61 to
#: 0.64-0.73 of the raw ceiling and p99 receipt down 5-15% in three paired runs (bench/fanout.py),
#: as the XMPP server then reads the pushes in larger batches. A silent VEN holds one slot.
DEFAULT_PUSH_CONCURRENCY = 1024

#: Failed attempts after which a push for a venID that is no longer registered is given up (the
#: oadrCancelPartyRegistration owed to a VEN the VTN cancelled, to a VEN that never comes back).
UNREGISTERED_ATTEMPTS = 3
#: Group of the deliveries to venIDs that are no longer registered: they share one turn.
UNREGISTERED = "\x1funregistered"


class Pusher:
    """What carries a push: ``await push(to, document, timeout)``, :class:`PushFailed` if not acknowledged."""

    async def push(self, to: str, document: bytes, timeout: float = 10.0) -> None:  # pragma: no cover
        raise NotImplementedError


def polled_at(to: str) -> bool:
    """Whether ``to`` is the address of a VEN that pulls (a simpleHTTP identity, not a URL or JID)."""
    return transport_of(to) == SIMPLE_HTTP


def over_http(to: str) -> bool:
    """Whether pushes to ``to`` are HTTP POSTs."""
    return to.startswith(("http://", "https://"))


class Courier:
    """Delivers what the store says each VEN is owed."""

    def __init__(self, store: Store, component: OadrComponent, events: EventService, push_timeout: float,
                 concurrency: int, on_events_acknowledged: EventsAcknowledged,
                 retry: Callable[[], Backoff] = lambda: Backoff(initial=1.0, cap=60.0),
                 cluster: Cluster | None = None, http: Pusher | None = None,
                 scheduler: Scheduler | None = None, quotas: QuotaGuard | None = None):
        self.store, self.component, self.events = store, component, events
        #: Pushes to ``http(s)://`` transport addresses (simpleHTTP VENs that do not poll).
        self.http = http
        self.cluster = cluster or Cluster(store)
        #: Where retries are timed; without one (a courier used on its own), the loop's clock.
        self.scheduler = scheduler
        self.quotas = quotas or QuotaGuard()
        self.push_timeout = push_timeout
        self.on_events_acknowledged = on_events_acknowledged
        self._new_backoff = retry
        self._loop = DeliveryLoop(self._deliver, concurrency, group=self._account_of)
        self._backoff: dict[str, Backoff] = {}          # VENs whose last delivery failed
        self._retries: dict[str, asyncio.TimerHandle | None] = {}   # None: timed by the scheduler
        self._waiting: dict[int, asyncio.Future] = {}    # outbox item id -> "acknowledged?" for send()
        self._closed = False
        #: Told of every push and its answer (metrics, the operator's live view).
        self.observer: ExchangeObserver = NO_OBSERVER
        self._next_expiry = 0.0

    @property
    def unreachable(self) -> set[str]:
        """VENs whose last delivery failed and that still owe (are owed) something."""
        return set(self._backoff)

    def queue(self, ven_id: str, to: str, push: Push, *, topic: str | None = None,
              stale_after: timedelta | None = None) -> int | None:
        """Queue ``push`` for ``ven_id`` (at the full JID ``to``), deliver it soon; returns its outbox id.

        ``topic`` (a report subscription) replaces the item still queued for it; ``stale_after``
        drops it unsent once that old. None when the VEN's outbox is full (nothing queued).
        """
        expires = None if stale_after is None else self._now() + stale_after.total_seconds()
        item_id = self.store.enqueue_bounded(ven_id, to, push.message_type,
                                             codec.serialize(push.message_type, push.payload), topic=topic,
                                             limit=self.quotas.quotas.outbox_per_ven, expires_at=expires)
        if item_id is None:
            self.quotas.note("outbox_per_ven", ven_id, f"{push.message_type} not queued: "
                             f"{self.quotas.quotas.outbox_per_ven} pushes are waiting for this VEN")
            return None
        if ven_id not in self._backoff:       # in backoff, the new item waits for the next retry
            self.wake(ven_id)
        return item_id

    async def send(self, ven_id: str, to: str, push: Push) -> bool:
        """Queue ``push`` and wait for the first attempt.

        Returns True once acknowledged, False if that attempt failed (or the component is offline):
        it stays owed, is retried, and is delivered when the VEN shows up again.
        """
        item_id = self.queue(ven_id, to, push)     # the delivery task it wakes runs after we wait below
        if item_id is None or self._closed or (not polled_at(to) and not self.component.connected):
            return False                           # full, or offline
        if ven_id in self._backoff and not polled_at(to):
            return False                           # not reachable until its next retry
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[item_id] = waiter
        try:
            if polled_at(to):
                # A VEN that pulls takes it with its next poll; "the first attempt" is that long.
                return await asyncio.wait_for(waiter, self.push_timeout)
            return await waiter
        except asyncio.TimeoutError:
            return False
        finally:
            self._waiting.pop(item_id, None)

    def forget_polled(self, ven_id: str) -> None:
        """``ven_id``'s registration is gone: what a polling VEN was owed under it goes too (its
        polls would never take it, and it means nothing without the registration)."""
        for item in self.store.outbox(ven_id):
            if polled_at(item.to):
                self.store.dequeue(item.item_id)
                self._resolve(item.item_id, False)

    def handed_out(self, ven_id: str, item_id: int, message_type: str) -> None:
        """A VEN that pulls took an owed item as its poll's answer: it is delivered."""
        for item in self.store.outbox(ven_id):
            if item.item_id == item_id:
                exchange_log.outbound(message_type, item.to, ven_id, "handed out in a poll answer", item.document)
        self.store.dequeue(item_id)
        self._resolve(item_id, True)

    def wake(self, ven_id: str) -> None:
        """Deliver what ``ven_id`` is owed, soon (an event changed, it registered). Does nothing
        while the component is offline: the next session start serves everyone. Queued items
        (:meth:`queue`) do not wake a VEN in backoff: they wait for its next retry."""
        self._wake_now(ven_id)

    def look_again(self, ven_id: str) -> None:
        """:meth:`wake`, for the sweep that picks up what nobody delivered: nothing when this
        instance has ``ven_id`` in hand already (a delivery to it running or waiting for a slot,
        or a retry timed). Waking a running delivery would run it once more when it ends, a lease
        claim and a read per VEN, for each VEN a fan-out is still pushing to when a sweep comes."""
        if not self._loop.busy(ven_id) and ven_id not in self._retries:
            self.wake(ven_id)

    def _wake_now(self, ven_id: str) -> None:
        if self.component.connected and not self._closed:
            self._loop.wake(ven_id)

    def seen(self, ven_id: str) -> None:
        """``ven_id`` showed life: if deliveries to it were failing, try again now."""
        if ven_id in self._backoff:
            self._cancel_retry(ven_id)
            self._wake_now(ven_id)

    def forget(self, ven_id: str) -> None:
        """``ven_id``'s registration is gone: drop its backoff and pending retry."""
        self._backoff.pop(ven_id, None)
        self._cancel_retry(ven_id)

    def wake_everyone(self) -> None:
        """After a (re)connection: every registered VEN, and every VEN with queued pushes. Failures
        before it said nothing about the VENs (the VTN itself was cut off): backoffs start over."""
        for ven_id in list(self._retries):
            self._cancel_retry(ven_id)
        self._backoff.clear()
        self.cluster.refresh_heard()
        for ven_id in {ven.ven_id for ven in self.store.vens()} | {item.ven_id for item in self.store.outbox()}:
            if self.cluster.sweeps(ven_id):
                self.wake(ven_id)

    def _account_of(self, ven_id: str) -> str:
        ven = self.store.ven(ven_id)
        return ven.bare_jid if ven is not None else UNREGISTERED

    def _now(self) -> float:
        return self.scheduler.now().timestamp() if self.scheduler is not None else time.time()

    def _expire(self) -> None:
        """Drop stale report updates, at most once a second however many deliveries run."""
        now = self._now()
        if now >= self._next_expiry:
            self._next_expiry = now + 1.0
            expired = self.store.expire_outbox(now)
            if expired:
                self.quotas.counters["stale_report_update"] += expired
                log.info("dropped %d stale report updates unsent", expired)

    async def idle(self) -> None:
        """Wait until no delivery is running (tests and orderly shutdowns)."""
        await self._loop.idle()

    async def close(self) -> None:
        """Stop delivering; what is owed stays in the store for the next start."""
        self._closed = True
        for ven_id in list(self._retries):
            self._cancel_retry(ven_id)
        await self._loop.close()
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_result(False)

    # -- one VEN's delivery -------------------------------------------------------------------------

    async def _deliver(self, ven_id: str) -> None:
        lease = f"ven:{ven_id}"
        # Long enough for one push to be answered; renewed before a push once it has run half of
        # cluster.lease_seconds (a push then still has push_timeout and more).
        lease_seconds = self.push_timeout + self.cluster.lease_seconds
        held_at = time.monotonic()            # before the claim: the lease runs at least this long
        # With the claims of every delivery woken in this loop turn, in one statement (a fan-out).
        if not await self.cluster.hold_together(lease, lease_seconds):
            # Another instance is delivering to this VEN; look again shortly (it may die, or
            # something may be owed that it did not see).
            # A short look on the loop's clock, not a backoff: it must happen even while a test
            # clock stands still, as it did before retries moved to the scheduler.
            self._retry_in(ven_id, min(1.0, self.cluster.sweep_interval), on_loop=True)
            return

        def still_held() -> bool:
            # The lease runs lease_seconds from the claim; with more than a push's time left
            # (the claim was under cluster.lease_seconds ago) it needs no renewal round trip yet.
            nonlocal held_at
            if time.monotonic() - held_at < self.cluster.lease_seconds / 2:
                return True
            renewed_at = time.monotonic()
            if not self.cluster.hold(lease, lease_seconds):
                return False
            held_at = renewed_at
            return True
        try:
            await self._deliver_held(ven_id, still_held)
        finally:
            self.cluster.let_go_together(lease)

    def _let_go(self, item: OutboxItem, counted_as: str, reason: str) -> None:
        """Drop ``item`` unsent for ``reason`` (a key of DROP_REASONS), counted under the venID
        ``counted_as`` for operators; whoever waits for it learns it was not delivered."""
        self.store.dequeue(item.item_id)
        self.store.count_dropped(counted_as, reason)
        self._resolve(item.item_id, False)

    def _pusher(self, to: str) -> OadrComponent | Pusher:
        if over_http(to):
            if self.http is None:
                raise PushFailed(to, "this VTN has no simpleHTTP transport configured")
            return self.http
        return self.component

    async def _push(self, to: str, document: bytes) -> None:
        await self._pusher(to).push(to, document, self.push_timeout)

    async def _deliver_held(self, ven_id: str, still_held: Callable[[], bool]) -> None:
        self._expire()
        ven = self.store.ven(ven_id)
        if ven is not None and ven.pulls:
            return                       # it polls for what it is owed (EventService.poll)
        # Read with those of every delivery starting in this loop turn (a fan-out's thousand).
        owed, deliveries = await self.store.delivery_state_async(ven_id)
        for item in owed:
            if not still_held():
                return
            deliveries = None              # the push took a while: read them again at the end
            # Where the VEN is now: it may have re-registered from another resource since.
            current = self.store.ven(ven_id)
            if current is None and item.attempts >= UNREGISTERED_ATTEMPTS:
                log.info("venID %s is not registered and did not take %s in %d attempts; given up", ven_id,
                         item.message_type, item.attempts)
                self._let_go(item, UNREGISTERED_VENS, "given_up")
                continue
            to = current.transport_address if current is not None else item.to
            if polled_at(to):
                continue                 # owed to a poller whose registration is gone: its next poll
            started = self._sent(item.message_type, ven_id)
            try:
                await self._push(to, item.document)
                took = time.perf_counter() - started     # the VEN's part, before our own writes
            except PushFailed as failure:
                if self._moved(ven_id, to, item.message_type, failure):
                    return
                exchange_log.outbound(item.message_type, to, ven_id, f"failed: {failure.reason}", item.document)
                self._answered(item.message_type, ven_id, "refused" if failure.refused else "failed",
                               time.perf_counter() - started)
                if failure.refused:
                    # The VEN itself rejects these bytes for good: retrying would block the rest.
                    log.warning("venID %s refused %s (%s); dropped from the outbox", ven_id, item.message_type,
                                failure.reason)
                    self._let_go(item, ven_id if current is not None else UNREGISTERED_VENS, "refused")
                    continue
                self.store.attempted(item.item_id)
                self._failed(ven_id, f"{item.message_type}: {failure.reason}")
                return
            self.store.dequeue(item.item_id)
            await self.store.committed()             # acknowledged is reported once it is recorded
            self._resolve(item.item_id, True)
            exchange_log.outbound(item.message_type, to, ven_id, "acknowledged", item.document)
            self._answered(item.message_type, ven_id, "acknowledged", took)
        ven = self.store.ven(ven_id)
        found = self.events.distribution_document(ven_id, deliveries) if ven is not None else None
        if found is not None and still_held():
            document, included = found
            started = self._sent("oadrDistributeEvent", ven_id)
            try:
                await self._push(ven.transport_address, document)
                took = time.perf_counter() - started
            except PushFailed as failure:
                if self._moved(ven_id, ven.transport_address, "oadrDistributeEvent", failure):
                    return
                exchange_log.outbound("oadrDistributeEvent", ven.transport_address, ven_id,
                                      f"failed: {failure.reason}", document)
                self._answered("oadrDistributeEvent", ven_id, "refused" if failure.refused else "failed",
                               time.perf_counter() - started)
                self._failed(ven_id, f"oadrDistributeEvent: {failure.reason}")
                return
            exchange_log.outbound("oadrDistributeEvent", ven.transport_address, ven_id, "acknowledged", document)
            await self.on_events_acknowledged(ven_id, included)
            self._answered("oadrDistributeEvent", ven_id, "acknowledged", took)
        self._succeeded(ven_id)

    def _moved(self, ven_id: str, to: str, message_type: str, failure: PushFailed) -> bool:
        """Whether the VEN re-registered at another address while a push to ``to`` was under way.
        Not a failure then: the registration woke a delivery to where it is now."""
        current = self.store.ven(ven_id)
        if current is None or current.transport_address == to:
            return False
        log.info("venID %s moved to %s while %s went to %s (%s); delivering there", ven_id,
                 current.transport_address, message_type, to, failure.reason)
        self.wake(ven_id)
        return True

    def _sent(self, message_type: str, ven_id: str) -> float:
        self.observer.push_sent(message_type, ven_id)
        return time.perf_counter()

    def _answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        self.observer.push_answered(message_type, ven_id, outcome, seconds)

    def _resolve(self, item_id: int, acknowledged: bool) -> None:
        waiter = self._waiting.get(item_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(acknowledged)

    def _failed(self, ven_id: str, reason: str) -> None:
        # Whoever waits on a push queued behind the one that failed learns now that the VEN is
        # unreachable, not after every retry.
        for item in self.store.outbox(ven_id):
            self._resolve(item.item_id, False)
        backoff = self._backoff.setdefault(ven_id, self._new_backoff())
        delay = backoff.next()
        log.info("venID %s did not take %s; retrying in %.1f s or when it shows up", ven_id, reason, delay)
        self._retry_in(ven_id, delay)

    def _retry_in(self, ven_id: str, delay: float, on_loop: bool = False) -> None:
        self._cancel_retry(ven_id)
        if self.scheduler is None or on_loop:
            self._retries[ven_id] = asyncio.get_running_loop().call_later(delay, self._retry, ven_id)
        else:
            self._retries[ven_id] = None
            self.scheduler.at(self.scheduler.now() + timedelta(seconds=delay), f"courier-retry:{ven_id}",
                              lambda: self._retry(ven_id))

    def _retry(self, ven_id: str) -> None:
        if self._retries.pop(ven_id, False) is False:
            return                                 # cancelled meanwhile
        self._wake_now(ven_id)

    def _succeeded(self, ven_id: str) -> None:
        self._backoff.pop(ven_id, None)
        self._cancel_retry(ven_id)

    def _cancel_retry(self, ven_id: str) -> None:
        if ven_id not in self._retries:
            return
        handle = self._retries.pop(ven_id)
        if handle is not None:
            handle.cancel()
        elif self.scheduler is not None:
            try:
                self.scheduler.cancel(f"courier-retry:{ven_id}")
            except Exception:                       # a scheduler already shut down has nothing to cancel
                log.debug("retry of venID %s not cancelled: scheduler stopped", ven_id)
