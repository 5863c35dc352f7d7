"""Event fan-out at scale: Prosody, the VTN and N VENs, each in its own processes on this machine.

For each N: the time from ``vtn.add_event`` (one event for all N VENs) until every VEN's
oadrCreatedEvent has been handled by the VTN, and p50/p99 of add_event -> VEN receipt. In the
same run, the **raw ceiling**: bare slixmpp doing the same stanza exchange (push, empty ack, an
``iq set`` back, its result) with a small fixed payload and no OpenADR work, clients spread over
the same number of processes. Prints both and the ratio (raw / ours: 1.0 would be the ceiling).

    python bench/fanout.py --vens 100,1000 --ven-processes 3
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from raw_exchange import raw_ceiling  # noqa: E402

from xmpp_vtn import vensim  # noqa: E402
from xmpp_vtn.prosody import ProsodyServer  # noqa: E402

PASSWORD = "bench"


def vtn_fanout(server: ProsodyServer, accounts: list[str], processes: int, scratch: str,
               extra: tuple[str, ...] = ()) -> tuple[float, list]:
    """(ms from add_event to the last answer handled, per-VEN add_event -> receipt latencies)."""
    n = len(accounts)
    vtn = subprocess.Popen([sys.executable, str(HERE / "vtn_process.py"), "--jid", server.component,
                            "--secret", server.secret, "--port", str(server.component_port),
                            "--store", f"{scratch}/vtn-{n}.sqlite3", "--log", f"{scratch}/answers-{n}.jsonl",
                            "--event-when", str(n), *extra], stdout=subprocess.PIPE, text=True)
    try:
        assert vtn.stdout.readline().startswith("serving")
        options = vensim.Options(vtn_jid=server.component, host="127.0.0.1", port=server.c2s_port)
        counts = vensim.run_simulation([(account, PASSWORD) for account in accounts], options, processes=processes,
                                       until=lambda live: live.answers_sent >= n, out=open("/dev/null", "w"))
        assert counts.registered == n and counts.answers_sent == n, vensim.summary(counts, n)
        lines = [vtn.stdout.readline().strip() for _ in range(2)]
        fanout = next(float(line.split()[1]) for line in lines if line.startswith("fanout-ms"))
        return fanout, counts.latencies
    finally:
        vtn.terminate()
        vtn.wait(60)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", default="100,1000", help="comma-separated VEN counts")
    parser.add_argument("--ven-processes", type=int, default=3)
    parser.add_argument("--push-concurrency", type=int, default=None, help="the VTN's push_concurrency")
    parser.add_argument("--profile", help="cProfile the VTN process into this file (largest N)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.vens.split(",")]
    rows = []
    with ProsodyServer() as server, tempfile.TemporaryDirectory(prefix="xmpp-vtn-bench-") as scratch:
        for n in sizes:
            ours_accounts = server.register_many([f"fan{i}" for i in range(n)], PASSWORD)
            raw_accounts = server.register_many([f"raw{i}" for i in range(n)], PASSWORD)
            raw_ms = raw_ceiling(raw_accounts, PASSWORD, server.component, server.secret, server.c2s_port,
                                 server.component_port, args.ven_processes) * 1000
            extra = (("--push-concurrency", str(args.push_concurrency)) if args.push_concurrency else ()) + \
                (("--profile", args.profile) if args.profile and n == sizes[-1] else ())
            ours_ms, latencies = vtn_fanout(server, ours_accounts, args.ven_processes, scratch, extra)
            rows.append((n, ours_ms, raw_ms, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000))
            print(f"N={n}: xmpp-vtn {ours_ms:.0f} ms, raw ceiling {raw_ms:.0f} ms", flush=True)
    print(f"\nFan-out, Prosody + VTN + VENs in {args.ven_processes} processes, one machine:")
    print(f"{'VENs':>6} {'xmpp-vtn':>10} {'raw ceiling':>12} {'ratio':>6} {'p50 receipt':>12} {'p99 receipt':>12}")
    for n, ours, raw, p50, p99 in rows:
        print(f"{n:>6} {ours:>8.0f}ms {raw:>10.0f}ms {raw / ours:>6.2f} {p50:>10.0f}ms {p99:>10.0f}ms")
    print("ratio = raw ceiling / xmpp-vtn (1.00 = as fast as bare slixmpp doing the same exchange)")


if __name__ == "__main__":
    main()
