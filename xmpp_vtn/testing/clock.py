"""A clock for tests and simulations that only moves when told to, so a whole event lifecycle
runs in milliseconds without waiting for wall-clock time."""
from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timedelta, timezone

from ..runtime.scheduler import Job, Scheduler, run_job


class ManualScheduler(Scheduler):
    """A clock that only moves when told to: ``await scheduler.advance(timedelta(minutes=5))``
    runs, in time order, every job due by then.

    >>> scheduler = ManualScheduler(datetime(2026, 11, 23, 12, tzinfo=timezone.utc))
    """

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime.now(timezone.utc).replace(microsecond=0)
        if self._now.tzinfo is None:
            raise ValueError("ManualScheduler needs a timezone-aware start time")
        self._jobs: dict[str, tuple[datetime, int, Job]] = {}
        self._order = itertools.count()
        self._started = False

    def now(self) -> datetime:
        return self._now

    def at(self, when: datetime, key: str, job: Job) -> None:
        self._jobs[key] = (when, next(self._order), job)
        if self._started and when <= self._now:
            asyncio.get_running_loop().create_task(self._run_due())

    def cancel(self, key: str) -> None:
        self._jobs.pop(key, None)

    def start(self) -> None:
        self._started = True

    async def shutdown(self) -> None:
        self._jobs.clear()

    async def advance(self, delta: timedelta | None = None, to: datetime | None = None) -> None:
        """Move the clock forward by ``delta`` (or to ``to``), running due jobs at their own times."""
        target = to if to is not None else self._now + (delta or timedelta(0))
        while True:
            due = [(when, order, key) for key, (when, order, _) in self._jobs.items() if when <= target]
            if not due:
                break
            when, _, key = heapq.nsmallest(1, due)[0]
            self._now = max(self._now, when)
            _, _, job = self._jobs.pop(key)
            await run_job(job, key)
        self._now = max(self._now, target)

    async def _run_due(self) -> None:
        await self.advance(timedelta(0))
