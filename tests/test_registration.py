"""EiRegisterParty over a real Prosody with real slixmpp VENs: every path of issue 3's list."""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET

import pytest
from slixmpp.xmlstream.handler import Waiter
from slixmpp.xmlstream.matcher import MatcherId

from xmpp_vtn import codec
from xmpp_vtn.services import codes
from xmpp_vtn.runtime.stanzas import OADR_FEATURE, SERVICE_NODE_PREFIX, SERVICES, SERVICES_NODE
from xmpp_vtn.testing.ven import OpenADRRefusal, VTNError
from xmpp_scene import make_ven, run, scene

XMPP_20B = [{"profile_name": "2.0b", "transports": [{"transport_name": "xmpp"}]}]


def test_query_registration_offers_2_0b_over_xmpp_without_registering(prosody):
    queried = []

    async def scenario():
        async with scene(prosody, handlers={"on_query_registration": queried.append}) as (vtn, [ven]):
            answer = await ven.query_registration()
            return answer, vtn.vens()

    answer, vens = run(scenario())
    assert answer["vtn_id"] == "VTN-1" and answer["profiles"] == XMPP_20B
    assert "registration_id" not in answer and "ven_id" not in answer
    assert len(queried) == 1 and vens == []


def test_create_registration_binds_the_ven_to_its_account(prosody):
    seen = []

    async def on_create(payload):                      # a coroutine handler
        seen.append(payload)
        await asyncio.sleep(0)
        return "reg-42"

    async def scenario():
        async with scene(prosody, handlers={"on_create_party_registration": on_create}) as (vtn, [ven]):
            ven.ven_id, ven.ven_name = "00123", "ven seven"
            answer = await ven.register()
            return answer, vtn.vens(), ven.full_jid

    answer, vens, full_jid = run(scenario())
    assert answer["ven_id"] == "00123" and answer["registration_id"] == "reg-42" and answer["vtn_id"] == "VTN-1"
    assert seen[0]["ven_id"] == "00123" and seen[0]["transport_name"] == "xmpp"
    [record] = vens
    assert (record.ven_id, record.registration_id, record.transport_address) == ("00123", "reg-42", full_jid)
    assert record.bare_jid == full_jid.split("/")[0] and record.ven_name == "ven seven"


def test_handler_may_assign_the_ven_id(prosody):
    async def scenario():
        handlers = {"on_create_party_registration": lambda payload: ("assigned-7", "reg-7")}
        async with scene(prosody, handlers=handlers) as (vtn, [ven]):
            await ven.register()
            return ven.ven_id, ven.registration_id, [v.ven_id for v in vtn.vens()]

    assert run(scenario()) == ("assigned-7", "reg-7", ["assigned-7"])


