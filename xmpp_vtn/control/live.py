"""What changed, for the dashboards watching: the exchange observer records what each exchange
changed, and each open event stream (``/api/stream``) sends it shortly after.

A change is recorded by what it touches. What one VEN's exchange changes (its deliveries and opt
answers, its row: registration, liveness, last contact, owed pushes) is recorded by venID; a
change the dashboard cannot place (a registration cancelled, an operator's change, reports)
marks a whole topic.
Recording costs a set insertion or two per open stream, and nothing when nobody watches.

A stream waits :data:`COALESCE_SECONDS` after the first change, then sends one message per kind
of change for everything recorded meanwhile: the rows of the VENs that changed, not the whole
VTN (:mod:`.stream_view`). So what an open dashboard costs grows with how many VENs changed in
a window, by a few microseconds each, never with how many VENs the VTN has. A whole topic is
read again only when it is marked, and waits longer when that read is large (:data:`PACING`).
Changes made through another instance of a cluster reach this one's dashboards with the
periodic refresh (:data:`REFRESH_SECONDS`).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..runtime.observer import ExchangeObserver
from .readings import Readings

VENS, EVENTS, REPORTS, OPTS = "vens", "events", "reports", "opts"
TOPICS = (VENS, EVENTS, REPORTS, OPTS)
COALESCE_SECONDS = 0.1
REFRESH_SECONDS = 5.0
#: A stream waits this many times as long as its last update took to build before it builds the
#: next: a dashboard costs the VTN at most about 1% of a core however large the VTN.
PACING = 100

# What a VEN's request changes, by its message type: whole topics, and whether that VEN's
# deliveries (EVENTS) or its row (VENS) changed. Without a venID, the topic is read again.
_TOPICS_OF: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "oadrCreatedEvent": ((), True, False),
    "oadrCreateOpt": ((OPTS,), True, False), "oadrCancelOpt": ((OPTS,), False, False),
    "oadrCreatePartyRegistration": ((), False, True),
    "oadrCancelPartyRegistration": ((VENS, EVENTS), False, False),
    "oadrRegisterReport": ((REPORTS,), False, False), "oadrCreatedReport": ((REPORTS,), False, False),
    "oadrUpdateReport": ((REPORTS,), False, False), "oadrRegisteredReport": ((REPORTS,), False, False),
    "oadrCreateReport": ((REPORTS,), False, False), "oadrCancelReport": ((REPORTS,), False, False),
    "oadrRequestEvent": ((), True, False), "oadrPoll": ((), True, True),
}


@dataclass
class Changes:
    """What changed since a stream last sent: whole topics, and the VENs whose deliveries or row changed."""

    topics: set[str] = field(default_factory=set)
    deliveries: set[str] = field(default_factory=set)
    ven_rows: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.topics or self.deliveries or self.ven_rows)


class Subscription:
    """One open stream: what changed since it last sent, and a wake-up."""

    def __init__(self) -> None:
        self.changes = Changes()
        self.closed = False
        self._wake = asyncio.Event()

    def mark(self, topics: tuple[str, ...]) -> None:
        """Whole ``topics`` changed."""
        self.changes.topics.update(topics)
        self._wake.set()

    def mark_deliveries(self, ven_id: str) -> None:
        """What ``ven_id`` holds of its events, or its opt answers, changed."""
        self.changes.deliveries.add(ven_id)
        self._wake.set()

    def mark_ven_row(self, ven_id: str) -> None:
        """``ven_id``'s liveness, last contact or owed pushes changed."""
        self.changes.ven_rows.add(ven_id)
        self._wake.set()

    async def wait(self, timeout: float) -> bool:
        """Until something changed (True) or ``timeout`` passed (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def take(self) -> Changes:
        """What changed, now forgotten."""
        self._wake.clear()
        changes, self.changes = self.changes, Changes()
        return changes

    def close(self) -> None:
        self.closed = True
        self._wake.set()


class LiveFeed(ExchangeObserver):
    """The observer behind the dashboards, and the readings it keeps for their charts."""

    def __init__(self, readings: Readings | None = None):
        self.readings = readings or Readings()
        self._subscriptions: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def changed(self, *topics: str) -> None:
        """Tell every open stream that ``topics`` changed."""
        for subscription in self._subscriptions:
            subscription.mark(topics)

    def close(self) -> None:
        """End every open stream (the listener is stopping)."""
        for subscription in list(self._subscriptions):
            subscription.close()

    # -- the observer --------------------------------------------------------------------------

    def inbound(self, message_type: str, ven_id: str | None, outcome: str, payload: dict | None) -> None:
        if message_type == "oadrUpdateReport" and outcome == "200" and ven_id and payload is not None:
            self.readings.add(ven_id, payload)
        if not self._subscriptions:
            return
        changes = _TOPICS_OF.get(message_type)
        if changes is None:
            return
        topics, deliveries, row = changes
        if ven_id is None:                      # cannot be placed: read the topics again
            topics = (*topics, *((EVENTS,) if deliveries else ()), *((VENS,) if row else ()))
            deliveries = row = False
        for subscription in self._subscriptions:
            if topics:
                subscription.mark(topics)
            if deliveries:
                subscription.mark_deliveries(ven_id)
            if row:
                subscription.mark_ven_row(ven_id)

    def push_answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        # A distribution acknowledged changes what the VEN holds; an outbox push, what it is owed
        # (distributions are not queued: they leave the owed counts alone).
        for subscription in self._subscriptions:
            if message_type == "oadrDistributeEvent":
                subscription.mark_deliveries(ven_id)
            else:
                subscription.mark_ven_row(ven_id)

    def liveness(self, ven_id: str, state: str) -> None:
        for subscription in self._subscriptions:
            subscription.mark_ven_row(ven_id)
