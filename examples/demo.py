"""The live demo: a private Prosody on loopback, the example VTN (examples/vtn.py) as its
component, and three simulated VENs that query and register, beside an unmodified OpenLEADR VEN
that registers and polls over simpleHTTP; an event is pushed to the XMPP VENs and polled by the
HTTP one, all answer, and its status changes are pushed as time passes; the VENs offer
telemetry, the VTN asks for 10-second usage readings and a few arrive; one VEN posts an opt-out
window; then everything stops.

The operator's dashboard is up while it runs: the demo prints its address and a token to log in
with. ``--stay`` keeps the VTN and its VENs (and the dashboard) up after the story, until Ctrl-C.

Run it with ``make demo`` (which sets up the venv, the XSD bundle and Prosody first).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vtn import KNOWN_VENS, build_vtn  # noqa: E402  (the example VTN beside this file)

from openleadr import OpenADRClient  # noqa: E402  (OpenLEADR's own VEN, unmodified)

from xmpp_vtn.control.auth import hash_token, new_token  # noqa: E402
from xmpp_vtn.testing.prosody import ProsodyError, ProsodyServer  # noqa: E402
from xmpp_vtn.testing.ven import OpenADRRefusal, SimulatedVEN  # noqa: E402

PASSWORD = "demo-password"
ACCOUNTS = {"north": "ven-north", "east": "ven-east", "south": "ven-south"}


class TimelineLog(logging.Handler):
    """Warnings (a refused intruder, a lost connection) printed in the timeline as ``actor``'s."""

    def __init__(self, say: "Timeline", actor: str = "vtn log"):
        super().__init__(logging.WARNING)
        self.say, self.actor = say, actor

    def emit(self, record: logging.LogRecord) -> None:
        self.say(self.actor, record.getMessage())


class Timeline:
    """Prints what happens, with the time since the demo started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, actor: str, text: str) -> None:
        print(f"{time.monotonic() - self.start:8.3f}s  {actor:<8} {text}", flush=True)


async def run_ven(server: ProsodyServer, account: str, ven_id: str, say: Timeline) -> SimulatedVEN:
    """Log one VEN in, query the VTN and register."""
    ven = SimulatedVEN(f"{account}@{server.domain}/oadr", PASSWORD, server.component, port=server.c2s_port,
                       ven_id=ven_id, ven_name=KNOWN_VENS[ven_id][0])
    await ven.start()
    say(account, f"logged in as {ven.full_jid}")
    say(account, "-> oadrQueryRegistration")
    offer = await ven.query_registration()
    profiles = ", ".join(f"{p['profile_name']} over {'/'.join(t['transport_name'] for t in p['transports'])}"
                         for p in offer["profiles"])
    say(account, f"<- oadrCreatedPartyRegistration: VTN {offer['vtn_id']} offers {profiles}")
    say(account, f"-> oadrCreatePartyRegistration for venID {ven_id}")
    try:
        await ven.register()
        say(account, f"<- oadrCreatedPartyRegistration 200: registration {ven.registration_id}")
    except OpenADRRefusal as refusal:
        reason = refusal.payload["response"].get("response_description")
        say(account, f"<- oadrCreatedPartyRegistration {refusal.code}: refused ({reason})")
    return ven


async def run_openleadr_ven(vtn, say: Timeline) -> OpenADRClient:
    """OpenLEADR's own VEN, as its users run it: it registers over simpleHTTP and polls."""
    client = OpenADRClient(ven_name=KNOWN_VENS["ven-west"][0], vtn_url=vtn.http_url, ven_id="ven-west",
                           show_fingerprint=False)

    async def on_event(event: dict) -> str:
        say("west", f"<- oadrDistributeEvent by poll: {event['event_descriptor']['event_id']} is "
                    f"{event['event_descriptor']['event_status']}; answering optIn")
        return "optIn"
    client.add_handler("on_event", on_event)
    client.add_handler("on_update_event", on_event)
    say("west", f"OpenLEADR {OpenADRClient.__module__.split('.')[0]} VEN -> oadrCreatePartyRegistration "
                f"over simpleHTTP at {vtn.http_url}")
    await client.run()
    say("west", f"<- registered as {client.ven_id}, registration {client.registration_id}; polls every "
                f"{client.poll_frequency.total_seconds():g} s")
    return client


