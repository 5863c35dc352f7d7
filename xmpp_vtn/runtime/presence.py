"""Which VENs are online: the liveness state machine fed by what the runtime sees (presence,
requests, polls, pings), the ``on_ven_online`` / ``on_ven_offline`` handlers called once per
transition, and the state recorded in the store for operators."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Callable

from ..services import Handlers
from ..services.liveness import Liveness
from ..store import Store
from .observer import NO_OBSERVER, ExchangeObserver
from .outbox import Courier

log = logging.getLogger("xmpp_vtn")

#: How stale the last-seen time operators read (``xmpp-vtn status``) may get while a VEN stays
#: online and busy: at most one store write per VEN per this long, not one per message.
LAST_SEEN_EVERY = timedelta(seconds=30)


def bare(jid: str) -> str:
    """The bare JID of ``jid``: ``bare("ven7@grid/oadr") == "ven7@grid"``."""
    return jid.split("/", 1)[0]


#: Most full JIDs whose available presence is remembered.
MAX_PRESENT = 100_000


class VenPresence:
    """Online/offline per venID, as far as this instance knows."""

    def __init__(self, store: Store, handlers: Handlers, courier: Courier, now: Callable[[], datetime],
                 offline_after: int = 3):
        self.store, self.handlers, self.courier, self.now = store, handlers, courier, now
        self.liveness = Liveness(offline_after)
        self._notifications: set[asyncio.Task] = set()
        self._recorded: dict[str, datetime] = {}         # venID -> the last-seen time last stored
        #: Told of every transition (metrics, the operator's live view).
        self.observer: ExchangeObserver = NO_OBSERVER
        self._present: set[str] = set()        # full JIDs of VENs whose last presence was available

    def is_online(self, ven_id: str) -> bool | None:
        """Whether ``ven_id`` is online (None: not heard of since start)."""
        state = self.liveness.state.get(ven_id)
        return None if state is None else state == "online"

    def alive(self, ven_id: str, polled: bool = False, reachable: bool = True, heard_here: bool = False) -> None:
        """The VEN showed life (a request, a poll, presence, a ping answered): it is reachable now
        (``reachable=False``: alive, but not at the address pushes go to, so failing deliveries
        are not retried at once). ``heard_here``: its stanza came to this instance from the XMPP
        server itself (a ping's answer may have been passed on by another instance)."""
        if heard_here:
            self.courier.cluster.heard(ven_id)
        now = self.now()
        transition = self.liveness.polled(ven_id, now) if polled else self.liveness.seen(ven_id, now)
        self._notify(ven_id, transition)
        if transition is None:
            recorded = self._recorded.get(ven_id)
            state = self.liveness.state.get(ven_id)
            if state is not None and (recorded is None or now - recorded >= LAST_SEEN_EVERY):
                self._recorded[ven_id] = now
                self.store.note_liveness(ven_id, state, now)
        if reachable:
            self.courier.seen(ven_id)

    def ping_missed(self, ven_id: str) -> None:
        self._notify(ven_id, self.liveness.ping_missed(ven_id))

    def offline(self, ven_id: str) -> None:
        """A polling VEN stopped polling."""
        self._notify(ven_id, "offline")

    def is_present(self, full_jid: str) -> bool:
        """Whether ``full_jid``'s last presence to the VTN said available."""
        return full_jid in self._present

    def on_presence(self, sender: str, available: bool) -> None:
        """XMPP presence from ``sender`` (a full JID)."""
        # Kept whether or not the sender is registered yet (a VEN announces itself, then
        # registers); bounded, so that presence from many resources cannot grow it without end.
        if available and len(self._present) < MAX_PRESENT:
            self._present.add(sender)
        elif not available:
            self._present.discard(sender)
        ven = self.store.ven_by_jid(bare(sender))
        # Only the resource pushes go to speaks for the VEN: another session of the same account
        # logging out says nothing about it.
        if ven is None or (not available and sender != ven.transport_address):
            return
        if available:
            # A session on another resource is the VEN back, but pushes still go to the resource
            # it registered from, likely gone: retrying now would only bounce there. It
            # re-registers from where it is, and that wakes its deliveries.
            self.alive(ven.ven_id, reachable=sender == ven.transport_address, heard_here=True)
        else:
            self._notify(ven.ven_id, self.liveness.gone(ven.ven_id))

    def forget(self, ven_id: str) -> None:
        self.liveness.forget(ven_id)
        self._recorded.pop(ven_id, None)
        ven = self.store.ven(ven_id)
        if ven is not None:
            self._present.discard(ven.transport_address)

    def _notify(self, ven_id: str, transition: str | None) -> None:
        """Call on_ven_online / on_ven_offline once per transition, without holding up the caller."""
        if transition is None:
            return
        log.info("venID %s is %s", ven_id, transition)
        last_seen = self.liveness.last_seen.get(ven_id)
        self.store.note_liveness(ven_id, transition, last_seen)    # for operators
        if last_seen is not None:
            self._recorded[ven_id] = last_seen
        self.observer.liveness(ven_id, transition)

        async def call() -> None:
            try:
                await self.handlers.call(f"on_ven_{transition}", ven_id)
            except Exception:
                log.exception("on_ven_%s failed for venID %s", transition, ven_id)
        task = asyncio.get_running_loop().create_task(call())
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    async def close(self, timeout: float = 5.0) -> None:
        """Let running notifications finish (up to ``timeout``), then cancel the rest."""
        if self._notifications:
            await asyncio.wait(set(self._notifications), timeout=timeout)
        for task in list(self._notifications):
            task.cancel()
        await asyncio.gather(*self._notifications, return_exceptions=True)
