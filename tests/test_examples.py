"""The README's first command runs examples/demo.py: keep it working."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_and_refuses_the_hostile_payloads():
    result = subprocess.run([sys.executable, str(REPO / "examples" / "demo.py")], capture_output=True,
                            text=True, timeout=60, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1. built oadrDistributeEvent")
    assert "VEN '00123' (still a string)" in lines[1]
    assert sum(line.startswith("4. refused") for line in lines) == 3
