"""simpleHTTP fan-out: N polling VENs, one event for all, against xmpp-vtn and OpenLEADR's server.

For each server in turn, in the same run and on the same VENs: every VEN registers the way
OpenLEADR's ``OpenADRClient.run()`` does (oadrQueryRegistration, oadrCreatePartyRegistration,
oadrRegisterReport, oadrRequestEvent, then polls until the VTN owes it nothing); the VTN adds one
event for all of them; then, at time 0, every VEN polls at once. A VEN that gets its
oadrDistributeEvent answers oadrCreatedEvent (optIn) and waits for the oadrResponse. Measured:
the wall time from the first poll until the last VEN's oadrResponse, exchanges per second (one
exchange = poll, distribution, oadrCreatedEvent, oadrResponse), and the **server CPU per
exchange** (utime + stime of the server's process(es) from /proc, from time 0 until 1 s after the
last response, so work the server defers past its answers is counted).

    python bench/http_fanout.py --vens 1000 --ven-processes 3

- **ours**: :mod:`http_server_process` ``--server ours``, a separate process: VTNComponent with a
  SQLite file store, plain HTTP with ``http_allow_insecure=True`` (no TLS cost on either side),
  and its XMPP component connected to a private Prosody (nothing travels over XMPP in the run).
- **OpenLEADR**: the same script with ``--server openleadr``: OpenLEADR 0.5.36's ``OpenADRServer``,
  plain HTTP, ``on_create_party_registration`` + one ``add_event`` per VEN, as its docs show.

The VENs are not OpenADRClient instances (a thousand of them would starve the servers of CPU) but
one lean aiohttp session per VEN (its own connection, kept open after registration, as a VEN
polling at its interval keeps it) in a few worker processes. They send the bytes OpenLEADR's
client sends: every message is rendered by OpenLEADR's own ``messaging.create_message``; the
oadrCreatedEvent is rendered once per VEN before time 0 with placeholders, and the placeholders
replaced by the distribution's requestID, eventID and modificationNumber (checked byte for byte
against ``create_message`` once per worker). Unlike OpenADRClient they do not validate what they
receive: the distribution is read with a plain lxml parse.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from fanout import cpu_used, other_processes, snapshot  # noqa: E402

SETTLE_AFTER = 1.0            # seconds after the last response in which the servers' CPU still counts
TIMEOUT = 300.0               # seconds a phase may take before the run fails
REGISTER_CONCURRENCY = 32     # registrations in flight per worker (setup, not timed)
_PLACEHOLDERS = ("REQUESTIDPLACEHOLDER", "EVENTIDPLACEHOLDER", 987654321)


# -- the lean VEN (runs in the worker processes) -----------------------------------------------------

def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_distribution(body: bytes) -> tuple[str, str, str, list[tuple[str, str, str]]]:
    """(message type, vtnID, requestID, [(eventID, modificationNumber, responseRequired)]) of an
    answer to oadrPoll, from a plain parse (no validation, as a lean VEN)."""
    from lxml import etree
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    signed = next(child for child in root if _local(child.tag) == "oadrSignedObject")
    message = next(child for child in signed if isinstance(child.tag, str))
    kind = _local(message.tag)
    if kind != "oadrDistributeEvent":
        return kind, "", "", []
    vtn_id = request_id = ""
    events = []
    for child in message:
        name = _local(child.tag)
        if name == "requestID":
            request_id = child.text or ""
        elif name == "vtnID":
            vtn_id = child.text or ""
        elif name == "oadrEvent":
            found = {_local(node.tag): node.text or "" for node in child.iter()
                     if _local(node.tag) in ("eventID", "modificationNumber", "oadrResponseRequired")}
            events.append((found["eventID"], found["modificationNumber"], found.get("oadrResponseRequired", "")))
    return kind, vtn_id, request_id, events


def response_code(body: bytes) -> str:
    """The first responseCode in a document (the oadrResponse's)."""
    start = body.find(b"responseCode>")
    return body[start + 13:body.find(b"<", start)].decode() if start >= 0 else ""


def created_event(ven_id: str, request_id: str, event_id: str, modification_number: int, vtn_id: str) -> str:
    """The oadrCreatedEvent OpenADRClient._on_event sends for one event it opts in to."""
    from openleadr.messaging import create_message
    lowercase = vtn_id.islower()                     # OpenADRClient answers 452 to a lower-case vtnID
    return create_message("oadrCreatedEvent", ven_id=ven_id,
                          response={"response_code": 452 if lowercase else 200,
                                    "response_description": "ERROR" if lowercase else "OK",
                                    "request_id": request_id},
                          event_responses=[{"response_code": 200, "response_description": "OK", "opt_type": "optIn",
                                            "request_id": request_id, "modification_number": modification_number,
                                            "event_id": event_id}])


class LeanVEN:
    """One VEN: its own aiohttp session, OpenADRClient's messages, no validation of answers."""

    def __init__(self, url: str, ven_id: str):
        import aiohttp
        from openleadr.messaging import create_message
        self.url, self.ven_id = url, ven_id
        # OpenADRClient's session: these headers and timeouts, one connection; kept open between
        # registration and the fan-out as a VEN polling at its interval keeps it.
        self.session = aiohttp.ClientSession(
            headers={"content-type": "application/xml"},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT, sock_connect=5),
            connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=TIMEOUT))
        self.poll_message = create_message("oadrPoll", ven_id=ven_id).encode()
        self.created_template = created_event(ven_id, *_PLACEHOLDERS, vtn_id="VTN-1")
        self.started = self.answered = 0.0
        self.extra_polls = 0
        self.error = ""

    async def post(self, service: str, message: str | bytes) -> bytes:
        data = message.encode() if isinstance(message, str) else message
        async with self.session.post(f"{self.url}/{service}", data=data) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{service}: HTTP {response.status} {body[:200]!r}")
            return body

    async def register(self) -> None:
        """What OpenADRClient.run() sends before it starts polling, then polls until nothing is owed."""
        from openleadr.messaging import create_message, parse_message
        from openleadr.utils import generate_id
        kind, payload = parse_message(await self.post(
            "EiRegisterParty", create_message("oadrQueryRegistration", request_id=generate_id())))
        request_id = (payload.get("response") or {}).get("request_id") or generate_id()
        kind, payload = parse_message(await self.post("EiRegisterParty", create_message(
            "oadrCreatePartyRegistration", request_id=request_id, ven_name=self.ven_id, ven_id=self.ven_id,
            http_pull_model=True, xml_signature=False, report_only=False, profile_name="2.0b",
            transport_name="simpleHttp", transport_address=None, registration_id=None)))
        if payload["response"]["response_code"] != 200 or not payload.get("registration_id"):
            raise RuntimeError(f"registration refused: {payload['response']}")
        await self.post("EiReport", create_message("oadrRegisterReport", request_id=generate_id(), ven_id=self.ven_id,
                                                   reports=[], report_request_id=0))
        await self.post("EiEvent", create_message("oadrRequestEvent", request_id=generate_id(), ven_id=self.ven_id,
                                                  reply_limit=None))
        for _ in range(20):
            kind, payload = parse_message(await self.post("OadrPoll", self.poll_message))
            if kind == "oadrResponse":
                return
            if kind != "oadrRegisterReport":
                raise RuntimeError(f"before the event, a poll returned {kind}")
            await self.post("EiReport", create_message(      # what OpenADRClient._poll answers
                "oadrRegisteredReport", report_requests=[], ven_id=self.ven_id,
                response={"response_code": 200, "response_description": "OK",
                          "request_id": payload["request_id"]}))
        raise RuntimeError("the VTN kept owing messages after registration")

    async def fan_out(self) -> None:
        """Poll; answer the distribution with oadrCreatedEvent; record when its oadrResponse came."""
        try:
            self.started = time.monotonic()
            while True:
                kind, vtn_id, request_id, events = read_distribution(await self.post("OadrPoll", self.poll_message))
                if kind == "oadrDistributeEvent" and events:
                    break
                self.extra_polls += 1                 # not there yet (or something else owed): poll again
                if self.extra_polls > 100:
                    raise RuntimeError(f"no distribution after 100 polls (last: {kind})")
            if len(events) != 1:
                raise RuntimeError(f"expected one event, got {len(events)}")
            [(event_id, modification, _)] = events
            body = await self.post("EiEvent", self.created_event(request_id, event_id, modification, vtn_id))
            code = response_code(body)
            if code != "200":
                raise RuntimeError(f"oadrCreatedEvent answered with responseCode {code!r}")
            self.answered = time.monotonic()
        except Exception as error:            # reported, not raised: one VEN's failure is a figure
            self.error = f"{type(error).__name__}: {error}"

    def created_event(self, request_id: str, event_id: str, modification: str, vtn_id: str) -> bytes:
        request, event, number = _PLACEHOLDERS
        template = self.created_template if vtn_id == "VTN-1" else created_event(self.ven_id, *_PLACEHOLDERS,
                                                                                  vtn_id=vtn_id)
        return (template.replace(request, escape(request_id)).replace(event, escape(event_id))
                .replace(str(number), escape(modification)).encode())


