"""EiEvent: the VTN's events, what each VEN is owed, and the VENs' answers.

Statuses are not stored: they follow from the clock (:mod:`.lifecycle`). What is stored is, per
VEN and event, the modification and status the VEN acknowledged and its opt answer; a VEN is
owed an oadrDistributeEvent whenever what it holds differs from what is true now.
"""
from __future__ import annotations

import copy
import logging
import uuid
from xml.sax.saxutils import escape as xml_escape
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable

from .. import codec
from ..store import Delivery, EventRecord, Store, VenRecord
from . import codes, lifecycle
from .handlers import Handlers, invoke
from .outcome import Delivered, HandedOut, Outcome, Polled, Refusal, Request, Route, acknowledge, response
from .registration import new_request_id

log = logging.getLogger("xmpp_vtn.events")

Included = list[tuple[str, int, str]]          # (event_id, modification_number, status) sent to a VEN


# Stand-ins for the per-VEN parts of a distribution template: random, so no event text has them.
_REQUEST_STAND_IN = "req" + uuid.uuid4().hex
_VEN_STAND_IN = "ven" + uuid.uuid4().hex

_STATUS_ORDER = {None: -1, lifecycle.FAR: 0, lifecycle.NEAR: 1, lifecycle.ACTIVE: 2, lifecycle.COMPLETED: 3,
                 lifecycle.CANCELLED: 4}


def _stale(listed: list[tuple[EventRecord, str, Delivery]]) -> bool:
    """Whether any listed event differs from what the VEN acknowledged of it."""
    return any((delivery.delivered_modification, delivery.delivered_status) != (record.modification_number, status)
               for record, status, delivery in listed)


def _progress(modification: int | None, status: str | None) -> tuple[int, int]:
    """How far along a (modification, status) a VEN holds is; statuses only move forward."""
    return (-1 if modification is None else modification, _STATUS_ORDER.get(status, -1))


