"""The coordination writes of one event-loop turn, sent together: one statement for all the lease
claims, one for the releases, one for the notices to other instances.

A fan-out wakes every VEN's delivery in the same turn, and each delivery runs under its VEN's
lease (:mod:`.cluster`): claimed one by one, that was a round trip per VEN to claim and another to
release, each holding the event loop. Here the claims asked during a turn are sent as one
statement, off the loop (:meth:`~xmpp_vtn.store.base.Store.claim_batch`), and each asker learns
its answer; releases and notices go the same way without anyone waiting.

Order is kept where it matters: batches are sent one after another, releases before claims, so a
lease released and claimed again (a VEN delivered twice in a row) is never lost to a release that
overtakes the claim; a release not sent yet when the same lease is claimed again is dropped, as the
claim renews it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable, Iterator

from ..store import Store

log = logging.getLogger("xmpp_vtn.cluster")


def packed(lines: Iterable[str], limit: int) -> Iterator[str]:
    """``lines`` joined by newlines into messages of at most ``limit`` UTF-8 bytes each, in order.
    A line longer than ``limit`` goes alone (the store refuses it as it would have before)."""
    message: list[str] = []
    size = 0
    for line in lines:
        length = len(line.encode())
        if message and size + 1 + length > limit:
            yield "\n".join(message)
            message, size = [], 0
        size += length + (1 if message else 0)
        message.append(line)
    if message:
        yield "\n".join(message)


class CoordinationBatch:
    """Lease claims, releases and notices of ``owner`` to ``store``, gathered per loop turn."""

    def __init__(self, store: Store, owner: str):
        self.store, self.owner = store, owner
        self._claims: dict[float, dict[str, list[asyncio.Future]]] = {}    # seconds -> name -> askers
        self._releases: set[str] = set()
        self._notices: dict[str, list[str]] = {}                           # channel -> lines
        self._sender: asyncio.Task | None = None
        #: Statements sent, by kind (for tests and benchmarks: how well the turns were gathered).
        self.sent = {"claim": 0, "release": 0, "notice": 0}

    def claim(self, name: str, seconds: float) -> asyncio.Future:
        """A future of whether the lease ``name`` is ours (taken or renewed) for ``seconds``."""
        self._releases.discard(name)           # not sent yet: the claim renews the lease instead
        asker = asyncio.get_running_loop().create_future()
        self._claims.setdefault(seconds, {}).setdefault(name, []).append(asker)
        self._send_soon()
        return asker

    def release(self, name: str) -> None:
        """Give up the lease ``name`` soon; nobody waits for it."""
        self._releases.add(name)
        self._send_soon()

    def notify(self, channel: str, line: str) -> None:
        """Publish ``line`` (no newline in it) on ``channel`` soon, with the other lines of this turn."""
        self._notices.setdefault(channel, []).append(line)
        self._send_soon()

    async def drain(self) -> None:
        """Wait until everything handed over so far has been sent."""
        while self._sender is not None:
            await asyncio.shield(self._sender)

    def _send_soon(self) -> None:
        if self._sender is None:
            # Its first step runs after the tasks that are ready now: their claims join this batch.
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._claims or self._releases or self._notices:
                releases, self._releases = self._releases, set()
                claims, self._claims = self._claims, {}
                notices, self._notices = self._notices, {}
                await self._send_releases(releases)
                for seconds, askers in claims.items():
                    await self._send_claims(seconds, askers)
                for channel, lines in notices.items():
                    await self._send_notices(channel, lines)
        finally:
            self._sender = None

    async def _send_releases(self, names: set[str]) -> None:
        if not names:
            return
        self.sent["release"] += 1
        try:
            await self.store.release_batch(sorted(names), self.owner)
        except Exception as error:
            # They lapse on their own; until then the others wait for them, as after a crash.
            log.warning("could not release %d leases (%s); they expire on their own", len(names), error)

    async def _send_claims(self, seconds: float, askers: dict[str, list[asyncio.Future]]) -> None:
        self.sent["claim"] += 1
        try:
            granted = await self.store.claim_batch(sorted(askers), self.owner, seconds)
        except Exception as error:
            for futures in askers.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for name, futures in askers.items():
            waiting = [future for future in futures if not future.done()]
            for future in waiting:
                future.set_result(name in granted)
            if name in granted and not waiting:
                self.release(name)             # its asker gave up (a delivery cancelled): let it go

    async def _send_notices(self, channel: str, lines: list[str]) -> None:
        self.sent["notice"] += 1
        try:
            await self.store.publish_batch(channel, list(packed(lines, self.store.message_limit)))
        except Exception as error:
            log.warning("could not tell the other instances %d %s (%s)", len(lines), channel, error)
