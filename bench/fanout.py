"""Event fan-out at scale: the XMPP server, the VTN and N VENs, each in its own processes on this machine.

For each N: the time from ``vtn.add_event`` (one event for all N VENs) until every VEN's
oadrCreatedEvent has been handled by the VTN, and p50/p99 of add_event -> VEN receipt. A single
VTN adds the event once every VEN has registered *and* finished the start-up exchange that
follows (the VTN's oadrRegisterReport and the VEN's oadrRegisteredReport), so that the fan-out is
timed alone; with several instances the adding one sees only its own pushes, so it waits until
the shared outbox has held nothing (the oadrRegisterReport pushes acknowledged) for a second. In
the same run, the **raw ceiling**: bare slixmpp doing the same stanza exchange (push, empty ack, an
``iq set`` back, its result) with **the same bytes** (the real oadrDistributeEvent, oadrCreatedEvent
and oadrResponse) and no OpenADR work, clients spread over the same number of processes, run
before and again after ours (the server slows as it serves, see :func:`bracketed`; the ratios use
the mean of the two); and, for reference, the same with tiny placeholder payloads. Prints both
and the ratio (raw / ours: 1.0 would be the ceiling), and the **CPU per exchange** of the VTN
process and of the raw component (from /proc and the process clock), which holds whatever else
the machine is doing; beside them the XMPP server's CPU per exchange during each, the raw
ceiling's own receipt p50/p99, each VTN instance's peak resident memory, and when the pushes left the VTN after ``add_event`` (first,
half, last): what follows the last is the server's relaying and the VENs' answers.

The simulated VENs answer the lean way by default (:mod:`xmpp_vtn.testing.lean_ven`: no validation
of pushes, answers rendered once per event state), as the raw clients do; ``--validating-vens``
runs the full SimulatedVEN instead.

    python bench/fanout.py --vens 100,1000 --ven-processes 3

By default: Prosody, one VTN process, a SQLite file store. With ``--instances 1,2`` (any count
above 1) or ``--server ejabberd``: a private ejabberd (the raw ceiling runs on it too) and a
private PostgreSQL, a fresh database per run, and for each instance count K, K ``vtn_process.py``
with the same component JID and store, each its own ``--instance-id``, the first alone adding
the event. ejabberd spreads the VENs' stanzas over the K connections at random, so the answers
are handled by all K: the fan-out is then timed here, from the shared answer log (see
:func:`vtn_fanout`), and the CPU each process used during it is read from ``/proc``.

``--warm-up`` pushes every VEN a first event, and waits for all its answers, before the timed
one: every instance has then met every VEN (read its registration, recorded it online), as in a
cluster that has been running, and the timed fan-out carries none of that first-contact work.

    python bench/fanout.py --vens 200,1000 --instances 1,2 --server ejabberd

``--balancing bare_source`` runs each count K above 1 on an ejabberd of its own whose
``domain_balancing`` hands every stanza of one VEN to the same of its K connections
(``component_number: K``), and the instances with ``balancing = "bare_source"``, so that each
pushes to the VENs it hears. A slot no connection holds drops its stanzas, so the raw rounds and
the one-instance run stay on the first ejabberd, which balances at random.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from raw_exchange import SMALL, Payloads, RawResult, raw_ceiling, real_payloads  # noqa: E402

from xmpp_vtn.runtime.cluster import BALANCINGS  # noqa: E402
from xmpp_vtn.testing import vensim  # noqa: E402
from xmpp_vtn.testing.ejabberd import descendants  # noqa: E402
from xmpp_vtn.testing.prosody import ProsodyServer  # noqa: E402

PASSWORD = "bench"
EVENT_ID = "fault-event"                            # the event vtn_process.py adds
TIMEOUT = 300.0                                     # seconds a fan-out may take before the run fails
_TICK = os.sysconf("SC_CLK_TCK")


# -- CPU accounting (Linux /proc) -------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` so far, in seconds (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK     # fields 14 and 15 of stat(5)


def server_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds the XMPP server's processes (and their children) have used so far."""
    return sum(cpu_seconds(pid) or 0.0 for pid in [*pids, *(child for pid in pids for child in descendants(pid))])


