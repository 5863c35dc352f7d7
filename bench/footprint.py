"""VTN memory per registered VEN, and cold start, with a big store.

Builds SQLite stores directly (no XMPP needed to fill them): one empty, one with ``--vens``
registrations and ``--events`` events (each for 10 VENs). For each, starts the VTN process
(``bench/vtn_process.py``) against a private Prosody and measures the time from process start to
serving, and its resident memory once serving (after it has read every registration and event,
which it keeps in memory). Memory per VEN = (RSS with the big store - RSS with the empty one) / VENs.

    python bench/footprint.py --vens 10000 --events 1000
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from xmpp_vtn.testing.prosody import ProsodyServer  # noqa: E402
from xmpp_vtn.services.event_arguments import build_event  # noqa: E402
from xmpp_vtn.store import EventRecord, SQLiteStore, VenRecord  # noqa: E402


def fill(path: str, vens: int, events: int) -> None:
    store = SQLiteStore(path)
    for n in range(vens):
        store.put_ven(VenRecord(f"ven{n}", f"reg{n}", f"ven{n}@localhost", f"ven{n}@localhost/oadr"))
    start = datetime.now(timezone.utc) + timedelta(days=1)
    for n in range(events):
        ven_ids = [f"ven{(n * 10 + k) % max(vens, 1)}" for k in range(10)]
        event = build_event(ven_ids=ven_ids, signal_name="SIMPLE", signal_type="level",
                            intervals=[{"dtstart": start + timedelta(hours=n % 48), "duration": timedelta(hours=1),
                                        "signal_payload": 1.0}], event_id=f"ev{n}", targets=None,
                            targets_by_type=None, market_context="http://mc", priority=None,
                            response_required="always", notification_period=None, ramp_up_period=None,
                            recovery_period=None, signal_target_mrid=None, current_value=None, test_event=False,
                            vtn_comment=None, created=start)
        store.put_event(EventRecord(f"ev{n}", 0, event, tuple(ven_ids)))
    store.close()


def measure(server: ProsodyServer, store: str, log: str) -> tuple[float, int]:
    """(seconds from process start to serving, RSS in KiB once serving)."""
    started = time.perf_counter()
    vtn = subprocess.Popen([sys.executable, str(HERE / "vtn_process.py"), "--jid", server.component,
                            "--secret", server.secret, "--port", str(server.component_port), "--store", store,
                            "--log", log], stdout=subprocess.PIPE, text=True)
    try:
        line = vtn.stdout.readline()
        elapsed = time.perf_counter() - started
        assert line.startswith("serving"), line
        rss = next(int(row.split()[1]) for row in Path(f"/proc/{vtn.pid}/status").read_text().splitlines()
                   if row.startswith("VmRSS:"))
        return elapsed, rss
    finally:
        vtn.terminate()
        vtn.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vens", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xmpp-vtn-footprint-") as scratch, ProsodyServer() as server:
        empty, big = f"{scratch}/empty.sqlite3", f"{scratch}/big.sqlite3"
        fill(empty, 0, 0)
        filled = time.perf_counter()
        fill(big, args.vens, args.events)
        print(f"store with {args.vens} VENs and {args.events} events written in {time.perf_counter() - filled:.1f} s")
        base_start, base_rss = measure(server, empty, f"{scratch}/a.log")
        big_start, big_rss = measure(server, big, f"{scratch}/b.log")
    print(f"cold start to serving: empty store {base_start:.2f} s, {args.vens} VENs + {args.events} events "
          f"{big_start:.2f} s")
    print(f"RSS once serving: empty {base_rss / 1024:.1f} MiB, full {big_rss / 1024:.1f} MiB -> "
          f"{(big_rss - base_rss) * 1024 / max(args.vens, 1) / 1024:.2f} KiB per registered VEN "
          f"(events included)")


if __name__ == "__main__":
    main()
