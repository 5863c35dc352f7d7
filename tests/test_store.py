"""The Store contract: every backend answers the services' calls the same way.

Each contract test runs twice, through the ``backend`` fixture: against SQLite (a file in the
test's tmp_path) and against PostgreSQL (an empty database of its own on the session's throwaway
server, see fixtures_postgres.py). Tests of coordination between instances follow at the end: an
unshared store (SQLite) grants everything and tells nobody; a shared one (PostgreSQL) arbitrates.
"""
from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

import psycopg
import pytest

from payloads import CATALOGUE, REPORT_REQUEST_FULL, REPORT_REQUEST_MIN
from xmpp_vtn import codec
from xmpp_vtn.services.event_arguments import build_event
from xmpp_vtn.store import (UNREGISTERED_VENS, Delivery, Document, DroppedPushes, EventRecord, OutboxItem, SQLiteStore,
                            Store, VenRecord, open_store)
from xmpp_vtn.store.postgresql import PostgreSQLStore
from xmpp_vtn.store.documents import decode_document, encode_document

T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


# -- backends --------------------------------------------------------------------------------------

class Opener:
    """Opens stores on one test's own database; the fixture closes whatever is still open."""

    def __init__(self, name: str, make: Callable[[], Store], location: str):
        self.name, self._make, self.location = name, make, location
        self.open_stores: list[Store] = []

    def __call__(self) -> Store:
        """A new store object on the same database (for SQLite: only after closing the last one)."""
        store = self._make()
        self.open_stores.append(store)
        return store

    def close(self, store: Store) -> None:
        """Close ``store`` now (as a process stopping would)."""
        self.open_stores.remove(store)
        store.close()


def _opener(kind: str, request: pytest.FixtureRequest, tmp_path) -> Opener:
    if kind == "sqlite":
        # A file rather than :memory:, so that closing and opening again finds the same data.
        path = str(tmp_path / "vtn.db")
        return Opener(kind, lambda: SQLiteStore(path), path)
    # Asked for only now: a SQLite-only run (-k sqlite) never starts a PostgreSQL server.
    url = request.getfixturevalue("postgres_database")
    return Opener(kind, lambda: PostgreSQLStore(url), url)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[Opener]:
    """Opens stores of one backend on this test's own empty database."""
    opener = _opener(request.param, request, tmp_path)
    yield opener
    for store in list(opener.open_stores):
        opener.close(store)


@pytest.fixture
def store(backend: Opener) -> Store:
    """An empty store of each backend in turn."""
    return backend()


@pytest.fixture
def shared(request: pytest.FixtureRequest, tmp_path) -> Iterator[Opener]:
    """Opens PostgreSQL stores (each one as another VTN instance would) on one shared database."""
    opener = _opener("postgresql", request, tmp_path)
    yield opener
    for store in list(opener.open_stores):
        opener.close(store)


class AnotherSession:
    """A session of its own that ran ``statement`` and holds what it locked until :meth:`release`.
    Should the code under test hold the event loop after all, the session commits by itself after
    ``safety`` seconds, so that the test fails instead of hanging."""

    def __init__(self, location: str, statement: str, safety: float = 3.0):
        self._location, self._statement, self._safety = location, statement, safety

    def __enter__(self) -> "AnotherSession":
        self._db = psycopg.connect(self._location)
        self._db.execute(self._statement)
        self._timer = threading.Timer(self._safety, self._db.commit)
        self._timer.start()
        return self

    def release(self) -> None:
        """Commit now: what it locked is let go (what it wrote, seen)."""
        self._timer.cancel()
        self._db.commit()

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        self._timer.join()
        self._db.close()


class LoopTicks:
    """Counts 10 ms ticks of the running loop, to tell whether it went on turning meanwhile."""

    def __init__(self) -> None:
        self.count = 0
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1

    def stop(self) -> None:
        self._task.cancel()


# -- records ----------------------------------------------------------------------------------------

def ven(ven_id: str, jid: str | None = None, registration: str | None = None, **fields) -> VenRecord:
    """A registration with every field set to something a backend could get wrong."""
    jid = jid or f"{ven_id}@grid.example"
    defaults = dict(transport_address=f"{jid}/oadr", ven_name=f"VEN {ven_id}", profile_name="2.0b",
                    report_only=False, xml_signature=False, http_pull_model=None,
                    # microseconds and a UTC offset: both must come back
                    registered_at=T0 + timedelta(seconds=1, microseconds=123456))
    return VenRecord(ven_id=ven_id, registration_id=registration or f"reg-{ven_id}", bare_jid=jid,
                     **{**defaults, **fields})


def event(event_id: str, ven_ids: list[str], modification: int = 0, price: float = 0.21) -> dict:
    """An event as add_event builds it: two price intervals for ``ven_ids``."""
    body = build_event(
        ven_ids=ven_ids, signal_name="ELECTRICITY_PRICE", signal_type="price",
        intervals=[{"dtstart": T0, "duration": 15 * MIN, "signal_payload": price},
                   {"duration": 15 * MIN, "signal_payload": price * 2}],
        event_id=event_id, targets=None, targets_by_type=None, market_context="http://mc.example/prices",
        priority=1, response_required="always", notification_period=timedelta(hours=1), ramp_up_period=5 * MIN,
        recovery_period=None, signal_target_mrid=None, current_value=None, test_event=False,
        vtn_comment="peak 'é' <&>", created=T0 - timedelta(hours=2))
    body["event_descriptor"]["modification_number"] = modification
    # build_event draws a random signal id; a fixed one lets a test build the same event twice.
    body["event_signals"][0]["signal_id"] = f"{event_id}-price"
    # The store keeps an event as the codec reads it back, which lists the targets by type as
    # well; with that added, what comes back must equal what went in.
    body["targets_by_type"] = {"ven_id": list(ven_ids)}
    return body


def record(event_id: str, ven_ids: list[str], modification: int = 0, cancelled: bool = False,
           price: float = 0.21) -> EventRecord:
    return EventRecord(event_id, modification, event(event_id, ven_ids, modification, price), tuple(ven_ids),
                       cancelled)


def assert_same_event(found: EventRecord | None, expected: EventRecord) -> None:
    """``found`` is ``expected``; its venIDs in any order (the interface promises none)."""
    assert found is not None
    assert (found.event_id, found.modification_number, found.cancelled) == (
        expected.event_id, expected.modification_number, expected.cancelled)
    assert found.event == expected.event
    assert isinstance(found.ven_ids, tuple)
    assert sorted(found.ven_ids) == sorted(expected.ven_ids)


def rows(deliveries: list[Delivery]) -> list[Delivery]:
    """Delivery rows in a fixed order (the interface promises none)."""
    return sorted(deliveries, key=lambda row: (row.event_id, row.ven_id))


def answer(ven_id: str, *opts: tuple[str, str, int]) -> bytes:
    """An oadrCreatedEvent as a VEN sends it."""
    return codec.serialize("oadrCreatedEvent", {
        "response": {"response_code": 200, "response_description": "OK", "request_id": "req-1"},
        "event_responses": [{"response_code": 200, "request_id": "req-1", "event_id": event_id,
                             "modification_number": modification, "opt_type": opt_type}
                            for event_id, opt_type, modification in opts],
        "ven_id": ven_id})


