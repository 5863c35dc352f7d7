"""bench/inbound.py at a small size: both ways of reading serve every request, settle every push
and refuse every huge stanza (the script asserts it), and it prints each figure with its baseline."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "inbound.py"


def test_inbound_bench_prints_each_figure_beside_its_baseline():
    done = subprocess.run([sys.executable, str(BENCH), "--exchanges", "200", "--huge", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("one exchange read", "one huge stanza refused"):
        assert re.search(rf"^{row}.*\s[\d.]+ [um]s\s+[\d.]+ [um]s\s+[\d.]+$", done.stdout, re.MULTILINE), done.stdout