async def _worker(url: str, ven_ids: list[str], go, results) -> None:
    vens = [LeanVEN(url, ven_id) for ven_id in ven_ids]
    # The placeholders must give exactly the bytes create_message gives for the real values.
    sample = vens[0]
    assert sample.created_event("req-1", "ev-1", "3", "VTN-1").decode() == \
        created_event(sample.ven_id, "req-1", "ev-1", 3, "VTN-1"), "placeholder rendering differs"
    try:
        gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

        async def register(ven: LeanVEN) -> str:
            async with gate:
                try:
                    await ven.register()
                    return ""
                except Exception as error:
                    return f"{ven.ven_id}: {type(error).__name__}: {error}"
        errors = [error for error in await asyncio.gather(*(register(ven) for ven in vens)) if error]
        results.put(("registered", len(vens) - len(errors), errors[:3]))
        if errors:
            return
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await asyncio.gather(*(ven.fan_out() for ven in vens))
        results.put(("done", [(ven.started, ven.answered, ven.extra_polls, ven.error) for ven in vens]))
    finally:
        await asyncio.gather(*(ven.session.close() for ven in vens))


def worker(url: str, ven_ids: list[str], go, results) -> None:
    """A worker process: its VENs register, wait for ``go``, fan out, and report."""
    try:
        asyncio.run(_worker(url, ven_ids, go, results))
    except BaseException as error:
        results.put(("failed", f"{type(error).__name__}: {error}"))
        raise


