"""The per-account request limits of the inbound pipeline, as pure logic: the token bucket, the
refusals held back, and the simpleHTTP path answering a refusal late. The XMPP component's side
(a flood slowed to what is answered) runs against a real Prosody in tests/test_hostile.py."""
from __future__ import annotations

import asyncio
import time

import pytest

from xmpp_vtn.runtime.component import IqRefused
from xmpp_vtn.runtime.inbound import HeldRefusals, InboundPipeline, TokenBucket
from xmpp_vtn.services.quotas import QuotaGuard, Quotas


def test_the_bucket_admits_its_burst_then_its_rate_per_account():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(4)] == [True, True, True, False]
    assert bucket.take("b")                                  # another account has its own bucket
    now[0] = 0.5                                             # one token back at 2 a second
    assert [bucket.take("a"), bucket.take("a")] == [True, False]
    assert bucket.take("b", cost=3)                         # refilled to its burst: a dearer request
    assert not bucket.take("b")                              # ... spends it all


def test_refusals_are_held_back_up_to_the_cap_per_account_then_answered_at_once():
    held = HeldRefusals(delay=1.5, per_account=2)
    assert [held.hold("a"), held.hold("a"), held.hold("a")] == [1.5, 1.5, 0.0]
    assert held.hold("b") == 1.5                             # the cap is each account's own
    assert (held.now, held.since_start) == (3, 3)
    held.answered("a")
    assert held.hold("a") == 1.5 and held.now == 3
    for account in ("a", "a", "b"):
        held.answered(account)
    held.answered("b")                                       # an extra answer changes nothing
    assert held.now == 0 and held.since_start == 4


def test_no_refusal_is_held_back_when_the_delay_is_zero():
    held = HeldRefusals(delay=0.0, per_account=5)
    assert held.hold("a") == 0.0 and held.now == 0


def test_the_refusal_delay_may_be_zero_but_never_negative():
    assert Quotas(refusal_delay=0).refusal_delay == 0
    for wrong in (-1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="refusal_delay"):
            Quotas(refusal_delay=wrong)
    assert Quotas.from_mapping({"refusal_delay": 0.25, "held_refusals": 8}).held_refusals == 8


def _pipeline(quotas: Quotas) -> InboundPipeline:
    # Only the limits are exercised: a refused request never reaches the store or the services.
    return InboundPipeline(store=None, dispatcher=None, effects=None, presence=None,
                           max_requests_in_flight=1, quotas=QuotaGuard(quotas))


def test_a_simple_http_request_over_its_limit_is_refused_late_and_its_hold_ended():
    pipeline = _pipeline(Quotas(refusal_delay=0.3))
    assert pipeline.admit("ven@grid/a") is None             # one in flight: the limit

    async def refused() -> tuple[IqRefused, float, int]:
        started = time.monotonic()
        request = asyncio.ensure_future(pipeline("ven@grid/http", "vtn", b"<x/>"))
        await asyncio.sleep(0)                              # the refusal is being held back
        held_meanwhile = pipeline.held_refusals.now
        with pytest.raises(IqRefused) as refusal:
            await request
        return refusal.value, time.monotonic() - started, held_meanwhile

    refusal, took, held_meanwhile = asyncio.run(refused())
    assert (refusal.condition, refusal.error_type) == ("resource-constraint", "wait")
    assert held_meanwhile == 1 and took >= 0.3
    assert pipeline.held_refusals.now == 0


def test_a_refusal_nobody_receives_is_not_held_back():
    # A message in the body of a simpleHTTP push's response: its answer goes nowhere, so holding
    # its refusal would only hold up the push.
    pipeline = _pipeline(Quotas(refusal_delay=30))
    assert pipeline.admit("ven@grid/a") is None

    async def refused() -> IqRefused:
        with pytest.raises(IqRefused) as refusal:
            await asyncio.wait_for(pipeline("ven@grid", "", b"<x/>", answered=False), 5)
        return refusal.value

    assert asyncio.run(refused()).condition == "resource-constraint"
    assert pipeline.held_refusals.since_start == 0


def test_a_simple_http_refusal_cancelled_while_held_ends_its_hold():
    pipeline = _pipeline(Quotas(refusal_delay=30))
    assert pipeline.admit("ven@grid/a") is None

    async def cancelled() -> int:
        request = asyncio.ensure_future(pipeline("ven@grid/http", "vtn", b"<x/>"))
        await asyncio.sleep(0)
        held = pipeline.held_refusals.now
        request.cancel()                                     # the HTTP client went away
        await asyncio.gather(request, return_exceptions=True)
        return held

    assert asyncio.run(cancelled()) == 1
    assert pipeline.held_refusals.now == 0


def test_a_request_the_slow_path_refuses_at_arrival_is_answered_by_the_component_s_refuser():
    # An OpenADR iq that slixmpp parses (one the fast paths leave, such as an iq with a second
    # child, which ejabberd lets through) is refused through the same refuser as the rest, so
    # a "wait" refusal is held back there too, instead of being answered at once by slixmpp.
    from slixmpp.xmlstream import ET
    from xmpp_vtn.runtime.stanzas import NS_OADR, guard_inbound

    class Stream:
        incoming_filter = staticmethod(lambda xml: xml)

    refusals = []
    stream = Stream()
    guard_inbound(stream, accept_size=lambda sender, elements: True,
                  admit=lambda sender, elements: ("resource-constraint", "slow down", "wait"),
                  refuse_request=lambda *refusal: refusals.append(refusal))
    iq = ET.fromstring(f"<iq xmlns='jabber:component:accept' type='set' id='q1' from='ven@grid/a' to='vtn.grid'>"
                       f"<oadrPayload xmlns='{NS_OADR}'/><note xmlns='urn:example'/></iq>")
    kept = stream.incoming_filter(iq)
    assert kept is not iq                                    # dropped: not handed to slixmpp's handlers
    assert refusals == [("q1", "ven@grid/a", "vtn.grid", ("resource-constraint", "slow down", "wait"))]
