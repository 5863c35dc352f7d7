"""A fan-out over PostgreSQL asks the database once per loop turn, not once per VEN.

A real Prosody, a VTN on a PostgreSQL store (one instance, so the leases are real rows) and
simulated VENs that register and answer: the deliveries that one add_event wakes claim their
leases in one statement and read their state in one, and every VEN's recorded state is what it
acknowledged.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from xmpp_scene import run, scene

VENS = 30


def test_a_fan_out_claims_its_leases_and_reads_its_state_once_per_loop_turn(prosody, postgres_database):
    async def scenario() -> None:
        answered: set[str] = set()
        everyone = asyncio.Event()

        def on_created_event(payload: dict) -> None:
            answered.add(payload["ven_id"])
            if len(answered) == VENS:
                everyone.set()

        async with scene(prosody, vens=VENS, register=True, store=postgres_database, instance_id="vtn-a",
                         handlers={"on_created_event": on_created_event}) as (vtn, vens):
            await vtn.courier.idle()                     # the start-up pushes of the registrations
            claims, releases = vtn.cluster.batch.sent["claim"], vtn.cluster.batch.sent["release"]
            reads = vtn.store._delivery_states.sent
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event([ven.ven_id for ven in vens], "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1.0}],
                          event_id="batched")
            await asyncio.wait_for(everyone.wait(), 30)
            await vtn.courier.idle()
            # One add_event wakes every delivery in one turn: one claim, one read of their state.
            assert vtn.cluster.batch.sent["claim"] - claims == 1
            assert vtn.store._delivery_states.sent - reads == 1
            await vtn.cluster.batch.drain()              # releases go out after the deliveries end
            assert vtn.cluster.batch.sent["release"] - releases < VENS / 2
            assert vtn.store.lease_holders("ven:") == []
            held = {d.ven_id: (d.delivered_modification, d.delivered_status, d.opt_type)
                    for d in vtn.store.deliveries("batched")}
            assert held == {ven.ven_id: (0, "far", "optIn") for ven in vens}

    run(scenario(), timeout=90)


def test_a_sweep_during_a_fan_out_starts_no_second_delivery_to_the_vens_still_being_pushed_to(
        prosody, postgres_database):
    """The sweep picks up what nobody delivered. A VEN whose delivery is running or waiting for a
    push slot here is in hand: waking it would deliver it once more when it ends (a lease claim
    and a read for nothing), for every VEN a fan-out is still pushing to when a sweep comes."""
    async def scenario() -> None:
        async with scene(prosody, vens=VENS, register=True, store=postgres_database, instance_id="vtn-a",
                         push_concurrency=2) as (vtn, vens):
            await vtn.courier.idle()                     # the start-up pushes of the registrations
            deliveries: list[str] = []
            deliver = vtn.courier._loop._deliver

            async def counted(ven_id: str) -> None:
                deliveries.append(ven_id)
                await deliver(ven_id)
            vtn.courier._loop._deliver = counted
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event([ven.ven_id for ven in vens], "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1.0}],
                          event_id="swept")
            await asyncio.sleep(0)                       # the deliveries are under way, two at a time
            in_hand = sum(vtn.courier._loop.busy(ven.ven_id) for ven in vens)
            await vtn.timers.sweep()                     # mid fan-out: every VEN is still owed the event
            await vtn.courier.idle()
            assert in_hand == VENS
            assert {d.ven_id: d.delivered_status for d in vtn.store.deliveries("swept")} == \
                {ven.ven_id: "far" for ven in vens}
            assert sorted(deliveries) == sorted(ven.ven_id for ven in vens), deliveries

    run(scenario(), timeout=90)
