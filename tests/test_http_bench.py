"""bench/http_fanout.py end to end at a small size: both servers serve the lean VENs' bytes, every
VEN's oadrCreatedEvent is answered, and the table compares the two."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "http_fanout.py"


def test_http_fanout_bench_runs_both_servers():
    done = subprocess.run([sys.executable, str(BENCH), "--vens", "20", "--ven-processes", "2"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    for server in ("ours", "openleadr"):
        # Every VEN got its oadrResponse (or the bench fails), and the server's callback saw each optIn.
        assert re.search(rf"^N=20 {server}: \d+ ms, .* 20 optIn answers seen by the server, 0 extra polls",
                         done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^\s+20\s+ratio\s+[\d.]+x\s+(?:[\d.]+|nan)x", done.stdout, re.MULTILINE), done.stdout
