"""The coordination writes of one loop turn go out together, and in an order that loses no lease.

Against a real PostgreSQL (an empty database per test, see fixtures_postgres.py): a fan-out's
claims are one statement, a release never overtakes a later claim of the same lease, and answers
passed on to other instances in one turn reach them, line by line, in one notice.
"""
from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from xmpp_vtn.runtime.cluster import Cluster
from xmpp_vtn.runtime.coordination_batch import CoordinationBatch, packed
from xmpp_vtn.store.postgresql import PostgreSQLStore


@pytest.fixture
def stores(postgres_database: str):
    """Opens PostgreSQL stores on this test's database (as instances would); closes them after."""
    opened: list[PostgreSQLStore] = []

    def open_one() -> PostgreSQLStore:
        opened.append(PostgreSQLStore(postgres_database))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


async def _no_sweep() -> None:
    """The clusters here only pass answers on (a sweep would not run within the test anyway)."""


def test_the_claims_of_one_loop_turn_go_out_as_one_statement(stores):
    store, other = stores(), stores()
    assert other.claim("ven:taken", "vtn-2", 30) is True
    batch = CoordinationBatch(store, "vtn-1")
    names = [f"ven:{number}" for number in range(300)] + ["ven:taken"]

    async def scenario() -> list[bool]:
        async def deliver(name: str) -> bool:           # a delivery's first step claims its lease
            return await batch.claim(name, 30)
        return await asyncio.gather(*(deliver(name) for name in names))

    granted = asyncio.run(scenario())
    assert granted == [True] * 300 + [False]
    assert batch.sent == {"claim": 1, "release": 0, "notice": 0}
    assert store.lease_holders("ven:") == ["vtn-1"] * 300 + ["vtn-2"]


def test_a_lease_released_and_claimed_again_in_one_turn_stays_held_and_costs_no_release(stores):
    store = stores()
    batch = CoordinationBatch(store, "vtn-1")

    async def scenario() -> None:
        assert await batch.claim("ven:a", 30) is True
        batch.release("ven:a")                           # a delivery ends...
        assert await batch.claim("ven:a", 30) is True    # ...and the VEN is delivered again at once
        await batch.drain()

    asyncio.run(scenario())
    assert store.lease_holder("ven:a") == "vtn-1"
    assert batch.sent == {"claim": 2, "release": 0, "notice": 0}


def test_a_claim_asked_while_its_release_is_on_the_way_is_sent_after_it(stores, postgres_database):
    store = stores()
    batch = CoordinationBatch(store, "vtn-1")

    def release_waits_for_a_lock() -> bool:
        with psycopg.connect(postgres_database) as look:
            return look.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                "AND query LIKE 'DELETE FROM leases%'").fetchone()[0] == 1

    async def scenario() -> None:
        assert await batch.claim("ven:b", 30) is True
        with psycopg.connect(postgres_database) as blocker:
            blocker.execute("SELECT * FROM leases WHERE name = 'ven:b' FOR UPDATE")
            batch.release("ven:b")
            deadline = time.monotonic() + 5
            while not release_waits_for_a_lock():        # the release is in the database, stuck
                assert time.monotonic() < deadline, "the release never reached the database"
                await asyncio.sleep(0.02)
            claimed = batch.claim("ven:b", 30)           # asked now: must not overtake the release
            await asyncio.sleep(0.1)
            assert not claimed.done()
            blocker.commit()
        assert await asyncio.wait_for(claimed, 5) is True
        await batch.drain()

    asyncio.run(scenario())
    assert store.lease_holder("ven:b") == "vtn-1"        # released, then taken again: held
    assert batch.sent == {"claim": 2, "release": 1, "notice": 0}


def test_a_lease_granted_to_a_delivery_cancelled_meanwhile_is_let_go(stores):
    store = stores()
    batch = CoordinationBatch(store, "vtn-1")

    async def scenario() -> None:
        claimed = batch.claim("ven:c", 30)
        claimed.cancel()                                 # the VTN stops before the claim is sent
        await batch.drain()

    asyncio.run(scenario())
    assert store.lease_holder("ven:c") is None
    assert batch.sent == {"claim": 1, "release": 1, "notice": 0}


def test_answers_passed_on_in_one_turn_reach_the_other_instance_in_one_notice_line_by_line(stores):
    pusher, receiver = stores(), stores()
    answers = [f'["iq-{number}", "ven-{number}@grid.example/oadr", "result", "", ""]' for number in range(40)]

    async def scenario() -> list[str]:
        received: asyncio.Queue = asyncio.Queue()
        listening = Cluster(pusher, "vtn-1", lease_seconds=30)
        listening.start(sweep=_no_sweep, on_answer=received.put_nowait)
        passing = Cluster(receiver, "vtn-2", lease_seconds=30)
        deadline = time.monotonic() + 5
        while received.empty():                          # until the listener has subscribed
            assert time.monotonic() < deadline, "the listening instance heard nothing"
            passing.pass_on_answer("probe")
            await passing.batch.drain()
            await asyncio.sleep(0.05)
        while not received.empty():
            received.get_nowait()
        await asyncio.sleep(0.1)                         # probes still on their way arrive now
        while not received.empty():
            received.get_nowait()
        sent_before = passing.batch.sent["notice"]
        for answer in answers:
            passing.pass_on_answer(answer)
        await passing.batch.drain()
        got = [await asyncio.wait_for(received.get(), 5) for _ in answers]
        assert passing.batch.sent["notice"] == sent_before + 1
        await listening.stop()
        await passing.stop()
        return got

    assert asyncio.run(scenario()) == answers


def test_lines_are_packed_into_messages_under_the_limit_in_order():
    assert list(packed([], 10)) == []
    assert list(packed(["ab", "cd", "ef"], 5)) == ["ab\ncd", "ef"]
    assert list(packed(["ab", "cd", "ef"], 8)) == ["ab\ncd\nef"]
    assert list(packed(["a" * 12, "b"], 10)) == ["a" * 12, "b"]        # too long for any: alone
    assert list(packed(["\u00e9\u00e9", "x"], 5)) == ["\u00e9\u00e9", "x"]   # bytes, not characters
    lines = [str(number) * (number % 7 + 1) for number in range(200)]
    messages = list(packed(lines, 64))
    assert all(len(message.encode()) <= 64 for message in messages)
    assert "\n".join(messages).split("\n") == lines