# -- one server's run --------------------------------------------------------------------------------

@dataclass
class Run:
    server: str
    n: int
    wall: float                                # first poll -> last oadrResponse, seconds
    cpu: dict[str, float]                      # CPU seconds per group and the machine's, time 0 -> settled
    trailing: float                            # of the server's CPU: after the last response
    add_event_ms: float
    answers_seen: int                          # optIn answers the server's callback counted
    extra_polls: int
    errors: list[str] = field(default_factory=list)
    others: list[tuple[str, float]] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def server_cpu(self) -> float:
        return self.cpu["server"]

    @property
    def rate(self) -> float:
        return self.n / self.wall


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def expect(process: subprocess.Popen, prefix: str) -> list[str]:
    line = process.stdout.readline()
    if not line.startswith(prefix):
        raise RuntimeError(f"the server said {line!r}, expected {prefix!r}")
    return line.split()[1:]


def run_one(name: str, n: int, workers: int, scratch: str, prosody, profile: str | None) -> Run:
    """Start the server, register N VENs, add the event, time the fan-out, stop everything."""
    port = free_port()
    command = [sys.executable, str(HERE / "http_server_process.py"), "--server", name, "--port", str(port)]
    groups: dict[str, list[int]] = {}
    if name == "ours":
        command += ["--store", f"{scratch}/vtn-{n}-{time.monotonic_ns()}.sqlite3", "--jid", prosody.component,
                    "--secret", prosody.secret, "--xmpp-port", str(prosody.component_port)]
        groups["prosody"] = [prosody.process.pid]
    if profile:
        command += ["--profile-fanout", profile]
    stderr = open(Path(scratch) / f"{name}-{n}.stderr", "w+")
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
    context = multiprocessing.get_context("spawn")
    processes = []
    try:
        expect(server, "serving")
        url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
        go, results = context.Event(), context.Queue()
        ven_ids = [f"ven-{i:05d}" for i in range(n)]
        for k in range(workers):
            process = context.Process(target=worker, args=(url, ven_ids[k::workers], go, results), daemon=True)
            process.start()
            processes.append(process)

        def collect(kind: str) -> list:
            got = []
            for _ in processes:
                message = results.get(timeout=TIMEOUT)
                if message[0] != kind:
                    raise RuntimeError(f"a VEN worker: {message}")
                got.append(message)
            return got
        registered = collect("registered")
        if sum(count for _, count, _ in registered) != n:
            raise RuntimeError(f"registration failed: {[errors for *_, errors in registered]}")
        server.stdin.write("event\n")
        server.stdin.flush()
        count, add_event_ms = expect(server, "event-added")
        if int(count) != n:
            raise RuntimeError(f"the server added the event for {count} VENs, not {n}")
        server.stdin.write("go\n")
        server.stdin.flush()
        expect(server, "going")
        groups.update({"server": [server.pid], "VEN workers": [process.pid for process in processes],
                       "bench": [os.getpid()]})
        load = os.getloadavg()
        before = snapshot(groups)
        go.set()
        done = collect("done")
        at_last = snapshot(groups)
        time.sleep(SETTLE_AFTER)
        settled = snapshot(groups)
        server.stdin.write("report\n")
        server.stdin.flush()
        [answers] = expect(server, "answers")
        vens = [ven for _, part in done for ven in part]
        errors = [error for *_, error in vens if error]
        starts = [started for started, *_ in vens if started]
        ends = [answered for _, answered, *_ in vens if answered]
        if errors or len(ends) != n:
            raise RuntimeError(f"{len(errors)} VENs failed, e.g. {errors[:3]}")
        cpu = cpu_used(before, settled)
        trailing = cpu_used(at_last, settled)["server"]
        return Run(name, n, max(ends) - min(starts), cpu, trailing, float(add_event_ms), int(answers),
                   sum(extra for *_, extra, _ in vens), errors, other_processes(before, settled), load)
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
        if server.poll() is None:
            server.terminate()                       # by its PID
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
        stderr.seek(0)
        warnings = [line for line in stderr.read().splitlines() if line.strip()]
        if len(warnings) > 5:
            print(f"  ({name}: {len(warnings)} lines on stderr, e.g. {warnings[-1][:160]!r})", flush=True)


