"""Several VTN instances, one VTN: what each instance does so that work runs once across them.

The XMPP server spreads the component's traffic over the instances connected under its domain,
and a shared store (PostgreSQL) holds the state. No instance is special and there is no home-made
consensus: work that must run once (a delivery to one VEN, a scheduled transition, a report
cadence, a liveness round) runs under a lease row in the store, and an instance that dies stops
renewing its leases, so the others take its work over when they expire.

With an unshared store (the embedded SQLite file) every lease is granted at once and nothing runs
in the background: one process does everything, as before.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from .backoff import Backoff
from .coordination_batch import CoordinationBatch
from ..store import XMPP, Store

log = logging.getLogger("xmpp_vtn.cluster")

# A scheduled transition or a one-off job is claimed once and never released; the row only has to
# outlive every instance's copy of the schedule.
ONCE_SECONDS = 24 * 3600.0

#: Where an instance says it started or stopped, so that the others share the VENs anew at once
#: instead of at their next sweep (a fan-out's leases are all claimed in one statement: an
#: instance that does not know of another yet would take every VEN).
LIVE_CHANNEL = "instances"

#: How the XMPP server shares the component's stanzas among the instances (ejabberd's
#: ``domain_balancing`` type for the domain; see docs/servers.md): "random", each stanza to any
#: instance; "bare_source", every stanza of one VEN account to the same instance.
BALANCINGS = ("random", "bare_source")


class Cluster:
    """This instance's part in a VTN shared by several instances over ``store``.

    ``lease_seconds`` bounds how long the work of a dead instance waits before another takes it over.
    ``balancing`` says how the XMPP server shares the VENs' stanzas among the instances
    (:data:`BALANCINGS`). With "bare_source" each VEN is pushed to from the instance the server
    hands its stanzas to, so that its acknowledgements come back to the instance that pushed
    instead of being passed on through the store.
    """

    def __init__(self, store: Store, instance_id: str | None = None, lease_seconds: float = 15.0,
                 balancing: str = "random"):
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if balancing not in BALANCINGS:
            raise ValueError(f"balancing must be one of {', '.join(BALANCINGS)}, not {balancing!r}")
        self.store = store
        self.balancing = balancing
        #: venID -> the instance the server hands its stanzas to, as last read (bare_source only).
        self._heard: dict[str, str] = {}
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.lease_seconds = lease_seconds
        self._tasks: set[asyncio.Task] = set()
        #: The instances running, as last read (at start and every sweep): who takes which VENs.
        self.live: list[str] = [self.instance_id]
        #: Claims, releases and notices of one loop turn, sent together (see :meth:`hold_together`).
        self.batch = CoordinationBatch(store, self.instance_id)

    @property
    def shared(self) -> bool:
        """Whether other instances share the store (and so the work)."""
        return self.store.shared

    @property
    def sweep_interval(self) -> float:
        """How often the background sweep renews leases and picks up orphaned work."""
        return self.lease_seconds / 3

    def hold(self, name: str, seconds: float | None = None) -> bool:
        """Take or renew the lease ``name``; False while another instance holds it."""
        return self.store.claim(name, self.instance_id, seconds or self.lease_seconds)

    def hold_across(self, name: str, period: timedelta) -> bool:
        """:meth:`hold` for periodic work: held across two periods, so the others (whose timers keep
        running) take over only when the holder has missed one."""
        return self.hold(name, 2 * period.total_seconds() + self.lease_seconds)

    def let_go(self, name: str) -> None:
        """Release the lease ``name`` (another instance may take the work at once)."""
        self.store.release(name, self.instance_id)

    async def hold_together(self, name: str, seconds: float | None = None) -> bool:
        """:meth:`hold`, sent with every other claim of this loop turn in one statement, off the
        loop: a fan-out claims its thousand VEN leases in one round trip that does not hold the loop."""
        if not self.shared:
            return True
        return await self.batch.claim(name, seconds or self.lease_seconds)

    def let_go_together(self, name: str) -> None:
        """:meth:`let_go`, sent with this loop turn's other releases; nobody waits for it (a claim of
        the same lease asked later is sent after it)."""
        if self.shared:
            self.batch.release(name)

    def pass_on_answer(self, line: str) -> None:
        """Hand ``line`` (an answer the server gave us for another instance's iq) to the other
        instances, with the other answers of this loop turn in one notice."""
        if self.shared:
            self.batch.notify("answers", line)

    def once(self, name: str) -> bool:
        """True for exactly one instance that asks (for a day): run-once work such as a transition."""
        return self.store.claim(name, self.instance_id, ONCE_SECONDS)

    def is_alive(self, instance_id: str) -> bool:
        """Whether the instance ``instance_id`` is running (holds its instance lease)."""
        return instance_id == self.instance_id or self.store.lease_holder(f"instance:{instance_id}") == instance_id

    @property
    def keeps_vens_apart(self) -> bool:
        """Whether the server hands each VEN's stanzas to one instance, which then pushes to it."""
        return self.shared and self.balancing == "bare_source"

    def heard(self, ven_id: str) -> None:
        """A stanza of ``ven_id`` came to this instance from the server itself (a request, its
        presence), not passed on by another instance."""
        if self.keeps_vens_apart and self._heard.get(ven_id) != self.instance_id:
            self._heard[ven_id] = self.instance_id
            self.store.note_heard(ven_id, self.instance_id)

    def takes(self, ven_id: str) -> bool:
        """Whether this instance is the one to start deliveries to ``ven_id``.

        With "bare_source" balancing, the live instance the server hands the VEN's stanzas to
        (and none of the others for an XMPP VEN registered under ``lease_seconds`` ago whose note
        they have not read yet). Otherwise (and for a VEN not heard, or heard by an instance no
        longer running) the VENs are shared out among the live instances by a hash of the venID,
        so a fan-out is spread over all of them instead of taken by the instance that added the
        event. Either way a VEN that no instance started (an instance died meanwhile, or two read
        each other's notes out of date) is picked up by the next sweep, and its delivery lease
        decides who delivers."""
        live = self.live
        if len(live) < 2:
            return True
        if self.keeps_vens_apart:
            hearer = self._heard.get(ven_id)
            if hearer in live:
                return hearer == self.instance_id
            if hearer is None and self._just_registered(ven_id):
                # Its registration came to one instance, which noted it, and which delivers what
                # the registration queued; that note may not have reached us yet.
                return False
        return live[zlib.crc32(ven_id.encode()) % len(live)] == self.instance_id

    def _just_registered(self, ven_id: str) -> bool:
        """An XMPP VEN registered under a lease's time ago (simpleHTTP VENs are never heard)."""
        ven = self.store.ven(ven_id)
        return (ven is not None and ven.transport_name == XMPP and
                (datetime.now(timezone.utc) - ven.registered_at).total_seconds() < self.lease_seconds)

    def sweeps(self, ven_id: str) -> bool:
        """Whether this instance's sweeps (and its reconnections) deliver what ``ven_id`` is still
        owed. Every instance's do with random balancing: whoever gets the acknowledgement passes it
        on. With "bare_source" only the one that :meth:`takes` it: the server hands the VEN's
        acknowledgements to the instance that hears it, so a push from any other would be passed
        on while that one runs, and unanswered when it is cut off from the server (the server
        then drops the VEN's stanzas until an instance takes its place)."""
        return not self.keeps_vens_apart or self.takes(ven_id)

    def refresh_live(self) -> None:
        """Read which instances are running (those holding their instance lease)."""
        if self.shared:
            self.live = sorted(set(self.store.lease_holders("instance:")) | {self.instance_id})
            self.refresh_heard()

    def refresh_heard(self) -> None:
        """Read which instance hears each VEN (with "bare_source" balancing; one statement)."""
        if self.keeps_vens_apart:
            self._heard = self.store.heard_by()

    def tell_others(self, channel: str, message: str) -> None:
        """Publish ``message`` on ``channel`` for the other instances (see :meth:`start`'s ``listeners``)."""
        if self.shared:
            self.store.publish(channel, f"{self.instance_id} {message}")

    def start(self, sweep: Callable[[], Awaitable[None]], on_answer: Callable[[str], None],
              listeners: dict[str, Callable[[str], None]] | None = None) -> None:
        """With a shared store: announce this instance, and run ``sweep`` every :attr:`sweep_interval`,
        ``on_answer(line)`` for answers other instances received for our iqs, and each of
        ``listeners`` (channel -> function) for what the other instances :meth:`tell_others`."""
        if not self.shared:
            return
        if self.store.lease_holder(f"instance:{self.instance_id}") is not None:
            log.warning("instance id %s is held by a running instance, or by this one before a restart: "
                        "give every instance its own id", self.instance_id)
        self.hold(f"instance:{self.instance_id}")
        self.refresh_live()
        loop = asyncio.get_running_loop()
        # Who runs is read again once our LISTEN is in place: an instance that announced itself
        # before it was (two starting together) is counted at once, not at our next sweep.
        jobs = [self._sweeping(sweep), self._listening("answers", _line_by_line(on_answer)),
                self._listening(LIVE_CHANNEL, self._from_others(lambda message: self.refresh_live()),
                                listening=self.refresh_live)]
        jobs += [self._listening(channel, self._from_others(receive)) for channel, receive in (listeners or {}).items()]
        for job in jobs:
            task = loop.create_task(job)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.tell_others(LIVE_CHANNEL, "started")

    def _from_others(self, receive: Callable[[str], None]) -> Callable[[str], None]:
        def received(line: str) -> None:
            sender, _, message = line.partition(" ")
            if sender != self.instance_id:         # our own notifications come back to us too
                receive(message)
        return received

    async def _sweeping(self, sweep: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.hold(f"instance:{self.instance_id}")
                self.refresh_live()
                await sweep()
            except Exception:
                # One bad round (the database restarting, say) must not end the sweeps.
                log.exception("cluster sweep failed; trying again in %.1f s", self.sweep_interval)

    async def _listening(self, channel: str, receive: Callable[[str], None],
                         listening: Callable[[], None] | None = None) -> None:
        backoff = Backoff(initial=0.5, cap=10.0)
        while True:
            try:
                await self.store.listen(channel, receive, listening)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = backoff.next()
                log.warning("listening for %s failed (%s); again in %.1f s", channel, error, delay)
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Stop the background work and give up this instance's lease: others take over at once."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.batch.drain()                 # the releases of the deliveries just stopped
        if self.shared:
            try:
                self.let_go(f"instance:{self.instance_id}")
                self.tell_others(LIVE_CHANNEL, "stopped")
            except Exception:
                log.warning("could not release the instance lease; it expires in %.0f s", self.lease_seconds)


def _line_by_line(receive: Callable[[str], None]) -> Callable[[str], None]:
    """A notice carries the lines of one loop turn (:meth:`Cluster.pass_on_answer`): one call each."""
    def received(message: str) -> None:
        for line in message.split("\n"):
            receive(line)
    return received
