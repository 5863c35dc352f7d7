"""EiRegisterParty: query, create, re-register and cancel, in both directions.

A venID is bound to the bare JID that registered it. The XMPP server has authenticated that JID,
so the binding is what lets the VTN refuse a VEN speaking for another. A simpleHTTP VEN is bound
the same way to its sender identity (its TLS client certificate's fingerprint).
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from slixmpp.jid import JID, InvalidJID

from ..store import SIMPLE_HTTP, XMPP, Store, VenRecord
from . import codes
from .handlers import Handlers
from .outcome import Forget, Outcome, Push, Refusal, Registered, Request, Route, acknowledge, response

log = logging.getLogger("xmpp_vtn.registration")

PROFILE = "2.0b"
TRANSPORT = XMPP


class RegistrationService:
    """The VTN side of EiRegisterParty, free of I/O: requests in, :class:`Outcome` out."""

    def __init__(self, store: Store, handlers: Handlers, vtn_id: str,
                 requested_poll_freq: timedelta | None = None, transports: tuple[str, ...] = (TRANSPORT,)):
        self.store, self.handlers, self.vtn_id = store, handlers, vtn_id
        self.requested_poll_freq = requested_poll_freq
        #: The OpenADR transports this VTN serves, as offered in oadrCreatedPartyRegistration.
        self.transports = transports

    @property
    def routes(self) -> dict[str, Route]:
        """The messages this service serves. Registration comes from VENs that are not (yet, or any
        longer) registered, so most routes are unbound; a refused query or create still says what
        this VTN offers, so the VEN learns how it could register."""
        offer = lambda request_id: self.created_answer(request_id)[1]      # noqa: E731
        return {
            "oadrQueryRegistration": Route(self.query, "oadrCreatedPartyRegistration", False, offer),
            "oadrCreatePartyRegistration": Route(self.create, "oadrCreatedPartyRegistration", False, offer),
            "oadrCanceledPartyRegistration": Route(self.canceled, bound=False),
            "oadrCancelPartyRegistration": Route(self.cancel, "oadrCanceledPartyRegistration"),
        }

    def created_answer(self, request_id: str | None, **ids: str | None) -> tuple[str, dict]:
        """The oadrCreatedPartyRegistration this VTN answers with: its profile, transport and ``ids``."""
        payload = {"response": response(codes.OK, request_id), "vtn_id": self.vtn_id,
                   "profiles": [{"profile_name": PROFILE,
                                 "transports": [{"transport_name": name} for name in self.transports]}],
                   **{key: value for key, value in ids.items() if value is not None}}
        if self.requested_poll_freq is not None:
            payload["requested_oadr_poll_freq"] = self.requested_poll_freq
        return "oadrCreatedPartyRegistration", payload

    async def query(self, request: Request) -> Outcome:
        """oadrQueryRegistration: what this VTN offers (2.0b over its transports); no registration is made.

        A VEN that is registered also gets its venID and registrationID back (the schema's rule).
        ``on_query_registration(payload)`` is told; its return value is not used.
        """
        await self.handlers.call("on_query_registration", request.payload)
        # Decided on the account's registration as it is now, whichever instance changed it last.
        self.store.refresh(events=False, account=request.bare_jid)
        current = self.store.ven_by_jid(request.bare_jid)
        ids = {"ven_id": current.ven_id, "registration_id": current.registration_id} if current else {}
        return Outcome(self.created_answer(request.request_id, **ids))

    async def create(self, request: Request) -> Outcome:
        """oadrCreatePartyRegistration: the application's handler decides; on success the VEN is bound."""
        payload = request.payload
        if payload.get("profile_name") != PROFILE:
            raise Refusal(codes.INVALID_DATA, f"this VTN speaks profile {PROFILE}, not {payload.get('profile_name')}")
        if payload.get("transport_name") != request.transport or request.transport not in self.transports:
            raise Refusal(codes.INVALID_DATA, f"this message came by {request.transport}: register with transport "
                          f"{request.transport}, not {payload.get('transport_name')}")
        # Decided on the account's registration as it is now, whichever instance changed it last.
        self.store.refresh(events=False, account=request.bare_jid)
        current = self.store.ven_by_jid(request.bare_jid)
        claimed_registration = payload.get("registration_id")
        if claimed_registration is not None and (current is None or current.registration_id != claimed_registration):
            raise Refusal(codes.INVALID_ID, f"registrationID {claimed_registration} is not this VEN's registration")
        self._check_ven_id_free(payload.get("ven_id"), request.bare_jid)

        # The handler sees the transport address pushes will really use, and may take the sender's
        # authenticated JID as a second argument to decide who may hold which venID.
        transport_address = self._transport_address(payload.get("transport_address"), request)
        payload = {**payload, "transport_address": transport_address}
        if request.fingerprint is not None:
            payload["fingerprint"] = request.fingerprint        # where OpenLEADR's handlers look for it
        result = await self.handlers.call_with_sender("on_create_party_registration", payload, request.sender)
        if result is None or result is False:
            log.info("registration of %s (venID %s) refused by on_create_party_registration",
                     request.sender, payload.get("ven_id"))
            raise Refusal(codes.NOT_REGISTERED_OR_AUTHORIZED, "registration refused")
        ven_id, registration_id = self._ids_from(result, payload)
        # What the handler itself chose can only be checked now. The refusal is the handler's
        # doing, so say so: an application that recorded the registration must not count it.
        self._check_ven_id_free(ven_id, request.bare_jid, chosen_by="on_create_party_registration")
        holder = self.store.ven_by_registration(registration_id)
        if holder is not None and holder.ven_id != ven_id:
            self.store.refresh(events=False, account=holder.bare_jid)      # as above
            holder = self.store.ven_by_registration(registration_id)
        if holder is not None and holder.ven_id != ven_id:
            raise ValueError(f"on_create_party_registration returned registration id {registration_id}, "
                             f"already held by venID {holder.ven_id}: registration ids must be unique")

        record = VenRecord(
            ven_id=ven_id, registration_id=registration_id, bare_jid=request.bare_jid,
            # Pushes must reach the resource that registered; a VEN naming another resource of its
            # own account may, but never another account's.
            transport_address=transport_address,
            ven_name=payload.get("ven_name"), profile_name=PROFILE,
            report_only=bool(payload.get("report_only")), xml_signature=bool(payload.get("xml_signature")),
            http_pull_model=payload.get("http_pull_model"))
        effects: tuple = ()
        if current is not None and current.ven_id != ven_id:
            # The account's earlier venID is cancelled properly: its handler is told, and all it
            # owned goes, so that nobody who later holds that venID finds it.
            log.info("%s replaces its registration as venID %s with venID %s", request.bare_jid,
                     current.ven_id, ven_id)
            await self.handlers.call("on_cancel_party_registration", {
                "request_id": request.request_id, "registration_id": current.registration_id,
                "ven_id": current.ven_id})
            self.store.purge_ven(current.ven_id)
            effects = (Forget(current.ven_id),)
        if self.store.ven(ven_id) is None:
            # A venID new to this account starts clean, whatever an earlier holder left behind
            # (a cancellation still owed to it, a subscription, an answer in the journal).
            self.store.purge_ven(ven_id)
        self.store.put_ven(record)
        log.info("%s venID %s (registration %s) at %s",
                 "re-registered" if current and current.ven_id == ven_id else "registered",
                 ven_id, registration_id, record.transport_address)
        return Outcome(self.created_answer(request.request_id, ven_id=ven_id, registration_id=registration_id),
                       (*effects, Registered(ven_id)))

    def _check_ven_id_free(self, ven_id: str | None, bare_jid: str, chosen_by: str | None = None) -> None:
        """A venID bound to another account is refused, whoever offers it (the VEN, or the handler
        named by ``chosen_by``)."""
        if ven_id is None:
            return
        holder = self.store.ven(ven_id)
        if holder is not None and holder.bare_jid != bare_jid:
            # Before refusing on what may be held in memory: that account may have let it go just now.
            self.store.refresh(events=False, account=holder.bare_jid)
            holder = self.store.ven(ven_id)
        if holder is not None and holder.bare_jid != bare_jid:
            if chosen_by is not None:
                log.error("%s returned venID %s for %s, but it belongs to %s: the registration is refused and "
                          "is not in force", chosen_by, ven_id, bare_jid, holder.bare_jid)
            else:
                log.warning("%s asked to register venID %s, which belongs to %s: refused", bare_jid, ven_id,
                            holder.bare_jid)
            # The same answer as any other refusal: a VEN must not learn which venIDs exist.
            raise Refusal(codes.NOT_REGISTERED_OR_AUTHORIZED, "registration refused")

    @staticmethod
    def _ids_from(result: object, payload: dict) -> tuple[str, str]:
        if isinstance(result, (tuple, list)) and len(result) == 2:
            ven_id, registration_id = result
        else:
            ven_id, registration_id = payload.get("ven_id"), result
        if ven_id is None:
            raise TypeError("on_create_party_registration returned only a registration id for a VEN that "
                            "sent no venID: return (ven_id, registration_id)")
        if not isinstance(ven_id, str) or not isinstance(registration_id, str) or not ven_id or not registration_id:
            raise TypeError("on_create_party_registration must return a registration id (str), "
                            f"(ven_id, registration_id) or None/False, not {result!r}")
        return ven_id, registration_id

    @staticmethod
    def _transport_address(offered: str | None, request: Request) -> str:
        """The full JID pushes go to: the VEN's own offer if it is a valid full JID of its own
        account, else the JID it sent from. Over simpleHTTP: the VEN's URL when it wants pushes
        (``oadrHttpPullModel`` false), else its identity (it polls)."""
        if request.transport == SIMPLE_HTTP:
            if request.payload.get("http_pull_model") is not False:
                return request.sender
            if not offered or not offered.startswith(("http://", "https://")):
                raise Refusal(codes.INVALID_DATA, "a VEN that is pushed to (oadrHttpPullModel false) must give "
                              f"its http:// or https:// oadrTransportAddress, not {offered!r}")
            return offered
        if offered:
            try:
                jid = JID(offered)
            except InvalidJID:
                jid = None
            if jid is not None and jid.resource and jid.bare == request.bare_jid:
                return jid.full
        if offered and offered != request.sender:
            log.warning("%s gave transport address %r outside its account; pushing to %s instead",
                        request.bare_jid, offered, request.sender)
        return request.sender

    async def cancel(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCancelPartyRegistration from a VEN: the handler is told, then the registration is gone."""
        registration_id = request.payload.get("registration_id")
        if registration_id != ven.registration_id:
            # Before refusing: the VEN may have registered anew through another instance just now.
            self.store.refresh(events=False, account=ven.bare_jid)
            ven = self.store.ven(ven.ven_id) or ven
        if registration_id != ven.registration_id:
            raise Refusal(codes.INVALID_ID, f"registrationID {registration_id} is not this VEN's registration",
                          registration_id=registration_id)
        await self.handlers.call("on_cancel_party_registration", request.payload)
        self.store.purge_ven(ven.ven_id)         # the registration and everything it owned, at once
        log.info("venID %s cancelled its registration %s", ven.ven_id, registration_id)
        return Outcome(("oadrCanceledPartyRegistration", {
            "response": response(codes.OK, request.request_id), "registration_id": registration_id,
            "ven_id": ven.ven_id}), (Forget(ven.ven_id),))

    def cancel_by_vtn(self, ven_id: str) -> tuple[VenRecord, Push]:
        """Forget ``ven_id``'s registration and everything it owned; return the
        oadrCancelPartyRegistration owed to it (queue it after the purge)."""
        ven = self._registered(ven_id)
        self.store.purge_ven(ven_id)
        log.info("VTN cancelled the registration %s of venID %s", ven.registration_id, ven_id)
        return ven, Push(ven_id, "oadrCancelPartyRegistration", {
            "request_id": new_request_id(), "registration_id": ven.registration_id, "ven_id": ven_id})

    def reregistration_request(self, ven_id: str) -> tuple[VenRecord, Push]:
        """The oadrRequestReregistration owed to ``ven_id``; its registration stays until it re-registers."""
        ven = self._registered(ven_id)
        return ven, Push(ven_id, "oadrRequestReregistration", {"ven_id": ven_id})

    def _registered(self, ven_id: str) -> VenRecord:
        ven = self.store.ven(ven_id)
        if ven is None:
            raise KeyError(f"venID {ven_id!r} is not registered")
        return ven

    async def canceled(self, request: Request) -> Outcome:
        """oadrCanceledPartyRegistration: the VEN confirms a cancellation the VTN pushed."""
        return acknowledge(request, request.payload.get("ven_id"))


def new_request_id() -> str:
    """A fresh, unique requestID for a VTN-initiated message."""
    return uuid.uuid4().hex

