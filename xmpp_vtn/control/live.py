"""What changed, for the dashboards watching: the exchange observer marks topics dirty, and each
open event stream (``/api/stream``) sends the new state of its dirty topics shortly after.

Marking costs one set insertion per open stream, and nothing when nobody watches. A stream
waits :data:`COALESCE_SECONDS` after the first change before it reads the store, and longer when
its updates are large (:data:`PACING`), so a fan-out to a thousand VENs costs about one read a
second per dashboard, not one per answer. Changes made
through another instance of a cluster reach this one's dashboards with the periodic refresh
(:data:`REFRESH_SECONDS`).
"""
from __future__ import annotations

import asyncio

from ..runtime.observer import ExchangeObserver
from .readings import Readings

VENS, EVENTS, REPORTS, OPTS = "vens", "events", "reports", "opts"
TOPICS = (VENS, EVENTS, REPORTS, OPTS)
COALESCE_SECONDS = 0.1
REFRESH_SECONDS = 5.0
#: A stream waits this many times as long as its last update took to build before it builds the
#: next: a dashboard costs the VTN at most about 1% of a core however large the VTN (a small
#: one updates every 0.1 s; a fan-out to thousands of VENs, about once a second).
PACING = 100

# What a VEN's request may change, by its message type.
_TOPICS_OF = {
    "oadrCreatedEvent": (EVENTS,),
    "oadrCreateOpt": (OPTS, EVENTS), "oadrCancelOpt": (OPTS,),
    "oadrCreatePartyRegistration": (VENS,), "oadrCancelPartyRegistration": (VENS, EVENTS),
    "oadrRegisterReport": (REPORTS,), "oadrCreatedReport": (REPORTS,), "oadrUpdateReport": (REPORTS,),
    "oadrRegisteredReport": (REPORTS,), "oadrCreateReport": (REPORTS,), "oadrCancelReport": (REPORTS,),
    "oadrRequestEvent": (EVENTS,), "oadrPoll": (EVENTS, VENS),
}


class Subscription:
    """One open stream: the topics changed since it last sent, and a wake-up."""

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.closed = False
        self._wake = asyncio.Event()

    def mark(self, topics: tuple[str, ...]) -> None:
        self.dirty.update(topics)
        self._wake.set()

    async def wait(self, timeout: float) -> bool:
        """Until something changed (True) or ``timeout`` passed (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def take(self) -> set[str]:
        """The dirty topics, now clean."""
        self._wake.clear()
        dirty, self.dirty = self.dirty, set()
        return dirty

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
        if self._subscriptions:
            topics = _TOPICS_OF.get(message_type)
            if topics:
                self.changed(*topics)

    def push_answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        if self._subscriptions:
            # A distribution acknowledged changes what the VEN holds; an outbox push, what it is owed
            # (distributions are not queued: they leave the owed counts alone).
            self.changed(EVENTS) if message_type == "oadrDistributeEvent" else self.changed(VENS)

    def liveness(self, ven_id: str, state: str) -> None:
        if self._subscriptions:
            self.changed(VENS)