def push(ven_id: str) -> bytes:
    return codec.serialize("oadrRequestReregistration", {"ven_id": ven_id})


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` every 20 ms; the monotonic time it became true. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.02)
    return time.monotonic()


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


# -- registrations ---------------------------------------------------------------------------------

def test_a_registration_comes_back_whole_and_is_found_by_venid_account_and_registration_id(store):
    a = ven("ven-a", ven_name="north substation", report_only=True, xml_signature=True, http_pull_model=False)
    b = ven("ven-b", ven_name=None, profile_name="2.0a", http_pull_model=True)
    store.put_ven(b)
    store.put_ven(a)
    assert store.ven("ven-a") == a
    assert store.ven_by_jid("ven-a@grid.example") == a
    assert store.ven_by_registration("reg-ven-a") == a
    assert store.ven("ven-b") == b
    assert store.vens() == [a, b]                                   # by venID, not by arrival
    assert store.ven("nobody") is None
    assert store.ven_by_jid("nobody@grid.example") is None
    assert store.ven_by_registration("reg-nobody") is None


def test_put_ven_replaces_the_registration_of_the_same_venid(store):
    first = ven("ven-a")
    store.put_ven(first)
    again = replace(first, registration_id="reg-a-2", bare_jid="moved@grid.example",
                    transport_address="moved@grid.example/phone", ven_name="renamed", report_only=True)
    store.put_ven(again)
    assert store.ven("ven-a") == again
    assert store.vens() == [again]
    assert store.ven_by_registration("reg-ven-a") is None
    assert store.ven_by_registration("reg-a-2") == again
    assert store.ven_by_jid("ven-a@grid.example") is None
    assert store.ven_by_jid("moved@grid.example") == again


def test_one_account_holds_one_ven(store):
    old = ven("ven-old", jid="meter@grid.example")
    other = ven("ven-other")
    store.put_ven(old)
    store.put_ven(other)
    new = ven("ven-new", jid="meter@grid.example")
    store.put_ven(new)
    assert store.ven("ven-old") is None
    assert store.ven_by_registration("reg-ven-old") is None
    assert store.ven_by_jid("meter@grid.example") == new
    assert store.vens() == [new, other]
    assert store.remove_ven("ven-old") is False


def test_a_registration_id_held_by_another_ven_is_refused_and_changes_nothing(store):
    a, b = ven("ven-a"), ven("ven-b")
    store.put_ven(a)
    store.put_ven(b)
    # The interface names no exception type: SQLite raises its IntegrityError, a PostgreSQL
    # driver its own. What matters is that it raises and leaves both registrations as they were.
    with pytest.raises(Exception):
        store.put_ven(replace(b, registration_id=a.registration_id))
    with pytest.raises(Exception):
        store.put_ven(ven("ven-c", registration=a.registration_id))
    assert store.vens() == [a, b]
    assert store.ven_by_registration(a.registration_id) == a
    assert store.ven_by_jid(b.bare_jid) == b
    assert store.ven("ven-c") is None
    # ... and the store still works after the failed transaction.
    c = ven("ven-c")
    store.put_ven(c)
    assert store.vens() == [a, b, c]


def test_remove_ven_forgets_the_registration_and_frees_its_account(store):
    a, b = ven("ven-a"), ven("ven-b")
    store.put_ven(a)
    store.put_ven(b)
    assert store.remove_ven("ven-a") is True
    assert store.remove_ven("ven-a") is False
    assert store.ven("ven-a") is None
    assert store.ven_by_jid(a.bare_jid) is None
    assert store.ven_by_registration(a.registration_id) is None
    assert store.vens() == [b]
    again = ven("ven-a2", jid=a.bare_jid, registration=a.registration_id)
    store.put_ven(again)
    assert store.ven_by_jid(a.bare_jid) == again
    assert store.remove_ven("nobody") is False


# -- events ----------------------------------------------------------------------------------------

def test_an_event_comes_back_as_it_was_put(store):
    put = record("ev-1", ["ven-a", "ven-b"])
    store.put_event(put)
    assert_same_event(store.event("ev-1"), put)
    assert store.event("nope") is None
    cancelled = record("ev-1", ["ven-a", "ven-b"], modification=1, cancelled=True, price=0.5)
    store.put_event(cancelled)
    assert_same_event(store.event("ev-1"), cancelled)
    restored = record("ev-1", ["ven-a", "ven-b"], modification=2)
    store.put_event(restored)
    assert store.event("ev-1").cancelled is False


def test_events_keep_their_creation_order_through_replacements(store):
    # Ids out of alphabetical order: the order must be creation, not event_id.
    store.put_event(record("zulu", ["ven-a"]))
    store.put_event(record("alpha", ["ven-a", "ven-b"]))
    store.put_event(record("mike", ["ven-b"]))
    store.put_event(record("zulu", ["ven-a"], modification=1))
    store.put_event(record("mike", ["ven-a"], modification=1))
    assert [found.event_id for found in store.events()] == ["zulu", "alpha", "mike"]
    assert [found.modification_number for found in store.events()] == [1, 0, 1]
    assert [found.event_id for found in store.events("ven-a")] == ["zulu", "alpha", "mike"]
    assert [found.event_id for found in store.events("ven-b")] == ["alpha"]
    assert store.events("nobody") == []
    assert_same_event(store.events("ven-b")[0], record("alpha", ["ven-a", "ven-b"]))


def test_changing_an_events_vens_keeps_the_rows_of_those_that_stay(store):
    store.put_event(record("ev", ["ven-a", "ven-b"]))
    store.mark_delivered("ven-a", [("ev", 0, "far")])
    store.mark_delivered("ven-b", [("ev", 0, "near")])
    store.set_opt("ven-b", [("ev", "optIn", 0)])
    store.put_event(record("ev", ["ven-b", "ven-c"], modification=1))
    assert rows(store.deliveries("ev")) == [Delivery("ev", "ven-b", 0, "near", "optIn", 0), Delivery("ev", "ven-c")]
    assert store.deliveries(ven_id="ven-a") == []
    assert store.events("ven-a") == []
    assert sorted(store.event("ev").ven_ids) == ["ven-b", "ven-c"]
    # Back in the list, ven-a starts afresh: what it had acknowledged went with its row.
    store.put_event(record("ev", ["ven-a", "ven-b", "ven-c"], modification=2))
    assert rows(store.deliveries("ev")) == [Delivery("ev", "ven-a"), Delivery("ev", "ven-b", 0, "near", "optIn", 0),
                                            Delivery("ev", "ven-c")]


def test_deliveries_are_filtered_by_event_by_ven_or_both(store):
    store.put_event(record("e1", ["ven-a", "ven-b"]))
    store.put_event(record("e2", ["ven-b", "ven-c"]))
    every = [Delivery("e1", "ven-a"), Delivery("e1", "ven-b"), Delivery("e2", "ven-b"), Delivery("e2", "ven-c")]
    assert rows(store.deliveries()) == every
    assert rows(store.deliveries(event_id="e1")) == every[:2]
    assert rows(store.deliveries(ven_id="ven-b")) == every[1:3]
    assert store.deliveries(event_id="e2", ven_id="ven-c") == [every[3]]
    assert store.deliveries(event_id="e1", ven_id="ven-c") == []
    assert store.deliveries(event_id="nope") == []


def test_mark_delivered_records_what_one_ven_acknowledged(store):
    store.put_event(record("e1", ["ven-a", "ven-b"]))
    store.put_event(record("e2", ["ven-a", "ven-b"]))
    store.set_opt("ven-a", [("e1", "optOut", 0)])
    store.mark_delivered("ven-a", [("e1", 0, "far"), ("e2", 0, "active")])
    assert rows(store.deliveries(ven_id="ven-a")) == [Delivery("e1", "ven-a", 0, "far", "optOut", 0),
                                                      Delivery("e2", "ven-a", 0, "active")]
    assert rows(store.deliveries(ven_id="ven-b")) == [Delivery("e1", "ven-b"), Delivery("e2", "ven-b")]
    store.put_event(record("e1", ["ven-a", "ven-b"], modification=1))
    store.mark_delivered("ven-a", [("e1", 1, "near")])
    assert store.deliveries("e1", "ven-a") == [Delivery("e1", "ven-a", 1, "near", "optOut", 0)]
    # An acknowledgement of an event the VEN does not hold creates no row.
    store.mark_delivered("ven-c", [("e1", 1, "near")])
    store.mark_delivered("ven-a", [("nope", 0, "far")])
    assert store.deliveries(ven_id="ven-c") == []
    assert store.deliveries(event_id="nope") == []


def test_a_late_acknowledgement_of_an_older_push_never_moves_the_record_back(store):
    """The interleaving of a retry, or of two instances: the newer push's acknowledgement is
    recorded first, the older one's arrives after it. The record stays at the newer state."""
    store.put_event(record("ev", ["ven-a"]))
    store.mark_delivered("ven-a", [("ev", 0, "active")])
    store.mark_delivered("ven-a", [("ev", 0, "far")])                  # the older push, acknowledged late
    assert store.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 0, "active")]
    store.mark_delivered("ven-a", [("ev", 0, "completed")])
    for late in ("near", "active", "completed"):                      # the same state again changes nothing either
        store.mark_delivered("ven-a", [("ev", 0, late)])
    assert store.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 0, "completed")]
    # The modification number comes first: any status of a newer modification is ahead ...
    store.put_event(record("ev", ["ven-a"], modification=1))
    store.mark_delivered("ven-a", [("ev", 1, "far")])
    assert store.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 1, "far")]
    # ... and no status of an older one, even a later status, takes it back.
    store.mark_delivered("ven-a", [("ev", 0, "cancelled")])
    assert store.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 1, "far")]
    store.mark_delivered("ven-a", [("ev", 1, "cancelled")])
    store.mark_delivered("ven-a", [("ev", 1, "completed")])
    assert store.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 1, "cancelled")]


def test_mark_delivered_says_which_events_the_ven_holds_a_new_modification_of(store):
    store.put_event(record("ev", ["ven-a"]))
    store.put_event(record("ev2", ["ven-a"]))
    assert store.mark_delivered("ven-a", [("ev", 0, "far")]) == ["ev"]
    assert store.mark_delivered("ven-a", [("ev", 0, "near")]) == []           # a later status of it
    assert store.mark_delivered("ven-a", [("ev", 0, "far")]) == []            # a late, older one
    store.put_event(record("ev", ["ven-a"], modification=1))
    assert store.mark_delivered("ven-a", [("ev2", 0, "far"), ("ev", 1, "far"), ("nope", 0, "far")]) == [
        "ev2", "ev"]
    assert store.mark_delivered("ven-b", [("ev", 1, "far")]) == []            # not one of its events
    assert rows(store.deliveries(ven_id="ven-a")) == [Delivery("ev", "ven-a", 1, "far"),
                                                      Delivery("ev2", "ven-a", 0, "far")]


def test_acknowledgements_of_one_loop_turn_are_recorded_together_with_the_same_answers(store):
    """mark_delivered_async, as the courier calls it for a fan-out's burst of acknowledgements:
    each VEN learns what one mark_delivered would have told it, and the state moves forward only."""
    vens = [f"ven-{number}" for number in range(50)]
    store.put_event(record("ev", vens, modification=1))
    store.put_event(record("ev2", vens))
    store.mark_delivered("ven-0", [("ev", 1, "active")])               # ahead of what the burst says
    store.mark_delivered("ven-1", [("ev", 0, "far")])                  # behind it

    async def burst() -> list[list[str]]:
        async def acknowledge(ven_id: str) -> list[str]:
            return await store.mark_delivered_async(ven_id, [("ev", 1, "far"), ("ev2", 0, "near"), ("nope", 0, "far")])
        return await asyncio.gather(*(acknowledge(ven_id) for ven_id in vens),
                                    store.mark_delivered_async("ven-2", [("ev2", 0, "far")]),     # behind, same turn
                                    store.mark_delivered_async("outsider", [("ev", 1, "far")]))

    *answers, again, outsider = asyncio.run(burst())
    assert answers == [["ev2"]] + [["ev", "ev2"]] * 49
    assert again == [] and outsider == []
    assert store.deliveries("ev", "ven-0") == [Delivery("ev", "ven-0", 1, "active")]
    assert all(store.deliveries("ev", ven_id) == [Delivery("ev", ven_id, 1, "far")] for ven_id in vens[1:])
    assert all(store.deliveries("ev2", ven_id) == [Delivery("ev2", ven_id, 0, "near")] for ven_id in vens)
    assert store.deliveries(ven_id="outsider") == []
    if isinstance(store, PostgreSQLStore):
        assert store._delivered.sent == 1                # one statement for the whole turn
    with pytest.raises(ValueError):
        asyncio.run(store.mark_delivered_async("ven-3", [("ev", 1, "nowhere")]))
    assert store.deliveries("ev", "ven-3") == [Delivery("ev", "ven-3", 1, "far")]


def test_one_event_named_twice_in_one_acknowledgement_counts_as_its_later_state(store):
    store.put_event(record("ev", ["ven-a"], modification=1))
    assert store.mark_delivered("ven-a", [("ev", 1, "active"), ("ev", 1, "near")]) == ["ev"]
    assert store.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 1, "active")]
    store.set_opt("ven-a", [("ev", "optIn", 1), ("ev", "optOut", 1)])
    assert store.deliveries("ev", "ven-a")[0].opt_type == "optOut"


def test_mark_delivered_refuses_an_unknown_status_and_records_nothing(store):
    store.put_event(record("e1", ["ven-a"]))
    store.put_event(record("e2", ["ven-a"]))
    with pytest.raises(ValueError, match="'pending'"):
        store.mark_delivered("ven-a", [("e1", 0, "far"), ("e2", 0, "pending")])
    assert rows(store.deliveries()) == [Delivery("e1", "ven-a"), Delivery("e2", "ven-a")]


def test_the_store_ranks_every_status_the_lifecycle_has_in_its_order():
    # The store cannot import the services (they sit above it): its copy of the order must match.
    from xmpp_vtn.services import lifecycle
    from xmpp_vtn.store.sql import DELIVERY_STATUSES
    assert DELIVERY_STATUSES == (lifecycle.FAR, lifecycle.NEAR, lifecycle.ACTIVE, lifecycle.COMPLETED,
                                 lifecycle.CANCELLED)


def test_set_opt_records_answers_and_journals_them_with_their_owner(store):
    store.put_event(record("e1", ["ven-a", "ven-b"]))
    store.put_event(record("e2", ["ven-a"]))
    assert store.set_opt("ven-a", [("e1", "optIn", 0), ("e2", "optOut", 0)]) is None
    assert store.journal() == []
    document = answer("ven-b", ("e1", "optOut", 0))
    entry = store.set_opt("ven-b", [("e1", "optOut", 0)], journal=document, owner="vtn-2")
    assert isinstance(entry, int)
    assert rows(store.deliveries()) == [Delivery("e1", "ven-a", opt_type="optIn", opt_modification=0),
                                        Delivery("e1", "ven-b", opt_type="optOut", opt_modification=0),
                                        Delivery("e2", "ven-a", opt_type="optOut", opt_modification=0)]
    assert store.journal() == [(entry, "ven-b", document, "vtn-2")]
    # A later answer replaces the earlier one.
    store.set_opt("ven-a", [("e1", "optOut", 0)])
    assert store.deliveries("e1", "ven-a")[0].opt_type == "optOut"


def test_record_answers_journals_new_answers_and_tells_a_resend_apart(store):
    store.put_event(record("ev", ["ven-a"], modification=1))
    store.put_event(record("ev2", ["ven-a"]))
    entry, before = store.record_answers("ven-a", [("ev", "optIn", 1), ("ev2", "optOut", 0)], journal=b"<a/>",
                                         owner="vtn-1")
    assert entry is not None and before == {"ev": (None, None), "ev2": (None, None)}
    assert store.journal() == [(entry, "ven-a", b"<a/>", "vtn-1")]
    # The same answers again: nothing written, nothing journaled.
    assert store.record_answers("ven-a", [("ev", "optIn", 1), ("ev2", "optOut", 0)], journal=b"<a/>") == (
        None, {"ev": ("optIn", 1), "ev2": ("optOut", 0)})
    assert [entry_id for entry_id, *_ in store.journal()] == [entry]
    # One of them changed: all are written, with what each held before.
    changed, before = store.record_answers("ven-a", [("ev", "optOut", 1), ("ev2", "optOut", 0)], journal=b"<b/>")
    assert changed not in (None, entry) and before == {"ev": ("optIn", 1), "ev2": ("optOut", 0)}
    assert [(d.event_id, d.opt_type, d.opt_modification) for d in rows(store.deliveries(ven_id="ven-a"))] == [
        ("ev", "optOut", 1), ("ev2", "optOut", 0)]
    # No answers at all is still a message the handlers must see.
    empty, before = store.record_answers("ven-a", [], journal=b"<c/>")
    assert empty is not None and before == {}


def test_answers_of_one_loop_turn_are_each_recorded_and_journaled_as_record_answers_would(store):
    """record_answers_async, as oadrCreatedEvent answers arrive in a fan-out: each VEN's answers
    get their own journal entry; a resend in the same turn is told apart; one that fails fails alone."""
    vens = [f"ven-{number}" for number in range(30)]
    store.put_event(record("ev", vens, modification=1))
    shared_store = isinstance(store, PostgreSQLStore)

    async def turn() -> list:
        answers = [store.record_answers_async(ven_id, [("ev", "optIn", 1)], journal=ven_id.encode(), owner="vtn-1")
                   for ven_id in vens]
        answers.append(store.record_answers_async("ven-0", [("ev", "optIn", 1)], journal=b"again"))    # a resend
        if shared_store:
            # Beyond the column's range, refused by PostgreSQL (SQLite stores any integer).
            answers.append(store.record_answers_async("ven-1", [("ev", "optOut", 2 ** 40)], journal=b"bad"))
        return await asyncio.gather(*answers, return_exceptions=True)

    results = asyncio.run(turn())
    recorded, resend, refused = results[:len(vens)], results[len(vens)], results[len(vens) + 1:]
    entries = [entry for entry, _ in recorded]
    assert None not in entries and len(set(entries)) == len(vens)
    assert all(before == {"ev": (None, None)} for _, before in recorded)
    assert resend == (None, {"ev": ("optIn", 1)})
    assert all(isinstance(error, psycopg.Error) for error in refused)
    assert sorted(store.journal()) == sorted((entry, ven_id, ven_id.encode(), "vtn-1")
                                             for entry, ven_id in zip(entries, vens))
    assert all(store.deliveries("ev", ven_id)[0].opt_type == "optIn" for ven_id in vens)
    if shared_store:
        assert len(refused) == 1
        assert store._answers.sent == 1                  # one hand-over for the whole turn


def test_an_answer_to_an_older_modification_never_replaces_a_newer_one(store):
    store.put_event(record("ev", ["ven-a"], modification=1))
    store.set_opt("ven-a", [("ev", "optIn", 1)])
    store.set_opt("ven-a", [("ev", "optOut", 0)])                       # answered before the change, recorded late
    assert store.deliveries("ev", "ven-a")[0] == Delivery("ev", "ven-a", opt_type="optIn", opt_modification=1)
    store.set_opt("ven-a", [("ev", "optOut", 1)])                       # a VEN may change its mind
    assert store.deliveries("ev", "ven-a")[0] == Delivery("ev", "ven-a", opt_type="optOut", opt_modification=1)


def test_restore_opt_puts_back_the_answer_before_only_over_the_one_written(store):
    store.put_event(record("e1", ["ven-a"], modification=1))
    store.put_event(record("e2", ["ven-a"], modification=1))
    store.set_opt("ven-a", [("e1", "optIn", 0)])
    written = [("e1", "optOut", 1), ("e2", "optIn", 1)]
    store.set_opt("ven-a", written)
    # The application refused that answer: back to what was there (nothing, for e2), older or not.
    store.restore_opt("ven-a", [("e1", "optIn", 0), ("e2", None, None)], written)
    assert rows(store.deliveries()) == [Delivery("e1", "ven-a", opt_type="optIn", opt_modification=0),
                                        Delivery("e2", "ven-a")]
    # A newer answer recorded meanwhile (by another instance) is not undone.
    store.set_opt("ven-a", written)
    store.set_opt("ven-a", [("e2", "optOut", 1)])
    store.restore_opt("ven-a", [("e1", "optIn", 0), ("e2", None, None)], written)
    assert rows(store.deliveries()) == [Delivery("e1", "ven-a", opt_type="optIn", opt_modification=0),
                                        Delivery("e2", "ven-a", opt_type="optOut", opt_modification=1)]


def test_set_opt_is_all_or_none(store):
    store.put_event(record("e1", ["ven-a"]))
    store.put_event(record("e2", ["ven-a"]))
    store.set_opt("ven-a", [("e1", "optIn", 0)])
    before = rows(store.deliveries())
    # A value no backend can store, in the second answer: the first must not stay recorded.
    with pytest.raises(Exception):
        store.set_opt("ven-a", [("e1", "optOut", 0), ("e2", "optOut", object())])
    assert rows(store.deliveries()) == before
    # The journal note is in the same transaction: when it cannot be written, the opts go too.
    with pytest.raises(Exception):
        store.set_opt("ven-a", [("e1", "optOut", 0), ("e2", "optOut", 0)], journal=object(), owner="vtn-1")
    assert rows(store.deliveries()) == before
    assert store.journal() == []
    # ... and the store still works after the failed transactions.
    document = answer("ven-a", ("e2", "optIn", 0))
    entry = store.set_opt("ven-a", [("e2", "optIn", 0)], journal=document, owner="vtn-1")
    assert store.journal() == [(entry, "ven-a", document, "vtn-1")]
    assert store.deliveries("e2", "ven-a")[0].opt_type == "optIn"


def test_the_journal_lists_oldest_first_until_done(store):
    store.put_event(record("e1", ["ven-a", "ven-b"]))
    first = answer("ven-a", ("e1", "optIn", 0))
    # Kept as received: bytes that are not UTF-8 (a VEN may declare another encoding) come back as they were.
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?><oadrPayload>caf\u00e9</oadrPayload>').encode("latin-1")
    third = answer("ven-a", ("e1", "optOut", 0))
    ids = [store.set_opt("ven-a", [("e1", "optIn", 0)], journal=first, owner="vtn-1"),
           store.set_opt("ven-b", [("e1", "optIn", 0)], journal=latin),
           store.set_opt("ven-a", [("e1", "optOut", 0)], journal=third, owner="vtn-2")]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert store.journal() == [(ids[0], "ven-a", first, "vtn-1"), (ids[1], "ven-b", latin, ""),
                               (ids[2], "ven-a", third, "vtn-2")]
    assert all(type(document) is bytes for _, _, document, _ in store.journal())
    store.journal_done(ids[1])
    assert [entry[0] for entry in store.journal()] == [ids[0], ids[2]]
    store.journal_done(ids[1])                          # done twice (two instances replaying): no error
    store.journal_done(ids[0])
    store.journal_done(ids[2])
    assert store.journal() == []


# -- documents -------------------------------------------------------------------------------------

def _request(request_id: str, template: dict = REPORT_REQUEST_MIN) -> dict:
    return {**template, "report_request_id": request_id}


def test_documents_come_back_whole_keep_their_place_and_are_filtered_by_ven(store):
    opt = CATALOGUE["oadrCreateOpt"][0]
    docs = [Document("report_request", "rr-9", "ven-a", _request("rr-9", REPORT_REQUEST_FULL), "requested"),
            Document("opt", "opt-1", "ven-a", opt, "active"),
            Document("report_request", "rr-1", "ven-b", _request("rr-1"), "requested"),
            Document("report_request", "rr-5", "ven-a", _request("rr-5"), "active")]
    for document in docs:
        store.put_document(document)
    for document in docs:
        assert store.document(document.kind, document.key) == document
    assert store.document("opt", "rr-9") is None                   # the kind is part of the key
    assert store.document("report_request", "nope") is None
    assert store.documents("report_request") == [docs[0], docs[2], docs[3]]   # oldest first, not by key
    assert store.documents("report_request", "ven-a") == [docs[0], docs[3]]
    assert store.documents("opt") == [docs[1]]
    assert store.documents("opt", "ven-b") == []
    assert store.documents("report_offer") == []
    # Replacing keeps the document's place; it may move to another VEN.
    active = replace(docs[0], state="active")
    store.put_document(active)
    moved = replace(docs[3], ven_id="ven-b")
    store.put_document(moved)
    assert store.documents("report_request") == [active, docs[2], moved]
    assert store.documents("report_request", "ven-a") == [active]
    assert store.documents("report_request", "ven-b") == [docs[2], moved]


def test_document_keys_are_a_vens_own_oldest_first_and_an_encoded_document_is_kept_as_given(store):
    opt = CATALOGUE["oadrCreateOpt"][0]
    for key, ven_id in (("opt-9", "ven-a"), ("opt-1", "ven-b"), ("opt-5", "ven-a")):
        store.put_document(Document("opt", key, ven_id, opt, "active"))
    store.put_document(Document("report_request", "rr-1", "ven-a", _request("rr-1"), "requested"))
    assert store.document_keys("opt", "ven-a") == ["opt-9", "opt-5"]
    assert store.document_keys("opt", "ven-c") == []
    # The caller's encoding is what is stored (and read back), not the payload encoded again.
    other = CATALOGUE["oadrCreateOpt"][1]
    store.put_document(Document("opt", "opt-9", "ven-a", opt, "active"), encode_document("opt", other))
    assert store.document("opt", "opt-9").payload == decode_document("opt", encode_document("opt", other))


def test_remove_document_says_whether_there_was_one(store):
    kept = Document("opt", "opt-2", "ven-a", CATALOGUE["oadrCreateOpt"][1], "active")
    gone = Document("report_request", "opt-2", "ven-a", _request("opt-2"), "requested")
    store.put_document(kept)
    store.put_document(gone)
    assert store.remove_document("report_request", "opt-2") is True
    assert store.remove_document("report_request", "opt-2") is False
    assert store.document("report_request", "opt-2") is None
    assert store.documents("opt") == [kept]
    assert store.remove_document("opt", "nope") is False


# -- outbox ----------------------------------------------------------------------------------------

def test_the_deliveries_starting_in_one_loop_turn_read_their_state_together(store):
    """delivery_state_async, as each delivery of a fan-out starts: every VEN gets its own queued
    pushes, in order, and its own delivery rows, whatever else the turn read."""
    store.put_event(record("e1", ["ven-a", "ven-b", "ven-c"]))
    store.put_event(record("e2", ["ven-a"]))
    store.mark_delivered("ven-a", [("e1", 0, "far")])
    first = store.enqueue("ven-a", "ven-a@grid.example/oadr", "oadrCreateReport", push("ven-a"))
    other = store.enqueue("ven-b", "ven-b@grid.example/oadr", "oadrRequestReregistration", push("ven-b"))
    second = store.enqueue("ven-a", "ven-a@grid.example/oadr", "oadrCancelReport", push("ven-a") + b"\n")

    async def turn() -> list:
        return await asyncio.gather(*(store.delivery_state_async(ven_id)
                                      for ven_id in ("ven-a", "ven-b", "ven-c", "nobody", "ven-a")))

    states = asyncio.run(turn())
    expected = {ven_id: (store.outbox(ven_id), store.deliveries(ven_id=ven_id))
                for ven_id in ("ven-a", "ven-b", "ven-c", "nobody")}
    assert states == [expected[ven_id] for ven_id in ("ven-a", "ven-b", "ven-c", "nobody", "ven-a")]
    assert [item.item_id for item in states[0][0]] == [first, second]
    assert [item.item_id for item in states[1][0]] == [other]
    assert rows(states[0][1]) == [Delivery("e1", "ven-a", 0, "far"), Delivery("e2", "ven-a")]
    assert states[3] == ([], [])
    if isinstance(store, PostgreSQLStore):
        assert store._delivery_states.sent == 1          # one read for the whole turn


def test_the_outbox_keeps_order_counts_attempts_and_forgets_acknowledged_pushes(store):
    first, second, third = push("ven-a"), push("ven-b"), push("ven-a") + b"\n"
    ids = [store.enqueue("ven-a", "ven-a@grid.example/oadr", "oadrDistributeEvent", first),
           store.enqueue("ven-b", "ven-b@grid.example/oadr", "oadrRequestReregistration", second),
           store.enqueue("ven-a", "ven-a@grid.example/phone", "oadrCreateReport", third)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    items = [OutboxItem(ids[0], "ven-a", "ven-a@grid.example/oadr", "oadrDistributeEvent", first),
             OutboxItem(ids[1], "ven-b", "ven-b@grid.example/oadr", "oadrRequestReregistration", second),
             OutboxItem(ids[2], "ven-a", "ven-a@grid.example/phone", "oadrCreateReport", third)]
    assert store.outbox() == items
    assert all(type(item.document) is bytes for item in store.outbox())
    assert store.outbox("ven-a") == [items[0], items[2]]
    assert store.outbox("nobody") == []
    assert store.queued_ven_ids() == {"ven-a", "ven-b"}
    store.attempted(ids[0])
    store.attempted(ids[0])
    store.attempted(ids[2])
    assert [item.attempts for item in store.outbox()] == [2, 0, 1]
    store.dequeue(ids[0])
    assert store.outbox() == [items[1], replace(items[2], attempts=1)]
    # Another instance may have sent it already: neither counts nor forgets anything, and no error.
    store.dequeue(ids[0])
    store.attempted(ids[0])
    store.dequeue(ids[1])
    store.dequeue(ids[2])
    assert store.outbox() == []
    assert store.queued_ven_ids() == set()
    # Ids never come back: a new push sorts after every earlier one.
    assert store.enqueue("ven-a", "ven-a@grid.example/oadr", "oadrDistributeEvent", first) > max(ids)


def test_owed_vens_are_those_with_pushes_or_events_they_do_not_hold_settled(store):
    assert store.owed_ven_ids() == set()
    item = store.enqueue("ven-q", "ven-q@grid.example/oadr", "oadrDistributeEvent", push("ven-q"))
    assert store.owed_ven_ids() == {"ven-q"}
    store.dequeue(item)
    assert store.owed_ven_ids() == set()

    store.put_event(record("ev", ["never", "older", "active", "completed", "cancelled"]))
    store.mark_delivered("older", [("ev", 0, "far")])
    store.put_event(record("ev", ["never", "older", "active", "completed", "cancelled"], modification=1))
    store.mark_delivered("active", [("ev", 1, "active")])
    store.mark_delivered("completed", [("ev", 1, "completed")])
    store.mark_delivered("cancelled", [("ev", 1, "cancelled")])
    # The interface allows a superset, but a VEN holding the current modification in a final
    # status must not be woken on every sweep: both backends leave it out.
    assert store.owed_ven_ids() == {"never", "older", "active"}
    store.enqueue("completed", "completed@grid.example/oadr", "oadrDistributeEvent", push("completed"))
    assert store.owed_ven_ids() == {"never", "older", "active", "completed"}
    # A VEN taken off the event owes nothing for it any more.
    store.put_event(record("ev", ["active"], modification=2))
    store.mark_delivered("active", [("ev", 2, "completed")])
    assert store.owed_ven_ids() == {"completed"}


# -- liveness ----------------------------------------------------------------------------------------

def test_liveness_is_recorded_per_ven_and_overwritten(store):
    assert store.liveness() == {}
    seen = T0 + timedelta(seconds=7, microseconds=654321)
    store.set_liveness("ven-a", "online", seen)
    store.set_liveness("ven-b", "offline", None)
    assert store.liveness() == {"ven-a": ("online", seen), "ven-b": ("offline", None)}
    later = seen + 3 * MIN
    store.set_liveness("ven-a", "offline", later)
    assert store.liveness() == {"ven-a": ("offline", later), "ven-b": ("offline", None)}
    state, last_seen = store.liveness()["ven-a"]
    assert last_seen.utcoffset() is not None          # aware, as it was given


def test_liveness_notes_of_one_loop_turn_are_one_write_read_back_in_order_and_purged_with_their_ven(store):
    for ven_id in ("ven-a", "ven-b", "ven-c"):
        store.put_ven(ven(ven_id))

    async def scenario() -> dict:
        store.note_liveness("ven-a", "online", T0)
        store.note_liveness("ven-b", "online", T0)
        store.note_liveness("ven-a", "offline", T0 + MIN)           # the last note of a venID wins
        store.note_liveness("ven-c", "online", T0)
        store.purge_ven("ven-c")                                    # comes after the note of ven-c
        return store.liveness()

    assert asyncio.run(scenario()) == {"ven-a": ("offline", T0 + MIN), "ven-b": ("online", T0)}
    if isinstance(store, PostgreSQLStore):
        assert store.liveness_writes == 1                           # the turn's four notes, one statement


def test_a_liveness_note_is_never_overwritten_by_an_earlier_one_nor_kept_for_a_ven_not_registered(postgres_database):
    store = PostgreSQLStore(postgres_database)
    try:
        store.put_ven(ven("ven-a"))

        async def scenario() -> dict:
            store.note_liveness("ven-a", "online", T0)
            store.note_liveness("nobody", "online", T0)             # no registration: dropped
            store.set_liveness("ven-a", "offline", T0 + MIN)        # after the note, never under it
            return store.liveness()

        assert asyncio.run(scenario()) == {"ven-a": ("offline", T0 + MIN)}
    finally:
        store.close()


def test_a_liveness_note_meeting_another_instances_purge_under_way_leaves_nothing_behind(shared):
    store = shared()
    store.put_ven(ven("ven-x"))
    # A purge begun, not yet committed.
    with AnotherSession(shared.location, "DELETE FROM vens WHERE ven_id = 'ven-x'") as purger:
        async def scenario() -> None:
            store.note_liveness("ven-x", "online", T0)
            await asyncio.sleep(0.3)                                   # the note reaches the database...
            purger.release()                                           # ...and the purge then commits

        asyncio.run(scenario())
    assert store.liveness() == {}          # the note waited for the purge and found its VEN gone


def test_liveness_notes_leave_the_loop_turning_while_the_database_holds_their_row(shared):
    store = shared()
    store.put_ven(ven("ven-a"))
    store.set_liveness("ven-a", "online", T0)
    with AnotherSession(shared.location, "SELECT * FROM liveness WHERE ven_id = 'ven-a' FOR UPDATE") as blocker:
        async def scenario() -> None:
            ticks = LoopTicks()
            started = time.monotonic()
            store.note_liveness("ven-a", "offline", T0 + MIN)
            await asyncio.sleep(0.3)
            assert ticks.count >= 10 and time.monotonic() - started < 2    # the loop went on turning...
            assert store.liveness_writes == 1                # ...while the note waits on the row
            with psycopg.connect(shared.location) as reader:
                assert reader.execute("SELECT state FROM liveness").fetchall() == [("online",)]
            blocker.release()
            ticks.stop()

        asyncio.run(scenario())
    assert store.liveness() == {"ven-a": ("offline", T0 + MIN)}


# -- durability --------------------------------------------------------------------------------------

def test_everything_is_there_after_closing_and_opening_again(backend):
    store = backend()
    a = ven("ven-a")
    store.put_ven(a)
    ev = record("ev", ["ven-a"])
    store.put_event(ev)
    store.mark_delivered("ven-a", [("ev", 0, "far")])
    document = answer("ven-a", ("ev", "optIn", 0))
    entry = store.set_opt("ven-a", [("ev", "optIn", 0)], journal=document, owner="vtn-1")
    request = Document("report_request", "rr-1", "ven-a", _request("rr-1", REPORT_REQUEST_FULL), "active")
    store.put_document(request)
    item = store.enqueue("ven-a", "ven-a@grid.example/oadr", "oadrDistributeEvent", push("ven-a"))
    store.attempted(item)
    store.set_liveness("ven-a", "online", T0)
    backend.close(store)

    again = backend()                                   # migrations run again on a current schema
    assert again.vens() == [a]
    assert again.ven_by_jid(a.bare_jid) == a
    assert_same_event(again.event("ev"), ev)
    assert again.deliveries() == [Delivery("ev", "ven-a", 0, "far", "optIn", 0)]
    assert again.journal() == [(entry, "ven-a", document, "vtn-1")]
    assert again.documents("report_request") == [request]
    assert again.outbox() == [OutboxItem(item, "ven-a", "ven-a@grid.example/oadr", "oadrDistributeEvent",
                                         push("ven-a"), 1)]
    assert again.liveness() == {"ven-a": ("online", T0)}
    assert again.owed_ven_ids() == {"ven-a"}


# -- coordination: an unshared store ------------------------------------------------------------------

def test_an_unshared_store_grants_every_lease_and_has_nobody_to_tell(tmp_path):
    store = SQLiteStore(tmp_path / "vtn.db")
    try:
        assert store.shared is False
        assert store.claim("transition:ev@2026-11-23T12:00", "vtn-1", 0.3) is True
        assert store.claim("transition:ev@2026-11-23T12:00", "vtn-2", 0.3) is True   # its one process does all
        assert store.lease_holder("transition:ev@2026-11-23T12:00") is None
        store.release("transition:ev@2026-11-23T12:00", "vtn-1")
        assert store.forget_expired_leases(0) == 0

        async def scenario() -> list[str]:
            received: list[str] = []
            listening = asyncio.create_task(store.listen("answers", received.append))
            await asyncio.sleep(0.05)
            store.publish("answers", "hello")
            await asyncio.sleep(0.05)
            assert not listening.done()                 # returns only by cancellation
            listening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await listening
            return received

        assert asyncio.run(scenario()) == []

        async def batches() -> None:
            assert await store.claim_batch(["a", "b"], "vtn-1", 0.3) == {"a", "b"}
            assert await store.claim_batch(["a", "b"], "vtn-2", 0.3) == {"a", "b"}
            await store.release_batch(["a"], "vtn-1")
            await store.publish_batch("answers", ["hello"])

        asyncio.run(batches())
    finally:
        store.close()


# -- coordination: a shared store (PostgreSQL) ------------------------------------------------------

def test_open_store_opens_a_postgresql_url(shared):
    store = open_store(shared.location)
    try:
        assert isinstance(store, PostgreSQLStore)
        assert store.shared is True
    finally:
        store.close()


def test_a_lease_is_exclusive_until_released(shared):
    store = shared()
    name = "transition:ev-1@2026-11-23T12:00:00+00:00"     # names carry colons, dots and signs
    assert store.lease_holder(name) is None
    assert store.claim(name, "vtn-1", 30) is True
    assert store.claim(name, "vtn-2", 30) is False
    assert store.lease_holder(name) == "vtn-1"              # a refused claim changes nothing
    assert store.claim(name, "vtn-1", 30) is True           # renewing
    assert store.claim("courier", "vtn-2", 30) is True      # leases are independent
    store.release(name, "vtn-2")                            # not the holder: no effect
    assert store.lease_holder(name) == "vtn-1"
    store.release(name, "vtn-1")
    assert store.lease_holder(name) is None
    assert store.claim(name, "vtn-2", 30) is True
    assert store.lease_holder(name) == "vtn-2"
    assert store.lease_holder("courier") == "vtn-2"
    store.release("nothing-held", "vtn-1")                  # no such lease: no error


def test_a_lease_lapses_after_its_seconds_and_renewing_extends_it(shared):
    store = shared()
    seconds = 0.5
    claimed = time.monotonic()
    assert store.claim("sweeper", "vtn-1", seconds) is True
    sleep_until(claimed + seconds / 2)
    renewed = time.monotonic()
    assert store.claim("sweeper", "vtn-1", seconds) is True
    # Past the first term, within the renewed one (which ends at renewed + 0.5 >= claimed + 0.75).
    sleep_until(claimed + seconds * 1.1)
    assert store.lease_holder("sweeper") == "vtn-1"
    assert store.claim("sweeper", "vtn-2", seconds) is False
    lapsed = wait_until(lambda: store.lease_holder("sweeper") is None, 5, "the renewed lease lapses")
    assert lapsed - renewed >= seconds - 0.02               # not before its term (20 ms of clock slack)
    assert store.claim("sweeper", "vtn-2", seconds) is True
    assert store.lease_holder("sweeper") == "vtn-2"


def test_forget_expired_leases_drops_only_the_expired_ones(shared):
    store = shared()
    assert store.claim("short", "vtn-1", 0.05) is True
    assert store.claim("long", "vtn-1", 30) is True
    wait_until(lambda: store.lease_holder("short") is None, 5, "the short lease lapses")
    assert store.forget_expired_leases(3600) == 0           # expired, but not that long ago
    assert store.forget_expired_leases(0) == 1
    assert store.forget_expired_leases(0) == 0
    assert store.lease_holder("long") == "vtn-1"
    assert store.claim("short", "vtn-2", 30) is True


def test_leases_claimed_and_released_in_a_batch_follow_the_rules_of_one_at_a_time(shared):
    store, other = shared(), shared()
    assert other.claim("held", "vtn-2", 30) is True
    assert other.claim("lapsed", "vtn-2", 0.05) is True
    assert store.claim("mine", "vtn-1", 30) is True
    wait_until(lambda: store.lease_holder("lapsed") is None, 5, "the short lease lapses")

    async def scenario() -> None:
        granted = await store.claim_batch(["fresh", "held", "lapsed", "mine"], "vtn-1", 30)
        assert granted == {"fresh", "lapsed", "mine"}        # taken, taken over, renewed; not another's
        assert {name: store.lease_holder(name) for name in ("fresh", "held", "lapsed", "mine")} == {
            "fresh": "vtn-1", "held": "vtn-2", "lapsed": "vtn-1", "mine": "vtn-1"}
        await store.release_batch(["fresh", "held", "mine", "never-held"], "vtn-1")
        assert {name: store.lease_holder(name) for name in ("fresh", "held", "lapsed", "mine")} == {
            "fresh": None, "held": "vtn-2", "lapsed": "vtn-1", "mine": None}
        assert await store.claim_batch([], "vtn-1", 30) == set()
        await store.release_batch([], "vtn-1")

    asyncio.run(scenario())


def test_a_batch_waiting_for_the_database_does_not_hold_the_event_loop(shared):
    store = shared()
    assert store.claim("contended", "vtn-2", 30) is True
    with AnotherSession(shared.location, "SELECT * FROM leases WHERE name = 'contended' FOR UPDATE") as blocker:
        async def scenario() -> None:
            ticks = LoopTicks()
            claim = asyncio.create_task(store.claim_batch(["contended", "free"], "vtn-1", 30))
            await asyncio.sleep(0.3)
            assert not claim.done()                          # waiting on the row the blocker holds...
            assert ticks.count >= 10                         # ...while the loop went on turning
            blocker.release()
            assert await asyncio.wait_for(claim, 5) == {"free"}
            ticks.stop()

        asyncio.run(scenario())


async def _receive(queue: asyncio.Queue, count: int) -> list[str]:
    """The next ``count`` messages, past any leftover probes, each within 5 s."""
    received: list[str] = []
    while len(received) < count:
        message = await asyncio.wait_for(queue.get(), 5)
        if message != "probe":
            received.append(message)
    return received


async def _until_subscribed(publisher: Store, channel: str, queues: list[asyncio.Queue]) -> None:
    """listen() gives no sign that it has subscribed: publish probes until every queue has one."""
    deadline = time.monotonic() + 5
    while any(queue.empty() for queue in queues):
        if time.monotonic() > deadline:
            pytest.fail(f"listeners on {channel!r} received no probe within 5 s")
        publisher.publish(channel, "probe")
        await asyncio.sleep(0.05)


def test_published_messages_reach_every_listener_in_order_and_only_on_their_channel(shared):
    one, two = shared(), shared()
    messages = ["first", "it's \"quoted\" \u2013 caf\u00e9 \u2713", "x" * 2000, "last"]

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        threads: set[int] = set()
        queues = {"mine": asyncio.Queue(), "theirs": asyncio.Queue(), "other": asyncio.Queue()}

        def into(queue: asyncio.Queue) -> Callable[[str], None]:
            def receive(message: str) -> None:
                threads.add(threading.get_ident())
                queue.put_nowait(message)
            return receive

        listeners = [asyncio.create_task(one.listen("answers", into(queues["mine"]))),     # ourselves included
                     asyncio.create_task(two.listen("answers", into(queues["theirs"]))),
                     asyncio.create_task(two.listen("Events.Modified", into(queues["other"])))]
        try:
            await _until_subscribed(one, "answers", [queues["mine"], queues["theirs"]])
            await _until_subscribed(one, "Events.Modified", [queues["other"]])
            for message in messages:
                one.publish("answers", message)
            two.publish("Events.Modified", "ev-1")
            assert await _receive(queues["mine"], len(messages)) == messages
            assert await _receive(queues["theirs"], len(messages)) == messages
            assert await _receive(queues["other"], 1) == ["ev-1"]       # and none of the others
            assert queues["other"].empty()
            # receive() is called on the loop that runs listen(), where the services live.
            assert threads == {loop_thread}
        finally:
            for listener in listeners:
                listener.cancel()
            results = await asyncio.gather(*listeners, return_exceptions=True)
        assert all(isinstance(result, asyncio.CancelledError) for result in results)

    asyncio.run(scenario())
    # The stores still work after their listeners were cancelled.
    one.publish("answers", "after")
    assert one.claim("after", "vtn-1", 30) is True


def test_messages_published_in_a_batch_reach_a_listener_in_order(shared):
    one, two = shared(), shared()
    messages = ["first", "caf\u00e9 \u2713", "y" * 3000, "last"]

    async def scenario() -> None:
        queue: asyncio.Queue = asyncio.Queue()
        listening = asyncio.create_task(two.listen("answers", queue.put_nowait))
        await _until_subscribed(one, "answers", [queue])
        await one.publish_batch("answers", messages)
        await one.publish_batch("answers", [])
        assert await _receive(queue, len(messages)) == messages
        listening.cancel()

    asyncio.run(scenario())


def test_two_postgresql_stores_on_one_database_see_each_others_writes_at_once(shared):
    one, two = shared(), shared()
    # Neither store has read what the other wrote before reading it here, or it wrote the last
    # change itself: each read is answered as the database has it at once. (A copy kept in memory
    # is read anew once the change's notification arrives: the tests after this one.)
    a = ven("ven-a")
    one.put_ven(a)
    assert two.ven("ven-a") == a
    assert two.ven_by_jid(a.bare_jid) == a
    assert two.ven_by_registration(a.registration_id) == a
    moved = replace(a, transport_address="ven-a@grid.example/phone")
    two.put_ven(moved)
    assert one.ven("ven-a") == moved
    successor = ven("ven-b", jid=a.bare_jid)                # the same account registers anew
    one.put_ven(successor)
    assert two.ven("ven-a") is None
    assert two.ven_by_jid(a.bare_jid) == successor
    assert two.vens() == [successor]

    # Events and deliveries.
    first = record("ev", ["ven-b"])
    one.put_event(first)
    assert_same_event(two.event("ev"), first)
    changed = record("ev", ["ven-b", "ven-c"], modification=1, price=0.9)
    two.put_event(changed)
    assert_same_event(one.event("ev"), changed)
    assert [found.event_id for found in one.events("ven-c")] == ["ev"]
    two.mark_delivered("ven-b", [("ev", 1, "far")])
    assert one.deliveries("ev", "ven-b") == [Delivery("ev", "ven-b", 1, "far")]
    entry = one.set_opt("ven-b", [("ev", "optIn", 1)], journal=b"<answer/>", owner="vtn-1")
    assert two.journal() == [(entry, "ven-b", b"<answer/>", "vtn-1")]
    two.journal_done(entry)
    assert one.journal() == []

    # Documents, outbox, liveness.
    request = Document("report_request", "rr-1", "ven-b", _request("rr-1"), "requested")
    one.put_document(request)
    assert two.document("report_request", "rr-1") == request
    assert two.remove_document("report_request", "rr-1") is True
    assert one.document("report_request", "rr-1") is None
    item = two.enqueue("ven-b", "meter@grid.example/oadr", "oadrDistributeEvent", push("ven-b"))
    assert [queued.item_id for queued in one.outbox()] == [item]
    one.dequeue(item)
    assert two.outbox() == []
    one.set_liveness("ven-b", "online", T0)
    assert two.liveness() == {"ven-b": ("online", T0)}
    assert two.remove_ven("ven-b") is True
    assert one.ven_by_jid(a.bare_jid) is None

    # A lease one instance holds, the other cannot take until it is released.
    assert one.claim("courier", "vtn-1", 30) is True
    assert two.claim("courier", "vtn-2", 30) is False
    assert two.lease_holder("courier") == "vtn-1"
    one.release("courier", "vtn-1")
    assert two.claim("courier", "vtn-2", 30) is True
    assert one.lease_holder("courier") == "vtn-2"
    assert one.claim("courier", "vtn-1", 30) is False


# -- what a shared store keeps in memory, and how it learns of other writers --------------------------

def _notified(store: PostgreSQLStore, timeout: float = 10.0) -> None:
    """Wait until a change notification has reached ``store``'s listening connection (its socket
    becomes readable); the store has not read it yet."""
    readable, _, _ = select.select([store._changes._db.fileno()], [], [], timeout)
    assert readable, f"no change notification within {timeout} s"


def _with_lock_timeout(url: str) -> str:
    """``url`` for a session that gives up waiting for a lock after 0.5 s instead of hanging."""
    return url + ("&" if "?" in url else "?") + "options=-c%20lock_timeout%3D500"


def test_a_registration_another_instance_cancels_is_not_served_from_memory_once_its_change_arrived(shared):
    """Registrations are read on every exchange, so a shared store keeps them in memory; a trigger
    tells every store of every write. One store (instance A) holds a VEN's registration; another
    (instance B) cancels it; from the moment B's change notification reaches A, A answers from
    the database's state: no registration, by venID, account or registration id."""
    writer = shared()
    writer.put_ven(ven("ven-a"))
    reader = PostgreSQLStore(_with_lock_timeout(shared.location))
    try:
        assert reader.ven("ven-a") == ven("ven-a")
        assert reader.ven_by_jid("ven-a@grid.example") == ven("ven-a")
        assert reader.ven_by_registration("reg-ven-a") == ven("ven-a")
        assert reader.vens() == [ven("ven-a")]
        # Served from memory: with the table locked by another session, a read of the database
        # would wait and fail after 0.5 s.
        with psycopg.connect(shared.location) as locker:
            locker.execute("LOCK TABLE vens IN ACCESS EXCLUSIVE MODE")
            assert reader.ven("ven-a") == ven("ven-a")
            assert reader.ven_by_jid("ven-a@grid.example") == ven("ven-a")
            assert reader.vens() == [ven("ven-a")]
        writer.remove_ven("ven-a")
        _notified(reader)
        assert reader.ven("ven-a") is None
        assert reader.ven_by_jid("ven-a@grid.example") is None
        assert reader.ven_by_registration("reg-ven-a") is None
        assert reader.vens() == []
        # A registration the other instance makes is found at once: absence is never kept.
        writer.put_ven(ven("ven-b", jid="ven-a@grid.example"))
        assert reader.ven_by_jid("ven-a@grid.example") == ven("ven-b", jid="ven-a@grid.example")
    finally:
        reader.close()


def _served_from_memory(location: str, *reads: Callable[[], object]) -> list:
    """What each of ``reads`` returns while another session holds the vens table locked: a read
    that went to the database would wait for the lock and fail after 0.5 s (_with_lock_timeout)."""
    with psycopg.connect(location) as locker:
        locker.execute("LOCK TABLE vens IN ACCESS EXCLUSIVE MODE")
        return [read() for read in reads]


def test_a_registration_changed_anywhere_is_forgotten_alone_and_every_other_stays_in_memory(shared):
    """A registration storm must not empty the cache the fan-out reads: a change, made by another
    instance or by this one, forgets that venID's registration (under its venID, account and
    registration id) and the list of all, nothing else."""
    writer = PostgreSQLStore(_with_lock_timeout(shared.location))
    reader = PostgreSQLStore(_with_lock_timeout(shared.location))
    try:
        for ven_id in ("ven-a", "ven-b", "ven-c"):
            writer.put_ven(ven(ven_id))
        for store in (writer, reader):
            assert [store.ven(ven_id) for ven_id in ("ven-a", "ven-b", "ven-c")] == \
                [ven("ven-a"), ven("ven-b"), ven("ven-c")]
        # Another instance's change: the account of ven-a registers again under another venID
        # (its old row goes), and ven-c moves to another resource.
        again = ven("ven-a2", jid="ven-a@grid.example")
        moved = ven("ven-c", transport_address="ven-c@grid.example/elsewhere")
        writer.put_ven(again)
        writer.put_ven(moved)
        _notified(reader)
        # Both stores still serve ven-b from memory, by every key...
        for store in (reader, writer):
            assert _served_from_memory(shared.location, lambda: store.ven("ven-b"),
                                       lambda: store.ven_by_jid("ven-b@grid.example"),
                                       lambda: store.ven_by_registration("reg-ven-b")) == [ven("ven-b")] * 3
        # ... and read the changed ones anew.
        for store in (reader, writer):
            assert store.ven("ven-a") is None and store.ven_by_registration("reg-ven-a") is None
            assert store.ven_by_jid("ven-a@grid.example") == again
            assert store.ven_by_registration("reg-ven-c") == moved
            assert store.vens() == [again, ven("ven-b"), moved]
        # A removal, and a truncation (no row named: everything is forgotten).
        writer.remove_ven("ven-b")
        _notified(reader)
        assert reader.ven_by_jid("ven-b@grid.example") is None and reader.vens() == [again, moved]
        with psycopg.connect(shared.location, autocommit=True) as admin:
            admin.execute("TRUNCATE vens CASCADE")
        _notified(reader)
        assert reader.ven("ven-c") is None and reader.ven_by_jid("ven-a@grid.example") is None
    finally:
        writer.close()
        reader.close()


def test_a_refresh_reads_anew_only_what_is_in_doubt_and_serves_the_rest_from_memory(shared):
    """An instance told that an event changed (or unsure of an event a VEN answers) refreshes the
    events alone, and one unsure of an account's registration refreshes that account alone: every
    other registration is still served from memory, so a fan-out's lookups do not all go to the
    database after each event change or registration another instance made."""
    writer = shared()
    reader = PostgreSQLStore(_with_lock_timeout(shared.location))
    try:
        writer.put_ven(ven("ven-a"))
        writer.put_event(record("ev", ["ven-a"]))
        assert reader.ven("ven-a") == ven("ven-a") and reader.event("ev").modification_number == 0
        reader._changes.changed = lambda: frozenset()      # the change below is not heard of
        writer.put_event(record("ev", ["ven-a"], modification=1))
        reader.refresh(registrations=False)
        assert reader.event("ev").modification_number == 1                  # read anew
        assert _served_from_memory(shared.location, lambda: reader.ven("ven-a"),
                                   lambda: reader.ven_by_jid("ven-a@grid.example")) == [ven("ven-a")] * 2
        moved = ven("ven-a", transport_address="ven-a@grid.example/elsewhere")
        writer.put_ven(moved)
        writer.put_event(record("ev", ["ven-a"], modification=2))
        reader.refresh(events=False)
        assert reader.ven("ven-a") == moved                                 # read anew
        assert reader.event("ev").modification_number == 1                  # still the one in memory
        reader.refresh()
        assert reader.event("ev").modification_number == 2
        # One account in doubt: its registration alone is read anew, by every key.
        writer.put_ven(ven("ven-b"))
        assert reader.ven("ven-b") == ven("ven-b")
        again = ven("ven-a2", jid="ven-a@grid.example")
        writer.put_ven(again)                               # ven-a's account registers anew
        reader.refresh(events=False, account="ven-a@grid.example")
        assert _served_from_memory(shared.location, lambda: reader.ven("ven-b"),
                                   lambda: reader.event("ev").modification_number) == [ven("ven-b"), 2]
        assert reader.ven_by_jid("ven-a@grid.example") == again
        assert reader.ven("ven-a") is None and reader.ven_by_registration("reg-ven-a") is None
    finally:
        reader.close()


def test_an_event_another_instance_changes_is_read_anew_once_its_change_arrived(shared):
    writer, reader = shared(), shared()
    writer.put_event(record("ev", ["ven-b"]))
    assert_same_event(reader.event("ev"), record("ev", ["ven-b"]))
    assert [found.event_id for found in reader.events("ven-c")] == []
    changed = record("ev", ["ven-b", "ven-c"], modification=1, price=0.9)
    writer.put_event(changed)
    _notified(reader)
    assert_same_event(reader.event("ev"), changed)
    assert [found.event_id for found in reader.events("ven-c")] == ["ev"]
    # refresh() reads anew without waiting for any notification (a service about to refuse).
    later = record("ev", ["ven-c"], modification=2)
    writer.put_event(later)
    reader.refresh()
    assert_same_event(reader.event("ev"), later)


def test_a_store_that_lost_its_listening_connection_serves_nothing_from_memory(shared):
    """Changes made while nobody listened are unknown: until it listens again, every read goes
    to the database."""
    writer, reader = shared(), shared()
    writer.put_ven(ven("ven-a"))
    assert reader.ven("ven-a") == ven("ven-a")
    with psycopg.connect(shared.location, autocommit=True) as admin:
        listener = reader._changes._db.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (listener,))
        wait_until(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                         (listener,)).fetchone()[0] == 0, 10, "the listening session ends")
    moved = replace(ven("ven-a"), transport_address="ven-a@grid.example/phone")
    writer.put_ven(moved)          # no notification reaches the reader: its session is gone
    assert reader.ven("ven-a") == moved
    assert reader.ven_by_jid("ven-a@grid.example") == moved


class CloseHoldingRelay:
    """A loopback TCP relay in front of PostgreSQL that passes bytes both ways as they come but
    holds back the server's closing of a connection: the window between a server's goodbye and its
    closed socket, made as long as a test needs."""

    def __init__(self, url: str):
        self.upstream = psycopg.conninfo.conninfo_to_dict(url)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = psycopg.conninfo.make_conninfo(url, host="127.0.0.1", port=self._listener.getsockname()[1])
        self.closes_held = 0                             # connections the server closed, not the client
        self._closed_by_client: set[socket.socket] = set()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> "CloseHoldingRelay":
        self._threads[0].start()
        return self

    def __exit__(self, *exc_info) -> None:
        for sock in [self._listener, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)          # wakes a thread blocked in accept or recv
            except OSError:
                pass                                     # not connected any more
            sock.close()
        self._threads[0].join(5)                         # no pump starts after this
        for thread in self._threads[1:]:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return                                   # closed by __exit__
            server = socket.create_connection((self.upstream["host"], int(self.upstream["port"])))
            for sock in (client, server):                # no Nagle: a small goodbye must not wait for an ACK
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            for source, target, from_server in ((server, client, True), (client, server, False)):
                thread = threading.Thread(target=self._pump, args=(source, target, from_server), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, target: socket.socket, from_server: bool) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            if not from_server:
                self._closed_by_client.add(source)       # before the server can see it
                target.shutdown(socket.SHUT_WR)
            elif target not in self._closed_by_client:
                self.closes_held += 1                    # the client's socket stays open until __exit__
        except OSError:
            return                                       # a socket closed by __exit__ or the peer


def test_a_store_whose_listening_session_is_ending_serves_nothing_from_memory(shared):
    """The server sends its goodbye (FATAL) before it closes the socket, and leaves
    pg_stat_activity in between: a read after the goodbye goes to the database although the
    socket is still open."""
    writer = shared()
    with CloseHoldingRelay(shared.location) as relay:
        reader = PostgreSQLStore(relay.url)
        try:
            writer.put_ven(ven("ven-a"))
            assert reader.ven("ven-a") == ven("ven-a")
            with psycopg.connect(shared.location, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (reader._changes._db.info.backend_pid,))
            wait_until(lambda: relay.closes_held == 1, 10, "the server closes the listening session")
            moved = replace(ven("ven-a"), transport_address="ven-a@grid.example/phone")
            writer.put_ven(moved)
            assert select.select([reader._changes._db.fileno()], [], [], 0)[0], "the goodbye is waiting"
            assert reader.ven("ven-a") == moved
            assert reader.ven_by_jid("ven-a@grid.example") == moved
        finally:
            reader.close()


def test_handed_over_journal_entries_leave_the_journal_with_the_loop_turn(shared):
    """Inside an event loop the entries handed over in one loop turn are deleted together at its
    end; the store that handed them over lists them no more at once."""
    one, two = shared(), shared()
    one.put_event(record("ev", ["ven-a", "ven-b"]))
    first = one.set_opt("ven-a", [("ev", "optIn", 0)], journal=b"<a/>", owner="vtn-1")
    second = one.set_opt("ven-b", [("ev", "optOut", 0)], journal=b"<b/>", owner="vtn-1")

    async def hand_over() -> list:
        one.journal_done(first)
        one.journal_done(second)
        assert one.journal() == []
        seen_before = two.journal()
        await asyncio.sleep(0)                   # the turn ends
        return seen_before
    assert [entry for entry, *_ in asyncio.run(hand_over())] == [first, second]
    assert two.journal() == []


def behind_an_uncommitted_update(shared, update: str, call: Callable[[], object], waiting_query: str) -> object:
    """Run ``call`` in a thread while another session holds ``update`` uncommitted; wait until
    PostgreSQL shows ``call``'s statement (matching ``waiting_query``) waiting for the row lock,
    commit, and return what ``call`` returned (or raise what it raised)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # raised below, in the test's thread
            outcome["error"] = error
    with psycopg.connect(shared.location, autocommit=True) as writer:
        writer.execute("BEGIN")
        writer.execute(update)
        thread = threading.Thread(target=run)
        thread.start()
        with psycopg.connect(shared.location, autocommit=True) as watcher:
            wait_until(lambda: watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s", (waiting_query,)).fetchone()[0] == 1, 10, "the statement waits for the row")
        writer.execute("COMMIT")
        thread.join(10)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_an_older_acknowledgement_waiting_on_a_newer_ones_transaction_does_not_overwrite_it(shared):
    """Two instances record acknowledgements of one VEN at the same moment: the newer one's
    transaction holds the row when the older one's update arrives. The older update waits for
    the lock, then finds the row ahead of it and leaves it (an unconditional update would write
    the older state over the newer one as soon as the lock is released)."""
    newer, older = shared(), shared()
    newer.put_event(record("ev", ["ven-a"]))
    newer.mark_delivered("ven-a", [("ev", 0, "far")])
    behind_an_uncommitted_update(
        shared, "UPDATE event_vens SET delivered_modification = 0, delivered_status = 'active' "
        "WHERE event_id = 'ev' AND ven_id = 'ven-a'",                      # the newer state, not committed yet
        lambda: older.mark_delivered("ven-a", [("ev", 0, "near")]), "%UPDATE event_vens%")
    assert older.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 0, "active")]


def test_of_two_instances_recording_one_new_modification_only_one_is_told_it_is_new(shared):
    """The same acknowledgement reaches two instances (a retry, an answer forwarded): the one whose
    update waits for the other's finds the row already there and is not told it is new, so an
    event's delivery_callback runs once per VEN and modification."""
    first, second = shared(), shared()
    first.put_event(record("ev", ["ven-a"], modification=1))
    told = behind_an_uncommitted_update(
        shared, "UPDATE event_vens SET delivered_modification = 1, delivered_status = 'far' "
        "WHERE event_id = 'ev' AND ven_id = 'ven-a'",                      # the first instance's, not committed
        lambda: second.mark_delivered("ven-a", [("ev", 1, "far")]), "%UPDATE event_vens%")
    assert told == []
    assert first.mark_delivered("ven-a", [("ev", 1, "near")]) == []
    assert first.deliveries("ev", "ven-a") == [Delivery("ev", "ven-a", 1, "near")]


def test_of_two_instances_recording_one_answer_only_one_journals_it(shared):
    """A VEN's resend reaches the other instance while the first still records the answer: the
    second waits for the row, finds the answer recorded, and journals nothing (the handlers and
    the event's callback see the answer once)."""
    first, second = shared(), shared()
    first.put_event(record("ev", ["ven-a"], modification=1))
    told = behind_an_uncommitted_update(
        shared, "UPDATE event_vens SET opt_type = 'optIn', opt_modification = 1 "
        "WHERE event_id = 'ev' AND ven_id = 'ven-a'",                      # the first instance's, not committed
        lambda: second.record_answers("ven-a", [("ev", "optIn", 1)], journal=b"<again/>", owner="vtn-2"),
        "%FROM event_vens v%")
    assert told == (None, {"ev": ("optIn", 1)})
    assert second.journal() == []


def test_which_instance_hears_a_ven_is_kept_for_registered_vens_last_note_winning(shared):
    """With bare_source balancing each instance notes the VENs the server hands it (on the loop,
    written off it): the last note of a venID wins, one for a venID not registered is dropped,
    and a registration removed takes its note along. Another instance reads them all."""
    one, other = shared(), shared()
    one.put_ven(ven("ven-a"))
    one.put_ven(ven("ven-b"))

    async def noting() -> None:
        one.note_heard("ven-a", "vtn-1")
        one.note_heard("ghost", "vtn-1")
        one.note_heard("ven-b", "vtn-1")
        await asyncio.sleep(0)                  # handed over: a later turn's note comes after
        one.note_heard("ven-a", "vtn-2")
    asyncio.run(noting())
    assert one.heard_by() == {"ven-a": "vtn-2", "ven-b": "vtn-1"}        # its own notes settled first
    assert other.heard_by() == {"ven-a": "vtn-2", "ven-b": "vtn-1"}
    assert one.remove_ven("ven-a") is True
    assert other.heard_by() == {"ven-b": "vtn-1"}


# -- what one VEN may make the VTN hold ------------------------------------------------------------

def test_purge_ven_removes_everything_the_venid_owned_in_one_go_and_nothing_of_another(store):
    opt = CATALOGUE["oadrCreateOpt"][0]
    for ven_id in ("ven-a", "ven-b"):
        store.put_ven(ven(ven_id))
        store.put_document(Document("report_request", f"rr-{ven_id}", ven_id, _request(f"rr-{ven_id}"), "active"))
        store.put_document(Document("opt", f"{ven_id}\x1fopt-1", ven_id, opt, "active"))
        store.enqueue(ven_id, f"{ven_id}@grid.example/oadr", "oadrRequestReregistration", push(ven_id))
        store.enqueue_bounded(ven_id, f"{ven_id}@grid.example/oadr", "oadrUpdateReport", push(ven_id), topic="t")
        store.count_dropped(ven_id, "refused")
        store.set_liveness(ven_id, "online", T0)
        store.note_heard(ven_id, "vtn-1")       # kept by a shared store only (several instances)
    store.put_event(record("e1", ["ven-a", "ven-b"]))
    store.mark_delivered("ven-a", [("e1", 0, "far")])
    store.set_opt("ven-a", [("e1", "optOut", 0)], journal=answer("ven-a", ("e1", "optOut", 0)))
    store.set_opt("ven-b", [("e1", "optIn", 0)], journal=answer("ven-b", ("e1", "optIn", 0)))

    removed = store.purge_ven("ven-a")

    heard = {"ven_instances": 1} if store.shared else {}
    assert removed == {"vens": 1, "outbox": 2, "documents": 2, "journal": 1, "liveness": 1, "outbox_drops": 1,
                       "event_vens": 1, **heard}
    assert store.heard_by() == ({"ven-b": "vtn-1"} if store.shared else {})
    assert store.ven("ven-a") is None and store.ven_by_jid("ven-a@grid.example") is None
    assert [item.ven_id for item in store.outbox()] == ["ven-b", "ven-b"]
    assert {document.ven_id for kind in ("report_request", "opt") for document in store.documents(kind)} == {"ven-b"}
    assert [entry[1] for entry in store.journal()] == ["ven-b"]
    assert set(store.liveness()) == {"ven-b"}
    assert [dropped.ven_id for dropped in store.dropped_pushes()] == ["ven-b"]
    # The event stays the application's; what ven-a held of it is gone, ven-b's is untouched.
    assert rows(store.deliveries("e1")) == [Delivery("e1", "ven-a"),
                                            Delivery("e1", "ven-b", opt_type="optIn", opt_modification=0)]
    assert store.purge_ven("ven-a") == {"vens": 0, "outbox": 0, "documents": 0, "journal": 0, "liveness": 0,
                                        "outbox_drops": 0, "event_vens": 1, **{key: 0 for key in heard}}


def test_enqueue_bounded_supersedes_by_topic_caps_per_ven_and_expires(store):
    to = "ven-a@grid.example/oadr"
    first = store.enqueue_bounded("ven-a", to, "oadrUpdateReport", push("ven-a"), topic="sub-1", expires_at=100.0)
    other = store.enqueue_bounded("ven-a", to, "oadrUpdateReport", push("ven-a"), topic="sub-2", expires_at=300.0)
    newer = store.enqueue_bounded("ven-a", to, "oadrUpdateReport", push("ven-a"), topic="sub-1", expires_at=200.0)
    assert [item.item_id for item in store.outbox("ven-a")] == [other, newer]      # the older sub-1 is gone
    assert first not in (other, newer)
    assert store.enqueue_bounded("ven-a", to, "oadrCreateReport", push("ven-a"), limit=2) is None
    assert store.outbox_depth("ven-a") == 2
    assert store.enqueue_bounded("ven-b", "ven-b@grid.example/oadr", "oadrCreateReport", push("ven-b"),
                                 limit=2) is not None                                # the cap is per VEN
    assert store.expire_outbox(250.0) == 1
    assert [item.item_id for item in store.outbox("ven-a")] == [other]
    assert store.dequeue_topic("ven-a", "sub-2") == 1
    assert store.outbox_depth("ven-a") == 0 and store.outbox_depth("ven-b") == 1


def _drops(store: Store) -> list[tuple[str, str, int]]:
    return [(dropped.ven_id, dropped.reason, dropped.count) for dropped in store.dropped_pushes()]


def test_what_the_bounded_outbox_lets_go_is_counted_per_ven_and_reason(store):
    to = "ven-a@grid.example/oadr"
    before = time.time()
    for expires_at in (100.0, 100.0, 100.0):              # two superseded, one left to expire
        store.enqueue_bounded("ven-a", to, "oadrUpdateReport", push("ven-a"), topic="sub-1", expires_at=expires_at)
    store.enqueue_bounded("ven-b", "ven-b@grid.example/oadr", "oadrUpdateReport", push("ven-b"), topic="s",
                          expires_at=100.0)
    store.enqueue("ven-a", to, "oadrCreateReport", push("ven-a"))
    assert store.enqueue_bounded("ven-a", to, "oadrCreateReport", push("ven-a"), limit=2) is None
    assert store.expire_outbox(150.0) == 2
    store.count_dropped(UNREGISTERED_VENS, "given_up")
    store.count_dropped(UNREGISTERED_VENS, "given_up", 2)
    store.count_dropped("ven-a", "refused")
    after = time.time()

    assert _drops(store) == [(UNREGISTERED_VENS, "given_up", 3), ("ven-a", "expired", 1),
                             ("ven-a", "outbox_full", 1), ("ven-a", "refused", 1), ("ven-a", "superseded", 2),
                             ("ven-b", "expired", 1)]
    assert all(before <= dropped.last_at <= after for dropped in store.dropped_pushes())
    assert isinstance(store.dropped_pushes()[0], DroppedPushes)


def test_each_queued_push_records_when_it_was_queued(store):
    before = time.time()
    plain = store.enqueue("ven-a", "ven-a@grid.example/oadr", "oadrRequestReregistration", push("ven-a"))
    bounded = store.enqueue_bounded("ven-a", "ven-a@grid.example/oadr", "oadrCreateReport", push("ven-a"), limit=5)
    after = time.time()
    items = {item.item_id: item for item in store.outbox("ven-a")}
    assert set(items) == {plain, bounded}
    assert all(before <= item.queued_at <= after for item in items.values())
    assert store.outbox("ven-a")[0] == replace(items[plain], queued_at=None)     # bookkeeping, not identity
