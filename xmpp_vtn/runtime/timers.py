"""Everything the VTN does because time passed: event status transitions, the cadences of the
VTN's own reports, liveness rounds, and (with several instances) the sweep that takes over what a
dead instance left behind. Each job that must happen once is claimed through the cluster."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Callable

from ..services import lifecycle
from ..services.events import EventService
from ..services.reports import ReportService, subscription_owner
from ..store import XMPP, EventRecord, Store, VenRecord
from .cluster import Cluster
from .component import THERE, UNSURE, OadrComponent
from .outbox import Courier
from .presence import VenPresence
from .scheduler import Scheduler

log = logging.getLogger("xmpp_vtn")


class Timers:
    """The VTN's timed work, on one :class:`~xmpp_vtn.runtime.scheduler.Scheduler`."""

    def __init__(self, store: Store, scheduler: Scheduler, cluster: Cluster, component: OadrComponent,
                 courier: Courier, presence: VenPresence, events: EventService, reports: ReportService, *,
                 ping_interval: timedelta | None, requested_poll_freq: timedelta | None, push_timeout: float):
        self.store, self.scheduler, self.cluster, self.component = store, scheduler, cluster, component
        self.courier, self.presence, self.events, self.reports = courier, presence, events, reports
        self.ping_interval, self.requested_poll_freq, self.push_timeout = ping_interval, requested_poll_freq, push_timeout
        #: Answers a killed predecessor (or, with several instances, a dead peer) had recorded but
        #: not finished handing to the handlers, handed over since. The only ones a handler can see twice.
        self.replayed_answers = 0
        # What this instance has scheduled, so the cluster sweep only adds what others created.
        self._scheduled_events: dict[str, tuple[int, bool]] = {}
        self._scheduled_reports: set[str] = set()

    async def start(self) -> None:
        """Schedule what the store holds, start liveness rounds, replay answers a restart interrupted."""
        self.scheduler.start()
        self.schedule_stored_work()
        self._schedule_liveness()
        # Answers recorded by this instance before a restart, or by instances no longer running.
        self.replayed_answers = await self.events.replay_journal(self._journal_to_replay(starting=True))
        if self.replayed_answers:
            log.info("handed %d answers recorded before a restart to the application", self.replayed_answers)

    # -- events ------------------------------------------------------------------------------------

    def publish(self, record: EventRecord) -> str:
        """After an event changed: schedule its next transition and push it to its VENs. With
        several instances, each pushes to its share of the VENs (told through the store)."""
        self._schedule_transition(record)
        self.cluster.tell_others("events", record.event_id)
        self._wake_share(record)
        return record.event_id

    def on_event_changed(self, event_id: str) -> None:
        """Another instance changed (or moved on) ``event_id``: schedule it and push to our share."""
        # Told after the change committed, on another connection than the one that tells the
        # store's cache: read it as it is now (the events only: the registrations did not change).
        self.store.refresh(registrations=False)
        record = self.store.event(event_id)
        if record is None:
            return
        if self._scheduled_events.get(event_id) != (record.modification_number, record.cancelled):
            self._schedule_transition(record)
        self._wake_share(record)

    def _wake_share(self, record: EventRecord) -> None:
        if not self.component.connected and self.cluster.shared:
            return                                  # the others deliver; the sweep brings us back in
        self.cluster.refresh_heard()                # VENs heard since the last sweep: one read per event
        for ven_id in record.ven_ids:
            if self.cluster.takes(ven_id):
                self.courier.wake(ven_id)

    def _schedule_transition(self, record: EventRecord) -> None:
        key = f"event:{record.event_id}"
        self._scheduled_events[record.event_id] = (record.modification_number, record.cancelled)
        when = None if record.cancelled else lifecycle.next_transition(record.event["active_period"],
                                                                         self.scheduler.now())
        if when is None:
            self.scheduler.cancel(key)
        else:
            # Every instance that knows the event schedules the same instant; one of them acts.
            once = f"transition:{record.event_id}:{record.modification_number}:{when.isoformat()}"
            self.scheduler.at(when, key, lambda: self._on_transition(record.event_id, once))

    def _on_transition(self, event_id: str, once: str) -> None:
        record = self.store.event(event_id)
        if record is None:
            return
        if not self.cluster.once(once):
            self._schedule_transition(record)        # another instance acted; the next one may be ours
            return
        log.info("event %s is now %s", event_id, self.events.status(record))
        self.publish(record)

    # -- the VTN's reports -------------------------------------------------------------------------

    def schedule_report(self, key: str) -> None:
        """Send the next update of a VEN's subscription to a VTN report at its report-back time."""
        document = self.store.document("vtn_report_request", key)
        if document is None:
            self._scheduled_reports.discard(key)
            return
        self._scheduled_reports.add(key)
        specifier = document.payload["report_specifier"]
        every = specifier.get("report_back_duration") or specifier.get("granularity") or timedelta(0)
        window = specifier.get("report_interval")
        now = self.scheduler.now()
        when = now + every if every > timedelta(0) else now
        if window and window.get("duration") and when > window["dtstart"] + window["duration"]:
            return
        self.scheduler.at(when, f"vtn-report:{key}", lambda: self._send_report(key, every))

    def unschedule_report(self, key: str) -> None:
        self.scheduler.cancel(f"vtn-report:{key}")
        self._scheduled_reports.discard(key)

    def unschedule_reports_of(self, ven_id: str) -> None:
        """Stop serving every subscription of ``ven_id`` to the VTN's reports."""
        for key in [key for key in self._scheduled_reports if subscription_owner(key) == ven_id]:
            self.unschedule_report(key)

    async def _send_report(self, key: str, every: timedelta) -> None:
        repeat = every > timedelta(0)
        # One instance serves a subscription; the others take over if it stops sending.
        lease = f"vtn-report:{key}"
        if not (self.cluster.hold_across(lease, every) if repeat else self.cluster.once(lease)):
            if repeat:
                self.schedule_report(key)
            return
        try:
            push = await self.reports.update_push(key)
            ven = self.store.ven(push.ven_id) if push is not None else None
            if ven is not None:
                # A newer update replaces one the VEN has not taken yet; an old one is not worth sending.
                self.courier.queue(ven.ven_id, ven.transport_address, push, topic=key,
                                   stale_after=self.courier.quotas.quotas.stale_report_update)
        except Exception:
            log.exception("report update %s could not be produced; the next one is still scheduled", key)
        finally:
            # A failing value source costs one update, never the subscription.
            if repeat:
                self.schedule_report(key)

    # -- liveness ----------------------------------------------------------------------------------

    def _schedule_liveness(self) -> None:
        every = self.ping_interval or self.requested_poll_freq
        if every:
            self.scheduler.at(self.scheduler.now() + every, "liveness", self._liveness_round)

    async def _liveness_round(self) -> None:
        """Ping every registered VEN (bounded concurrency); a polling VEN that stopped polling is offline."""
        slots = asyncio.Semaphore(64)

        async def check(ven: VenRecord) -> None:
            async with slots:
                found = await self.component.probe(ven.transport_address, timeout=self.push_timeout)
            # A VEN that answers neither ping nor disco with more than service-unavailable is
            # there if its resource told us it is available (and has not said it left since).
            if found == THERE or (found == UNSURE and self.presence.is_present(ven.transport_address)):
                self.presence.alive(ven.ven_id)
            else:
                self.presence.ping_missed(ven.ven_id)
        # One instance pings (it holds the lease until a round after the next is due).
        leader = self.cluster.hold_across("liveness", self.ping_interval or timedelta(0))
        if self.ping_interval and self.component.connected and leader:
            # Only XMPP VENs can be pinged; simpleHTTP VENs show life by their requests and polls.
            results = await asyncio.gather(*(check(ven) for ven in self.store.vens() if ven.transport_name == XMPP),
                                           return_exceptions=True)
            for failure in [result for result in results if isinstance(result, Exception)][:1]:
                log.error("liveness check failed: %r", failure)
        try:
            if self.requested_poll_freq:
                for ven_id in self.presence.liveness.overdue_pollers(self.scheduler.now(), self.requested_poll_freq):
                    self.presence.offline(ven_id)
        finally:
            self._schedule_liveness()               # one bad round must not end liveness checks

    # -- several instances ---------------------------------------------------------------------------

    def schedule_stored_work(self) -> None:
        """Schedule transitions and report cadences found in the store that this instance has not
        scheduled yet (at start; and, with other instances, the ones they created)."""
        for record in self.store.events():
            if self._scheduled_events.get(record.event_id) != (record.modification_number, record.cancelled):
                self._schedule_transition(record)
        for document in self.store.documents("vtn_report_request"):
            if document.key not in self._scheduled_reports:
                self.schedule_report(document.key)

    async def sweep(self) -> None:
        """Every few seconds with a shared store: take over what instances that died left behind."""
        self.schedule_stored_work()
        replayed = await self.events.replay_journal(self._journal_to_replay(starting=False))
        if replayed:
            self.replayed_answers += replayed
            log.info("handed %d answers recorded by a stopped instance to the application", replayed)
        if self.component.connected:
            # Only those owed something now: with a live event every VEN is a candidate, and a
            # delivery started to each, on every instance, every sweep, costs four round trips
            # per VEN to find nothing to push.
            candidates = self.store.owed_ven_ids()
            queued = self.store.queued_ven_ids() & candidates
            for ven_id in queued | self.events.owing(candidates - queued):
                if self.cluster.sweeps(ven_id):
                    self.courier.look_again(ven_id)
        self.store.forget_expired_leases()

    def _journal_to_replay(self, starting: bool) -> Callable[[int, str], bool]:
        """Which recorded answers this instance hands to the handlers: those of instances no longer
        running and, when starting, its own from before a restart; each taken by one instance only."""
        def take(entry_id: int, owner: str) -> bool:
            ours_before_restart = starting and owner == self.cluster.instance_id
            return (ours_before_restart or not self.cluster.is_alive(owner)) and self.cluster.once(f"journal:{entry_id}")
        return take