def test_reregistration_with_the_registration_id_updates_the_transport_address(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            # The same account logs in from another resource and re-registers with its ids.
            moved = await make_ven(prosody, ven.jid.split("/")[0], resource="moved", ven_id=ven.ven_id,
                                   registration_id=ven.registration_id)
            assert moved.full_jid != ven.full_jid
            try:
                await moved.register()
                return ven.ven_id, moved, vtn.vens()
            finally:
                await moved.stop()

    ven_id, moved, [record] = run(scenario())
    assert record.ven_id == ven_id and record.transport_address == moved.full_jid


@pytest.mark.parametrize("refusal", [None, False])
def test_handler_refusal_answers_463_and_stores_nothing(prosody, refusal):
    async def scenario():
        async with scene(prosody, handlers={"on_create_party_registration": lambda payload: refusal}) as (vtn, [ven]):
            ven.ven_id = "refused-ven"
            with pytest.raises(OpenADRRefusal) as refused:
                await ven.register()
            return refused.value, vtn.vens()

    refused, vens = run(scenario())
    assert refused.code == codes.NOT_REGISTERED_OR_AUTHORIZED
    assert refused.payload["profiles"] == XMPP_20B and vens == []


def test_ven_cancels_its_registration(prosody):
    cancelled = []

    async def scenario():
        handlers = {"on_cancel_party_registration": cancelled.append}
        async with scene(prosody, handlers=handlers, register=True) as (vtn, [ven]):
            registration_id = ven.registration_id
            answer = await ven.cancel_registration()
            return registration_id, answer, vtn.vens()

    registration_id, answer, vens = run(scenario())
    assert answer["registration_id"] == registration_id and answer["response"]["response_code"] == 200
    assert cancelled[0]["registration_id"] == registration_id and vens == []


def test_cancel_with_a_wrong_registration_id_is_refused_and_changes_nothing(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            answer = await ven.request("oadrCancelPartyRegistration", {
                "request_id": "r1", "registration_id": "not-mine", "ven_id": ven.ven_id})
            return answer, vtn.vens()

    (message_type, payload), vens = run(scenario())
    assert message_type == "oadrCanceledPartyRegistration"
    assert payload["response"]["response_code"] == codes.INVALID_ID and len(vens) == 1


def test_vtn_cancels_a_registration_and_the_ven_is_told(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            registration_id = ven.registration_id
            await vtn.cancel_party_registration(ven.ven_id)
            push = await ven.next_push("oadrCancelPartyRegistration")
            return registration_id, push, ven.registration_id, vtn.vens()

    registration_id, push, ven_registration, vens = run(scenario())
    assert push.payload["registration_id"] == registration_id and push.sender == "vtn.localhost"
    assert ven_registration is None and vens == []


def test_request_reregistration_is_pushed_and_the_ven_registers_again(prosody):
    registrations = []

    def on_create(payload):
        registrations.append(payload)
        return payload.get("ven_id") or "rereg-ven", f"reg-{len(registrations)}"

    async def scenario():
        async with scene(prosody, handlers={"on_create_party_registration": on_create}, register=True) as (vtn, [ven]):
            await vtn.request_reregistration(ven.ven_id)
            push = await ven.next_push("oadrRequestReregistration")   # recorded after the VEN re-registered
            return push, vtn.vens()

    push, [record] = run(scenario())
    assert push.payload == {"ven_id": "rereg-ven"}
    assert [p.get("registration_id") for p in registrations] == [None, "reg-1"]   # the second carries its id
    assert record.registration_id == "reg-2"


def test_spoofed_ven_id_from_another_account_is_refused(prosody):
    async def scenario():
        async with scene(prosody, vens=2, register=True) as (vtn, [victim, intruder]):
            before = vtn.vens()
            cancel = await intruder.request("oadrCancelPartyRegistration", {
                "request_id": "r1", "registration_id": victim.registration_id, "ven_id": victim.ven_id})
            intruder.ven_id, intruder.registration_id = victim.ven_id, None
            with pytest.raises(OpenADRRefusal) as takeover:
                await intruder.register()
            return before, cancel, takeover.value, vtn.vens()

    before, (cancel_type, cancel), takeover, after = run(scenario())
    assert cancel_type == "oadrCanceledPartyRegistration"
    assert cancel["response"]["response_code"] == codes.NOT_REGISTERED_OR_AUTHORIZED
    assert takeover.code == codes.NOT_REGISTERED_OR_AUTHORIZED
    assert after == before


def test_unregistered_ven_is_refused(prosody):
    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            cancel = await ven.request("oadrCancelPartyRegistration",
                                       {"request_id": "r1", "registration_id": "reg-x", "ven_id": "ven-x"})
            return cancel

    message_type, payload = run(scenario())
    assert message_type == "oadrCanceledPartyRegistration"
    assert payload["response"]["response_code"] == codes.NOT_REGISTERED_OR_AUTHORIZED


def test_message_only_a_vtn_sends_is_not_allowed(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            return await ven.request("oadrRequestReregistration", {"ven_id": ven.ven_id})

    message_type, payload = run(scenario())
    assert message_type == "oadrResponse" and payload["response"]["response_code"] == codes.NOT_ALLOWED


def test_schema_invalid_payload_gets_bad_request_naming_the_violation(prosody):
    document = codec.serialize("oadrQueryRegistration", {"request_id": "r1"}).replace(
        b"requestID>r1</", b"requestIDX>r1</").replace(b"requestID>", b"requestIDX>", 1)

    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            with pytest.raises(VTNError) as refused:
                await ven.request_raw(document)
            served = await ven.query_registration()   # and the component keeps serving
            return refused.value, served

    refused, served = run(scenario())
    assert (refused.error_type, refused.condition) == ("modify", "bad-request")
    assert "requestIDX" in refused.text and served["vtn_id"] == "VTN-1"


def test_huge_schema_error_text_is_capped(prosody):
    bogus = b"bogus" + b"x" * 5000                   # the schema error names this element
    document = codec.serialize("oadrQueryRegistration", {"request_id": "r1"}).replace(
        b"</oadr:oadrQueryRegistration>", b"<%s/></oadr:oadrQueryRegistration>" % bogus)
    assert bogus in document

    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            with pytest.raises(VTNError) as refused:
                await ven.request_raw(document)
            return refused.value

    refused = run(scenario())
    assert refused.condition == "bad-request" and len(refused.text) == 1024 and refused.text.endswith("...")


def test_non_openadr_iq_gets_feature_not_implemented(prosody):
    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            iq = ven.xmpp.make_iq_set(ito=vtn.jid)
            iq.append(ET.fromstring(b"<query xmlns='urn:example:not-openadr'/>"))
            with pytest.raises(Exception) as refused:
                await iq.send(timeout=10)
            served = await ven.query_registration()
            return refused.value, served

    refused, served = run(scenario())
    assert refused.iq["error"]["condition"] == "feature-not-implemented" and served["vtn_id"] == "VTN-1"


def test_failing_handler_is_logged_answered_469_and_the_vtn_keeps_serving(prosody, caplog):
    def broken(payload):
        raise RuntimeError("database down")

    async def scenario():
        async with scene(prosody, handlers={"on_cancel_party_registration": broken}, register=True) as (vtn, [ven]):
            answer = await ven.request("oadrCancelPartyRegistration", {
                "request_id": "r1", "registration_id": ven.registration_id, "ven_id": ven.ven_id})
            served = await ven.query_registration()
            return ven.ven_id, answer, served, vtn.vens()

    with caplog.at_level(logging.ERROR, logger="xmpp_vtn"):
        ven_id, (message_type, payload), served, vens = run(scenario())
    assert message_type == "oadrCanceledPartyRegistration"
    assert payload["response"]["response_code"] == codes.DEPLOYMENT_ERROR_OR_OTHER
    assert len(vens) == 1 and served["vtn_id"] == "VTN-1"                       # nothing changed
    [record] = [r for r in caplog.records if r.exc_info]
    assert ven_id in record.getMessage() and "oadrCancelPartyRegistration" in record.getMessage()
    assert "database down" in str(record.exc_info[1])


def test_disco_advertises_openadr_and_its_services(prosody):
    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            disco = ven.xmpp.plugin["xep_0030"]
            info = await disco.get_info(jid=vtn.jid, timeout=10)
            items = await disco.get_items(jid=vtn.jid, node=SERVICES_NODE, timeout=10)
            resource_info = await disco.get_info(jid=f"{vtn.jid}/EiEvent", timeout=10)
            return info, items, resource_info

    info, items, resource_info = run(scenario())
    assert OADR_FEATURE in info["disco_info"]["features"]
    assert OADR_FEATURE in resource_info["disco_info"]["features"]
    assert sorted(items["disco_items"]["items"]) == sorted(
        (f"vtn.localhost/{service}", SERVICE_NODE_PREFIX + service, service) for service in SERVICES)


def test_requests_to_a_service_resource_are_answered_from_that_resource(prosody):
    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            iq = ven.xmpp.make_iq_set(ito=f"{vtn.jid}/EiRegisterParty")
            iq.append(ET.fromstring(codec.serialize("oadrQueryRegistration", {"request_id": "r1"})))
            result = await iq.send(timeout=10)
            return str(result["from"]), result

    sender, result = run(scenario())
    assert sender == "vtn.localhost/EiRegisterParty"
    assert result.xml.find("{http://openadr.org/oadr-2.0b/2012/07}oadrPayload") is not None


def test_ping_is_answered(prosody):
    async def scenario():
        async with scene(prosody) as (vtn, [ven]):
            return await ven.xmpp.plugin["xep_0199"].ping(jid=vtn.jid, timeout=10)

    assert run(scenario()) >= 0


@pytest.mark.parametrize("inside_payload", [False, True])
@pytest.mark.parametrize("registered", [True, False])
def test_absurdly_deep_stanza_is_refused_and_the_component_stays_up(prosody, inside_payload, registered):
    nest = "<a>" * 3000 + "</a>" * 3000           # deeper than Python's recursion limit
    if inside_payload:
        child = "<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'><x xmlns=''>" + nest + "</x></oadrPayload>"
    else:
        child = "<q xmlns='urn:example:deep'>" + nest + "</q>"

    async def scenario():
        async with scene(prosody, register=registered) as (vtn, [ven]):
            # Sent raw: slixmpp itself cannot serialize a stanza this deep.
            waiter = Waiter("deep answer", MatcherId("deep-1"))
            ven.xmpp.register_handler(waiter)
            ven.xmpp.send_raw(f"<iq type='set' id='deep-1' to='{vtn.jid}'>{child}</iq>")
            answer = await waiter.wait(timeout=10)
            served = await ven.query_registration()
            return answer, served, vtn.connected

    answer, served, connected = run(scenario())
    assert answer["type"] == "error" and answer["error"]["condition"] == "bad-request"
    if registered:      # 3,000 or so elements: within a registered VEN's limit, parsed, then refused
        assert "deeper" in answer["error"]["text"]
    else:               # over an unregistered account's 400: counted and refused, never parsed
        elements = 3000 + (3 if inside_payload else 2)      # the nest, the iq, oadrPayload and x (or q)
        assert f"{elements} elements" in answer["error"]["text"] and "refused unread" in answer["error"]["text"]
    assert served["vtn_id"] == "VTN-1" and connected
