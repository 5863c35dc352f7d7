"""What the control listener costs the VTN: CPU seconds of the VTN process per fan-out, without
the listener and with it serving an open dashboard (a client reading /api/stream), in
alternating runs on the same Prosody and VENs: ``python bench/control_overhead.py --vens 500``.

The dashboard's reader runs in a process of its own (as a browser would), so its CPU is not the
VTN's. The figure is the median of each mode's runs and their ratio; absolute times on a shared
machine drift, alternation keeps both modes in the same conditions. CPU time is read from the
scheduler's nanosecond counters (``/proc/PID/task/*/schedstat``): ``/proc/PID/stat`` counts in
10 ms ticks, about 6% of what a 500-VEN fan-out costs the VTN, too coarse for a 5% target.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import fanout  # noqa: E402
from fanout import PASSWORD, vtn_fanout  # noqa: E402

from xmpp_vtn.control.auth import hash_token, new_token  # noqa: E402
from xmpp_vtn.testing.prosody import ProsodyServer, free_port  # noqa: E402


def scheduled_cpu_seconds(pid: int) -> float | None:
    """CPU seconds ``pid``'s threads have run so far, to the nanosecond (None once it is gone);
    /proc/PID/stat's ticks where schedstat is not available."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sum(int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        return _tick_cpu_seconds(pid)


_tick_cpu_seconds = fanout.cpu_seconds


async def read_stream(url: str, token: str) -> None:
    """The open dashboard: read /api/stream (retrying until the VTN listens) until killed."""
    import aiohttp
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
                    async for _ in response.content:
                        pass
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)           # not listening yet: the VTN is starting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ven-processes", type=int, default=3)
    parser.add_argument("--read-stream", nargs=2, metavar=("URL", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_stream:
        asyncio.run(read_stream(*args.read_stream))
        return
    fanout.cpu_seconds = scheduled_cpu_seconds        # what vtn_fanout's snapshots read
    token = new_token()
    cpu: dict[str, list[float]] = {"off": [], "dashboard": []}
    with ProsodyServer() as server, tempfile.TemporaryDirectory(prefix="xmpp-vtn-bench-") as scratch:
        accounts = server.register_many([f"ctl{i}" for i in range(args.vens)], PASSWORD)
        for round_ in range(args.rounds):
            for mode in cpu:
                extra: tuple[str, ...] = ()
                reader = None
                if mode == "dashboard":
                    port = free_port()
                    extra = ("--control-port", str(port), "--control-token-hash", hash_token(token))
                    reader = subprocess.Popen([sys.executable, __file__, "--read-stream",
                                               f"http://127.0.0.1:{port}/api/stream", token])
                try:
                    result = vtn_fanout(server, f"{scratch}/{mode}-{round_}.sqlite3", accounts, args.ven_processes,
                                        scratch, 1, f"{mode}-{round_}", extra)
                finally:
                    if reader is not None:
                        reader.terminate()
                        reader.wait(timeout=10)
                cpu[mode].append(result.cpu["vtn0"])
                print(f"round {round_ + 1} {mode:>9}: VTN CPU {result.cpu['vtn0'] * 1000:.1f} ms, "
                      f"fan-out {result.fanout_ms:.0f} ms", flush=True)
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["dashboard"])
    # Each round's two runs are minutes apart at most: their ratio drifts less than the medians'.
    paired = statistics.median(b / a for a, b in zip(cpu["off"], cpu["dashboard"]))
    print(f"\n{args.vens} VENs, median of {args.rounds}: VTN CPU per exchange {off / args.vens * 1e6:.0f} µs without "
          f"the control listener, {on / args.vens * 1e6:.0f} µs with a dashboard open: {on / off:.3f}x "
          f"(median of the rounds' ratios {paired:.3f}x)")


if __name__ == "__main__":
    main()
