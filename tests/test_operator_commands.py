"""Operator commands (XEP-0050 ad-hoc commands) over a real Prosody: an operator's ordinary XMPP
client lists VENs, creates and cancels events; bad input and strangers are refused."""
from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator

import pytest
from slixmpp import ClientXMPP, Iq
from slixmpp.exceptions import IqError

from xmpp_vtn.control.adhoc_commands import (CANCEL_EVENT, CREATE_EVENT, LIST_EVENTS, LIST_VENS, MODIFY_EVENT,
                                             install_operator_commands)
from xmpp_vtn.testing.prosody import ProsodyServer
from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.runtime.stanzas import close_stream, wait_for_session
from xmpp_vtn.testing.clients import plain_client
from xmpp_scene import PASSWORD, make_vtn, new_account, run, scene

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
COMMANDS_NS = "http://jabber.org/protocol/commands"


@asynccontextmanager
async def xmpp_client(server: ProsodyServer, bare_jid: str) -> AsyncIterator[ClientXMPP]:
    """A logged-in client with the ad-hoc commands plugin, as an operator's XMPP client has."""
    client = plain_client(f"{bare_jid}/console", PASSWORD)
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        client.register_plugin(plugin)
    client.connect("127.0.0.1", server.c2s_port)
    try:
        await wait_for_session(client)
        yield client
    finally:
        await close_stream(client)


async def execute(client: ClientXMPP, to: str, node: str, form: dict | None = None) -> Iq:
    """Start a command (with a submitted form right away when ``form`` is given)."""
    payload = submitted(client, form) if form is not None else None
    return await client.plugin["xep_0050"].send_command(to, node, payload=payload, timeout=10)


async def submit(client: ClientXMPP, answer: Iq, values: dict, action: str = "complete") -> Iq:
    """Fill in the form ``answer`` carried and send it in the same session."""
    return await client.plugin["xep_0050"].send_command(
        answer["from"], answer["command"]["node"], action=action, payload=submitted(client, values),
        sessionid=answer["command"]["sessionid"], timeout=10)


def submitted(client: ClientXMPP, values: dict):
    form = client.plugin["xep_0004"].make_form(ftype="submit")
    for var, value in values.items():
        form.add_field(var=var, value=value)
    return form


def field_values(answer: Iq) -> dict:
    return answer["command"]["form"].get_values()


def options(answer: Iq, var: str) -> list[str]:
    return [option["value"] for option in answer["command"]["form"].get_fields()[var]["options"]]


def test_operator_lists_the_vens_and_sees_the_commands(prosody):
    operator = new_account(prosody, "operator")

    async def scenario():
        async with scene(prosody, register=True, operators=[operator]) as (vtn, [ven]):
            async with xmpp_client(prosody, operator) as client:
                commands = await client.plugin["xep_0050"].get_commands(vtn.jid, timeout=10)
                info = await client.plugin["xep_0030"].get_info(jid=vtn.jid, node=LIST_VENS, timeout=10)
                answer = await execute(client, vtn.jid, LIST_VENS)
                return vtn.jid, ven, commands, info, answer

    jid, ven, commands, info, answer = run(scenario())
    assert sorted(node for _, node, _ in commands["disco_items"]["items"]) == sorted(
        [LIST_VENS, CREATE_EVENT, CANCEL_EVENT, MODIFY_EVENT, LIST_EVENTS])
    assert COMMANDS_NS in info["disco_info"]["features"]
    assert str(answer["from"]) == jid                      # the component JID the operator addressed
    assert answer["command"]["status"] == "completed"
    form = answer["command"]["form"]
    assert form["type"] == "result"
    assert form["items"] == [{"ven_id": ven.ven_id, "jid": ven.full_jid.split("/")[0],
                              "transport_address": ven.full_jid, "online": "online",
                              "registration_id": ven.registration_id}]


