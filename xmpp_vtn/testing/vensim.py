"""``xmpp-vtn ven-sim``: many simulated VENs, spread over processes, against a VTN.

Each VEN logs in (plain, STARTTLS or direct TLS), registers with its account's local part as its
venID, offers telemetry (real power and energy of one meter), answers every event (opting in or
out: the configured share of the VENs, the same ones every run, after the configured delay) and
every report request, sending readings on the schedule the VTN asks for, the way
:class:`~xmpp_vtn.testing.ven.SimulatedVEN` does. The parent process prints a progress line while
they connect, each kind of failure as it first happens, and a summary at the end.

Accounts come from a file (``jid password`` per line, for a real server) or are made up as
``<prefix><n>@<domain>`` with one password (for a test server that has them, e.g. created with
:meth:`xmpp_vtn.testing.prosody.ProsodyServer.register_many`).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import queue
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .clients import PLAIN, Security
from .lean_ven import make_lean
from .ven import SimulatedVEN

#: What each simulated VEN offers (OpenLEADR's measurement representation).
POWER = {"name": "powerReal", "description": "RealPower", "unit": "W", "scale": "none",
         "power_attributes": {"hertz": 50.0, "voltage": 230.0, "ac": True}}
ENERGY = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "none"}
TELEMETRY_SPECIFIER = "telemetry"


@dataclass
class Options:
    vtn_jid: str
    host: str
    port: int
    #: The bare JIDs that opt in to events (the others opt out): see :func:`choose_opt_in`.
    opt_in: frozenset[str] | None = None
    answer_delay: float = 0.0
    request_timeout: float = 30.0
    #: Answer event pushes the lean way (:mod:`xmpp_vtn.testing.lean_ven`): for load on one machine.
    lean: bool = False
    security: Security = PLAIN
    #: Offer telemetry (real power and energy); ven-sim does unless --no-telemetry.
    telemetry: bool = False
    #: The shortest sampling period the VENs offer (the VTN asks for its own, not below it).
    min_sampling: timedelta = timedelta(seconds=1)


@dataclass
class Counts:
    """What one worker's VENs did; summed over workers for the summary."""

    connected: int = 0
    registered: int = 0
    failed: int = 0
    events_received: int = 0
    answers_sent: int = 0
    readings_sent: int = 0
    #: seconds from an event's createdDateTime (the VTN's add_event) to its first arrival at a VEN
    latencies: list[float] = field(default_factory=list)

    def add(self, other: "Counts") -> None:
        self.connected += other.connected
        self.registered += other.registered
        self.failed += other.failed
        self.events_received += other.events_received
        self.answers_sent += other.answers_sent
        self.readings_sent += other.readings_sent
        self.latencies.extend(other.latencies)


def choose_opt_in(jids: list[str], ratio: float) -> frozenset[str]:
    """The VENs that opt in: ``round(ratio * len(jids))`` of them, chosen by a hash of each JID,
    so a run can be repeated (the same VENs opt in every time) and 0.5 of 2 VENs is one VEN.

    >>> sorted(choose_opt_in(["a@x", "b@x"], 0.5)) in (["a@x"], ["b@x"])
    True
    """
    ranked = sorted(jids, key=lambda jid: hashlib.sha256(jid.encode()).hexdigest())
    return frozenset(ranked[:round(ratio * len(jids))])


def _meter(jid: str):
    """A VEN's readings: a steady walk around a base load of its own (deterministic per JID)."""
    seed = int(hashlib.sha256(jid.encode()).hexdigest()[:8], 16)
    base = 500.0 + seed % 4500                                   # 0.5 .. 5 kW
    state = {"n": 0, "energy": 0.0}

    def power() -> float:
        state["n"] += 1
        return round(base * (1 + 0.1 * ((state["n"] * 7 + seed) % 11 - 5) / 5), 1)

    def energy() -> float:
        state["energy"] += base / 3600                           # Wh per second at the base load
        return round(state["energy"], 3)
    return power, energy


