"""The README's first command runs examples/demo.py: keep it, and the other examples, working."""
from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from pathlib import Path

from xmpp_vtn.testing.prosody import is_running

REPO = Path(__file__).resolve().parent.parent


def processes_mentioning(text: str) -> set[int]:
    """PIDs whose command line mentions ``text`` (from /proc): a server the demo left behind
    names the demo's own config directory."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in command:
                pids.add(int(entry.name))
    return pids


def _run_example(name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "examples" / name)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_live_demo_registers_pushes_an_event_refuses_the_intruder_and_leaves_nothing_running():
    result = _run_example("demo.py")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for ven in ("north", "east", "south"):
        assert f"on_create_party_registration(ven-{ven}) -> accepted, reg-ven-{ven}" in out
        assert re.search(rf"ven-{ven} +reg-ven-{ven} +{ven}@localhost/oadr", out)
    assert "intruder <- oadrCreatedPartyRegistration 463" in out
    assert re.search(r"dashboard at http://127\.0\.0\.1:\d+/ \(log in with token \S+\); up while the demo runs", out)
    assert "acknowledged (empty iq result)" in out
    # The event: pushed to all three, answered (east opts out), then active and completed by push.
    for ven, opt in (("north", "optIn"), ("east", "optOut"), ("south", "optIn")):
        assert f"callback: ven-{ven} answered {opt} for shed-demo" in out
        for status in ("far", "active", "completed"):
            assert f"{ven:<8} <- oadrDistributeEvent pushed: shed-demo is {status}" in out
    assert "event shed-demo: completed, modification 0; ven-east optOut, ven-north optIn, ven-south optIn" in out
    # OpenLEADR's own VEN beside them, over simpleHTTP: registered, polled the event, answered.
    assert "west     <- registered as ven-west, registration reg-ven-west" in out
    assert "west     <- oadrDistributeEvent by poll: shed-demo" in out
    assert "callback: ven-west answered optIn for shed-demo" in out and "ven-west optIn" in out
    # Reports: each VEN's 10-second usage readings arrive (two rounds); south posts an opt-out window.
    for ven in ("north", "east", "south"):
        assert f"{ven:<8} -> oadrRegisterReport (energy usage); <- oadrRegisteredReport: every 10 s" in out
        assert len(re.findall(rf"reading from ven-{ven}: [0-9.]+ kWh", out)) >= 2
    assert "on_create_opt: ven-south optOut south-maintenance" in out
    assert "south    <- oadrCreatedOpt 200" in out
    stopped = re.search(r"prosody  stopped, pid (\d+), (\S+) removed", out)
    assert not is_running(int(stopped.group(1)))
    assert processes_mentioning(stopped.group(2)) == set()          # no other server from this run either
    assert result.stderr == ""


def test_codec_tour_refuses_the_hostile_payloads():
    result = _run_example("codec_tour.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1. built oadrDistributeEvent")
    assert "VEN '00123' (still a string)" in lines[1]
    assert sum(line.startswith("4. refused") for line in lines) == 3


SECRET_TAKING_EXAMPLES = (["minimal_vtn.py"], ["report_consumer.py"], ["database_registration.py", "serve"])


def test_no_example_takes_the_component_secret_on_its_command_line(tmp_path):
    # A secret in argv is visible to every user of the machine (ps, /proc/PID/cmdline).
    for command in SECRET_TAKING_EXAMPLES:
        result = subprocess.run([sys.executable, str(REPO / "examples" / command[0]), *command[1:], "--help"],
                                capture_output=True, text=True, timeout=60, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert result.returncode == 0, result.stderr
        assert "--secret-file" in result.stdout and not re.search(r"--secret\b(?!-)", result.stdout), command
        env = {key: value for key, value in os.environ.items() if not key.startswith("XMPP_VTN_SECRET")}
        refused = subprocess.run([sys.executable, str(REPO / "examples" / command[0]), *command[1:]],
                                 capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                 env={**env, "PYTHONPATH": str(REPO)})
        assert refused.returncode != 0 and "no component secret" in refused.stderr, (command, refused.stderr)


def test_minimal_vtn_connects_with_its_secret_read_from_a_file(prosody, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(prosody.secret + "\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("XMPP_VTN_SECRET")}
    process = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "minimal_vtn.py"), "--jid", prosody.component,
         "--port", str(prosody.component_port), "--store", str(tmp_path / "vtn.sqlite3"),
         "--secret-file", str(secret_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)})
    try:
        # Printed once the component is connected; a VTN that cannot connect prints nothing.
        assert select.select([process.stdout], [], [], 30)[0], "minimal_vtn.py did not connect within 30 s"
        line = process.stdout.readline()
        assert line.strip() == f"serving as {prosody.component}; waiting for VENs to register", \
            line + process.stderr.read() if process.poll() is not None else line
        assert prosody.secret not in (Path("/proc") / str(process.pid) / "cmdline").read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0
