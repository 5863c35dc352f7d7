"""``xmpp-vtn event`` against a running VTN (XEP-0050 over a TLS-requiring Prosody), the handler
module's ``on_start(vtn)`` hook under ``xmpp-vtn run``, and handler signatures checked up front."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from xmpp_vtn import VTNComponent
from xmpp_vtn.testing.clients import Security
from xmpp_scene import PASSWORD, make_vtn, new_account, run
from xmpp_vtn.testing.ven import SimulatedVEN
from xmpp_vtn.testing.vensim import POWER

REPO = Path(__file__).resolve().parent.parent


async def event_cli(server, operator: str, *args: str, password: str = PASSWORD) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xmpp_vtn", "event", *args, "--vtn", server.component, "--port", str(server.c2s_port),
        "--ca-file", str(server.ca_file), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "XMPP_VTN_OPERATOR_JID": operator, "XMPP_VTN_OPERATOR_PASSWORD": password})
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def test_event_create_list_modify_cancel_reach_the_ven(prosody_tls):
    operator = new_account(prosody_tls, "operator")
    ven_jid = new_account(prosody_tls)
    start = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)

    async def scenario():
        vtn = make_vtn(prosody_tls, ping_interval=None, operators=[operator])
        await vtn.run()
        ven = SimulatedVEN(f"{ven_jid}/oadr", PASSWORD, prosody_tls.component, port=prosody_tls.c2s_port,
                           security=Security("starttls", ca_file=str(prosody_tls.ca_file)))
        try:
            await ven.start()
            await ven.register()
            created = await event_cli(prosody_tls, operator, "create", "--ven", ven.ven_id, "--payload", "2",
                                      "--start", start.isoformat(), "--duration", "30")
            first = await ven.next_push("oadrDistributeEvent")
            listed = await event_cli(prosody_tls, operator, "list")
            event_id = first.payload["events"][0]["event_descriptor"]["event_id"]
            modified = await event_cli(prosody_tls, operator, "modify", event_id, "--payload", "3")
            second = await ven.next_push("oadrDistributeEvent")
            cancelled = await event_cli(prosody_tls, operator, "cancel", event_id)
            third = await ven.next_push("oadrDistributeEvent")
            vens = await event_cli(prosody_tls, operator, "vens")
            return ven.ven_id, created, first, listed, modified, second, cancelled, third, vens
        finally:
            await ven.stop()
            await vtn.stop()

    ven_id, created, first, listed, modified, second, cancelled, third, vens = run(scenario(), timeout=120)
    for code, out, err in (created, listed, modified, cancelled, vens):
        assert code == 0, out + err
    [event] = first.payload["events"]
    event_id = event["event_descriptor"]["event_id"]
    assert f"event {event_id} created for {ven_id}" in created[1]
    assert event["active_period"]["dtstart"] == start and event["active_period"]["duration"] == timedelta(minutes=30)
    assert event["event_signals"][0]["intervals"][0]["signal_payload"] == 2.0
    assert event_id in listed[1] and "SIMPLE level 2" in listed[1] and f"{ven_id} optIn" in listed[1]
    assert "modification 1" in modified[1]
    assert second.payload["events"][0]["event_signals"][0]["intervals"][0]["signal_payload"] == 3.0
    assert second.payload["events"][0]["active_period"]["dtstart"] == start          # kept
    assert third.payload["events"][0]["event_descriptor"]["event_status"] == "cancelled"
    assert ven_id in vens[1] and "online" in vens[1]


def test_event_is_refused_for_a_stranger_and_bad_input_says_why(prosody_tls):
    operator = new_account(prosody_tls, "operator")
    stranger = new_account(prosody_tls, "stranger")

    async def scenario():
        vtn = make_vtn(prosody_tls, ping_interval=None, operators=[operator])
        await vtn.run()
        try:
            refused = await event_cli(prosody_tls, stranger, "list")
            unknown = await event_cli(prosody_tls, operator, "create", "--ven", "nobody", "--payload", "x")
            missing = await event_cli(prosody_tls, operator, "cancel", "no-such-event")
            wrong = await event_cli(prosody_tls, operator, "list", password="wrong")
            return refused, unknown, missing, wrong
        finally:
            await vtn.stop()

    refused, unknown, missing, wrong = run(scenario(), timeout=120)
    assert refused[0] == 1 and "not one of its operators" in refused[2]
    assert unknown[0] == 1 and "venID nobody is not registered" in unknown[2] and "'x' is not a number" in unknown[2]
    assert missing[0] == 1 and "there is no event 'no-such-event'" in missing[2]
    assert wrong[0] == 1 and "login refused" in wrong[2]


def test_event_takes_the_password_from_a_file_or_the_environment_never_the_command_line():
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "event", "list", "--vtn", "v", "--jid", "o@localhost"],
                            capture_output=True, text=True, timeout=60, cwd=str(REPO),
                            env={k: v for k, v in os.environ.items() if not k.startswith("XMPP_VTN_OPERATOR")})
    assert result.returncode == 2 and "--password-file FILE or set XMPP_VTN_OPERATOR_PASSWORD" in result.stderr
    help_text = subprocess.run([sys.executable, "-m", "xmpp_vtn", "event", "create", "--help"], capture_output=True,
                               text=True, timeout=60, cwd=str(REPO)).stdout
    assert "--password " not in help_text and "--password-file" in help_text


HANDLERS = '''
import logging

def on_create_party_registration(payload):
    return payload.get("ven_id") or "ven", "reg-1"

def on_start(vtn):
    logging.getLogger("handlers").warning("on_start: VTN %s connected=%s as %s", vtn.vtn_id, vtn.connected, vtn.jid)
'''


def write_config(tmp_path: Path, server, handlers: str) -> Path:
    (tmp_path / "handlers.py").write_text(handlers)
    config = tmp_path / "vtn.toml"
    config.write_text(f'vtn_id = "VTN-1"\nstore = "vtn.sqlite3"\nhandlers = "handlers.py"\n[component]\n'
                      f'jid = "{server.component}"\nsecret = "{server.secret}"\nport = {server.component_port}\n'
                      f'[liveness]\nping_interval = 0\n')
    return config


def test_run_calls_on_start_with_the_connected_vtn(prosody_tls, tmp_path):
    config = write_config(tmp_path, prosody_tls, HANDLERS)

    async def scenario():
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "xmpp_vtn", "run", "--config",
                                                       str(config), cwd=str(REPO), stderr=subprocess.PIPE)
        lines = []
        try:
            while True:
                line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
                lines.append(line)
                if "on_start:" in line or not line:
                    break
        finally:
            process.send_signal(signal.SIGTERM)
            rest = await asyncio.wait_for(process.stderr.read(), 30)
            await process.wait()
        return process.returncode, "".join(lines) + rest.decode()

    code, log = run(scenario(), timeout=90)
    assert code == 0, log
    assert f"on_start: VTN VTN-1 connected=True as {prosody_tls.component}" in log
    assert "is not a handler name" not in log                 # on_start is a module hook, not a handler


def test_a_failing_on_start_stops_the_vtn_with_exit_1(prosody_tls, tmp_path):
    config = write_config(tmp_path, prosody_tls, HANDLERS.replace('logging.getLogger("handlers").warning(',
                                                                  'raise RuntimeError(').replace(
        '"on_start: VTN %s connected=%s as %s", vtn.vtn_id, vtn.connected, vtn.jid', '"no events today"'))
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "run", "--config", str(config)], capture_output=True,
                            text=True, timeout=60, cwd=str(REPO))
    assert result.returncode == 1 and "on_start failed: stopping" in result.stderr
    assert "RuntimeError: no events today" in result.stderr


def test_check_refuses_an_openleadr_style_created_event_handler_naming_the_expected_form(tmp_path, prosody):
    config = write_config(tmp_path, prosody, HANDLERS + '''
def on_created_event(ven_id, event_id, opt_type):
    pass
''')
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "run", "--config", str(config), "--check"],
                            capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "on_created_event(ven_id, event_id, opt_type) does not fit: it takes (payload)" in result.stderr
    assert "per-event callback: add_event(..., callback=fn)" in result.stderr
    good = write_config(tmp_path, prosody, HANDLERS)
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "run", "--config", str(good), "--check"],
                            capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert result.returncode == 0 and "on_start" in result.stdout


def test_add_handler_refuses_a_signature_the_vtn_cannot_call():
    vtn = VTNComponent("VTN-1", "vtn.localhost", "secret", store=":memory:")
    try:
        with pytest.raises(TypeError, match=r"does not fit: it takes \(payload\).*per-event callback"):
            vtn.add_handler("on_created_event", lambda ven_id, event_id, opt_type: None)
        with pytest.raises(TypeError, match=r"it takes \(ven_id\)"):
            vtn.add_handler("on_ven_online", lambda: None)
        with pytest.raises(TypeError, match=r"\(report\) or \(resource_id, measurement"):
            vtn.add_handler("on_register_report", lambda a, b: None)
        for name, handler in (("on_created_event", lambda payload: None),
                              ("on_create_party_registration", lambda payload, sender: None),
                              ("on_register_report", lambda report: []),
                              ("on_register_report", lambda ven_id, r, m, u, s, lo, hi: None),
                              ("on_poll", lambda *args: None)):
            vtn.add_handler(name, handler)
    finally:
        vtn.store.close()


def test_a_register_report_handler_that_requests_nothing_is_logged_once(prosody, caplog):
    async def scenario():
        vtn = make_vtn(prosody, ping_interval=None, handlers={"on_register_report": lambda *reading: None})
        await vtn.run()
        vens = [SimulatedVEN(f"{new_account(prosody)}/oadr", PASSWORD, prosody.component, port=prosody.c2s_port)
                for _ in range(2)]
        try:
            for ven in vens:
                await ven.start()
                await ven.register()
                ven.offer_report("usage", "power", lambda: 1.0, POWER)
                await ven.register_reports()
        finally:
            await asyncio.gather(*(ven.stop() for ven in vens))
            await vtn.stop()

    with caplog.at_level(logging.WARNING, logger="xmpp_vtn.reports"):
        run(scenario())
    said = [record.getMessage() for record in caplog.records if "requested nothing" in record.getMessage()]
    assert len(said) == 1 and "powerReal" in said[0]
