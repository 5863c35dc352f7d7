"""Simulated VENs and ven-sim against a Prosody that requires TLS: STARTTLS and direct TLS,
verified certificates, SCRAM, and a reason for every way a login can fail."""
from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone

import pytest

from xmpp_vtn.testing.clients import LoginFailed, Security
from xmpp_vtn.testing.localserver import free_port
from xmpp_vtn.testing.ven import SimulatedVEN
from xmpp_vtn.testing.vensim import choose_opt_in
from xmpp_scene import PASSWORD, make_vtn, new_account, run


def tls_ven(server, bare_jid: str, security: Security, port: int | None = None,
            password: str = PASSWORD) -> SimulatedVEN:
    return SimulatedVEN(f"{bare_jid}/oadr", password, server.component, port=port or server.c2s_port,
                        security=security)


@pytest.mark.parametrize("mode", ["starttls", "direct"])
def test_a_ven_logs_in_over_tls_with_scram_registers_and_receives_an_event(prosody_tls, mode):
    bare_jid = new_account(prosody_tls)
    port = prosody_tls.direct_tls_port if mode == "direct" else prosody_tls.c2s_port

    async def scenario():
        vtn = make_vtn(prosody_tls, ping_interval=None)
        await vtn.run()
        ven = tls_ven(prosody_tls, bare_jid, Security(mode, ca_file=str(prosody_tls.ca_file)), port)
        try:
            await ven.start()
            encrypted = ven.xmpp.transport.get_extra_info("ssl_object") is not None
            mechanism = ven.xmpp.plugin["feature_mechanisms"].mech.name
            await ven.register()
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event(ven.ven_id, "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 1.0}])
            push = await ven.next_push("oadrDistributeEvent")
            return encrypted, mechanism, push
        finally:
            await ven.stop()
            await vtn.stop()

    encrypted, mechanism, push = run(scenario())
    assert encrypted and mechanism.startswith("SCRAM-SHA-")
    assert push.payload["events"][0]["event_signals"][0]["intervals"][0]["signal_payload"] == 1.0


def login_failure(server, security: Security, port: int | None = None, password: str = PASSWORD) -> str:
    bare_jid = new_account(server)

    async def scenario():
        ven = tls_ven(server, bare_jid, security, port, password)
        try:
            with pytest.raises(LoginFailed) as failure:
                await ven.start(timeout=20)
            return str(failure.value)
        finally:
            await ven.stop()
    return run(scenario())


def test_a_wrong_password_is_reported_as_refused_login(prosody_tls):
    reason = login_failure(prosody_tls, Security("starttls", ca_file=str(prosody_tls.ca_file)), password="wrong")
    assert "login refused" in reason and "not-authorized" in reason


@pytest.mark.parametrize("mode", ["starttls", "direct"])
def test_an_untrusted_certificate_is_reported_with_the_way_out(prosody_tls, mode):
    port = prosody_tls.direct_tls_port if mode == "direct" else prosody_tls.c2s_port
    reason = login_failure(prosody_tls, Security(mode), port)           # the system store: not our CA
    assert "certificate" in reason and "not trusted" in reason and "--ca-file" in reason


def test_insecure_skips_the_check_only_when_asked(prosody_tls):
    bare_jid = new_account(prosody_tls)

    async def scenario():
        ven = tls_ven(prosody_tls, bare_jid, Security("starttls", insecure=True))
        try:
            await ven.start()
            return ven.xmpp.transport.get_extra_info("ssl_object") is not None
        finally:
            await ven.stop()
    assert run(scenario())


def test_a_plain_client_is_told_the_server_requires_tls(prosody_tls):
    reason = login_failure(prosody_tls, Security("none"))
    assert "requires TLS" in reason and "--tls starttls" in reason


def test_a_tls_client_refuses_a_server_without_tls_instead_of_sending_the_password(prosody):
    reason = login_failure(prosody, Security("starttls"))
    assert "offers no TLS" in reason


def test_a_refused_connection_is_reported_at_once(prosody_tls):
    port = free_port()
    reason = login_failure(prosody_tls, Security("starttls", ca_file=str(prosody_tls.ca_file)), port)
    assert f"connection refused at 127.0.0.1:{port}" in reason


def test_opt_in_share_is_a_fraction_of_the_vens_and_the_same_every_time():
    jids = [f"v{n}@localhost" for n in range(10)]
    assert len(choose_opt_in(jids[:2], 0.5)) == 1
    assert len(choose_opt_in(jids, 0.3)) == 3 and choose_opt_in(jids, 0.3) == choose_opt_in(list(reversed(jids)), 0.3)
    assert choose_opt_in(jids, 0.0) == frozenset() and choose_opt_in(jids, 1.0) == frozenset(jids)


async def ven_sim(server, *arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xmpp_vtn", "ven-sim", "--vtn", server.component, *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_ven_sim_over_starttls_registers_offers_telemetry_and_opts_in_at_the_share(prosody_tls, tmp_path):
    names = [f"tlssim{n}" for n in range(2)]
    jids = prosody_tls.register_many(names, "simpw")
    answers: list[str] = []
    readings: list[tuple[str, str, float]] = []

    def on_register_report(ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling):
        if measurement != "powerReal":
            return None
        return (lambda data: readings.extend((ven_id, measurement, value) for _, value in data)), min_sampling

    async def scenario():
        vtn = make_vtn(prosody_tls, ping_interval=None, handlers={"on_register_report": on_register_report})
        await vtn.run()
        try:
            sim = await ven_sim(prosody_tls, "--port", str(prosody_tls.c2s_port), "--ca-file",
                                str(prosody_tls.ca_file), "--prefix", "tlssim", "--password", "simpw",
                                "--count", "2", "--processes", "1", "--opt-in", "0.5", "--duration", "3")
            while len(vtn.vens()) < len(names):
                await asyncio.sleep(0.05)        # the simulator's VENs register in their own process
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event([ven.ven_id for ven in vtn.vens()], "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(minutes=10), "signal_payload": 1.0}],
                          callback=lambda ven_id, event_id, opt: answers.append(opt))
            out, err = await asyncio.wait_for(sim.communicate(), 60)
            return sim.returncode, out.decode(), err.decode(), sorted(ven.ven_id for ven in vtn.vens())
        finally:
            await vtn.stop()

    code, out, err, ven_ids = run(scenario(), timeout=90)
    assert code == 0, out + err
    assert ven_ids == names                                  # venID = the account's local part
    assert "VENs: 2, connected 2, registered 2, failed 0" in out
    assert sorted(answers) == ["optIn", "optOut"]            # 0.5 of 2 VENs is one
    assert {ven_id for ven_id, _, _ in readings} == set(names)   # readings from both, at 1 s sampling
    assert all(measurement == "powerReal" and value > 0 for _, measurement, value in readings)
    assert jids


def test_ven_sim_prints_why_logins_fail_and_exits_1(prosody_tls):
    prosody_tls.register_many(["tlsbad0", "tlsbad1"], "right")

    async def scenario():
        sim = await ven_sim(prosody_tls, "--port", str(prosody_tls.c2s_port), "--ca-file", str(prosody_tls.ca_file),
                            "--prefix", "tlsbad", "--password", "wrong", "--count", "2", "--processes", "1",
                            "--duration", "0.1")
        out, err = await asyncio.wait_for(sim.communicate(), 60)
        return sim.returncode, out.decode(), err.decode()

    code, out, err = run(scenario(), timeout=90)
    assert code == 1, out + err
    assert "tlsbad0@localhost failed: login refused" in out or "tlsbad1@localhost failed: login refused" in out
    assert "2 VENs failed: login refused" in out and "failed 2" in out
    assert "Traceback" not in err and "CERT" not in err
