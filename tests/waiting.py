"""Waiting for state spread over many VENs or processes: checked, not awaited (there is no single
event to await), with a deadline and a message that says what never happened."""
from __future__ import annotations

import asyncio
import time
from typing import Callable


async def until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Wait until ``condition()`` holds; the seconds it took. AssertionError naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


def until_blocking(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """:func:`until` for code without an event loop (another process is doing the work)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)
    return time.monotonic() - started


class Strike:
    """Do something to the system (stop a server, kill a process) from inside a VEN's answer, once
    ``after`` VENs hold the event: the fault then strikes while the fan-out is under way.

    Use it as the VENs' ``opt``: it is called synchronously as each VEN takes the push.
    """

    def __init__(self, after: int, fault: Callable[[], None], opt_type: str = "optIn"):
        self.after, self.fault, self.opt_type = after, fault, opt_type
        self.holders_at_strike: int | None = None
        self._holders = 0

    def __call__(self, event: dict) -> str:
        self._holders += 1
        if self.holders_at_strike is None and self._holders >= self.after:
            self.holders_at_strike = self._holders
            self.fault()
        return self.opt_type