async def show_event(vtn, vens: list[SimulatedVEN], say: Timeline, pollers: tuple[str, ...] = ()) -> None:
    """One event pushed to the three VENs (and polled by ``pollers``), their answers, and its
    status changes as time passes."""
    vens[1].opt = "optOut"                     # east cannot shed load today
    answered = asyncio.Event()
    answers: list[tuple[str, str]] = []
    ven_ids = [ven.ven_id for ven in vens] + list(pollers)

    def on_answer(ven_id: str, event_id: str, opt_type: str) -> None:
        answers.append((ven_id, opt_type))
        say("vtn", f"callback: {ven_id} answered {opt_type} for {event_id}")
        if len({ven_id for ven_id, _ in answers}) == len(ven_ids):
            answered.set()

    start = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    event_id = vtn.add_event(ven_ids, "SIMPLE", "level",
                             [{"dtstart": start, "duration": timedelta(seconds=1), "signal_payload": 2.0}],
                             event_id="shed-demo", callback=on_answer, market_context="http://grid.example/dr")
    say("vtn", f"add_event({event_id}): level 2 for 1 s, starting {start:%H:%M:%S.%f}"[:-3]
               + f", for {', '.join(ven_ids)}")

    async def follow(ven: SimulatedVEN) -> None:
        for _ in range(3):                      # far, active, completed
            push = await ven.next_push("oadrDistributeEvent", timeout=15)
            descriptor = push.payload["events"][0]["event_descriptor"]
            line = f"<- oadrDistributeEvent pushed: {descriptor['event_id']} is {descriptor['event_status']}"
            if descriptor["event_status"] == "far":
                line += f"; answered oadrCreatedEvent {ven.answered[descriptor['event_id']][1]}"
            say(ven.jid.split("@")[0], line)

    await asyncio.gather(answered.wait(), *(follow(ven) for ven in vens))
    for state in vtn.events():
        opts = ", ".join(f"{ven_id} {d.opt_type}" for ven_id, d in sorted(state.deliveries.items()))
        say("vtn", f"event {state.event_id}: {state.status}, modification {state.modification_number}; {opts}")


ENERGY = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"}


async def show_reports_and_opts(vtn, vens: list[SimulatedVEN], readings: "Counter", say: Timeline) -> None:
    """The VENs offer telemetry, the VTN asks for 10-second usage, readings arrive; south opts out."""
    for number, ven in enumerate(vens, start=1):
        meter = iter(range(100))
        ven.offer_report("usage", "energy", lambda n=number, m=meter: round(n * 1.5 + next(m) * 0.1, 2), ENERGY,
                         resource_id="meter1", min_period=timedelta(seconds=10), max_period=timedelta(minutes=15))
        ven.report_on_schedule = True
    answers = await asyncio.gather(*(ven.register_reports() for ven in vens))
    for ven, answer in zip(vens, answers):
        specifier = answer["report_requests"][0]["report_specifier"]
        say(ven.jid.split("@")[0], f"-> oadrRegisterReport (energy usage); <- oadrRegisteredReport: every "
                                   f"{specifier['granularity'].seconds} s, please")
    await readings.wait_for(2 * len(vens))            # two rounds of 10-second readings

    south = vens[2]
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    say("south", f"-> oadrCreateOpt: optOut {start:%H:%M}-{start + timedelta(hours=1):%H:%M} UTC (maintenance)")
    answer = await south.request("oadrCreateOpt", {
        "opt_id": "south-maintenance", "opt_type": "optOut", "opt_reason": "x-schedule", "request_id": "opt-1",
        "ven_id": south.ven_id, "created_date_time": datetime.now(timezone.utc),
        "vavailability": {"components": [{"dtstart": start, "duration": timedelta(hours=1)}]},
        "targets": [], "targets_by_type": {}})
    say("south", f"<- {answer[0]} {answer[1]['response']['response_code']}")
    say("vtn", f"opts in force: {', '.join(opt['opt_id'] + ' (' + opt['ven_id'] + ')' for opt in vtn.opts())}")


class Counter:
    """Counts readings and lets the demo wait for a number of them."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()

    async def add(self) -> None:
        async with self._changed:
            self.count += 1
            self._changed.notify_all()

    async def wait_for(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.count >= count), 60)


async def stay_until_interrupted(say: Timeline) -> None:
    """Keep serving (the dashboard too) until Ctrl-C or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    say("vtn", "staying up (--stay): stop with Ctrl-C")
    await stopping.wait()


