"""When things happen: the VTN's clock and timed jobs (event status transitions, later report
cadences and liveness checks).

:class:`RealTimeScheduler` runs jobs with APScheduler on the asyncio loop. :class:`ManualScheduler`
keeps its own clock that tests (and simulations) move forward, so a whole event lifecycle runs in
milliseconds without waiting for wall-clock time.
"""
from __future__ import annotations

import abc
import asyncio
import heapq
import inspect
import itertools
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

log = logging.getLogger("xmpp_vtn.scheduler")

Job = Callable[[], "Awaitable[Any] | Any"]


class Scheduler(abc.ABC):
    """A clock and one-shot jobs keyed by name (scheduling a key again replaces its job)."""

    @abc.abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""

    @abc.abstractmethod
    def at(self, when: datetime, key: str, job: Job) -> None:
        """Run ``job`` (a function or coroutine function) at ``when``; at once if that has passed."""

    @abc.abstractmethod
    def cancel(self, key: str) -> None:
        """Forget the job ``key`` if it has not run."""

    def start(self) -> None:
        """Begin running jobs (called by the VTN once the loop runs)."""

    async def shutdown(self) -> None:
        """Stop running jobs; pending ones are dropped."""


async def _run(job: Job, key: str) -> None:
    try:
        result = job()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("scheduled job %s failed", key)


class RealTimeScheduler(Scheduler):
    """Wall-clock jobs on APScheduler's ``AsyncIOScheduler``."""

    def __init__(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def at(self, when: datetime, key: str, job: Job) -> None:
        # misfire_grace_time=None: a transition that is due (the VTN was busy or restarting) still runs.
        self._scheduler.add_job(_run, "date", run_date=max(when, self.now()), args=(job, key), id=key,
                                replace_existing=True, misfire_grace_time=None)

    def cancel(self, key: str) -> None:
        if self._scheduler.get_job(key) is not None:
            self._scheduler.remove_job(key)

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()

    async def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


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
            await _run(job, key)
        self._now = max(self._now, target)

    async def _run_due(self) -> None:
        await self.advance(timedelta(0))
