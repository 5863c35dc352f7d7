"""Route an inbound OpenADR message to its service, enforcing who may say what.

The dispatcher is where the venID binding is checked, so no service can forget it, and where a
refusal or a failing handler becomes the OpenADR answer the VEN receives.
"""
from __future__ import annotations

import asyncio
import logging

from ..store import Store, VenRecord
from . import codes
from .outcome import NotImplementedService, Outcome, Refusal, Request, Route, response

log = logging.getLogger("xmpp_vtn")

# Only a VTN sends these; from a VEN they are out of place.
VTN_ONLY = frozenset({"oadrDistributeEvent", "oadrCreatedPartyRegistration", "oadrRequestReregistration",
                      "oadrCreatedOpt", "oadrCanceledOpt"})


class Dispatcher:
    """Turns (sender, message type, payload) into an :class:`Outcome`, never raising for a VEN's mistake.

    Each service publishes its own route table (a ``routes`` mapping of message type to
    :class:`Route`); the dispatcher collects them, so a message type is routed in one place.

    >>> dispatcher = Dispatcher(store, registration, events, reports, opts)      # doctest: +SKIP
    >>> outcome = await dispatcher.handle(Request("ven1@grid/oadr", "oadrQueryRegistration",
    ...                                           {"request_id": "r1"}))   # doctest: +SKIP
    """

    def __init__(self, store: Store, *services: object):
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}
        # An oadrResponse from a VEN closes an exchange the VTN started: nothing to answer.
        self._routes: dict[str, Route] = {"oadrResponse": Route(_nothing_to_answer)}
        for service in services:
            for message_type, route in service.routes.items():
                if message_type in self._routes:
                    raise ValueError(f"{message_type} is routed twice")
                self._routes[message_type] = route

    async def handle(self, request: Request) -> Outcome:
        """The answer to ``request``: the service's, or a refusal carrying the OpenADR code.

        One account's requests are handled one at a time, in order: a handler awaiting something
        never sees its account's registration change underneath it.
        Raises :class:`NotImplementedService` for messages of a service this VTN does not offer.
        """
        account = request.bare_jid
        lock = self._locks.setdefault(account, asyncio.Lock())
        try:
            async with lock:
                return await self._handle(request)
        finally:
            if not lock.locked() and self._locks.get(account) is lock:
                del self._locks[account]

    async def _handle(self, request: Request) -> Outcome:
        ven_id = request.payload.get("ven_id")
        route = self._routes.get(request.message_type)
        try:
            if request.message_type in VTN_ONLY:
                raise Refusal(codes.NOT_ALLOWED, f"{request.message_type} is sent by a VTN, not to one")
            if route is None:
                raise NotImplementedService(f"{request.message_type} is not served by this VTN")
            if not route.bound:
                return await route.handler(request)
            try:
                ven = self.speaker(request)
            except Refusal:
                found = await route.unregistered(request) if route.unregistered is not None else None
                if found is None:
                    raise
                return found
            ven_id = ven.ven_id
            return await route.handler(request, ven)
        except Refusal as refusal:
            log.info("refused %s from %s (venID %s): %s", request.message_type, request.sender, ven_id, refusal)
            return self._refusal(request, route, refusal)
        except NotImplementedService:
            raise
        except Exception:
            # A failing handler must not take the component down, nor leave the VEN waiting.
            log.exception("handling %s from venID %s (%s) failed", request.message_type, ven_id, request.sender)
            return self._refusal(request, route, Refusal(codes.DEPLOYMENT_ERROR_OR_OTHER,
                                                         f"the VTN could not process {request.message_type}"))

    def speaker(self, request: Request) -> VenRecord:
        """The registration the sender speaks for, or a :class:`Refusal` (463 or 452)."""
        ven = self.store.ven_by_jid(request.bare_jid)
        claimed = request.payload.get("ven_id")
        if ven is not None and claimed is not None and claimed != ven.ven_id:
            # Before refusing: the VEN may have registered anew through another instance just now
            # (a store keeps no absent registration, so a None was read from the store itself).
            self.store.refresh(events=False, account=request.bare_jid)
            ven = self.store.ven_by_jid(request.bare_jid)
        if ven is None:
            if claimed is not None and self.store.ven(claimed) is not None:
                log.warning("%s claimed venID %s, which belongs to another account", request.sender, claimed)
            raise Refusal(codes.NOT_REGISTERED_OR_AUTHORIZED, f"{request.bare_jid} is not registered")
        if claimed is not None and claimed != ven.ven_id:
            if self.store.ven(claimed) is not None:
                log.warning("%s (venID %s) claimed venID %s, which belongs to another account",
                            request.sender, ven.ven_id, claimed)
            # One answer whether the venID exists or not: a VEN must not learn which do.
            raise Refusal(codes.NOT_REGISTERED_OR_AUTHORIZED, f"venID {claimed} is not this account's venID")
        return ven

    @staticmethod
    def _refusal(request: Request, route: Route | None, refusal: Refusal) -> Outcome:
        answer_type = route.answer_type if route is not None else "oadrResponse"
        if route is not None and route.refusal_fields is not None:
            payload = route.refusal_fields(request.request_id)
        else:
            payload = {key: request.payload[key] for key in _ECHOED if request.payload.get(key) is not None}
            for key, value in _REQUIRED_IN_ANSWER.get(answer_type, {}).items():
                payload.setdefault(key, value)
        payload["response"] = response(refusal.code, request.request_id, refusal.description)
        payload.update(refusal.answer_fields)
        return Outcome((answer_type, payload), refused=True)


# Identifiers a refusal repeats from the request, so the VEN can match it up.
_ECHOED = ("ven_id", "opt_id", "registration_id")
# Elements the schema requires in an answer even when it refuses.
_REQUIRED_IN_ANSWER = {"oadrCreatedReport": {"pending_reports": []}, "oadrCanceledReport": {"pending_reports": []},
                       "oadrCreatedOpt": {"opt_id": ""}, "oadrCanceledOpt": {"opt_id": ""}}


async def _nothing_to_answer(request: Request, ven: VenRecord) -> Outcome:
    """An oadrResponse from a VEN: the iq result is all the answer it gets."""
    return Outcome(None)
