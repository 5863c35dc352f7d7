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
from .quotas import QuotaGuard

log = logging.getLogger("xmpp_vtn.opts")

OPT = "opt"


def opt_key(ven_id: str, opt_id: str) -> str:
    """Where a VEN's opt is kept: optIDs are each VEN's own to choose, so another VEN can neither
    take nor probe them."""
    return f"{ven_id}\x1f{opt_id}"


class OptService:
    """oadrCreateOpt and oadrCancelOpt from VENs, and the schedules they leave."""

    def __init__(self, store: Store, handlers: Handlers, events: EventService, quotas: QuotaGuard | None = None):
        self.store, self.handlers, self.events = store, handlers, events
        self.quotas = quotas or QuotaGuard()

    def _find(self, ven_id: str, opt_id: str) -> Document | None:
        found = self.store.document(OPT, opt_key(ven_id, opt_id))
        if found is None:
            legacy = self.store.document(OPT, opt_id)      # kept before optIDs were scoped per VEN
            if legacy is not None and legacy.ven_id == ven_id:
                return legacy
        return found

    @property
    def routes(self) -> dict[str, Route]:
        """The EiOpt messages a registered VEN may send."""
        return {"oadrCreateOpt": Route(self.create, "oadrCreatedOpt"),
                "oadrCancelOpt": Route(self.cancel, "oadrCanceledOpt")}

    async def create(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCreateOpt -> ``on_create_opt(payload)`` -> oadrCreatedOpt; the schedule is stored."""
        payload = request.payload
        opt_id = payload["opt_id"]
        existing = self._find(ven.ven_id, opt_id)
        limits = self.quotas.quotas
        size = len(request.document) if request.document is not None else 0
        self.quotas.check("opt_bytes", request.bare_jid, size, limits.opt_bytes, "bytes in one oadrCreateOpt",
                          opt_id=opt_id)
        if existing is None:
            self.quotas.check("opts_per_ven", request.bare_jid, len(self.store.document_keys(OPT, ven.ven_id)) + 1,
                              limits.opts_per_ven, "opt schedules in force", opt_id=opt_id)
        event_opt = None
        if payload.get("event_id"):
            record = self.store.event(payload["event_id"])
            if record is None:
                raise Refusal(codes.INVALID_ID, f"no event {payload['event_id']}", opt_id=opt_id)
            if not record.is_for(ven.ven_id):
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
        key = existing.key if existing is not None else opt_key(ven.ven_id, opt_id)
        self.store.put_document(Document(OPT, key, ven.ven_id, payload, "active"))
        if event_opt is not None:
            self.store.set_opt(ven.ven_id, [event_opt])
            await self.events.run_callback(ven.ven_id, event_opt[0], event_opt[1])
        log.info("venID %s %s: opt %s", ven.ven_id, payload["opt_type"], opt_id)
        return Outcome(("oadrCreatedOpt", {"response": response(codes.OK, request.request_id), "opt_id": opt_id}))

    async def cancel(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCancelOpt -> ``on_cancel_opt(payload)`` -> oadrCanceledOpt; the schedule is gone."""
        opt_id = request.payload["opt_id"]
        document = self._find(ven.ven_id, opt_id)
        if document is None:
            raise Refusal(codes.INVALID_ID, f"no opt {opt_id} from this VEN", opt_id=opt_id)
        await self.handlers.call("on_cancel_opt", request.payload)
        self.store.remove_document(OPT, document.key)
        return Outcome(("oadrCanceledOpt", {"response": response(codes.OK, request.request_id), "opt_id": opt_id}))

    def opts(self, ven_id: str | None = None) -> list[dict]:
        """The opt schedules in force (``ven_id``'s only, when given), as the VENs sent them."""
        return [document.payload for document in self.store.documents(OPT, ven_id)]
