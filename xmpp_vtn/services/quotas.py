"""The quota model: how much one VEN (one account) can make the VTN hold or do.

Every limit is checked before anything is stored, so a refused request changes nothing. Over a
limit the VEN gets the OpenADR refusal (451 NOT ALLOWED, with a description naming the limit) or,
for the request rate, the XMPP error ``wait/resource-constraint``; the VTN counts the refusal in
:attr:`QuotaGuard.counters` and logs it at most once per account and limit every
``log_interval`` seconds, so that a hostile account cannot flood the log either.

>>> guard = QuotaGuard(Quotas(opts_per_ven=2))
>>> guard.quotas.opts_per_ven
2
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, Callable

from . import codes
from .outcome import Refusal

log = logging.getLogger("xmpp_vtn.quotas")


@dataclass(frozen=True)
class Quotas:
    """Per-VEN limits (the defaults fit any real VEN with room to spare; see docs/operations.md)."""

    #: Subscriptions to the VTN's own reports one VEN may hold (oadrCreateReport, oadrRegisteredReport).
    subscriptions_per_ven: int = 16
    #: Reports one oadrRegisterReport may offer (a new one replaces the VEN's earlier offers).
    report_offers_per_ven: int = 16
    #: Readings (report descriptions) one offered report may hold.
    readings_per_report: int = 256
    #: Opt schedules one VEN may keep in force.
    opts_per_ven: int = 64
    #: Largest oadrCreateOpt kept, in bytes of the message as received.
    opt_bytes: int = 16 * 1024
    #: Pushes queued for one VEN. Report updates are merged (one per subscription), so this is
    #: reached only by an application queueing faster than the VEN acknowledges.
    outbox_per_ven: int = 64
    #: A queued report update older than this is dropped unsent: the VEN gets the next one.
    stale_report_update: timedelta = timedelta(minutes=15)
    #: Sustained requests per second one account may send (a token bucket) ...
    requests_per_second: float = 20.0
    #: ... and the burst it may send at once.
    request_burst: int = 40
    #: Seconds by which a request refused for its account's rate or requests in flight is answered
    #: late (0: at once). A client waits for its answers, so an account that sends as fast as it is
    #: answered is slowed to a few requests a second instead of being refused as fast as it sends
    #: (each refusal costs the XMPP server two stanzas to route, whoever refuses).
    refusal_delay: float = 1.0
    #: Refusals of one account held back at a time; beyond them, the refusal is answered at once.
    held_refusals: int = 256

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "refusal_delay":
                if not (math.isfinite(value) and value >= 0):
                    raise ValueError(f"quota refusal_delay must be 0 or more seconds, not {value!r}")
                continue
            positive = value > timedelta(0) if isinstance(value, timedelta) else value > 0
            if not positive:
                raise ValueError(f"quota {item.name} must be positive, not {value!r}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "Quotas":
        """Quotas from a mapping of field names (the TOML ``[quotas]`` table); unknown names raise."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown quota {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(values)
        if "stale_report_update" in values and not isinstance(values["stale_report_update"], timedelta):
            values["stale_report_update"] = timedelta(seconds=float(values["stale_report_update"]))
        return cls(**values)


class RateLimitedLog:
    """Log a line at most once per key every ``interval`` seconds; says how many were held back.

    >>> warn = RateLimitedLog(logging.getLogger("x"), interval=60)
    >>> warn(logging.WARNING, "ven1@grid", "refused %s", "a command")      # logged
    >>> warn(logging.WARNING, "ven1@grid", "refused %s", "a command")      # held back
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000):
        self.logger, self.interval, self.clock, self.max_keys = logger, interval, clock, max_keys
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, level: int, key: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless ``key`` logged within ``interval``; True when logged."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        held = last[1] if last is not None else 0
        if len(self._last) >= self.max_keys:            # bounded however many accounts misbehave
            self._last.clear()
        self._last[key] = (now, 0)
        suffix = f" ({held} more like this held back)" if held else ""
        self.logger.log(level, message + suffix, *args)
        return True


class QuotaGuard:
    """Checks the :class:`Quotas`, counts refusals per limit, logs them rate-limited per account."""

    def __init__(self, quotas: Quotas | None = None, log_interval: float = 60.0):
        self.quotas = quotas or Quotas()
        #: Refusals per limit name since start (for status and a metrics endpoint).
        self.counters: Counter[str] = Counter()
        self._log = RateLimitedLog(log, log_interval)

    def refuse(self, limit: str, account: str, description: str, code: int = codes.NOT_ALLOWED,
               **answer_fields: Any) -> Refusal:
        """Count and log an over-quota request; returns the :class:`Refusal` to raise."""
        self.note(limit, account, description)
        return Refusal(code, description, **answer_fields)

    def note(self, limit: str, account: str, description: str) -> None:
        """Count and log (rate-limited) that ``account`` hit ``limit``."""
        self.counters[limit] += 1
        self._log(logging.WARNING, f"{account}\x1f{limit}", "quota %s: %s: %s", limit, account, description)

    def check(self, limit: str, account: str, used: int, allowed: int, what: str, **answer_fields: Any) -> None:
        """Raise the refusal when ``used`` exceeds ``allowed``."""
        if used > allowed:
            raise self.refuse(limit, account, f"{what}: {used} is more than the {allowed} this VTN allows",
                              **answer_fields)
