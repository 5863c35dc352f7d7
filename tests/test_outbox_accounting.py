"""What an operator sees of each VEN's outbox: how long its oldest owed push has waited, and what
the bounded-outbox policy let go unsent (superseded, expired, refused, given up), recorded in the
store by the running VTN and read back by ``xmpp-vtn status``. Against a real Prosody."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from xmpp_scene import new_account, run, scene
from xmpp_vtn import codec
from xmpp_vtn.ops.status import gather, open_for_reading
from xmpp_vtn.testing.clock import ManualScheduler

T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


async def _subscribe(ven) -> None:
    await ven.request("oadrCreateReport", {"request_id": "q", "ven_id": ven.ven_id, "report_requests": [
        {"report_request_id": "rr", "report_specifier": {
            "report_specifier_id": "vtn-load", "granularity": timedelta(seconds=10),
            "report_back_duration": timedelta(seconds=10),
            "specifier_payloads": [{"r_id": "load", "reading_type": "Direct Read"}]}}]})


def test_status_shows_the_oldest_owed_push_and_what_the_quota_policy_let_go(prosody, tmp_path):
    clock = ManualScheduler(T0)
    path = str(tmp_path / "vtn.db")

    async def scenario():
        async with scene(prosody, vens=2, register=True, ping_interval=None, scheduler=clock, push_timeout=1.0,
                         store=path) as (vtn, [offline, refusing]):
            source = {"up": True}

            def load() -> float:
                if not source["up"]:
                    raise RuntimeError("meter offline")      # costs an update, not the subscription
                return 1.0
            vtn.add_report(load, "vtn-load", r_id="load", sampling_rate=timedelta(seconds=10))
            # refused: a payload the VEN has no handler for; it answers with a permanent error.
            vtn.store.enqueue(refusing.ven_id, refusing.jid, "oadrRequestReregistration", b"<not-openadr/>")
            vtn.courier.wake(refusing.ven_id)
            # given up: a venID nobody holds, at an account with no such resource online.
            orphan = new_account(prosody, "orphan")
            vtn.store.enqueue("orphan-1", f"{orphan}/gone", "oadrRequestReregistration",
                              codec.serialize("oadrRequestReregistration", {"ven_id": "orphan-1"}))
            vtn.courier.wake("orphan-1")
            # superseded, then expired: report updates to a VEN that went away.
            await _subscribe(offline)
            await vtn.courier.idle()
            queued_from = time.time()
            await offline.stop()
            for _ in range(6):                     # a minute: six updates, each replacing the last
                await clock.advance(timedelta(seconds=10))
                await vtn.courier.idle()
            queued_by = time.time()
            await vtn.store.committed()
            during = gather(vtn.store)             # the VTN's own view, before the stale one goes
            source["up"] = False                   # no newer update replaces the last one now
            await clock.advance(timedelta(minutes=20))     # past stale_report_update
            await vtn.courier.idle()
            await vtn.store.committed()
            return offline.ven_id, refusing.ven_id, queued_from, queued_by, during

    offline_id, refusing_id, queued_from, queued_by, during = run(scenario(), timeout=120)

    [owed] = [entry for entry in during["outbox"] if entry["ven_id"] == offline_id]
    assert owed["count"] == 1 and owed["message_types"] == {"oadrUpdateReport": 1}
    assert queued_from <= owed["oldest_queued_at"].timestamp() <= queued_by
    assert 0 <= owed["oldest_age_seconds"] <= time.time() - queued_from

    reader = open_for_reading(path)
    try:
        facts = gather(reader)
    finally:
        reader.close()
    dropped = {entry["ven_id"]: entry for entry in facts["dropped_pushes"]}
    assert set(dropped) == {None, offline_id, refusing_id}
    assert (dropped[offline_id]["superseded"], dropped[offline_id]["expired"]) == (5, 1)
    assert (dropped[refusing_id]["refused"], dropped[None]["given_up"]) == (1, 1)
    assert not [entry for entry in facts["outbox"] if entry["ven_id"] in (offline_id, refusing_id, "orphan-1")]

    text = subprocess.run([sys.executable, "-m", "xmpp_vtn", "status", "--store", path], capture_output=True,
                          text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Pushes let go unsent (outbox quota) (3)" in text.stdout
    assert "(venIDs no longer registered)" in text.stdout
