"""Several instances share a fan-out: each starts the deliveries to its own share of the VENs,
and a VEN whose instance is gone falls to the ones still running."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from xmpp_vtn.runtime.cluster import Cluster
from xmpp_vtn.store import VenRecord, open_store

VEN_IDS = [f"ven-{n}" for n in range(1000)]


def test_an_unshared_store_takes_every_ven():
    cluster = Cluster(open_store(":memory:"), "solo")
    assert all(cluster.takes(ven_id) for ven_id in VEN_IDS)


def test_two_instances_share_the_vens_between_them_and_one_takes_all_once_the_other_is_gone(postgres_database):
    stores = [open_store(postgres_database) for _ in range(2)]
    a, b = Cluster(stores[0], "vtn-a", lease_seconds=30), Cluster(stores[1], "vtn-b", lease_seconds=30)

    async def scenario():
        for cluster in (a, b):
            cluster.start(lambda: asyncio.sleep(0), lambda line: None)
        for cluster in (a, b):
            cluster.refresh_live()
        shares = [{ven_id for ven_id in VEN_IDS if cluster.takes(ven_id)} for cluster in (a, b)]
        await b.stop()                          # gives up its instance lease
        a.refresh_live()
        alone = {ven_id for ven_id in VEN_IDS if a.takes(ven_id)}
        await a.stop()
        return shares, alone

    (share_a, share_b), alone = run_closing(scenario(), stores)
    assert a.live == ["vtn-a"]
    assert share_a.isdisjoint(share_b) and share_a | share_b == set(VEN_IDS)
    assert 350 <= len(share_a) <= 650, len(share_a)
    assert alone == set(VEN_IDS)


def test_an_instance_that_starts_or_stops_is_counted_by_the_others_at_once_not_at_their_next_sweep(
        postgres_database):
    """A fan-out claims every lease it takes in one statement, so an instance that does not know of
    another yet would take every VEN: a start and a stop are announced, and the others read who
    is running at once (their sweep, every 10 s here, is not what tells them)."""
    stores = [open_store(postgres_database) for _ in range(3)]
    a, b = Cluster(stores[0], "vtn-a", lease_seconds=30), Cluster(stores[1], "vtn-b", lease_seconds=30)

    async def scenario():
        a.start(lambda: asyncio.sleep(0), lambda line: None)
        refreshed = asyncio.Event()
        read_live = a.refresh_live

        def refresh_live() -> None:                     # from now on: whenever a reads who runs
            read_live()
            refreshed.set()
        a.refresh_live = refresh_live
        # Nothing says when a's LISTEN is in place: announce a stranger until a reads anew.
        await until(refreshed.is_set, lambda: stores[2].publish("instances", "vtn-probe started"))
        refreshed.clear()
        assert a.live == ["vtn-a"]
        b.start(lambda: asyncio.sleep(0), lambda line: None)
        await asyncio.wait_for(refreshed.wait(), 5)
        assert a.live == ["vtn-a", "vtn-b"]
        shares = [{ven_id for ven_id in VEN_IDS if cluster.takes(ven_id)} for cluster in (a, b)]
        refreshed.clear()
        await b.stop()
        await asyncio.wait_for(refreshed.wait(), 5)
        assert a.live == ["vtn-a"]
        await a.stop()
        return shares

    share_a, share_b = run_closing(scenario(), stores)
    assert share_a.isdisjoint(share_b) and share_a | share_b == set(VEN_IDS)


def test_an_instance_announced_before_another_listened_is_counted_once_that_one_listens(postgres_database):
    """Two instances starting together: b says it started before a's LISTEN is in place, so a
    never hears it; a reads who runs once it listens, not at its next sweep (10 s here)."""
    stores = [open_store(postgres_database) for _ in range(2)]
    a, b = Cluster(stores[0], "vtn-a", lease_seconds=30), Cluster(stores[1], "vtn-b", lease_seconds=30)

    async def scenario():
        a.start(lambda: asyncio.sleep(0), lambda line: None)   # its LISTEN runs at the next await
        b.start(lambda: asyncio.sleep(0), lambda line: None)   # holds its lease and tells, now
        assert a.live == ["vtn-a"]
        await until(lambda: a.live == ["vtn-a", "vtn-b"], lambda: None, timeout=5.0)
        for cluster in (a, b):
            await cluster.stop()

    run_closing(scenario(), stores)


def test_what_an_instance_tells_the_others_reaches_them_and_not_itself(postgres_database):
    stores = [open_store(postgres_database) for _ in range(2)]
    a, b = Cluster(stores[0], "vtn-a"), Cluster(stores[1], "vtn-b")
    heard: dict[str, list[str]] = {"vtn-a": [], "vtn-b": []}
    on_the_wire: list[str] = []

    async def scenario():
        # What the channel carries back to a, before a's own filter: proof that a's copy arrived.
        raw = asyncio.get_running_loop().create_task(stores[0].listen("events", on_the_wire.append))
        for cluster in (a, b):
            cluster.start(lambda: asyncio.sleep(0), lambda line: None,
                          listeners={"events": heard[cluster.instance_id].append})
        # Nothing says when a LISTEN is in place: tell again until b has heard, then until a's
        # own copy has come back on the wire.
        await until(lambda: heard["vtn-b"], lambda: a.tell_others("events", "event-1"))
        await until(lambda: on_the_wire, lambda: None)
        raw.cancel()
        for cluster in (a, b):
            await cluster.stop()

    run_closing(scenario(), stores)
    assert set(heard["vtn-b"]) == {"event-1"} and heard["vtn-a"] == []
    assert on_the_wire[0] == "vtn-a event-1"


def test_with_bare_source_balancing_each_ven_is_taken_by_the_instance_that_hears_it(postgres_database):
    """The server hands each VEN's stanzas to one instance: that one pushes to it, whatever the
    hash says; a VEN heard by no running instance falls back to the hash."""
    stores = [open_store(postgres_database) for _ in range(2)]
    a = Cluster(stores[0], "vtn-a", lease_seconds=30, balancing="bare_source")
    b = Cluster(stores[1], "vtn-b", lease_seconds=30, balancing="bare_source")
    ven_ids = VEN_IDS[:200]
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    for ven_id in ven_ids:
        stores[0].put_ven(VenRecord(ven_id, f"reg-{ven_id}", f"{ven_id}@localhost", f"{ven_id}@localhost/oadr",
                                    registered_at=long_ago))
    # Registered just now, its note not written yet: left to the instance that heard it.
    stores[0].put_ven(VenRecord("ven-new", "reg-ven-new", "ven-new@localhost", "ven-new@localhost/oadr"))
    by_hash = Cluster(stores[0], "vtn-a", lease_seconds=30)        # a with random balancing, never started
    # Heard against the hash's choice: 0-79 by a, 80-159 by b, on every one's loop turn.
    heard_by_a = {v for v in ven_ids[:80]}
    heard_by_b = {v for v in ven_ids[80:160]}
    unheard = set(ven_ids[160:])

    async def scenario():
        for cluster in (a, b):
            cluster.start(lambda: asyncio.sleep(0), lambda line: None)
        for ven_id in heard_by_a:
            a.heard(ven_id)
        for ven_id in heard_by_b:
            b.heard(ven_id)
        for store in stores:
            store.heard_by()                    # each one's notes written before anyone reads
        for cluster in (a, b):
            cluster.refresh_live()
        by_hash.live = a.live
        shares = [{v for v in ven_ids if cluster.takes(v)} for cluster in (a, b)]
        # Only a VEN's own instance sweeps it (a push from another could not be acknowledged to
        # it); with random balancing every instance sweeps every VEN.
        assert [{v for v in ven_ids if cluster.sweeps(v)} for cluster in (a, b)] == shares
        assert all(by_hash.sweeps(v) for v in ven_ids)
        new = [cluster.takes("ven-new") for cluster in (a, b)]
        b.heard("ven-new")
        new.append(b.takes("ven-new"))
        hashed = {v for v in ven_ids if by_hash.takes(v)}
        b.heard(ven_ids[0])                     # the server moved ven-0 to b (an instance reconnected)
        stores[1].heard_by()                    # b's note written
        a.refresh_heard()
        moved = a.takes(ven_ids[0]), b.takes(ven_ids[0])
        await b.stop()                          # b's VENs fall to a
        a.refresh_live()
        alone = {v for v in ven_ids if a.takes(v)}
        await a.stop()
        return shares, hashed, moved, alone, new

    try:
        (share_a, share_b), hashed, moved, alone, new = asyncio.run(scenario())
        assert new == [False, False, True]
        # Not the hash's shares: each heard VEN goes to its hearer, the rest as the hash says.
        assert heard_by_a - hashed and heard_by_b & hashed
        assert share_a == heard_by_a | (unheard & hashed) and share_b == heard_by_b | (unheard - hashed)
        assert moved == (False, True)
        assert alone == set(ven_ids)
        # A registration purged takes its note along.
        assert stores[0].heard_by()[ven_ids[1]] == "vtn-a"
        stores[0].purge_ven(ven_ids[1])
        assert ven_ids[1] not in stores[1].heard_by()
    finally:
        for store in stores:
            store.close()


def test_random_balancing_records_nothing_and_an_unknown_balancing_is_refused(postgres_database):
    store = open_store(postgres_database)
    try:
        store.put_ven(VenRecord("ven-0", "reg-ven-0", "ven-0@localhost", "ven-0@localhost/oadr"))
        Cluster(store, "vtn-a").heard("ven-0")
        assert store.heard_by() == {}
        with pytest.raises(ValueError, match="balancing must be one of random, bare_source"):
            Cluster(store, "vtn-a", balancing="source")
    finally:
        store.close()


def run_closing(scenario, stores: list):
    """Run ``scenario`` and close ``stores`` whatever happens; its result."""
    try:
        return asyncio.run(scenario)
    finally:
        for store in stores:
            store.close()


async def until(condition, meanwhile, timeout: float = 10.0) -> None:
    """Do ``meanwhile`` every 50 ms until ``condition()`` holds (a notification crossing the
    database has no event to await here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not within the timeout"
        meanwhile()
        await asyncio.sleep(0.05)
