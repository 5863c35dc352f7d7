"""Several instances share a fan-out: each starts the deliveries to its own share of the VENs,
and a VEN whose instance is gone falls to the ones still running."""
from __future__ import annotations

import asyncio

from xmpp_vtn.runtime.cluster import Cluster
from xmpp_vtn.store import open_store

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

    try:
        (share_a, share_b), alone = asyncio.run(scenario())
    finally:
        for store in stores:
            store.close()
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

    try:
        share_a, share_b = asyncio.run(scenario())
    finally:
        for store in stores:
            store.close()
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

    try:
        asyncio.run(scenario())
    finally:
        for store in stores:
            store.close()


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

    try:
        asyncio.run(scenario())
    finally:
        for store in stores:
            store.close()
    assert set(heard["vtn-b"]) == {"event-1"} and heard["vtn-a"] == []
    assert on_the_wire[0] == "vtn-a event-1"


async def until(condition, meanwhile, timeout: float = 10.0) -> None:
    """Do ``meanwhile`` every 50 ms until ``condition()`` holds (a notification crossing the
    database has no event to await here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not within the timeout"
        meanwhile()
        await asyncio.sleep(0.05)