def peak_rss_mib(pid: int) -> float:
    """The most resident memory ``pid`` has had (VmHWM), in MiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_cpu() -> tuple[float, float, float]:
    """(busy, stolen, total) CPU seconds of the whole machine since boot, from /proc/stat: busy is
    user + nice + system + irq + softirq; stolen is what the hypervisor gave to other guests."""
    user, nice, system, idle, iowait, irq, softirq, steal = \
        [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    busy = user + nice + system + irq + softirq
    return busy / _TICK, steal / _TICK, (busy + steal + idle + iowait) / _TICK


@dataclass
class Snapshot:
    """CPU seconds per process of each group, and the machine's, at one moment."""
    groups: dict[str, dict[int, float]]
    machine: tuple[float, float, float]
    everyone: dict[int, float]                        # every process on the machine, to name the others


def _everyone() -> dict[int, float]:
    return {int(entry.name): seconds for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and (seconds := cpu_seconds(int(entry.name))) is not None}


def snapshot(groups: dict[str, list[int]]) -> Snapshot:
    taken = {}
    for name, pids in groups.items():
        taken[name] = {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}
    return Snapshot(taken, machine_cpu(), _everyone())


def other_processes(before: Snapshot, after: Snapshot, top: int = 4) -> list[tuple[str, float]]:
    """The processes outside every group that used the most CPU between the snapshots."""
    ours = {pid for pids in after.groups.values() for pid in pids}
    used = [(after.everyone[pid] - seconds, pid) for pid, seconds in before.everyone.items()
            if pid in after.everyone and pid not in ours]
    names = []
    for seconds, pid in sorted(used, reverse=True)[:top]:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = "?"
        names.append((f"{name}[{pid}]", seconds))
    return names


