"""Pushing each VEN its current state: one coalescing delivery per VEN, a bound on how many run.

A VEN that is woken while its delivery runs is delivered again afterwards with the newest state,
so a burst of changes becomes at most two pushes, and a newer oadrDistributeEvent always
supersedes an older unsent one. One slow or silent VEN holds one slot, never the others.

Deliveries are also grouped by the account they go to (``group(ven_id)``): at most ``per_group``
of one group run at once, and a delivery waiting for its group holds no slot. One account cannot
fill the slots with many venIDs (each push to a silent account waits its full timeout), and
pushes for venIDs that are no longer registered share one group of their own.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("xmpp_vtn.delivery")


class DeliveryLoop:
    """``wake(ven_id)`` schedules ``deliver(ven_id)``; at most ``concurrency`` run at once."""

    def __init__(self, deliver: Callable[[str], Awaitable[None]], concurrency: int = 64,
                 group: Callable[[str], str] | None = None, per_group: int = 1):
        self._deliver = deliver
        self._slots = asyncio.Semaphore(concurrency)
        self._group = group or (lambda ven_id: ven_id)
        self._per_group = per_group
        self._groups: dict[str, tuple[asyncio.Semaphore, int]] = {}     # group -> (slots, users)
        self._tasks: dict[str, asyncio.Task] = {}
        self._dirty: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def wake(self, ven_id: str) -> None:
        """Deliver ``ven_id``'s current state soon (again, if a delivery is running)."""
        self._dirty.add(ven_id)
        if ven_id not in self._tasks:
            self._idle.clear()
            self._tasks[ven_id] = asyncio.get_running_loop().create_task(self._run(ven_id))

    async def _run(self, ven_id: str) -> None:
        try:
            while ven_id in self._dirty:
                self._dirty.discard(ven_id)
                group = self._group(ven_id)
                slots, users = self._groups.get(group) or (asyncio.Semaphore(self._per_group), 0)
                self._groups[group] = (slots, users + 1)
                try:
                    async with slots, self._slots:       # the group's turn first, then a shared slot
                        try:
                            await self._deliver(ven_id)
                        except Exception:
                            log.exception("delivery to venID %s failed", ven_id)
                finally:
                    slots, users = self._groups[group]
                    if users == 1:
                        del self._groups[group]
                    else:
                        self._groups[group] = (slots, users - 1)
        finally:
            del self._tasks[ven_id]
            if not self._tasks:
                self._idle.set()

    def busy(self, ven_id: str) -> bool:
        """Whether a delivery to ``ven_id`` is running or waiting for a slot."""
        return ven_id in self._tasks

    async def idle(self) -> None:
        """Wait until no delivery is running or due."""
        await self._idle.wait()

    async def close(self) -> None:
        """Cancel running deliveries (their VENs stay owed, and are served on the next start)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dirty.clear()
