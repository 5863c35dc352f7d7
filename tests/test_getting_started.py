"""docs/getting-started.md, followed literally: every ``sh`` block of the guide runs, in order, in
an empty directory, with 5222 and 5347 replaced by free ports as the guide says to. Blocks whose
first line is ``# terminal: NAME`` run in the background, as in a terminal of their own, and the
test waits for what the guide says that terminal shows before going on."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xmpp_vtn.testing.localserver import LOOPBACK, free_port

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text())


class Terminal:
    """A background block: its process (a session of its own, stopped by its PID) and its output."""

    def __init__(self, name: str, script: str, cwd: Path, env: dict):
        self.name = name
        self.output = cwd / f"{name}.out"
        self.process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                                        stdout=self.output.open("wb"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def text(self) -> str:
        return self.output.read_bytes().decode(errors="replace")

    def wait_for(self, *texts: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not all(text in self.text() for text in texts):
            if self.process.poll() is not None:
                raise AssertionError(f"terminal {self.name} exited {self.process.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"terminal {self.name} did not show {texts} in {timeout} s:\n{self.text()}")
            time.sleep(0.05)          # output goes to a file: nothing to await but its growth
        return self.text()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) == 0


def test_the_guide_gets_a_new_user_to_a_pushed_event_and_a_reading(tmp_path):
    if subprocess.run(["which", "prosody"], capture_output=True).returncode != 0:
        pytest.fail("prosody is not installed: apt-get install -y prosody")
    c2s, component = free_port(), free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    terminals: dict[str, Terminal] = {}
    outputs: list[str] = []
    started = time.monotonic()
    try:
        for block in blocks():
            script = block.replace("5222", str(c2s)).replace("5347", str(component))
            first = script.splitlines()[0]
            if first.startswith("# terminal:"):
                name = first.split(":", 1)[1].strip()
                terminal = terminals[name] = Terminal(name, script, tmp_path, env)
                if name == "prosody":
                    deadline = time.monotonic() + 20
                    while not (listening(c2s) and listening(component)):
                        assert terminal.process.poll() is None and time.monotonic() < deadline, terminal.text()
                        time.sleep(0.02)
                elif name == "vtn":
                    terminal.wait_for("serving; stop with SIGTERM or Ctrl-C")
                elif name == "ven-sim":
                    terminal.wait_for("registered 2  failed 0")
                continue
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
            outputs.append(result.stdout)
        vtn = terminals["vtn"].wait_for("answer: simven0", "answer: simven1", "reading: simven0",
                                        "reading: simven1")
        elapsed = time.monotonic() - started
    finally:
        for terminal in reversed(list(terminals.values())):
            terminal.stop()
    assert list(terminals) == ["prosody", "vtn", "ven-sim"]
    assert any(": OK: VTN my-first-vtn as vtn.localhost" in out for out in outputs)        # run --check
    created = next(out for out in outputs if " created for " in out)
    event_id = created.split()[1]
    assert "created for simven0, simven1" in created
    listed = outputs[-1]
    assert event_id in listed and "simven0 optOut" in listed and "simven1 optIn" in listed   # --opt-in 0.5
    assert re.search(r"out oadrDistributeEvent venID=simven0 to=simven0@localhost/oadr -> acknowledged", vtn)
    assert re.search(r"in  oadrCreatedEvent venID=simven0 from=simven0@localhost/oadr -> oadrResponse 200", vtn)
    answers = sorted(re.findall(rf"answer: (simven\d) (opt\w+) event {event_id}", vtn))
    assert answers == [("simven0", "optOut"), ("simven1", "optIn")]                     # as the guide shows
    assert "Traceback" not in vtn + terminals["ven-sim"].text()
    print(f"getting-started: from Prosody's certificate to a pushed, answered event and readings in {elapsed:.1f} s")
