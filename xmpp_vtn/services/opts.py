"""EiOpt: a VEN's opt schedules (availability windows, opt-outs tied to an event), free of I/O.

An opt tied to an event updates the same per-VEN opt state an oadrCreatedEvent answer does, so
``events()`` shows one truth whichever way the VEN said it.
"""
from __future__ import annotations

import logging

from ..store import Document, Store, VenRecord
from . import codes
from .events import EventService
from .handlers import Handlers
from .outcome import Outcome, Refusal, Request, Route, response

log = logging.getLogger("xmpp_vtn.opts")

OPT = "opt"


class OptService:
    """oadrCreateOpt and oadrCancelOpt from VENs, and the schedules they leave."""

    def __init__(self, store: Store, handlers: Handlers, events: EventService):
        self.store, self.handlers, self.events = store, handlers, events

    @property
    def routes(self) -> dict[str, Route]:
        """The EiOpt messages a registered VEN may send."""
        return {"oadrCreateOpt": Route(self.create, "oadrCreatedOpt"),
                "oadrCancelOpt": Route(self.cancel, "oadrCanceledOpt")}

    async def create(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCreateOpt -> ``on_create_opt(payload)`` -> oadrCreatedOpt; the schedule is stored."""
        payload = request.payload
        opt_id = payload["opt_id"]
        existing = self.store.document(OPT, opt_id)
        if existing is not None and existing.ven_id != ven.ven_id:
            raise Refusal(codes.INVALID_ID, f"optID {opt_id} is taken", opt_id=opt_id)
        event_opt = None
        if payload.get("event_id"):
            record = self.store.event(payload["event_id"])
            if record is None:
                raise Refusal(codes.INVALID_ID, f"no event {payload['event_id']}", opt_id=opt_id)
            if ven.ven_id not in record.ven_ids:
                raise Refusal(codes.TARGET_MISMATCH, f"event {record.event_id} is not for venID {ven.ven_id}",
                              opt_id=opt_id)
            modification = payload.get("modification_number", record.modification_number)
            if modification != record.modification_number:
                raise Refusal(codes.OUT_OF_SEQUENCE, f"event {record.event_id} is at modification "
                              f"{record.modification_number}, not {modification}", opt_id=opt_id)
            event_opt = (record.event_id, payload["opt_type"], modification)
        elif not (payload.get("vavailability") or {}).get("components"):
            raise Refusal(codes.INVALID_DATA, "an opt needs an eventID or availability windows (vavailability)",
                          opt_id=opt_id)
        await self.handlers.call("on_create_opt", payload)      # raising here refuses (469), nothing stored
        self.store.put_document(Document(OPT, opt_id, ven.ven_id, payload, "active"))
        if event_opt is not None:
            self.store.set_opt(ven.ven_id, [event_opt])
            await self.events.run_callback(ven.ven_id, event_opt[0], event_opt[1])
        log.info("venID %s %s: opt %s", ven.ven_id, payload["opt_type"], opt_id)
        return Outcome(("oadrCreatedOpt", {"response": response(codes.OK, request.request_id), "opt_id": opt_id}))

    async def cancel(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCancelOpt -> ``on_cancel_opt(payload)`` -> oadrCanceledOpt; the schedule is gone."""
        opt_id = request.payload["opt_id"]
        document = self.store.document(OPT, opt_id)
        if document is None or document.ven_id != ven.ven_id:
            raise Refusal(codes.INVALID_ID, f"no opt {opt_id} from this VEN", opt_id=opt_id)
        await self.handlers.call("on_cancel_opt", request.payload)
        self.store.remove_document(OPT, opt_id)
        return Outcome(("oadrCanceledOpt", {"response": response(codes.OK, request.request_id), "opt_id": opt_id}))

    def forget(self, ven_id: str) -> None:
        """A VEN's registration is gone: so are its opt schedules."""
        for document in self.store.documents(OPT, ven_id):
            self.store.remove_document(OPT, document.key)

    def opts(self, ven_id: str | None = None) -> list[dict]:
        """The opt schedules in force (``ven_id``'s only, when given), as the VENs sent them."""
        return [document.payload for document in self.store.documents(OPT, ven_id)]
