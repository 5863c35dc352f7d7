"""``xmpp-vtn ven-sim``: simulated VENs in worker processes against a VTN on the test server."""
from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone

from xmpp_scene import make_vtn, run


def test_ven_sim_registers_answers_events_at_the_opt_in_ratio_and_summarises(prosody, tmp_path):
    names = [f"sim{n}" for n in range(12)]
    jids = prosody.register_many(names, "simpw")
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("# jid password\n" + "".join(f"{jid} simpw\n" for jid in jids))
    answers = []

    async def scenario():
        vtn = make_vtn(prosody, ping_interval=None)
        vtn.add_handler("on_create_party_registration", lambda p: (p["ven_id"], "reg-" + p["ven_id"]))
        await vtn.run()
        try:
            sim = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "xmpp_vtn", "ven-sim", "--vtn", prosody.component, "--port",
                str(prosody.c2s_port), "--accounts", str(accounts), "--tls", "none", "--processes", "2", "--opt-in", "0.5",
                "--duration", "4", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": os.getcwd()})
            while len(vtn.vens()) < len(names):
                await asyncio.sleep(0.05)        # the simulator's VENs register in their own processes
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event([ven.ven_id for ven in vtn.vens()], "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(minutes=10), "signal_payload": 1.0}],
                          callback=lambda ven_id, event_id, opt: answers.append(opt))
            out, err = await asyncio.wait_for(sim.communicate(), 60)
            return sim.returncode, out.decode(), err.decode()
        finally:
            await vtn.stop()

    code, out, err = run(scenario(), timeout=90)
    assert code == 0, err
    assert "VENs: 12, connected 12, registered 12, failed 0" in out
    assert "events received 12, answers sent 12" in out and "p99" in out
    assert len(answers) == 12 and answers.count("optIn") == 6          # half of the VENs at a 0.5 ratio


def test_ven_sim_reports_bad_arguments(tmp_path):
    import subprocess
    bad = tmp_path / "bad.txt"
    bad.write_text("not-a-jid\n")
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "ven-sim", "--vtn", "v", "--accounts", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "bad.txt:1: expected 'jid password'" in result.stderr