def cpu_used(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each group used between the snapshots (processes present in both), and the
    machine's ``busy``, ``stolen`` and ``total`` (cores x wall seconds)."""
    used = {name: sum(after.groups[name][pid] - seconds for pid, seconds in pids.items() if pid in after.groups[name])
            for name, pids in before.groups.items()}
    for index, name in enumerate(("busy", "stolen", "total")):
        used[f"machine {name}"] = after.machine[index] - before.machine[index]
    return used


# -- one fan-out --------------------------------------------------------------------------------------

@dataclass
class Result:
    fanout_ms: float                      # add_event -> the Nth distinct VEN's answer handled, by any instance
    own_fanout_ms: float | None           # what a single instance printed itself (None with several)
    latencies: list[float]
    cpu: dict[str, float]
    handled_by: dict[int, int] = field(default_factory=dict)   # answers handled per instance PID
    others: list[tuple[str, float]] = field(default_factory=list)
    pushed_by: list[int] = field(default_factory=list)         # distributions each instance pushed
    passed_on: list[int] = field(default_factory=list)         # answers each passed on to the others
    statements: list[tuple[str, int]] = field(default_factory=list)   # (statement, calls) with --statements
    peak_rss_mib: list[float] = field(default_factory=list)    # each instance's VmHWM after the fan-out
    pushes_written: list[float] = field(default_factory=list)  # add_event -> each push leaving, s, sorted
    push_time_files: int = 0                                   # instances whose --push-times file was read


class AnswerLog:
    """The answer log all instances append to (one ``write`` of one JSON line each, O_APPEND), read
    as it grows: the first time each venID's answer to the event was handled, by any instance."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest = path, 0, b""
        self.first: dict[str, float] = {}
        self.handled_by: dict[int, int] = {}

    def read(self) -> None:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")    # a line still being written waits
        for line in lines:
            answer = json.loads(line)
            if answer["event_id"] != EVENT_ID:
                continue
            self.handled_by[answer["pid"]] = self.handled_by.get(answer["pid"], 0) + 1
            self.first.setdefault(answer["ven_id"], answer["t"])   # a replayed answer counts once


def vtn_fanout(server, store: str, accounts: list[str], processes: int, scratch: str, instances: int,
               tag: str, extra: tuple[str, ...] = (), first_extra: tuple[str, ...] = (),
               cpu_groups: dict[str, list[int]] | None = None, lean: bool = True,
               statements: "StatementCounter | None" = None, events: int = 1) -> Result:
    """One fan-out to ``accounts`` served by ``instances`` vtn_process.py sharing ``store``.

    When is it done? vtn_process.py prints ``fanout-ms`` once *its own* set of answering venIDs
    reaches N, but with several instances ejabberd hands each answer to one of them at random, so
    the instance that added the event sees only its share and never prints it. So every instance
    runs with ``--log-times``: each line of the shared ``--log`` carries the monotonic time (one
    clock for all processes on Linux) at which its instance's ``on_created_event`` ran, and the
    adding instance prints the time just before ``add_event``. A thread here reads the log as it
    grows; the fan-out is done when every one of the N venIDs is in it, and it took
    (time of the last venID's *first* answer) - (event-added-at): the same interval a single
    instance measures itself, whichever instance handled each answer. With one instance both
    figures are reported, as a check. The VENs are stopped only once the log is complete.
    """
    n = len(accounts)
    log_path = Path(scratch) / f"answers-{tag}.jsonl"
    command = [sys.executable, str(HERE / "vtn_process.py"), "--jid", server.component, "--secret", server.secret,
               "--port", str(server.component_port), "--store", store, "--log", str(log_path), "--log-times",
               *extra]
    vtns: list[subprocess.Popen] = []
    try:
        for k in range(instances):
            own = (("--event-when", str(n), *first_extra) if k == 0 else ())
            ids = ("--instance-id", f"{tag}-{k}") if instances > 1 else ()
            times = ("--push-times", str(push_times(scratch, tag, k)))
            vtns.append(subprocess.Popen([*command, *ids, *times, *own], stdout=subprocess.PIPE, text=True))
        for vtn in vtns:
            line = vtn.stdout.readline()
            assert line.startswith("serving"), f"a VTN instance did not start: {line!r}"
        groups = {f"vtn{k}": [vtn.pid] for k, vtn in enumerate(vtns)}
        groups.update(cpu_groups or {})
        answers = AnswerLog(log_path)
        watch: dict = {"done": threading.Event(), "error": None}

        def watcher() -> None:
            """Wait for event-added-at on the adder's stdout, then read the log until all N answered."""
            try:
                for line in vtns[0].stdout:
                    if line.startswith("event-added-at"):
                        watch["added_at"] = float(line.split()[1])
                        break
                else:
                    raise RuntimeError("the adding instance ended before adding the event")
                # The VEN workers run by now (they registered): everything below this process but
                # the servers' and the VTNs' trees.
                for name, pids in (cpu_groups or {}).items():     # a server and its workers (backends)
                    groups[name] = [*pids, *(child for pid in pids for child in descendants(pid))]
                known = {pid for pids in groups.values() for pid in pids}
                groups["VEN workers"] = [pid for pid in descendants(os.getpid()) if pid not in known]
                groups["bench"] = [os.getpid()]
                if statements is not None:
                    statements.reset(store)
                watch["before"] = snapshot(groups)
                deadline = time.monotonic() + TIMEOUT
                while len(answers.first) < n:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {len(answers.first)} of {n} VENs answered within {TIMEOUT} s")
                    time.sleep(0.005)
                    answers.read()
                watch["after"] = snapshot(groups)
                watch["rss"] = [peak_rss_mib(vtn.pid) for vtn in vtns]
                if statements is not None:
                    watch["statements"] = statements.read(store)
            except BaseException as error:           # reported by the caller
                watch["error"] = error
            finally:
                watch["done"].set()
        thread = threading.Thread(target=watcher, daemon=True)
        thread.start()
        options = vensim.Options(vtn_jid=server.component, host="127.0.0.1", port=server.c2s_port, lean=lean)
        counts = vensim.run_simulation([(account, PASSWORD) for account in accounts], options, processes=processes,
                                       until=lambda live: watch["done"].is_set(), out=open("/dev/null", "w"))
        thread.join(TIMEOUT)
        if watch["error"] is not None:
            raise RuntimeError(f"{vensim.summary(counts, n)}") from watch["error"]
        # Each VEN answers each event (the warm-up's first, when there is one).
        assert counts.registered == n and counts.answers_sent == n * events, vensim.summary(counts, n)
        fanout_ms = (max(answers.first.values()) - watch["added_at"]) * 1000
        own = None
        if instances == 1:
            # It prints fanout-ms right after logging the Nth answer.
            line = vtns[0].stdout.readline()
            own = float(line.split()[1]) if line.startswith("fanout-ms") else None
        result = Result(fanout_ms, own, counts.latencies, cpu_used(watch["before"], watch["after"]),
                        dict(answers.handled_by), other_processes(watch["before"], watch["after"]),
                        statements=watch.get("statements", []), peak_rss_mib=watch["rss"])
    finally:
        for vtn in vtns:                             # each by its PID
            if vtn.poll() is None:
                vtn.terminate()
        outputs = []
        for vtn in vtns:
            try:
                outputs.append(vtn.communicate(timeout=60)[0] or "")
            except subprocess.TimeoutExpired:
                vtn.kill()
                outputs.append(vtn.communicate()[0] or "")
    # Each instance's last line: "stopped <n> replayed <m> distributions ..." (then the answers it
    # passed on to the others).
    for output in outputs:
        words = (output.strip().splitlines() or [""])[-1].split()
        result.pushed_by.append(int(words[3]) if len(words) > 4 and words[4] == "distributions" else -1)
        result.passed_on.append(int(words[5]) + int(words[7]) if len(words) > 8 else -1)
    # The timed event's pushes (a warm-up's left before add_event), by every instance that wrote
    # its file (one that ended otherwise than by our SIGTERM wrote none).
    files = [path for path in (push_times(scratch, tag, k) for k in range(instances)) if path.exists()]
    result.push_time_files = len(files)
    result.pushes_written = sorted(moment - watch["added_at"] for path in files
                                   for moment in json.loads(path.read_text()) if moment >= watch["added_at"])
    return result


def vtn_and_database_ms(result: Result, n: int) -> float:
    """CPU per exchange of every VTN instance and PostgreSQL together, in ms."""
    return (sum(seconds for name, seconds in result.cpu.items() if name.startswith("vtn"))
            + result.cpu.get("postgres", 0.0)) / n * 1000


def bracketed(before: RawResult, after: RawResult) -> RawResult:
    """The same-bytes raw ceiling run before and after ours, as one: the mean of each figure, and
    both runs' receipt latencies.

    The server slows as it serves (its memory grows as it serves more sessions): on a fresh
    Prosody, the same raw ceiling cost the server about a third more CPU per exchange when run
    again after our fan-out than when run first (the README's Performance section has the
    figures). Measured only before ours, the raw ceiling would credit the order of the runs to the
    VTN; measured only after, it could credit the VTN with what its own run did to the server:
    hence the mean, with the ratio to each side printed beside it."""
    def mean(a: float, b: float) -> float:
        return (a + b) / 2
    server = (None if before.server_cpu_seconds is None or after.server_cpu_seconds is None
              else mean(before.server_cpu_seconds, after.server_cpu_seconds))
    return RawResult(mean(before.seconds, after.seconds), mean(before.cpu_seconds, after.cpu_seconds),
                     before.started_at, server, before.latencies + after.latencies,
                     mean(before.written_seconds, after.written_seconds))


def push_times(scratch: str, tag: str, instance: int) -> Path:
    """Where vtn_process.py instance ``instance`` of run ``tag`` writes when each push left."""
    return Path(scratch) / f"push-times-{tag}-{instance}.json"


class StatementCounter:
    """What the VTN instances asked PostgreSQL during a fan-out, from ``pg_stat_statements``
    (the server is started with it preloaded): every statement is one round trip from a VTN
    instance, except the rows of one ``executemany``, which psycopg sends in one pipeline."""

    def reset(self, store: str) -> None:
        import psycopg
        with psycopg.connect(store, autocommit=True) as db:
            db.execute("SELECT pg_stat_statements_reset()")

    def read(self, store: str) -> list[tuple[str, int]]:
        """(statement text, calls) in ``store``'s database since :meth:`reset`, most called first."""
        import psycopg
        with psycopg.connect(store, autocommit=True) as db:
            return db.execute(
                "SELECT regexp_replace(s.query, '\\s+', ' ', 'g'), s.calls FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.query NOT LIKE "
                "'%%pg_stat_statements%%' ORDER BY s.calls DESC", (store.rsplit("/", 1)[1],)).fetchall()

    @staticmethod
    def create(db_url: str) -> None:
        import psycopg
        with psycopg.connect(db_url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def receipt(latencies: list[float], share: float, warmed_up: bool) -> str:
    """A receipt percentile for the table; with --warm-up the VENs' latencies mix both events: '-'."""
    return f"{'-':>12}" if warmed_up else f"{percentile(latencies, share) * 1000:>10.0f}ms"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# -- the runs -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", default="100,1000", help="comma-separated VEN counts")
    parser.add_argument("--ven-processes", type=int, default=3)
    parser.add_argument("--instances", default="1",
                        help="comma-separated VTN instance counts; above 1 needs ejabberd + PostgreSQL")
    parser.add_argument("--server", choices=("prosody", "ejabberd"), default=None,
                        help="the XMPP server (default: prosody, or ejabberd for several instances); "
                             "ejabberd brings a PostgreSQL store")
    parser.add_argument("--push-concurrency", type=int, default=None, help="the VTN's push_concurrency")
    parser.add_argument("--profile", help="cProfile the (first) VTN process into this file (largest N)")
    parser.add_argument("--profile-fanout", help="cProfile the first VTN process from add_event to the last answer "
                                                 "into this file (largest N)")
    parser.add_argument("--untuned-gc", action="store_true",
                        help="the VTN leaves its garbage collector as it is (xmpp-vtn run tunes it)")
    parser.add_argument("--validating-vens", action="store_true",
                        help="VENs validate every push and build every answer (default: lean VENs)")
    parser.add_argument("--statements", action="store_true",
                        help="count PostgreSQL statements per exchange by kind (pg_stat_statements)")
    parser.add_argument("--warm-up", action="store_true",
                        help="push every VEN a first event and wait for all its answers before the timed one, "
                             "so that every instance has met every VEN (receipt percentiles are then not shown)")
    parser.add_argument("--balancing", choices=BALANCINGS, default="random",
                        help="how ejabberd shares the VENs' stanzas among several instances (see above)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.vens.split(",")]
    counts = [int(count) for count in args.instances.split(",")]
    if min(counts) < 1:
        parser.error("--instances: counts of 1 or more")
    if args.balancing != "random" and max(counts) < 2:
        parser.error("--balancing is for several instances (--instances 1,2)")
    if max(counts) > 1 and args.server == "prosody":
        parser.error("several instances need ejabberd (Prosody refuses a second component connection)")
    cluster = args.server == "ejabberd" or max(counts) > 1
    args.server = "ejabberd" if cluster else "prosody"
    rows = []
    with ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="xmpp-vtn-bench-"))
        postgres = None
        if cluster:
            from xmpp_vtn.testing.ejabberd import EjabberdServer
            from xmpp_vtn.testing.postgres import PostgresServer
            server = stack.enter_context(EjabberdServer())
            settings = ({"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all",
                         "pg_stat_statements.max": "1000"} if args.statements else None)
            postgres = stack.enter_context(PostgresServer(settings=settings))
            servers = {"ejabberd": [server.pid], "postgres": [postgres.pid]}
        else:
            server = stack.enter_context(ProsodyServer())
            servers = {"prosody": [server.process.pid]}
        for n in sizes:
            ours_accounts = server.register_many([f"fan{n}x{i}" for i in range(n)], PASSWORD)
            raw_accounts = server.register_many([f"raw{n}x{i}" for i in range(n)], PASSWORD)
            same_bytes = real_payloads(ven_id=f"fan{n}x{n - 1}")

            def raw_round(payloads: Payloads) -> RawResult:
                return raw_ceiling(raw_accounts, PASSWORD, server.component, server.secret, server.c2s_port,
                                   server.component_port, args.ven_processes, payloads,
                                   server_cpu=lambda: server_cpu_seconds(servers[args.server]))
            # The small payloads last: the server can take seconds to let the same-bytes round's
            # component go at 10,000 VENs, and a raw round waits for that ("conflict") where the
            # VTN, rightly, refuses to start.
            raws = {"before": raw_round(same_bytes)}
            raws["small"] = raw_round(SMALL)
            print(f"N={n}: raw ceiling {raws['before'].seconds * 1000:.0f} ms with the same bytes, "
                  f"{raws['small'].seconds * 1000:.0f} ms with small payloads", flush=True)
            for k in counts:
                extra = ("--push-concurrency", str(args.push_concurrency)) if args.push_concurrency else ()
                extra += ("--untuned-gc",) if args.untuned_gc else ()
                first = ("--profile", f"{args.profile}") if args.profile and n == sizes[-1] and k == counts[-1] else ()
                if args.profile_fanout and n == sizes[-1] and k == counts[-1]:
                    first = (*first, "--profile-fanout", args.profile_fanout)
                first += ("--warm-up",) if args.warm_up else ()
                if postgres is not None:
                    store = postgres.create_database(f"vtn_{n}_{k}")           # fresh per run
                    if args.statements:
                        StatementCounter.create(store)
                else:
                    store = f"{scratch}/vtn-{n}-{k}.sqlite3"
                with ExitStack() as this_run:
                    run_server, run_servers, accounts = server, servers, ours_accounts
                    if args.balancing == "bare_source" and k > 1:
                        run_server = this_run.enter_context(
                            EjabberdServer(domain_balancing="bare_source", component_number=k))
                        accounts = run_server.register_many([f"fan{n}x{i}" for i in range(n)], PASSWORD)
                        run_servers = {"ejabberd": [run_server.pid], "postgres": [postgres.pid]}
                        extra += ("--balancing", "bare_source")
                    result = vtn_fanout(run_server, store, accounts, args.ven_processes, scratch, k, f"{n}-{k}",
                                        extra, first, run_servers, lean=not args.validating_vens,
                                        statements=StatementCounter() if args.statements else None,
                                        events=2 if args.warm_up else 1)
                rows.append((n, k, raws, result))
                own = f" (the instance's own figure {result.own_fanout_ms:.0f} ms)" if result.own_fanout_ms else ""
                print(f"N={n}, {k} instance(s): xmpp-vtn {result.fanout_ms:.0f} ms{own}, answers handled per "
                      f"instance {sorted(result.handled_by.values(), reverse=True)}, distributions pushed per "
                      f"instance {result.pushed_by}, answers passed on per instance {result.passed_on}; "
                      f"busiest other processes "
                      f"{', '.join(f'{name} {seconds:.2f}s' for name, seconds in result.others)}", flush=True)
            # Again after ours: the server slows as it serves (see bracketed); the same-bytes
            # figure every ratio uses is the mean of the two runs around ours.
            raws["after"] = raw_round(same_bytes)
            raws["same bytes"] = bracketed(raws["before"], raws["after"])
            print(f"N={n}: raw ceiling after xmpp-vtn {raws['after'].seconds * 1000:.0f} ms with the same bytes",
                  flush=True)
    print("\nThe same-bytes raw ceiling before and after xmpp-vtn's runs (every ratio below uses their mean):")
    print(f"{'VENs':>6} {'inst':>4} {'before':>9} {'after':>9} {'server CPU/exchange before':>27} {'after':>7} "
          f"{'ours: ratio to before':>22} {'to after':>9}")
    for n, k, raws, result in rows:
        before, after = raws["before"], raws["after"]
        print(f"{n:>6} {k:>4} {before.seconds * 1000:>7.0f}ms {after.seconds * 1000:>7.0f}ms "
              f"{(before.server_cpu_seconds or 0.0) / n * 1000:>25.3f}ms "
              f"{(after.server_cpu_seconds or 0.0) / n * 1000:>5.3f}ms "
              f"{before.seconds * 1000 / result.fanout_ms:>22.2f} {after.seconds * 1000 / result.fanout_ms:>9.2f}")
    where = f"{args.server}{' + PostgreSQL' if cluster else ' + SQLite'}"
    vens_mode = "validating" if args.validating_vens else "lean"
    print(f"\nFan-out, {where} + VTN instance(s) + {vens_mode} VENs in {args.ven_processes} processes, one machine "
          f"({os.cpu_count()} cores):")
    print(f"{'VENs':>6} {'inst':>4} {'xmpp-vtn':>10} {'raw same':>10} {'ratio':>6} {'raw small':>10} {'vs 1 inst':>9} "
          f"{'p50 receipt':>12} {'p99 receipt':>12} {'raw p50':>9} {'raw p99':>9}")
    single = {n: result.fanout_ms for n, k, _, result in rows if k == 1}
    for n, k, raws, result in rows:
        raw = raws["same bytes"].seconds * 1000
        speedup = f"{single[n] / result.fanout_ms:>8.2f}x" if n in single else f"{'-':>9}"
        print(f"{n:>6} {k:>4} {result.fanout_ms:>8.0f}ms {raw:>8.0f}ms {raw / result.fanout_ms:>6.2f} "
              f"{raws['small'].seconds * 1000:>8.0f}ms {speedup} "
              f"{receipt(result.latencies, 0.5, args.warm_up)} {receipt(result.latencies, 0.99, args.warm_up)} "
              f"{percentile(raws['same bytes'].latencies, 0.5) * 1000:>7.0f}ms "
              f"{percentile(raws['same bytes'].latencies, 0.99) * 1000:>7.0f}ms")
    print("ratio = raw ceiling with the same bytes / xmpp-vtn (1.00 = as fast as bare slixmpp doing the same "
          "exchange); raw small = the same with tiny payloads; vs 1 inst = fan-out with 1 instance / with this many;\n"
          "receipt = add_event -> the push's arrival at the VEN; raw p50/p99 = the same-bytes raw ceiling's, from "
          "its first push written")
    print("\nPushes written: add_event -> each push's bytes leaving the VTN (all instances); raw last = the raw "
          "component's first push queued -> its last push's bytes written:")
    print(f"{'VENs':>6} {'inst':>4} {'pushes':>7} {'first':>8} {'p50':>8} {'last':>8} {'raw last':>9} "
          f"{'last receipt':>13}")
    for n, k, raws, result in rows:
        written = result.pushes_written or [float("nan")]
        missing = f"  (no push times from {k - result.push_time_files} instance(s))" if result.push_time_files < k else ""
        print(f"{n:>6} {k:>4} {len(result.pushes_written):>7} {written[0] * 1000:>6.0f}ms "
              f"{percentile(written, 0.5) * 1000:>6.0f}ms {written[-1] * 1000:>6.0f}ms "
              f"{raws['same bytes'].written_seconds * 1000:>7.0f}ms {receipt(result.latencies, 1.0, args.warm_up)}"
              f"{missing}")
    print("after the last push left, the fan-out is the server relaying pushes and answers, the VENs answering "
          "and the VTN handling their answers")
    print("\nCPU per exchange (one VEN: push, acknowledgement, oadrCreatedEvent, oadrResponse):")
    print(f"{'VENs':>6} {'inst':>4} {'xmpp-vtn (all inst)':>20} {'raw component':>14} {'ratio':>6} {'raw small':>10} "
          f"{'PostgreSQL':>11} {'push share':>14} {'server, ours':>13} {'server, raw':>12}")
    for n, k, raws, result in rows:
        ours = sum(seconds for name, seconds in result.cpu.items() if name.startswith("vtn")) / n * 1000
        raw_cpu = raws["same bytes"].cpu_seconds / n * 1000
        database = f"{result.cpu['postgres'] / n * 1000:>9.3f}ms" if "postgres" in result.cpu else f"{'-':>11}"
        total = sum(count for count in result.pushed_by if count > 0) or 1
        share = "/".join(f"{count * 100 // total}%" for count in result.pushed_by)
        server_ours = result.cpu.get(args.server, 0.0) / n * 1000
        server_raw = (raws["same bytes"].server_cpu_seconds or 0.0) / n * 1000
        print(f"{n:>6} {k:>4} {ours:>17.3f}ms {raw_cpu:>11.3f}ms {ours / raw_cpu:>6.2f} "
              f"{raws['small'].cpu_seconds / n * 1000:>7.3f}ms {database} {share:>14} "
              f"{server_ours:>11.3f}ms {server_raw:>10.3f}ms")
    print("ratio = xmpp-vtn CPU / the bare component's CPU for the same bytes (1.00 = no more work than bare "
          "slixmpp); server = the XMPP server's CPU per exchange during our fan-out and during the same-bytes "
          "raw one")
    if cluster:
        print(f"\nTotal CPU per exchange, every VTN instance and PostgreSQL, and the answers the instances passed "
              f"on to each other over the whole run, a warm-up's included (the server handed them to one that had "
              f"not pushed); balancing {args.balancing} with several instances:")
        print(f"{'VENs':>6} {'inst':>4} {'VTN + PostgreSQL':>17} {'vs 1 inst':>10} {'passed on':>10}")
        for n, k, _, result in rows:
            total = vtn_and_database_ms(result, n)
            alone = next((vtn_and_database_ms(other, n) for size, count, _, other in rows
                          if size == n and count == 1), None)
            versus = f"{(total / alone - 1) * 100:>+9.0f}%" if alone else f"{'-':>10}"
            print(f"{n:>6} {k:>4} {total:>15.3f}ms {versus} {sum(max(0, p) for p in result.passed_on):>10}")
    if args.statements:
        print("\nPostgreSQL statements per exchange (calls / VENs, from pg_stat_statements; each is one round "
              "trip but for the rows of one executemany):")
        for n, k, _, result in rows:
            total = sum(calls for _, calls in result.statements)
            print(f"N={n}, {k} instance(s): {total / n:.2f} statements per exchange")
            for query, calls in result.statements:
                if calls / n >= 0.05:
                    shown = query if len(query) <= 150 else f"{query[:90]} ... {query[-55:]}"
                    print(f"  {calls / n:>7.2f}  {shown}")
    print("\nCPU seconds used during each fan-out (event-added until every answer handled), from /proc:")
    names = sorted({name for *_, result in rows for name in result.cpu if name.startswith("vtn")})
    names += [name for name in rows[0][3].cpu if not name.startswith(("vtn", "machine"))]
    print(f"{'VENs':>6} {'inst':>4} {'wall':>7} " + " ".join(f"{name:>11}" for name in names)
          + f" {'others':>7} {'busy/avail':>12} {'stolen':>7}")
    for n, k, _, result in rows:
        cpu, wall = result.cpu, result.fanout_ms / 1000
        cells = " ".join(f"{cpu[name]:>11.2f}" if name in cpu else f"{'-':>11}" for name in names)
        others = cpu["machine busy"] - sum(cpu.get(name, 0.0) for name in names)
        print(f"{n:>6} {k:>4} {wall:>6.2f}s {cells} {others:>7.2f} "
              f"{cpu['machine busy']:>5.2f}/{cpu['machine total']:<6.2f} {cpu['machine stolen']:>7.2f}")
    print("vtnK = instance K's process (vtn0 added the event); VEN workers = the simulated VENs' processes; "
          "bench = this process; others = the rest of the machine's busy time (kernel threads, anything "
          "else running); busy/avail = all CPUs busy (user+system+irq) / cores x wall; stolen = taken by "
          "the hypervisor")
    print("\nVTN memory: each instance's peak resident set (VmHWM) after the fan-out, MiB:")
    for n, k, _, result in rows:
        print(f"{n:>6} {k:>4} " + " ".join(f"{rss:>8.1f}" for rss in result.peak_rss_mib))

if __name__ == "__main__":
    main()