async def _run_worker(accounts: list[tuple[str, str]], options: Options, progress, stop) -> Counts:
    counts = Counts()
    seen: set[tuple[str, str, int]] = set()

    def make(jid: str, password: str) -> SimulatedVEN:
        opts_in = options.opt_in is None or jid.split("/")[0] in options.opt_in
        ven = SimulatedVEN(jid if "/" in jid else f"{jid}/oadr", password, options.vtn_jid, host=options.host,
                           port=options.port, ven_id=jid.split("@")[0], request_timeout=options.request_timeout,
                           opt="optIn" if opts_in else "optOut", security=options.security,
                           report_on_schedule=True)
        if options.telemetry:
            power, energy = _meter(jid)
            for r_id, source, measurement in (("power", power, POWER), ("energy", energy, ENERGY)):
                ven.offer_report(TELEMETRY_SPECIFIER, r_id, source, measurement, resource_id="meter1",
                                 min_period=options.min_sampling)
        original = ven._answer_events
        original_send = ven.send_report

        async def send_report(*args, **kwargs):
            answer = await original_send(*args, **kwargs)
            counts.readings_sent += 1
            progress.put(("readings_sent", 1))
            return answer
        ven.send_report = send_report

        async def answer_events(item):
            arrived = datetime.now(timezone.utc)
            for event in item.payload["events"]:
                descriptor = event["event_descriptor"]
                key = (ven.ven_id, descriptor["event_id"], descriptor["modification_number"])
                if key not in seen:
                    seen.add(key)
                    counts.events_received += 1
                    counts.latencies.append((arrived - descriptor["created_date_time"]).total_seconds())
            if options.answer_delay:
                await asyncio.sleep(options.answer_delay)       # a VEN that thinks before it answers
            before = len(ven.answered)
            await original(item)
            if len(ven.answered) > before:
                counts.answers_sent += len(ven.answered) - before
                progress.put(("answers_sent", len(ven.answered) - before))
        ven._answers["oadrDistributeEvent"] = answer_events
        if options.lean:
            make_lean(ven, on_arrival=lambda states: arrived(ven, states), on_answer=answered)
        return ven

    def arrived(ven: SimulatedVEN, states) -> None:
        now = datetime.now(timezone.utc)
        for event_id, modification, _status, created in states:
            key = (ven.ven_id, event_id, modification)
            if key not in seen:
                seen.add(key)
                counts.events_received += 1
                if created is not None:
                    counts.latencies.append((now - created).total_seconds())

    def answered(count: int) -> None:
        counts.answers_sent += count
        progress.put(("answers_sent", count))

    vens = [make(jid, password) for jid, password in accounts]

    async def bring_up(ven: SimulatedVEN) -> None:
        try:
            await ven.start(timeout=60)
            counts.connected += 1
            progress.put(("connected", 1))
            await ven.register()
            counts.registered += 1
            progress.put(("registered", 1))
            if ven.offered_reports:
                await ven.register_reports()
        except Exception as error:                              # counted and reported, not fatal
            counts.failed += 1
            progress.put(("failed", (ven.jid.split("/")[0], _reason(ven.jid, error))))
    slots = asyncio.Semaphore(50)                               # logins in flight per process

    async def limited(ven):
        async with slots:
            await bring_up(ven)
    await asyncio.gather(*(limited(ven) for ven in vens))
    while not stop.is_set():
        await asyncio.sleep(0.1)                                # the parent says when; no event crosses processes
    await asyncio.gather(*(ven.stop() for ven in vens), return_exceptions=True)
    return counts


def _reason(jid: str, error: Exception) -> str:
    """Why a VEN failed, without its JID (so a thousand alike are one line)."""
    text = str(error) or type(error).__name__
    return text.split(": ", 1)[1] if text.startswith(jid.split("/")[0] + ": ") else text


def _worker(accounts, options, progress, stop, results) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)                # the parent decides when to stop
    # The parent prints each failure with its reason; slixmpp's own lines about it would repeat it.
    logging.getLogger("slixmpp").setLevel(logging.CRITICAL)
    results.put(asyncio.run(_run_worker(accounts, options, progress, stop)))


def run_simulation(accounts: list[tuple[str, str]], options: Options, processes: int = 1,
                   duration: float | None = None, until=None, out=sys.stdout) -> Counts:
    """Run the VENs in ``processes`` worker processes until ``duration`` seconds after all are up,
    ``until(counts)`` is true, or Ctrl-C; returns the summed :class:`Counts`."""
    context = multiprocessing.get_context("spawn")
    progress, results, stop = context.Queue(), context.Queue(), context.Event()
    shares = [accounts[i::processes] for i in range(processes)]
    workers = [context.Process(target=_worker, args=(share, options, progress, stop, results), daemon=True)
               for share in shares if share]
    for worker in workers:
        worker.start()
    live = Counts()
    reasons: dict[str, int] = {}                                # failure reason -> how many VENs
    up_since = None
    try:
        while True:
            try:
                kind, value = progress.get(timeout=0.2)
                if kind == "failed":
                    live.failed += 1
                    jid, reason = value
                    reasons[reason] = reasons.get(reason, 0) + 1
                    if reasons[reason] == 1:                    # each kind of failure once, as it happens
                        print(f"\n{jid} failed: {reason}", file=out, flush=True)
                else:
                    setattr(live, kind, getattr(live, kind) + value)
                if kind not in ("answers_sent", "readings_sent"):
                    print(f"\rconnected {live.connected}/{len(accounts)}  registered {live.registered}  "
                          f"failed {live.failed}", end="", file=out, flush=True)
            except queue.Empty:
                pass
            if up_since is None and live.registered + live.failed >= len(accounts):
                up_since = time.monotonic()
                print(file=out, flush=True)
            if up_since is not None and ((duration is not None and time.monotonic() - up_since >= duration)
                                         or (until is not None and until(live))):
                break
    except KeyboardInterrupt:
        print(file=out)
    stop.set()
    total = Counts()
    for _ in workers:
        total.add(results.get(timeout=120))
    for worker in workers:
        worker.join(30)
    total.failed = max(total.failed, live.failed)
    for reason, count in reasons.items():
        if count > 1:
            print(f"{count} VENs failed: {reason}", file=out)
    return total


def summary(counts: Counts, total: int) -> str:
    """The end-of-run report, one line per figure."""
    lines = [f"VENs: {total}, connected {counts.connected}, registered {counts.registered}, failed {counts.failed}",
             f"events received {counts.events_received}, answers sent {counts.answers_sent}, "
             f"readings sent {counts.readings_sent}"]
    if counts.latencies:
        ordered = sorted(counts.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        lines.append(f"add_event -> VEN receipt: p50 {statistics.median(ordered) * 1000:.0f} ms, "
                     f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    return "\n".join(lines)


def load_accounts(path: str | None, prefix: str, domain: str, count: int, password: str) -> list[tuple[str, str]]:
    """``jid password`` lines from ``path``, or ``count`` made-up accounts."""
    if path:
        accounts = []
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                parts = line.split()
                if len(parts) != 2 or "@" not in parts[0]:
                    raise ValueError(f"{path}:{number}: expected 'jid password', got {line.strip()!r}")
                accounts.append((parts[0], parts[1]))
        return accounts[:count] if count else accounts
    return [(f"{prefix}{n}@{domain}", password) for n in range(count)]