def test_operator_creates_an_event_and_the_ven_receives_it(prosody):
    operator = new_account(prosody, "operator")
    start = T0 + timedelta(minutes=10)

    async def scenario():
        async with scene(prosody, register=True, operators=[operator],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            async with xmpp_client(prosody, operator) as client:
                form = await execute(client, vtn.jid, CREATE_EVENT)
                done = await submit(client, form, {"ven_ids": [ven.ven_id], "signal_name": "SIMPLE",
                                                   "signal_type": "level", "payload": "2",
                                                   "start": start.isoformat().replace("+00:00", "Z"),
                                                   "duration": "30"})
                push = await ven.next_push("oadrDistributeEvent")
                return ven.ven_id, form, done, push

    ven_id, form, done, push = run(scenario())
    assert form["command"]["status"] == "executing" and form["command"]["actions"] == {"complete"}
    assert options(form, "ven_ids") == [ven_id]
    assert "targets" not in form["command"]["form"].get_fields()    # no on_targets handler installed
    assert field_values(form)["signal_name"] == "SIMPLE" and field_values(form)["signal_type"] == "level"
    assert done["command"]["status"] == "completed"
    assert [kind for kind, _ in done["command"]["notes"]] == ["info"]
    result = field_values(done)
    [event] = push.payload["events"]
    assert event["event_descriptor"]["event_id"] == result["event_id"] and result["ven_ids"] == [ven_id]
    assert event["active_period"]["dtstart"] == start
    assert event["active_period"]["duration"] == timedelta(minutes=30)
    [signal] = event["event_signals"]
    assert (signal["signal_name"], signal["signal_type"]) == ("SIMPLE", "level")
    assert signal["intervals"][0]["signal_payload"] == 2.0


def test_a_form_submitted_with_execute_creates_the_event_starting_in_a_minute_by_default(prosody):
    # One stage, no session: what a script does, and what an instance that never saw the session gets.
    operator = new_account(prosody, "operator")

    async def scenario():
        async with scene(prosody, register=True, operators=[operator],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            async with xmpp_client(prosody, operator) as client:
                done = await execute(client, vtn.jid, CREATE_EVENT,
                                     {"ven_ids": ven.ven_id, "payload": "1.5", "duration": "15"})
                push = await ven.next_push("oadrDistributeEvent")
                return done, push

    done, push = run(scenario())
    assert done["command"]["status"] == "completed"
    [event] = push.payload["events"]
    assert event["event_descriptor"]["event_id"] == field_values(done)["event_id"]
    assert event["active_period"]["dtstart"] == T0 + timedelta(minutes=1)
    assert event["event_signals"][0]["signal_name"] == "SIMPLE"
    assert event["event_signals"][0]["signal_type"] == "level"


def test_targets_are_resolved_through_on_targets(prosody):
    operator = new_account(prosody, "operator")
    groups: dict[str, list[str]] = {}

    def on_targets(targets):
        return [ven_id for target in targets for ven_id in groups.get(target.get("group_id"), [])]

    async def scenario():
        async with scene(prosody, vens=2, register=True, operators=[operator], scheduler=ManualScheduler(T0),
                         handlers={"on_targets": on_targets}) as (vtn, vens):
            groups["north"] = [vens[1].ven_id]
            async with xmpp_client(prosody, operator) as client:
                form = await execute(client, vtn.jid, CREATE_EVENT)
                done = await submit(client, form, {"targets": "north", "payload": "1", "duration": "60"})
                push = await vens[1].next_push("oadrDistributeEvent")
                return vens[1].ven_id, form, done, push, [state.deliveries.keys() for state in vtn.events()]

    ven_id, form, done, push, [targeted] = run(scenario())
    assert "targets" in form["command"]["form"].get_fields()
    assert field_values(done)["ven_ids"] == [ven_id] and list(targeted) == [ven_id]
    assert push.payload["events"][0]["targets"] == [{"group_id": "north"}]


def test_operator_cancels_an_event_and_the_ven_is_told(prosody):
    operator = new_account(prosody, "operator")

    async def scenario():
        async with scene(prosody, register=True, operators=[operator],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", [
                {"dtstart": T0 + timedelta(minutes=5), "duration": timedelta(minutes=10), "signal_payload": 1.0}])
            await ven.next_push("oadrDistributeEvent")
            async with xmpp_client(prosody, operator) as client:
                form = await execute(client, vtn.jid, CANCEL_EVENT)
                done = await submit(client, form, {"event_id": event_id})
                push = await ven.next_push("oadrDistributeEvent")
                again = await execute(client, vtn.jid, CANCEL_EVENT)      # nothing left to cancel
                return event_id, form, done, push, again, vtn.events()

    event_id, form, done, push, again, [state] = run(scenario())
    assert options(form, "event_id") == [event_id]
    assert done["command"]["status"] == "completed" and field_values(done) == {"event_id": event_id}
    [event] = push.payload["events"]
    assert event["event_descriptor"]["event_id"] == event_id
    assert event["event_descriptor"]["event_status"] == "cancelled" and state.status == "cancelled"
    assert again["command"]["status"] == "completed"
    assert again["command"]["notes"] == [("info", "There is no event to cancel.")]


@pytest.mark.parametrize("values, problem", [
    ({"ven_ids": ["no-such-ven"], "payload": "1", "duration": "60"}, "venID no-such-ven is not registered"),
    ({"payload": "1", "duration": "60", "start": "next tuesday"}, "start 'next tuesday' is not an ISO 8601"),
    ({"payload": "lots", "duration": "60"}, "payload value 'lots' is not a number"),
    ({"payload": "1", "duration": "1.5"}, "duration '1.5' is not a whole number of minutes"),
    ({"payload": "1", "duration": "60", "signal_type": "bogus"}, "signal_type 'bogus' is not one of"),
    ({"payload": "1", "duration": "60", "start": "2026-11-23T10:00:00Z"}, "would be over already"),
], ids=["unknown-venID", "bad-start", "bad-payload", "bad-duration", "bad-signal-type", "over-already"])
def test_bad_input_gets_an_error_note_and_creates_nothing(prosody, values, problem):
    operator = new_account(prosody, "operator")

    async def scenario():
        async with scene(prosody, register=True, operators=[operator],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            async with xmpp_client(prosody, operator) as client:
                form = await execute(client, vtn.jid, CREATE_EVENT)
                done = await submit(client, form, {"ven_ids": [ven.ven_id], **values})
                return done, vtn.events(), vtn.store.owed_ven_ids()

    done, events, owed = run(scenario())
    assert done["command"]["status"] == "completed"
    [(kind, text)] = done["command"]["notes"]
    assert kind == "error" and problem in text and "Traceback" not in text
    assert events == [] and not owed


def test_every_problem_gets_its_own_error_note(prosody):
    operator = new_account(prosody, "operator")

    async def scenario():
        async with scene(prosody, register=True, operators=[operator],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            async with xmpp_client(prosody, operator) as client:
                form = await execute(client, vtn.jid, CREATE_EVENT)
                # action "execute" takes slixmpp's other path for a session's next step
                done = await submit(client, form, {"ven_ids": ["ghost", ven.ven_id], "payload": "",
                                                   "start": "soon", "duration": "0"}, action="execute")
                return done, vtn.events()

    done, events = run(scenario())
    assert done["command"]["notes"] == [
        ("error", "venID ghost is not registered with this VTN"),
        ("error", "give a payload value (a number)"),
        ("error", "start 'soon' is not an ISO 8601 date and time such as 2030-01-31T14:00:00Z"),
        ("error", "duration '0' is not a whole number of minutes above 0, such as 60")]
    assert events == []


def test_a_stranger_is_forbidden_and_sees_no_commands(prosody):
    operator, stranger = new_account(prosody, "operator"), new_account(prosody, "stranger")

    async def scenario():
        async with scene(prosody, register=True, operators=[operator],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            async with xmpp_client(prosody, operator) as ops, xmpp_client(prosody, stranger) as client:
                refusals = []
                for node, form in ((LIST_VENS, None), (CREATE_EVENT, None),
                                   (CREATE_EVENT, {"ven_ids": ven.ven_id, "payload": "1", "duration": "60"})):
                    with pytest.raises(IqError) as refused:
                        await execute(client, vtn.jid, node, form)
                    refusals.append(refused.value)
                # Nor can it finish a session an operator started.
                started = await execute(ops, vtn.jid, CREATE_EVENT)
                with pytest.raises(IqError) as hijack:
                    await submit(client, started, {"ven_ids": ven.ven_id, "payload": "1", "duration": "60"})
                commands = await client.plugin["xep_0050"].get_commands(vtn.jid, timeout=10)
                # Installing again replaces the operators: the stranger becomes one, the operator is out.
                install_operator_commands(vtn, vtn.component.xmpp, [stranger])
                promoted = await execute(client, vtn.jid, LIST_VENS)
                with pytest.raises(IqError) as demoted:
                    await execute(ops, vtn.jid, LIST_VENS)
                return vtn.jid, [*refusals, hijack.value, demoted.value], commands, promoted, vtn.events()

    jid, refusals, commands, promoted, events = run(scenario())
    for refusal in refusals:
        assert (refusal.etype, refusal.condition) == ("auth", "forbidden")
        assert str(refusal.iq["from"]) == jid
    assert not commands["disco_items"]["items"] and str(commands["from"]) == jid
    assert events == [] and promoted["command"]["status"] == "completed"


def test_an_operator_cannot_continue_another_operators_session(prosody):
    alice, bob = new_account(prosody, "operator"), new_account(prosody, "operator")

    async def scenario():
        async with scene(prosody, register=True, operators=[alice, bob],
                         scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            async with xmpp_client(prosody, alice) as first, xmpp_client(prosody, bob) as second:
                started = await execute(first, vtn.jid, CREATE_EVENT)
                with pytest.raises(IqError) as taken:
                    await submit(second, started, {"ven_ids": ven.ven_id, "payload": "1", "duration": "60"})
                own = await submit(first, started, {"ven_ids": ven.ven_id, "payload": "1", "duration": "60"})
                return taken.value, own, len(vtn.events())

    taken, own, events = run(scenario())
    assert (taken.etype, taken.condition) == ("auth", "forbidden") and "someone else" in taken.text
    assert own["command"]["status"] == "completed" and events == 1


def test_install_refuses_a_missing_or_invalid_operator(prosody):
    async def scenario():
        with pytest.raises(ValueError, match="not a valid JID"):
            make_vtn(prosody, operators=["not a jid@@"])
        vtn = make_vtn(prosody)
        try:
            with pytest.raises(ValueError, match="at least one operator"):
                install_operator_commands(vtn, vtn.component.xmpp, [])
            with pytest.raises(TypeError, match="not one string"):
                install_operator_commands(vtn, vtn.component.xmpp, "ops@localhost")
        finally:
            vtn.store.close()

    run(scenario())


def test_a_strangers_refused_commands_are_logged_once_not_once_each(prosody, caplog):
    # Before: each refused command logged a WARNING, so any account could flood the log.
    import logging
    operator, stranger = new_account(prosody, "operator"), new_account(prosody, "stranger")

    async def scenario():
        async with scene(prosody, operators=[operator], scheduler=ManualScheduler(T0)) as (vtn, _):
            async with xmpp_client(prosody, stranger) as client:
                for _ in range(20):
                    with pytest.raises(IqError):
                        await execute(client, vtn.jid, LIST_VENS)

    with caplog.at_level(logging.WARNING, logger="xmpp_vtn.operator"):
        run(scenario())
    refused = [record for record in caplog.records if "not an operator" in record.getMessage()]
    assert len(refused) == 1 and stranger in refused[0].getMessage()
