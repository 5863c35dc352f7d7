"""The one place where the effects a service returns (:mod:`xmpp_vtn.services.outcome`) become
I/O: deliveries woken, pushes queued, timers set or cancelled, state forgotten."""
from __future__ import annotations

import logging

from ..services import Delivered, Effect, Forget, HandedOut, Polled, Registered, ScheduleReport, UnscheduleReport
from ..services.events import EventService, Included
from ..services.handlers import invoke
from ..services.opts import OptService
from ..services.reports import ReportService, subscription_owner
from ..store import Store
from .outbox import Courier
from .presence import VenPresence
from .timers import Timers

log = logging.getLogger("xmpp_vtn")


class EventAcknowledgements:
    """A VEN holds new event state (its push acknowledged, or a pull answered): record it and call
    each event's ``delivery_callback`` for a new modification."""

    def __init__(self, events: EventService):
        self.events = events

    async def __call__(self, ven_id: str, included: Included) -> None:
        news = await self.events.acknowledged_async(ven_id, included)
        await self.events.store.committed()          # told only once the delivery is recorded
        for event_id in news:
            callback = self.events.delivery_callbacks.get(event_id)
            if callback is not None:
                try:
                    await invoke(callback, ven_id, event_id)
                except Exception:
                    log.exception("delivery_callback of event %s failed for venID %s", event_id, ven_id)


class EffectRunner:
    """Carries out a service's effects, in the order the service listed them."""

    def __init__(self, store: Store, courier: Courier, timers: Timers, presence: VenPresence,
                 acknowledgements: EventAcknowledgements, reports: ReportService, opts: OptService):
        self.store, self.courier, self.timers, self.presence = store, courier, timers, presence
        self.acknowledgements, self.reports, self.opts = acknowledgements, reports, opts

    async def apply(self, effects: tuple[Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, Delivered):
                await self.acknowledgements(effect.ven_id, effect.included)
            elif isinstance(effect, ScheduleReport):
                self.timers.schedule_report(effect.key)
            elif isinstance(effect, UnscheduleReport):
                self.timers.unschedule_report(effect.key)
                # Updates still queued for a cancelled subscription are not owed any more.
                self.store.dequeue_topic(subscription_owner(effect.key), effect.key)
            elif isinstance(effect, Forget):
                self.forget(effect.ven_id)
            elif isinstance(effect, Registered):
                self.courier.wake(effect.ven_id)
                self.offer_reports(effect.ven_id)
            elif isinstance(effect, HandedOut):
                self.courier.handed_out(effect.ven_id, effect.item_id, effect.message_type)
            elif isinstance(effect, Polled):
                pass                                # read by the inbound pipeline (liveness of pollers)
            else:
                raise TypeError(f"unknown effect {effect!r}")

    def forget(self, ven_id: str) -> None:
        """A registration is gone: everything it owned is purged from the store in one transaction
        (a no-op when its service already did), and what this process keeps of it goes too: report
        schedules, reading callbacks, the courier's backoff, liveness."""
        self.store.purge_ven(ven_id)
        self.timers.unschedule_reports_of(ven_id)
        self.reports.forget(ven_id)
        self.courier.forget(ven_id)
        self.presence.forget(ven_id)
        self.courier.forget_polled(ven_id)

    def offer_reports(self, ven_id: str) -> None:
        """After a registration: push the VTN's oadrRegisterReport (empty when it offers nothing)."""
        ven = self.store.ven(ven_id)
        if ven is not None:
            self.courier.queue(ven_id, ven.transport_address, self.reports.register_push(ven_id))
