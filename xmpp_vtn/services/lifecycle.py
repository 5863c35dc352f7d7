"""An event's status as a function of time, and the moments it changes (OpenADR 2.0b 8.1).

far -> near (within the ramp-up period before the start) -> active -> completed; cancelled
overrides. Pure functions: the scheduler asks when to look again, the event service asks what
the status is now.
"""
from __future__ import annotations

from datetime import datetime, timedelta

FAR, NEAR, ACTIVE, COMPLETED, CANCELLED = "far", "near", "active", "completed", "cancelled"
LIVE = (FAR, NEAR, ACTIVE)


def bounds(active_period: dict) -> tuple[datetime, datetime | None]:
    """(start, end) of an active period; end is None for an open-ended event (duration 0)."""
    start = active_period["dtstart"]
    duration = active_period["duration"]
    return start, (start + duration if duration > timedelta(0) else None)


def status_at(active_period: dict, now: datetime, cancelled: bool = False) -> str:
    """The event status at ``now``."""
    if cancelled:
        return CANCELLED
    start, end = bounds(active_period)
    if end is not None and now >= end:
        return COMPLETED
    if now >= start:
        return ACTIVE
    ramp_up = active_period.get("ramp_up_period")
    if ramp_up and now >= start - ramp_up:
        return NEAR
    return FAR


def transitions(active_period: dict) -> list[datetime]:
    """Every moment the status can change, in order."""
    start, end = bounds(active_period)
    moments = [start]
    ramp_up = active_period.get("ramp_up_period")
    if ramp_up:
        moments.insert(0, start - ramp_up)
    if end is not None:
        moments.append(end)
    return moments


def next_transition(active_period: dict, now: datetime) -> datetime | None:
    """The first status change after ``now``, or None when the event will not change by itself."""
    return next((moment for moment in transitions(active_period) if moment > now), None)
