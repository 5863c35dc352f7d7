"""When things happen: the VTN's clock and timed jobs (event status transitions, later report
cadences and liveness checks).

:class:`RealTimeScheduler` runs jobs with APScheduler on the asyncio loop; tests use
:class:`xmpp_vtn.testing.clock.ManualScheduler`, a clock they move forward themselves.
"""
from __future__ import annotations

import abc
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from ..services.handlers import invoke

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


async def run_job(job: Job, key: str) -> None:
    """Run one job (sync or async); a failure is logged, never raised into the scheduler."""
    try:
        await invoke(job)
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
        self._scheduler.add_job(run_job, "date", run_date=max(when, self.now()), args=(job, key), id=key,
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
