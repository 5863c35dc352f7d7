"""A VTN in its own process, for the fan-out benchmark and for fault tests that kill it:
``python bench/vtn_process.py --help``.

Every oadrCreatedEvent answer the application sees is appended to ``--log`` as a JSON line, so a
test can count callbacks across processes. With ``--event-when N`` it adds one event for all VENs
as soon as N are registered and have answered the VTN's oadrRegisterReport (a single instance;
with ``--instance-id`` once N are registered and the shared outbox has been empty for a second)
and prints ``event-added``; once all N have answered it prints
``fanout-ms <milliseconds from add_event to the last answer handled>``.

That line counts only the answers *this* process handled: with several instances the answers are
spread over them, so the adding instance never sees all N. ``--log-times`` is for that case: each
log line gets ``"t"`` (``time.monotonic()``, one clock for every process on a Linux machine) and
``event-added`` is followed by ``event-added-at <t>``, so that a reader of the shared log can
time the fan-out itself (bench/fanout.py does). Without it the output is as described above.

Several of these can serve one VTN: the same ``--jid`` on ejabberd, the same ``postgresql://``
``--store``, each its own ``--instance-id``; only one of them is given ``--event-when``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmpp_vtn import VTNComponent  # noqa: E402
from xmpp_vtn.runtime.cluster import BALANCINGS  # noqa: E402
from xmpp_vtn.runtime.observer import ExchangeObserver  # noqa: E402
from xmpp_vtn.runtime.outbox import DEFAULT_PUSH_CONCURRENCY  # noqa: E402


class PushCounter(ExchangeObserver):
    """How many oadrDistributeEvent pushes this instance sent (its share of a fan-out), and how far
    the VENs' start-up exchange has come: the oadrRegisterReport each new registration is pushed,
    and the oadrRegisteredReport the VEN answers it with."""

    def __init__(self) -> None:
        self.distributions = 0
        self.distribution_times: list[float] = []  # time.monotonic() as each left (one clock for all processes)
        self.offered: set[str] = set()          # venIDs pushed the VTN's oadrRegisterReport
        self.answered: set[str] = set()         # venIDs that answered it

    def push_sent(self, message_type: str, ven_id: str) -> None:
        if message_type == "oadrDistributeEvent":
            self.distributions += 1
            self.distribution_times.append(time.monotonic())
        elif message_type == "oadrRegisterReport":
            self.offered.add(ven_id)

    def inbound(self, message_type: str, ven_id: str | None, outcome: str, payload: dict | None) -> None:
        if message_type == "oadrRegisteredReport" and ven_id is not None:
            self.answered.add(ven_id)

    def started_up(self, ven_ids: list[str]) -> bool:
        """Whether every one of ``ven_ids`` has been offered the VTN's reports and has answered."""
        return all(ven_id in self.offered and ven_id in self.answered for ven_id in ven_ids)


#: The event the fan-out times; --warm-up pushes WARM_UP_ID first.
EVENT_ID = "fault-event"
WARM_UP_ID = "warm-up-event"


async def warm_up(vtn: VTNComponent, start: datetime, duration: float) -> None:
    """Push a first event to every VEN and wait until every one has answered it (as the shared
    store records it, whichever instance handled the answer): the fan-out timed next then meets
    instances that have each seen every VEN, as a cluster that has run a while does."""
    ven_ids = [ven.ven_id for ven in vtn.vens()]
    vtn.add_event(ven_ids, "SIMPLE", "level",
                  [{"dtstart": start, "duration": timedelta(seconds=duration), "signal_payload": 0.5}],
                  event_id=WARM_UP_ID)
    while sum(delivery.opt_type is not None for delivery in vtn.store.deliveries(WARM_UP_ID)) < len(ven_ids):
        await asyncio.sleep(0.02)                       # polling what the VENs drive; no event to await
    while vtn.store.queued_ven_ids():
        await asyncio.sleep(0.02)