# -- the report ---------------------------------------------------------------------------------------

def print_table(rows: list[tuple[Run, Run]], workers: int) -> None:
    print(f"\nsimpleHTTP fan-out: plain HTTP (no TLS), lean VENs in {workers} processes, one machine "
          f"({os.cpu_count()} cores). One exchange = oadrPoll, oadrDistributeEvent, oadrCreatedEvent, oadrResponse.")
    print(f"{'VENs':>6} {'server':>9} {'wall':>8} {'exch/s':>8} {'CPU/exch':>9} {'after':>6} {'add_event':>10} "
          f"{'VEN wrk':>8} {'busy/avail':>12} {'load 1m':>7}")
    for pair in rows:
        for run in pair:
            cpu = run.cpu
            print(f"{run.n:>6} {run.server:>9} {run.wall * 1000:>6.0f}ms {run.rate:>8.0f} "
                  f"{run.server_cpu / run.n * 1000:>7.3f}ms {run.trailing:>5.2f}s {run.add_event_ms:>8.0f}ms "
                  f"{cpu['VEN workers']:>7.2f}s {cpu['machine busy']:>5.2f}/{cpu['machine total']:<6.2f} "
                  f"{run.load[0]:>7.2f}")
        ours, theirs = pair
        speed = ours.rate / theirs.rate
        # /proc counts in clock ticks (10 ms): at small N a server may show none.
        cost = ours.server_cpu / theirs.server_cpu if theirs.server_cpu else float("nan")
        print(f"{ours.n:>6} {'ratio':>9} {'':>8} {speed:>7.2f}x {cost:>8.2f}x   "
              f"(ours / OpenLEADR; targets: >= 2x exchanges/s {'met' if speed >= 2 else 'NOT met'}, "
              f"<= 0.5x CPU per exchange {'met' if cost <= 0.5 else 'NOT met'})")
    print("wall = first poll -> last oadrResponse; CPU/exch = server process utime+stime from /proc from the first "
          f"poll until {SETTLE_AFTER:.0f} s after the last response, / N; after = of that, the part after the last "
          "response; add_event = server CPU to add the event (before time 0, not in CPU/exch); VEN wrk = CPU of "
          "the VEN workers in the window; busy/avail = all CPUs busy (user+system+irq) / cores x window; load "
          "1m = the machine's load average just before time 0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", default="1000", help="comma-separated VEN counts")
    parser.add_argument("--ven-processes", type=int, default=3)
    parser.add_argument("--order", choices=("ours-first", "openleadr-first"), default="ours-first")
    parser.add_argument("--profile-fanout", help="cProfile our VTN process during the timed window into this file "
                                                 "(largest N; the profiler slows it: figures of that run are not "
                                                 "comparable) and print the top 10 by tottime")
    args = parser.parse_args()
    sizes = [int(size) for size in args.vens.split(",")]
    names = ["ours", "openleadr"] if args.order == "ours-first" else ["openleadr", "ours"]
    rows = []
    with ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="xmpp-vtn-http-bench-"))
        from xmpp_vtn.testing.prosody import ProsodyServer
        prosody = stack.enter_context(ProsodyServer())
        for n in sizes:
            runs = {}
            for name in names:
                profile = args.profile_fanout if name == "ours" and n == sizes[-1] else None
                runs[name] = run_one(name, n, args.ven_processes, scratch, prosody, profile)
                run = runs[name]
                print(f"N={n} {name}: {run.wall * 1000:.0f} ms, {run.rate:.0f} exchanges/s, server CPU "
                      f"{run.server_cpu / n * 1000:.3f} ms per exchange, {run.answers_seen} optIn answers seen by the "
                      f"server, {run.extra_polls} extra polls; load average {run.load[0]:.2f}; busiest other "
                      f"processes {', '.join(f'{p} {s:.2f}s' for p, s in run.others)}", flush=True)
            rows.append((runs["ours"], runs["openleadr"]))
    print_table(rows, args.ven_processes)
    if args.profile_fanout:
        import pstats
        print(f"\nour VTN during the window, top 10 by tottime ({args.profile_fanout}):")
        pstats.Stats(args.profile_fanout).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
