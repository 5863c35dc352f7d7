"""The registration service, the dispatcher's venID binding and the store, driven with plain calls."""
from __future__ import annotations

import asyncio
import logging

import pytest

from xmpp_vtn.runtime.backoff import Backoff
from xmpp_vtn.services import Dispatcher, Handlers, RegistrationService, Request, codes
from xmpp_vtn.store import SQLiteStore, VenRecord, open_store
from xmpp_vtn.store.sqlite import MIGRATIONS

ALICE = "alice@grid.example/oadr"
MALLORY = "mallory@grid.example/oadr"


def create(**fields) -> dict:
    return {"request_id": "r1", "profile_name": "2.0b", "transport_name": "xmpp", **fields}


class World:
    """A dispatcher over an in-memory store, with handlers installed by name."""

    def __init__(self, **handlers):
        self.store = SQLiteStore(":memory:")
        self.handlers = Handlers()
        for name, handler in {"on_create_party_registration": lambda p: (p.get("ven_id") or "v-new", "reg-1"),
                              **handlers}.items():
            self.handlers.add(name, handler)
        self.dispatcher = Dispatcher(self.store, RegistrationService(self.store, self.handlers, "VTN-1"))

    def send(self, sender: str, message_type: str, payload: dict):
        outcome = asyncio.run(self.dispatcher.handle(Request(sender, message_type, payload)))
        return outcome.answer

    def code(self, sender: str, message_type: str, payload: dict) -> int:
        return self.send(sender, message_type, payload)[1]["response"]["response_code"]


def test_registration_records_the_binding():
    world = World()
    answer_type, answer = world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="00123", ven_name="a"))
    assert answer_type == "oadrCreatedPartyRegistration"
    assert (answer["ven_id"], answer["registration_id"]) == ("00123", "reg-1")
    [record] = world.store.vens()
    assert (record.bare_jid, record.transport_address, record.ven_name) == ("alice@grid.example", ALICE, "a")


@pytest.mark.parametrize("fields, code", [
    ({"profile_name": "2.0a"}, codes.INVALID_DATA),
    ({"transport_name": "simpleHttp"}, codes.INVALID_DATA),
    ({"registration_id": "reg-unknown"}, codes.INVALID_ID),
])
def test_bad_registration_requests_are_refused_and_store_nothing(fields, code):
    world = World()
    assert world.code(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1", **fields)) == code
    assert world.store.vens() == []


@pytest.mark.parametrize("result", ["reg-only", ("v1",), ("v1", 7), ("", "reg"), 42])
def test_handler_returning_something_unusable_is_a_469_not_a_crash(result, caplog):
    world = World(on_create_party_registration=lambda payload: result)
    with caplog.at_level(logging.ERROR):
        assert world.code(ALICE, "oadrCreatePartyRegistration", create()) == codes.DEPLOYMENT_ERROR_OR_OTHER
    assert world.store.vens() == [] and "on_create_party_registration" in caplog.text


def test_handler_cannot_hand_out_a_ven_id_bound_to_another_account(caplog):
    world = World(on_create_party_registration=lambda payload: ("taken", "reg-2"))
    world.store.put_ven(VenRecord("taken", "reg-1", "bob@grid.example", "bob@grid.example/x"))
    with caplog.at_level(logging.ERROR):
        assert world.code(ALICE, "oadrCreatePartyRegistration", create()) == codes.NOT_REGISTERED_OR_AUTHORIZED
    assert [v.bare_jid for v in world.store.vens()] == ["bob@grid.example"]
    # The handler's choice was refused after it ran: the application is told, as an error of its own.
    [said] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert said.getMessage().startswith("on_create_party_registration returned venID taken for alice@")
    assert "is not in force" in said.getMessage()


def test_registration_id_held_by_another_ven_is_a_handler_error(caplog):
    world = World(on_create_party_registration=lambda payload: "same-reg")
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1"))
    with caplog.at_level(logging.ERROR):
        assert world.code(MALLORY, "oadrCreatePartyRegistration", create(ven_id="v2")) == 469
    assert "already held by venID v1" in caplog.text and len(world.store.vens()) == 1


@pytest.mark.parametrize("offered", ["bob@grid.example/x", "alice@grid.example/", "alice@grid.example",
                                     "alice@grid.example/" + "r" * 2000, "not a jid@@"])
def test_transport_address_that_is_not_a_full_jid_of_the_account_is_not_trusted(offered):
    world = World()
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1", transport_address=offered))
    assert world.store.ven("v1").transport_address == ALICE


def test_registration_handler_may_take_the_authenticated_sender():
    seen = []

    def on_create(payload, sender):
        seen.append((payload["ven_id"], sender, payload["transport_address"]))
        return "reg-9" if sender.startswith("alice@") else None
    world = World(on_create_party_registration=on_create)
    assert world.code(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1", transport_address="x@y/z")) == 200
    assert world.code(MALLORY, "oadrCreatePartyRegistration", create(ven_id="v2")) == 463
    assert seen == [("v1", ALICE, ALICE), ("v2", MALLORY, MALLORY)]


def test_handler_may_return_a_two_item_list():
    world = World(on_create_party_registration=lambda payload: ["v7", "reg-7"])
    assert world.send(ALICE, "oadrCreatePartyRegistration", create())[1]["ven_id"] == "v7"


def test_query_from_a_registered_ven_returns_its_ids():
    world = World()
    assert "ven_id" not in world.send(ALICE, "oadrQueryRegistration", {"request_id": "q"})[1]
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1"))
    answer = world.send(ALICE, "oadrQueryRegistration", {"request_id": "q"})[1]
    assert (answer["ven_id"], answer["registration_id"]) == ("v1", "reg-1")


def test_one_accounts_requests_run_one_at_a_time():
    gate = asyncio.Event()
    order = []

    async def slow_cancel(payload):
        order.append("cancel handler starts")
        await gate.wait()
        order.append("cancel handler ends")

    async def scenario():
        world = World(on_cancel_party_registration=slow_cancel)
        await world.dispatcher.handle(Request(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1")))
        cancel = asyncio.create_task(world.dispatcher.handle(Request(
            ALICE, "oadrCancelPartyRegistration", {"request_id": "c", "registration_id": "reg-1"})))
        reregister = asyncio.create_task(world.dispatcher.handle(Request(
            ALICE, "oadrCreatePartyRegistration", create(ven_id="v1", registration_id="reg-1"))))
        while not order:
            await asyncio.sleep(0)
        gate.set()
        cancelled, reregistered = await asyncio.gather(cancel, reregister)
        return cancelled.answer[1], reregistered.answer[1], world.store.vens()

    cancelled, reregistered, vens = asyncio.run(scenario())
    # The cancel finished before the re-registration was looked at: it finds no registration.
    assert cancelled["response"]["response_code"] == 200
    assert reregistered["response"]["response_code"] == codes.INVALID_ID and vens == []


def test_transport_address_outside_the_senders_account_is_not_trusted():
    world = World()
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1", transport_address="bob@grid.example/x"))
    assert world.store.ven("v1").transport_address == ALICE
    world.send(ALICE, "oadrCreatePartyRegistration",
               create(ven_id="v1", registration_id="reg-1", transport_address="alice@grid.example/other"))
    assert world.store.ven("v1").transport_address == "alice@grid.example/other"


def test_ven_id_binding_matrix():
    world = World()
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="alice-ven"))
    world.handlers.add("on_create_party_registration", lambda payload: "reg-2")
    world.send(MALLORY, "oadrCreatePartyRegistration", create(ven_id="mallory-ven"))
    cancel = {"request_id": "r", "registration_id": "reg-1"}
    # Claiming another account's venID or an unknown one gets the same answer: no enumeration.
    foreign = world.send(MALLORY, "oadrCancelPartyRegistration", {**cancel, "ven_id": "alice-ven"})[1]["response"]
    unknown = world.send(MALLORY, "oadrCancelPartyRegistration", {**cancel, "ven_id": "nobody"})[1]["response"]
    assert foreign["response_code"] == unknown["response_code"] == 463
    assert foreign["response_description"].replace("alice-ven", "X") == unknown["response_description"].replace(
        "nobody", "X")
    assert world.code("eve@grid.example/x", "oadrCancelPartyRegistration", cancel) == 463
    assert len(world.store.vens()) == 2
    # Without a venID the sender's own registration is meant.
    assert world.code(ALICE, "oadrCancelPartyRegistration", cancel) == 200
    assert [v.ven_id for v in world.store.vens()] == ["mallory-ven"]


def test_one_account_holds_one_registration():
    world = World(on_create_party_registration=lambda payload: (payload["ven_id"], "reg-" + payload["ven_id"]))
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="first"))
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="second", registration_id="reg-first"))
    assert [v.ven_id for v in world.store.vens()] == ["second"]


