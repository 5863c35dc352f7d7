"""Services over a shared store that serves registrations and events from memory.

Two PostgreSQL stores on one database stand for two VTN instances. A change one instance makes
reaches the other's memory when its notification arrives (tests/test_store.py tests that); these
tests hold that notification back, as a slow one would be, and check that a VEN acting on the
change at once (it heard from the first instance already) is not refused by the second: a service
about to refuse because of what it read reads again from the database first.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from xmpp_vtn.services import Dispatcher, Handlers, RegistrationService, Request, codes
from xmpp_vtn.services.event_arguments import build_event
from xmpp_vtn.services.events import EventService
from xmpp_vtn.store import EventRecord, VenRecord
from xmpp_vtn.store.postgresql import PostgreSQLStore

T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


def ven(ven_id: str, jid: str | None = None, registration: str | None = None) -> VenRecord:
    jid = jid or f"{ven_id}@grid.example"
    return VenRecord(ven_id, registration or f"reg-{ven_id}", jid, f"{jid}/oadr")


def record(event_id: str, ven_ids: list[str], modification: int = 0) -> EventRecord:
    """An hour-long price event starting at T0 for ``ven_ids``, at ``modification``."""
    event = build_event(
        ven_ids=ven_ids, signal_name="ELECTRICITY_PRICE", signal_type="price",
        intervals=[{"dtstart": T0, "duration": timedelta(hours=1), "signal_payload": 0.2}],
        event_id=event_id, targets=None, targets_by_type=None, market_context="http://mc.example/prices",
        priority=1, response_required="always", notification_period=None, ramp_up_period=None,
        recovery_period=None, signal_target_mrid=None, current_value=None, test_event=False,
        vtn_comment=None, created=T0 - timedelta(hours=2))
    event["event_descriptor"]["modification_number"] = modification
    return EventRecord(event_id, modification, event, tuple(ven_ids))


@pytest.fixture
def instances(postgres_database: str):
    """Two stores on one database, as two instances have them; the first one hears of the
    second's changes only when a test lets it."""
    first, second = PostgreSQLStore(postgres_database), PostgreSQLStore(postgres_database)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _notifications_held_back(store: PostgreSQLStore) -> None:
    """From now on ``store`` listens but nothing has arrived yet: its memory stays as it is."""
    store._caching()                        # connected and listening, what came so far applied
    store._changes.changed = lambda: frozenset()


def test_a_ven_that_registered_anew_through_another_instance_is_not_refused_for_its_old_venid(instances):
    first, second = instances
    second.put_ven(ven("v1", jid="alice@grid.example", registration="reg-1"))
    assert first.ven_by_jid("alice@grid.example").ven_id == "v1"          # in the first's memory
    _notifications_held_back(first)
    # Through the second instance, the account registers anew as another venID.
    second.purge_ven("v1")
    second.put_ven(ven("v2", jid="alice@grid.example", registration="reg-2"))
    assert first.ven_by_jid("alice@grid.example").ven_id == "v1"          # not told yet
    handlers = Handlers()
    dispatcher = Dispatcher(first, RegistrationService(first, handlers, "VTN-1"))
    outcome = asyncio.run(dispatcher.handle(Request(
        "alice@grid.example/oadr", "oadrCancelPartyRegistration",
        {"request_id": "r1", "ven_id": "v2", "registration_id": "reg-2"})))
    answer_type, answer = outcome.answer
    assert (answer_type, answer["response"]["response_code"]) == ("oadrCanceledPartyRegistration", codes.OK)
    assert second.ven("v2") is None


def test_an_answer_to_a_modification_another_instance_just_made_is_accepted(instances):
    first, second = instances
    second.put_ven(ven("v1"))
    second.put_event(record("ev", ["v1"]))
    assert first.event("ev").modification_number == 0                    # in the first's memory
    _notifications_held_back(first)
    second.put_event(record("ev", ["v1"], modification=1))
    assert first.event("ev").modification_number == 0                    # not told yet
    events = EventService(first, Handlers(), "VTN-1", lambda: T0 - timedelta(hours=1))
    answer = {"request_id": "r1", "ven_id": "v1", "response": {
        "response_code": 200, "response_description": "OK", "request_id": "r1"},
        "event_responses": [{"response_code": 200, "request_id": "r1", "event_id": "ev",
                             "modification_number": 1, "opt_type": "optIn"}]}
    outcome = asyncio.run(events.created_event(Request("v1@grid.example/oadr", "oadrCreatedEvent", answer),
                                               first.ven("v1")))
    assert outcome.answer[1]["response"]["response_code"] == codes.OK
    assert [(d.opt_type, d.opt_modification) for d in second.deliveries("ev", "v1")] == [("optIn", 1)]
