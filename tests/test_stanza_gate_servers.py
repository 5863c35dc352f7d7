"""The stanza gate's premise on the real servers: Prosody and ejabberd escape ">" in everything
they forward, so the VTN can count each stanza before parsing it, and a stanza too large for its
sender is refused without being parsed (xmpp_vtn/runtime/stanza_gate.py)."""
from __future__ import annotations

import pytest

from hostile_attacker import _empty_elements
from xmpp_scene import make_ven, run, scene
from xmpp_vtn.control.metrics import VTNMetrics
from xmpp_vtn.testing.ven import VTNError


@pytest.fixture(params=["prosody", "ejabberd"])
def server(request):
    return request.getfixturevalue(request.param)


def test_what_the_server_forwards_can_be_counted_and_a_large_stanza_is_refused_unread(server):
    # Literal ">" in text and in attribute values, "/>" in both, and the iq's own name in them:
    # if the server passed any of it on unescaped, the gate would have to stop counting.
    odd = (b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'><x a='1/>2' b=\"iq>\">a/>b > iq/>"
           b"</x></oadrPayload>")

    async def scenario():
        async with scene(server, register=True, ping_interval=None) as (vtn, [ven]):
            gate = vtn.component.xmpp.gate
            with pytest.raises(VTNError) as odd_refusal:
                await ven.request_raw(odd)
            stranger = await make_ven(server)            # logged in, never registered
            try:
                with pytest.raises(VTNError) as large_refusal:
                    await stranger.request_raw(_empty_elements(1_000))
            finally:
                await stranger.stop()
            served = await ven.query_registration()
            scraped = VTNMetrics(vtn).exposition().decode()
            return gate.counting, gate.refused, odd_refusal.value, large_refusal.value, served, scraped

    counting, refused, odd_refusal, large_refusal, served, scraped = run(scenario())
    assert counting, "the server forwarded XML the stanza gate cannot count"
    assert odd_refusal.condition == "bad-request"          # not OpenADR: refused after parsing
    assert "refused unread" not in odd_refusal.text
    assert refused == 1
    assert large_refusal.condition == "bad-request"
    assert "stanza of 1004 elements" in large_refusal.text and "refused unread" in large_refusal.text
    assert served["response"]["response_code"] == 200
    assert 'xmpp_vtn_quota_refusals_total{limit="stanza_elements"} 1.0' in scraped.splitlines()