def test_oadr_response_from_a_ven_is_answered_with_an_empty_result():
    world = World()
    world.send(ALICE, "oadrCreatePartyRegistration", create(ven_id="v1"))
    response = {"response": {"response_code": 200, "request_id": None}, "ven_id": "v1"}
    assert world.send(ALICE, "oadrResponse", response) is None


def test_store_survives_reopening_the_file(tmp_path):
    path = tmp_path / "vtn.sqlite3"
    store = open_store(path)
    store.put_ven(VenRecord("00123", "reg-1", "alice@grid.example", ALICE, ven_name="a", http_pull_model=None))
    store.close()
    reopened = open_store(f"sqlite:///{path}")
    [record] = reopened.vens()
    assert record.ven_id == "00123" and record.http_pull_model is None and reopened.schema_version == len(MIGRATIONS)
    assert reopened.remove_ven("00123") and not reopened.remove_ven("00123")
    reopened.close()


def test_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "vtn.sqlite3"
    open_store(path).close()
    import sqlite3
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(RuntimeError, match="upgrade xmpp-vtn"):
        open_store(path)


@pytest.mark.parametrize("bad", ["", "mysql://vtn:secret@host/db"])
def test_store_argument_errors_are_clear(bad):
    with pytest.raises(ValueError, match="store") as raised:
        open_store(bad)
    assert "secret" not in str(raised.value)


def test_an_unreachable_database_is_named_without_its_password():
    # Port 1 on loopback: nothing listens there.
    with pytest.raises(ConnectionError, match="127.0.0.1:1/vtn") as raised:
        open_store("postgresql://vtn:hunter2@127.0.0.1:1/vtn")
    assert "hunter2" not in str(raised.value)


def test_unknown_handler_name_warns_with_a_suggestion():
    with pytest.warns(UserWarning, match="on_create_party_registration"):
        Handlers().add("on_register_party", lambda payload: None)
    with pytest.raises(TypeError):
        Handlers().add("on_poll", "not callable")


def test_backoff_grows_caps_and_jitters():
    assert [Backoff(1, 2, 5, 0).next() for _ in range(1)] == [1]
    delays = Backoff(initial=1, factor=2, cap=5, jitter=0.5, random_fraction=lambda: 1.0)
    assert [delays.next() for _ in range(5)] == [0.5, 1, 2, 2.5, 2.5]
    delays.reset()
    assert delays.next() == 0.5
    with pytest.raises(ValueError):
        Backoff(initial=0)
