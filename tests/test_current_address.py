"""Where pushes go after a VEN comes back from a new resource, and the last-seen time operators
read while a VEN stays busy: both on a real Prosody."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from xmpp_vtn.runtime.presence import LAST_SEEN_EVERY
from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.testing.ven import SimulatedVEN
from xmpp_scene import PASSWORD, make_vtn, new_account, run

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


class Pushes(logging.Handler):
    """The exchange log's outbound lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("out "):
            self.lines.append(record.getMessage())


def test_a_ven_back_from_a_new_resource_is_pushed_there_without_a_failed_attempt_at_the_old(prosody):
    bare_jid = new_account(prosody)
    pushes = Pushes()
    exchange = logging.getLogger("xmpp_vtn.exchange")

    async def scenario():
        vtn = make_vtn(prosody, ping_interval=None)
        await vtn.run()
        old = SimulatedVEN(f"{bare_jid}/old", PASSWORD, prosody.component, port=prosody.c2s_port)
        new = None
        try:
            await old.start()
            await old.register()
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            event_id = vtn.add_event(old.ven_id, "SIMPLE", "level",
                                     [{"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 1.0}])
            await old.next_push("oadrDistributeEvent")
            await old.stop()                                     # gone; the VTN still has /old on record
            vtn.modify_event(event_id, [{"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 2.0}])
            await vtn.courier.idle()
            exchange.addHandler(pushes)
            exchange.setLevel(logging.INFO)
            # Back from another resource: presence first (as every client sends), then re-registration.
            new = SimulatedVEN(f"{bare_jid}/new", PASSWORD, prosody.component, port=prosody.c2s_port,
                               ven_id=old.ven_id, registration_id=old.registration_id)
            await new.start()
            await new.register()
            push = await new.next_push("oadrDistributeEvent")
            await vtn.courier.idle()
            return new.full_jid, push
        finally:
            exchange.removeHandler(pushes)
            if new is not None:
                await new.stop()
            await vtn.stop()

    new_jid, push = run(scenario())
    assert push.payload["events"][0]["event_signals"][0]["intervals"][0]["signal_payload"] == 2.0
    assert pushes.lines, "the VEN was pushed to"
    assert all(f"to={new_jid} " in line and line.endswith("acknowledged") for line in pushes.lines), pushes.lines


def test_last_seen_follows_activity_with_at_most_one_store_write_per_interval(prosody):
    bare_jid = new_account(prosody)
    clock = ManualScheduler(T0)

    async def scenario():
        vtn = make_vtn(prosody, ping_interval=None, scheduler=clock)
        await vtn.run()
        ven = SimulatedVEN(f"{bare_jid}/oadr", PASSWORD, prosody.component, port=prosody.c2s_port)
        writes = []
        original = vtn.store.set_liveness

        def counted(*args):
            writes.append(args)
            original(*args)
        vtn.store.set_liveness = counted
        try:
            await ven.start()
            await ven.register()
            seen = [vtn.store.liveness()[ven.ven_id]]
            await clock.advance(LAST_SEEN_EVERY + timedelta(seconds=1))
            before = len(writes)
            for _ in range(5):                                   # a burst: one write, not five
                await ven.query_registration()
            burst_writes = len(writes) - before
            seen.append(vtn.store.liveness()[ven.ven_id])
            await clock.advance(timedelta(seconds=5))
            await ven.query_registration()
            seen.append(vtn.store.liveness()[ven.ven_id])
            return seen, burst_writes
        finally:
            await ven.stop()
            await vtn.stop()

    seen, burst_writes = run(scenario())
    assert seen[0] == ("online", T0)
    assert seen[1] == ("online", T0 + LAST_SEEN_EVERY + timedelta(seconds=1))
    assert burst_writes == 1
    assert seen[2] == seen[1]                                    # within the interval: not written again
