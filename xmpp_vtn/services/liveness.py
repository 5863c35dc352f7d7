"""Which VENs are online, from every sign the VTN gets: presence, pings, requests, polls.

Pure bookkeeping: each method returns the transition it caused ("online", "offline" or None),
so the facade calls ``on_ven_online`` / ``on_ven_offline`` exactly once per transition.
"""
from __future__ import annotations

from datetime import datetime, timedelta

ONLINE, OFFLINE = "online", "offline"


class Liveness:
    """Online state per venID. A VEN the VTN has not heard of yet is neither online nor offline."""

    def __init__(self, misses_allowed: int = 3):
        if misses_allowed < 1:
            raise ValueError("misses_allowed must be at least 1")
        self.misses_allowed = misses_allowed
        self.state: dict[str, str] = {}
        self.last_seen: dict[str, datetime] = {}
        self._missed: dict[str, int] = {}
        self._last_poll: dict[str, datetime] = {}

    def seen(self, ven_id: str, now: datetime) -> str | None:
        """Any sign of life (a request, available presence, an answered ping)."""
        self.last_seen[ven_id] = now
        self._missed.pop(ven_id, None)
        return self._become(ven_id, ONLINE)

    def gone(self, ven_id: str) -> str | None:
        """The VEN said it left (unavailable presence)."""
        self._missed.pop(ven_id, None)
        return self._become(ven_id, OFFLINE)

    def ping_missed(self, ven_id: str) -> str | None:
        """A ping went unanswered; offline after ``misses_allowed`` in a row."""
        self._missed[ven_id] = self._missed.get(ven_id, 0) + 1
        if self._missed[ven_id] >= self.misses_allowed:
            return self._become(ven_id, OFFLINE)
        return None

    def polled(self, ven_id: str, now: datetime) -> str | None:
        """An oadrPoll: the VEN is alive, and is a polling VEN from now on."""
        self._last_poll[ven_id] = now
        return self.seen(ven_id, now)

    def overdue_pollers(self, now: datetime, poll_interval: timedelta) -> list[str]:
        """Polling VENs silent for ``misses_allowed`` poll intervals, newly offline."""
        limit = poll_interval * self.misses_allowed
        return [ven_id for ven_id, last in self._last_poll.items()
                if now - max(last, self.last_seen.get(ven_id, last)) > limit and self._become(ven_id, OFFLINE)]

    def forget(self, ven_id: str) -> None:
        """The VEN's registration is gone."""
        for table in (self.state, self.last_seen, self._missed, self._last_poll):
            table.pop(ven_id, None)

    def _become(self, ven_id: str, state: str) -> str | None:
        if self.state.get(ven_id) == state:
            return None
        self.state[ven_id] = state
        return state