async def serve(args: argparse.Namespace) -> None:
    vtn = VTNComponent("VTN-1", args.jid, args.secret, port=args.port, store=args.store, ping_interval=None,
                       push_concurrency=args.push_concurrency, push_timeout=args.push_timeout,
                       instance_id=args.instance_id, lease_seconds=args.lease_seconds, balancing=args.balancing,
                       tune_gc=not args.untuned_gc,
                       **({"control_port": args.control_port, "control_tokens": [args.control_token_hash]}
                          if args.control_port is not None else {}))
    log = open(args.log, "a", buffering=1)
    answered: set[str] = set()
    timing = {"start": 0.0}

    def on_created_event(payload: dict) -> None:
        for answer in payload.get("event_responses") or []:
            line = {"pid": os.getpid(), "ven_id": payload["ven_id"], "event_id": answer["event_id"],
                    "opt": answer["opt_type"]}
            if args.log_times:
                line["t"] = time.monotonic()
            log.write(json.dumps(line) + "\n")
            if answer["event_id"] == EVENT_ID:            # not the --warm-up event
                answered.add(payload["ven_id"])
        if args.fsync:
            os.fsync(log.fileno())
        if args.event_when and len(answered) == args.event_when and timing["start"]:
            print(f"fanout-ms {(time.perf_counter() - timing['start']) * 1000:.1f}", flush=True)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile_fanout)
                timing["profiled"] = True
    vtn.add_handler("on_create_party_registration", lambda payload: (payload["ven_id"], "reg-" + payload["ven_id"]))
    vtn.add_handler("on_created_event", on_created_event)
    profiler = None
    if args.profile_fanout:
        import cProfile
        profiler = cProfile.Profile()
    pushes = PushCounter()
    if vtn.control is None:                 # the control listener watches the VTN itself
        vtn.watch(pushes)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await vtn.run()
    print(f"serving {len(vtn.vens())} vens {len(vtn.events())} events {vtn.replayed_answers} replayed", flush=True)
    if args.event_when:
        # Registered, and done with the start-up exchange that follows (the VTN's oadrRegisterReport
        # and the VEN's oadrRegisteredReport), so that the fan-out is timed alone. Only this instance
        # sees its own pushes: with several, the adding one waits until the shared outbox has held
        # no oadrRegisterReport for a second (each VEN answers within milliseconds of its push).
        quiet_since = None
        while len(vtn.vens()) < args.event_when or (
                vtn.control is None and args.instance_id is None and
                not pushes.started_up([ven.ven_id for ven in vtn.vens()])) or (
                args.instance_id is not None and (quiet_since is None or time.monotonic() - quiet_since < 1.0)):
            if args.instance_id is not None and len(vtn.vens()) >= args.event_when:
                if vtn.store.queued_ven_ids():
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
            await asyncio.sleep(0.02)                   # polling counts the VENs drive; no event to await
        start = datetime.now(timezone.utc) + timedelta(seconds=args.event_start_in)
        if args.warm_up:
            await warm_up(vtn, start, args.event_duration)
        if profiler is not None:
            profiler.enable()
        timing["start"] = time.perf_counter()
        added_at = time.monotonic()
        vtn.add_event([ven.ven_id for ven in vtn.vens()], "SIMPLE", "level",
                      [{"dtstart": start, "duration": timedelta(seconds=args.event_duration), "signal_payload": 1.0}],
                      event_id=EVENT_ID)
        print("event-added", flush=True)
        if args.log_times:
            print(f"event-added-at {added_at:.6f}", flush=True)
    await stopping.wait()
    if profiler is not None and timing["start"] and not timing.get("profiled"):
        # Several instances: this one answers only its share, so the profile runs until the stop.
        profiler.disable()
        profiler.dump_stats(args.profile_fanout)
    await vtn.stop()
    if args.push_times:
        Path(args.push_times).write_text(json.dumps(pushes.distribution_times))
    passed_on = vtn.component.foreign_answers
    print(f"stopped {vtn.replayed_answers} replayed {pushes.distributions} distributions "
          f"{passed_on['bytes']} passed-on-from-bytes {passed_on['parsed result']} passed-on-parsed-results",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--jid", "--secret", "--store", "--log"):
        parser.add_argument(name, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--event-when", type=int, default=0)
    parser.add_argument("--fsync", action="store_true", help="fsync the answer log after every answer")
    parser.add_argument("--push-concurrency", type=int, default=DEFAULT_PUSH_CONCURRENCY)
    parser.add_argument("--push-timeout", type=float, default=10.0)
    parser.add_argument("--event-start-in", type=float, default=3600.0, help="seconds from add_event to its start")
    parser.add_argument("--event-duration", type=float, default=1800.0, help="seconds")
    parser.add_argument("--push-times", help="write the time.monotonic() at which each oadrDistributeEvent push "
                        "left to this file (a JSON list), at the stop")
    parser.add_argument("--instance-id", help="this instance's id, when several share a postgresql:// store")
    parser.add_argument("--lease-seconds", type=float, default=15.0)
    parser.add_argument("--balancing", choices=BALANCINGS, default="random",
                        help="how the XMPP server shares the VENs' stanzas among the instances")
    parser.add_argument("--warm-up", action="store_true",
                        help="with --event-when: push a first event to every VEN and wait for all its answers "
                             "before the timed one")
    parser.add_argument("--log-times", action="store_true",
                        help='add "t" (time.monotonic()) to every --log line and print event-added-at <t>')
    parser.add_argument("--untuned-gc", action="store_true",
                        help="leave the garbage collector as it is (xmpp-vtn run tunes it; see runtime/collector.py)")
    parser.add_argument("--profile", help="write a cProfile of the whole run to this file")
    parser.add_argument("--profile-fanout", help="write a cProfile of the fan-out alone (add_event to the last "
                                                 "answer) to this file")
    parser.add_argument("--control-port", type=int, help="serve the control API and dashboard on this loopback port")
    parser.add_argument("--control-token-hash", help="the token hash the control listener accepts")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        cProfile.runctx("asyncio.run(serve(args))", globals(), {"args": args, "serve": serve}, args.profile)
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