class EventService:
    """Events and their per-VEN delivery and opt state, free of I/O."""

    def __init__(self, store: Store, handlers: Handlers, vtn_id: str, now: Callable[[], datetime],
                 journal_owner: str = ""):
        self.store, self.handlers, self.vtn_id, self.now = store, handlers, vtn_id, now
        #: Written on journal entries: who hands them to the handlers (the instance's id).
        self.journal_owner = journal_owner
        # Python callables cannot be stored; they live as long as the process.
        self.callbacks: dict[str, Callable[..., Any]] = {}
        self.delivery_callbacks: dict[str, Callable[..., Any]] = {}
        self._said_callbacks_are_in_memory = False
        self._targets: dict[tuple, tuple[list[dict], frozenset[str]]] = {}
        self._templates: dict[tuple, bytes] = {}

    @property
    def routes(self) -> dict[str, Route]:
        """The EiEvent messages a registered VEN may send."""
        return {"oadrCreatedEvent": Route(self.created_event), "oadrRequestEvent": Route(self.request_event),
                "oadrPoll": Route(self.poll, unregistered=self.poll_unregistered)}

    # -- the application's side ------------------------------------------------------------------

    def add(self, event: dict, ven_ids: list[str], callback: Callable[..., Any] | None = None,
            delivery_callback: Callable[..., Any] | None = None) -> EventRecord:
        """Store a new event for ``ven_ids``. Raises ValueError if its event_id exists."""
        event_id = event["event_descriptor"]["event_id"]
        if self.store.event(event_id) is not None:
            raise ValueError(f"an event with event_id {event_id!r} exists; use modify_event to change it")
        record = EventRecord(event_id, event["event_descriptor"]["modification_number"], event, tuple(ven_ids))
        self.store.put_event(record)
        self._remember(event_id, callback, delivery_callback)
        return record

    def _remember(self, event_id: str, callback: Callable | None, delivery_callback: Callable | None) -> None:
        if (callback or delivery_callback) and self.store.durable and not self._said_callbacks_are_in_memory:
            # The event survives a restart; its callbacks cannot. Said once per VTN, not per event.
            self._said_callbacks_are_in_memory = True
            log.warning("event %s: per-event callback and delivery_callback live in this process only; after a "
                        "restart, answers to this and later events reach the on_created_event handler alone. "
                        "Handle answers in on_created_event (add_handler) to keep them across restarts. "
                        "(Said once.)", event_id)
        if callback is not None:
            self.callbacks[event_id] = callback
        if delivery_callback is not None:
            self.delivery_callbacks[event_id] = delivery_callback

    def replace(self, event_id: str, event: dict, ven_ids: list[str] | None = None, reason: str | None = None
                ) -> EventRecord:
        """A new modification of ``event_id``: the modification number goes up by one."""
        current = self.existing(event_id)
        if current.cancelled:
            raise ValueError(f"event {event_id!r} is cancelled and cannot be modified")
        event = copy.deepcopy(event)
        descriptor = event["event_descriptor"]
        descriptor.update(event_id=event_id, modification_number=current.modification_number + 1,
                          created_date_time=current.event["event_descriptor"]["created_date_time"],
                          modification_date_time=self.now())
        if reason:
            descriptor["modification_reason"] = reason
        record = EventRecord(event_id, current.modification_number + 1, event,
                             tuple(ven_ids) if ven_ids is not None else current.ven_ids)
        self.store.put_event(record)
        return record

    def cancel(self, event_id: str) -> EventRecord:
        """Cancel ``event_id``: a new modification with status cancelled."""
        current = self.existing(event_id)
        if current.cancelled:
            return current
        event = copy.deepcopy(current.event)
        event["event_descriptor"].update(modification_number=current.modification_number + 1,
                                         modification_date_time=self.now())
        record = replace(current, modification_number=current.modification_number + 1, event=event, cancelled=True)
        self.store.put_event(record)
        return record

    def existing(self, event_id: str) -> EventRecord:
        record = self.store.event(event_id)
        if record is None:
            raise KeyError(f"no event with event_id {event_id!r}")
        return record

    def status(self, record: EventRecord) -> str:
        return lifecycle.status_at(record.event["active_period"], self.now(), record.cancelled)

    # -- what VENs are owed ----------------------------------------------------------------------

    def _listed(self, ven_id: str, deliveries: dict[str, Delivery] | None = None
                ) -> list[tuple[EventRecord, str, Delivery]]:
        """The events ``ven_id``'s event list holds now, with their status and its delivery row
        (from ``deliveries``, event_id -> row, when given)."""
        if deliveries is None:
            deliveries = {d.event_id: d for d in self.store.deliveries(ven_id=ven_id)}
        now, listed = self.now(), []
        for record in self.store.events(ven_id):
            status = lifecycle.status_at(record.event["active_period"], now, record.cancelled)
            # A row missing from rows read a moment before the events: nothing acknowledged yet.
            delivery = deliveries.get(record.event_id) or Delivery(record.event_id, ven_id)
            _, end = lifecycle.bounds(record.event["active_period"])
            told = (delivery.delivered_modification, delivery.delivered_status) == (record.modification_number,
                                                                                    status)
            if status in lifecycle.LIVE:
                listed.append((record, status, delivery))
            elif status == lifecycle.CANCELLED and (now < end if end is not None else not told):
                # Listed as cancelled until its scheduled end; an open-ended one until the VEN has it.
                listed.append((record, status, delivery))
            elif delivery.delivered_modification is not None and delivery.delivered_status in lifecycle.LIVE:
                # Completed (or cancelled and past): told once to a VEN that holds it as live, then dropped.
                listed.append((record, status, delivery))
        return listed

    def owing(self, ven_ids: set[str]) -> set[str]:
        """Those of ``ven_ids`` owed an oadrDistributeEvent now (their event list differs from what
        they acknowledged), from one read of every delivery row: a sweep over every VEN asks this
        instead of starting a delivery to each."""
        rows: dict[str, dict[str, Delivery]] = {}
        for delivery in self.store.deliveries():
            rows.setdefault(delivery.ven_id, {})[delivery.event_id] = delivery
        return {ven_id for ven_id in ven_ids if _stale(self._listed(ven_id, rows.get(ven_id, {})))}

    def distribution(self, ven_id: str, only_if_owed: bool = True, limit: int | None = None
                     ) -> tuple[dict, Included] | None:
        """The oadrDistributeEvent for ``ven_id`` (all its listed events, statuses as of now) and
        what it includes; None when ``only_if_owed`` and the VEN is up to date."""
        listed = self._listed(ven_id)
        if only_if_owed and not _stale(listed):
            return None
        listed = listed[:limit] if limit else listed
        events = [self._as_sent(record, status, ven_id) for record, status, _ in listed]
        payload = {"request_id": new_request_id(), "vtn_id": self.vtn_id, "events": events}
        return payload, [(r.event_id, r.modification_number, s) for r, s, _ in listed]

    def distribution_document(self, ven_id: str, deliveries: list[Delivery] | None = None
                              ) -> tuple[bytes, Included] | None:
        """:meth:`distribution` for a push, serialized: the bytes to send and what they include;
        from ``deliveries`` (``ven_id``'s delivery rows, just read) when given.

        In a fan-out every VEN gets the same events, differing only in the requestID and its own
        venID target. The document is built and validated once per event state, with stand-ins
        for those two, and each VEN's copy is a byte substitution: building and validating per
        VEN was the largest OpenADR cost of a fan-out.
        """
        listed = self._listed(ven_id, None if deliveries is None else {d.event_id: d for d in deliveries})
        if not _stale(listed):
            return None
        key = tuple((r.event_id, r.modification_number, s, id(r.event), ven_id in self._split_targets(r)[1])
                    for r, s, _ in listed)
        template = self._templates.get(key)
        if template is None:
            events = [self._as_sent(record, status, ven_id, shown_as=_VEN_STAND_IN) for record, status, _ in listed]
            template = codec.serialize("oadrDistributeEvent", {"request_id": _REQUEST_STAND_IN,
                                                               "vtn_id": self.vtn_id, "events": events})
            if len(self._templates) > 256:
                self._templates.clear()
            self._templates[key] = template
        document = template.replace(_REQUEST_STAND_IN.encode(), new_request_id().encode()).replace(
            _VEN_STAND_IN.encode(), xml_escape(ven_id).encode("utf-8"))
        return document, [(r.event_id, r.modification_number, s) for r, s, _ in listed]

    def _as_sent(self, record: EventRecord, status: str, ven_id: str, shown_as: str | None = None) -> dict:
        """The event as ``ven_id`` receives it (its own id written as ``shown_as`` when given)."""
        event = dict(record.event)
        event["event_descriptor"] = {**record.event["event_descriptor"], "event_status": status}
        others, addressed = self._split_targets(record)
        if addressed:
            # A VEN sees itself among the targets, never the other VENs' ids.
            event["targets"] = others + ([{"ven_id": shown_as or ven_id}] if ven_id in addressed else [])
            event.pop("targets_by_type", None)
        return event

    def _split_targets(self, record: EventRecord) -> tuple[list[dict], frozenset[str]]:
        """(targets that are not venIDs, the venIDs targeted), worked out once per modification:
        a 1,000-VEN event would otherwise cost a million comparisons per fan-out."""
        key = (record.event_id, record.modification_number, id(record.event))
        found = self._targets.get(key)
        if found is None:
            targets = record.event.get("targets") or []
            found = ([target for target in targets if set(target) != {"ven_id"}],
                     frozenset(target["ven_id"] for target in targets if set(target) == {"ven_id"}))
            if len(self._targets) > 256:
                self._targets.clear()
            self._targets[key] = found
        return found

    def acknowledged(self, ven_id: str, included: Included) -> list[str]:
        """``ven_id`` acknowledged a distribution; returns the events it now holds a new modification of.

        Never moves backwards: an older push acknowledged after a newer pull changes nothing.
        """
        # The store compares with what is recorded as it writes: no read first, and of two
        # instances recording the same acknowledgement only one learns that it is new.
        return self.store.mark_delivered(ven_id, list(included))

    async def acknowledged_async(self, ven_id: str, included: Included) -> list[str]:
        """:meth:`acknowledged` for the event loop: recorded with the other acknowledgements of its
        loop turn (one statement for a fan-out's burst of them, in a shared store)."""
        return await self.store.mark_delivered_async(ven_id, list(included))

    async def run_callback(self, ven_id: str, event_id: str, opt_type: str | None) -> None:
        """The event's ``callback(ven_id, event_id, opt_type)``, sync or async; a failure is logged."""
        callback = self.callbacks.get(event_id)
        if callback is None:
            return
        try:
            await invoke(callback, ven_id, event_id, opt_type)
        except Exception:
            log.exception("callback of event %s failed for venID %s (%s)", event_id, ven_id, opt_type)

    # -- requests from VENs ----------------------------------------------------------------------

    async def created_event(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCreatedEvent: the VEN's opt answers. All are checked before anything is recorded."""
        answers = request.payload.get("event_responses") or []
        checked = []
        for answer in answers:
            record = self.store.event(answer["event_id"])
            if record is None or not record.is_for(ven.ven_id) or \
                    answer["modification_number"] != record.modification_number:
                # Before refusing: another instance may have added or changed the event just now.
                self.store.refresh(registrations=False)
                record = self.store.event(answer["event_id"])
            if record is None:
                raise Refusal(codes.INVALID_ID, f"no event {answer['event_id']}")
            if not record.is_for(ven.ven_id):
                raise Refusal(codes.TARGET_MISMATCH, f"event {record.event_id} is not for venID {ven.ven_id}")
            if answer["modification_number"] < record.modification_number:
                raise Refusal(codes.OUT_OF_SEQUENCE, f"event {record.event_id} modification "
                              f"{answer['modification_number']} is stale; current is {record.modification_number}")
            if answer["modification_number"] > record.modification_number:
                raise Refusal(codes.INVALID_ID, f"event {record.event_id} has no modification "
                              f"{answer['modification_number']}")
            checked.append((record, answer))
        answered = [(record.event_id, answer.get("opt_type"), answer["modification_number"])
                    for record, answer in checked]
        # Recorded first, with a journal entry in the same transaction, so that a VTN killed while
        # the handlers run calls them on its next start instead of losing the answer.
        entry, held = await self.store.record_answers_async(
            ven.ven_id, answered, journal=request.document or codec.serialize("oadrCreatedEvent", request.payload),
            owner=self.journal_owner)
        if entry is None:
            # A resend of answers already recorded (the VEN got no reply): not news to anyone.
            return acknowledge(request, ven.ven_id)
        fresh = [(record, answer) for record, answer in checked
                 if held.get(record.event_id) != (answer.get("opt_type"), answer["modification_number"])]
        # Durable before any handler sees it: a VTN killed from here on hands the answer over on
        # its next start (counted as replayed), and one killed before never showed it to anyone.
        await self.store.committed()
        try:
            await self.handlers.call("on_created_event", request.payload)
        except Exception:
            # The application refused it (469): put the opt state back as it was.
            self.store.restore_opt(ven.ven_id, [(event_id, *held.get(event_id, (None, None)))
                                                for event_id, _, _ in answered], answered)
            self.store.journal_done(entry)
            raise
        for record, answer in fresh:                   # a repeated answer does not fire twice
            await self.run_callback(ven.ven_id, record.event_id, answer.get("opt_type"))
        self.store.journal_done(entry)
        return acknowledge(request, ven.ven_id)

    async def replay_journal(self, take: Callable[[int, str], bool] = lambda entry_id, owner: True) -> int:
        """Run the handlers for answers a process recorded but did not finish handing to the
        application (it was killed); ``take(entry_id, owner)`` picks which. Returns how many."""
        entries = [entry for entry in self.store.journal() if take(entry[0], entry[3])]
        for entry_id, ven_id, document, _owner in entries:
            payload = codec.parse(document)[1]
            try:
                await self.handlers.call("on_created_event", payload)
            except Exception:
                log.exception("on_created_event failed replaying an answer from venID %s", ven_id)
            for answer in payload.get("event_responses") or []:
                await self.run_callback(ven_id, answer["event_id"], answer.get("opt_type"))
            self.store.journal_done(entry_id)
        return len(entries)

    async def request_event(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrRequestEvent: the application's ``on_request_event`` answer, or the VTN's events."""
        if "on_request_event" in self.handlers:
            result = await self.handlers.call("on_request_event", ven.ven_id)
            return Outcome(self._application_answer(result, request, ven))
        found = self.distribution(ven.ven_id, only_if_owed=False, limit=request.payload.get("reply_limit"))
        payload, included = found
        payload["request_id"] = request.request_id
        payload["response"] = response(codes.OK, request.request_id)
        return Outcome(("oadrDistributeEvent", payload), (Delivered(ven.ven_id, included),))

    async def poll(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrPoll: ``on_poll``'s answer, or the next message owed to the VEN, or an empty oadrResponse."""
        polled = Polled(ven.ven_id)
        if "on_poll" in self.handlers:
            result = await self.handlers.call("on_poll", ven.ven_id)
            return Outcome(self._application_answer(result, request, ven), (polled,))
        if ven.pulls:
            # What a pushed VEN gets from the outbox, in the same order: one item per poll.
            owed = self.store.outbox(ven.ven_id)
            if owed:
                item = owed[0]
                return Outcome((item.message_type, item.document),
                               (polled, HandedOut(ven.ven_id, item.item_id, item.message_type)))
        # The same document a push carries, from the template of this event state: building each
        # poller's distribution in full was most of the cost of serving a polling fleet.
        found = self.distribution_document(ven.ven_id)
        if found is None:
            return Outcome(("oadrResponse", {"response": response(codes.OK, None), "ven_id": ven.ven_id}), (polled,))
        document, included = found
        return Outcome(("oadrDistributeEvent", document), (polled, Delivered(ven.ven_id, included)))

    async def poll_unregistered(self, request: Request) -> Outcome | None:
        """oadrPoll from a VEN without a registration: the VTN's oadrCancelPartyRegistration still
        owed to it, else None (refused as any unregistered sender)."""
        claimed = request.payload.get("ven_id")
        for item in self.store.outbox():
            # Owed to this very sender (its identity is the address of a VEN that pulls).
            if item.to == request.bare_jid and claimed in (None, item.ven_id) and \
                    item.message_type == "oadrCancelPartyRegistration":
                return Outcome((item.message_type, item.document), (HandedOut(item.ven_id, item.item_id,
                                                                              item.message_type),))
        return None

    def _application_answer(self, result: Any, request: Request, ven: VenRecord) -> tuple[str, dict]:
        """What a pull handler returned, as a message: None -> empty oadrResponse (the seed's rule);
        (message_type, payload) as is; an event or list of events -> oadrDistributeEvent."""
        if result is None:
            return "oadrResponse", {"response": response(codes.OK, request.request_id), "ven_id": ven.ven_id}
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], str):
            return result
        events = result if isinstance(result, list) else [result]
        return "oadrDistributeEvent", {"response": response(codes.OK, request.request_id),
                                       "request_id": request.request_id or new_request_id(),
                                       "vtn_id": self.vtn_id, "events": events}


