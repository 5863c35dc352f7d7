"""bench/fanout.py end to end at a small size: the raw ceiling runs before and after the VTN's
fan-out, the ratio uses their mean, and the pushes' leaving times are the VTN's own."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fanout.py"


def test_fanout_bench_brackets_the_raw_ceiling_and_times_the_pushes_leaving():
    done = subprocess.run([sys.executable, str(BENCH), "--vens", "20", "--ven-processes", "2"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    before = re.search(r"^N=20: raw ceiling (\d+) ms with the same bytes", out, re.MULTILINE)
    after = re.search(r"^N=20: raw ceiling after xmpp-vtn (\d+) ms with the same bytes", out, re.MULTILINE)
    ours = re.search(r"^N=20, 1 instance\(s\): xmpp-vtn (\d+) ms", out, re.MULTILINE)
    assert before and after and ours, out
    # Printed before and after; the fan-out table's "raw same" is their mean, and its ratio uses it.
    assert re.search(rf"^\s+20\s+1\s+{before[1]}ms\s+{after[1]}ms\s", out, re.MULTILINE), out
    row = re.search(r"^\s+20\s+1\s+(\d+)ms\s+(\d+)ms\s+([\d.]+)\s", out, re.MULTILINE)
    assert row, out
    mean, fanout = (int(before[1]) + int(after[1])) / 2, int(row[1])
    assert abs(int(row[2]) - mean) <= 1, (row.group(0), before[1], after[1])
    # Recomputed from whole milliseconds: off by the rounding of both, and of the ratio printed.
    ratio = mean / fanout
    assert abs(float(row[3]) - ratio) <= 0.006 + ratio * (1 / mean + 1 / fanout), row.group(0)
    # All 20 pushes counted, each after add_event, in order, and before the fan-out was done.
    pushes = re.search(r"^\s+20\s+1\s+(\d+)\s+(\d+)ms\s+(\d+)ms\s+(\d+)ms\s+(\d+)ms\s+(\d+)ms$", out,
                       re.MULTILINE)
    assert pushes, out
    count, first, half, last = (int(value) for value in pushes.groups()[:4])
    assert count == 20 and first <= half <= last <= fanout, pushes.group(0)
