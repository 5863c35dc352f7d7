"""VTNComponent: the public facade. It wires the handler table, the services, the store and the
XMPP component together; everything OpenADR happens in :mod:`xmpp_vtn.services`."""
from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from . import codec
from .backoff import Backoff
from .component import IqRefused, OadrComponent, PushFailed
from .errors import SchemaError
from .services import Dispatcher, Handlers, NotImplementedService, Push, RegistrationService, Request
from .store import Store, VenRecord, open_store

log = logging.getLogger("xmpp_vtn")

DEFAULT_STORE = "xmpp-vtn.sqlite3"


class VTNComponent:
    """An OpenADR 2.0b VTN served as an XMPP external component.

    >>> vtn = VTNComponent("VTN-1", "vtn.example.com", "component-secret", port=5347)
    >>> vtn.add_handler("on_create_party_registration", lambda payload: "reg-" + payload["ven_id"])
    >>> await vtn.run()      # doctest: +SKIP  (connects, then serves in the background)
    >>> await vtn.stop()     # doctest: +SKIP

    ``store`` is a file path (the default: ``xmpp-vtn.sqlite3`` in the working directory),
    ``":memory:"``, or a :class:`~xmpp_vtn.store.Store`. ``push_timeout`` is how long a VEN has to
    acknowledge a push. ``requested_poll_freq``, when set, is offered to VENs at registration
    (only polling VENs need it; XMPP VENs are pushed to).
    """

    def __init__(self, vtn_id: str, jid: str, secret: str, host: str = "127.0.0.1", port: int = 5347,
                 store: Store | str | Path = DEFAULT_STORE, *, push_timeout: float = 10.0,
                 requested_poll_freq: timedelta | None = None, reconnect_backoff: Backoff | None = None):
        if not vtn_id:
            raise ValueError("vtn_id must be a non-empty string")
        self.vtn_id = vtn_id
        self.push_timeout = push_timeout
        self.store = open_store(store)
        self._handlers = Handlers()
        self.registration = RegistrationService(self.store, self._handlers, vtn_id, requested_poll_freq)
        self.dispatcher = Dispatcher(self.store, self.registration)
        self.component = OadrComponent(jid, secret, host, port, self._on_request, backoff=reconnect_backoff)

    @property
    def jid(self) -> str:
        """The component's JID, where VENs send their requests."""
        return self.component.jid.bare

    @property
    def connected(self) -> bool:
        """Whether the component has a session with its XMPP server right now."""
        return self.component.connected

    def add_handler(self, name: str, handler: Callable[..., Any]) -> None:
        """Install a handler by its OpenLEADR name, e.g. ``add_handler('on_create_party_registration', fn)``.

        Handlers may be plain functions or coroutine functions. An unknown name warns.
        """
        self._handlers.add(name, handler)

    async def run(self, timeout: float = 30.0) -> None:
        """Connect to the XMPP server and return once the component is serving.

        Serving continues in the background (reconnecting by itself) until :meth:`stop`. Raises
        :class:`~xmpp_vtn.streams.StreamFailed` if the server refuses the component.
        """
        await self.component.start(timeout)
        log.info("VTN %s serving as %s", self.vtn_id, self.jid)

    async def stop(self) -> None:
        """Disconnect and release the store. Safe to call twice."""
        await self.component.stop()
        self.store.close()

    def vens(self) -> list[VenRecord]:
        """The registered VENs: venID, registration id, bare JID and the full JID pushes go to."""
        return self.store.vens()

    async def cancel_party_registration(self, ven_id: str) -> None:
        """Cancel ``ven_id``'s registration and tell the VEN (oadrCancelPartyRegistration).

        The registration is gone whether or not the VEN is reachable; :class:`PushFailed` says it
        was not told. Raises KeyError for a venID that is not registered.
        """
        ven, push = self.registration.cancel_by_vtn(ven_id)
        await self._deliver(ven, push)

    async def request_reregistration(self, ven_id: str) -> None:
        """Ask ``ven_id`` to register again (oadrRequestReregistration); returns once it acknowledged."""
        ven, push = self.registration.reregistration_request(ven_id)
        await self._deliver(ven, push)

    async def _deliver(self, ven: VenRecord, push: Push) -> None:
        document = codec.serialize(push.message_type, push.payload)
        await self.component.push(ven.transport_address, document, self.push_timeout)
        log.info("%s acknowledged by venID %s", push.message_type, ven.ven_id)

    async def _on_request(self, sender: str, addressed: str, data: bytes) -> bytes | None:
        """One inbound iq: decode, dispatch, encode the answer. Schema errors become bad-request."""
        try:
            message_type, payload = codec.parse(data)
        except SchemaError as error:
            log.info("bad-request to %s from %s: %s", addressed, sender, error)
            raise IqRefused("bad-request", str(error)) from None
        try:
            outcome = await self.dispatcher.handle(Request(sender, message_type, payload))
        except NotImplementedService as error:
            raise IqRefused("feature-not-implemented", str(error), "cancel") from None
        if outcome.answer is None:
            return None
        return codec.serialize(*outcome.answer)


__all__ = ["VTNComponent", "PushFailed"]