async def demo(server: ProsodyServer, store: Path, say: Timeline, dashboard_port: int = 0,
               stay: bool = False) -> None:
    def on_decision(ven_id: str, registration_id: str | None) -> None:
        say("vtn", f"on_create_party_registration({ven_id}) -> "
                   f"{registration_id and 'accepted, ' + registration_id or 'refused'}")

    readings = Counter()

    def on_reading(ven_id: str, unit: str, data: list) -> None:
        for at, value in data:
            say("vtn", f"reading from {ven_id}: {value} k{unit} at {at:%H:%M:%S}")
        asyncio.get_running_loop().create_task(readings.add())

    def on_opt(payload: dict) -> None:
        say("vtn", f"on_create_opt: {payload['ven_id']} {payload['opt_type']} {payload['opt_id']}")

    token = new_token()                         # a throwaway token: only its hash is given to the VTN
    vtn = build_vtn(server.component, server.secret, port=server.component_port, store=str(store),
                    vtn_id="VTN-demo", on_decision=on_decision, on_reading=on_reading, on_opt=on_opt,
                    control_port=dashboard_port, control_tokens={"demo-operator": hash_token(token)},
                    # simpleHTTP beside XMPP for the OpenLEADR VEN: plain loopback HTTP, polled every second.
                    http_port=0, http_allow_insecure=True, requested_poll_freq=timedelta(seconds=1))
    await vtn.run()
    say("vtn", f"VTN-demo connected to Prosody as component {vtn.jid}")
    say("vtn", f"dashboard at {vtn.control_url} (log in with token {token}); up while the demo runs")
    vens: list[SimulatedVEN] = []
    west: OpenADRClient | None = None
    try:
        vens = list(await asyncio.gather(*(run_ven(server, account, ven_id, say)
                                           for account, ven_id in ACCOUNTS.items())))
        west = await run_openleadr_ven(vtn, say)
        intruder = await run_ven(server, "intruder", "ven-north", say)   # venID belongs to north
        vens.append(intruder)

        east = vens[1]
        say("vtn", f"-> oadrRequestReregistration pushed to {east.ven_id} at {east.full_jid}")
        await vtn.request_reregistration(east.ven_id)
        say("vtn", "   acknowledged (empty iq result)")
        push = await east.next_push("oadrRequestReregistration")
        say("east", f"<- {push.message_type} from {push.sender}; answered oadrResponse, "
                    f"registered again as {east.registration_id}")

        await show_event(vtn, vens[:3], say, pollers=(west.ven_id,))

        await show_reports_and_opts(vtn, vens[:3], readings, say)

        say("vtn", "registered VENs:")
        for ven in vtn.vens():
            say("vtn", f"   {ven.ven_id:<10} {ven.registration_id:<15} {ven.transport_address}")
        if stay:
            await stay_until_interrupted(say)
    finally:
        await asyncio.gather(*(ven.stop() for ven in vens))
        if west is not None:
            await west.stop()
        await vtn.stop()
        say("vtn", "VENs logged out, VTN stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description="the xmpp-vtn live demo on a private Prosody")
    parser.add_argument("--stay", action="store_true", help="keep serving after the story, until Ctrl-C")
    parser.add_argument("--dashboard-port", type=int, default=0, help="the dashboard's port (default: a free one)")
    args = parser.parse_args()
    say = Timeline()
    vtn_log = logging.getLogger("xmpp_vtn")
    vtn_log.addHandler(TimelineLog(say))
    # OpenLEADR's VEN says what it thinks in warnings too (it takes no reports from a VTN).
    openleadr_log = logging.getLogger("openleadr")
    openleadr_log.addHandler(TimelineLog(say, "west log"))
    openleadr_log.propagate = False
    vtn_log.propagate = False
    try:
        server = ProsodyServer()
    except ProsodyError as error:
        print(f"The demo needs Prosody: {error}", file=sys.stderr)
        return 2
    with server, tempfile.TemporaryDirectory(prefix="xmpp-vtn-demo-") as state:   # `with` starts it
        pid = server.pid
        say("prosody", f"started, pid {pid}, clients on 127.0.0.1:{server.c2s_port}, "
                       f"components on 127.0.0.1:{server.component_port}")
        for account in (*ACCOUNTS, "intruder"):
            server.register(account, PASSWORD)
        say("prosody", f"accounts {', '.join(ACCOUNTS)} and intruder created")
        asyncio.run(demo(server, Path(state) / "vtn.sqlite3", say, args.dashboard_port, args.stay))
    say("prosody", f"stopped, pid {pid}, {server.directory} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
