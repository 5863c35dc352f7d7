"""/metrics in the Prometheus format, scraped while a real fan-out runs: the counts add up."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from prometheus_client.parser import text_string_to_metric_families

from xmpp_vtn.testing.ven import VTNError
from control_scene import control_scene
from xmpp_scene import run

VENS = 12


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_scraped_during_a_fan_out_count_pushes_answers_and_rejections(prosody):
    async def scenario():
        async with control_scene(prosody, vens=VENS + 1) as (vtn, vens, client):
            online, gone = vens[:VENS], vens[VENS]
            await vtn.courier.idle()
            await gone.stop()                                   # its push will fail
            done, answers = asyncio.Event(), []

            def on_answer(ven_id, event_id, opt):
                answers.append(ven_id)
                if len(answers) == VENS:
                    done.set()
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event([ven.ven_id for ven in vens], "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(hours=1), "signal_payload": 1.0}],
                          callback=on_answer)
            during = []
            while not done.is_set():                            # scrape while the fan-out runs
                async with client.get("/metrics") as response:
                    during.append((response.status, response.headers["Content-Type"], await response.text()))
                await asyncio.sleep(0)
            await vtn.courier.idle()
            try:
                await online[0].request_raw(b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'/>")
                refusal = None
            except VTNError as error:                           # the VTN answers bad-request
                refusal = error.condition
            async with client.get("/metrics") as response:
                after = await response.text()
            return during, after, refusal

    during, after, refusal = run(scenario())
    assert refusal == "bad-request"
    assert during and all(status == 200 and kind.startswith("text/plain") for status, kind, _ in during)
    acknowledged = [value(samples(text), "xmpp_vtn_pushes_acknowledged_total", message_type="oadrDistributeEvent")
                    for _, _, text in during]
    print("scrapes during the fan-out:", acknowledged)
    assert acknowledged == sorted(acknowledged) and acknowledged[-1] <= VENS     # counts only grow
    scraped = samples(after)
    assert value(scraped, "xmpp_vtn_vens_registered") == VENS + 1
    assert value(scraped, "xmpp_vtn_vens_online") == VENS                      # the stopped one went offline
    assert value(scraped, "xmpp_vtn_outbox_depth") == 0
    assert value(scraped, "xmpp_vtn_xmpp_connected") == 1
    distribute = {"message_type": "oadrDistributeEvent"}
    assert value(scraped, "xmpp_vtn_pushes_acknowledged_total", **distribute) == VENS
    assert value(scraped, "xmpp_vtn_pushes_failed_total", reason="failed", **distribute) >= 1
    assert value(scraped, "xmpp_vtn_pushes_sent_total", **distribute) >= VENS + 1
    assert value(scraped, "xmpp_vtn_push_answer_seconds_count", **distribute) >= VENS
    assert value(scraped, "xmpp_vtn_push_answer_seconds_bucket", le="+Inf", **distribute) >= VENS
    assert value(scraped, "xmpp_vtn_pushes_acknowledged_total", message_type="oadrRegisterReport") == VENS + 1
    assert value(scraped, "xmpp_vtn_inbound_messages_total", message_type="oadrCreatedEvent", outcome="200") == VENS
    assert value(scraped, "xmpp_vtn_inbound_messages_total", message_type="oadrCreatePartyRegistration",
                 outcome="200") == VENS + 1
    assert value(scraped, "xmpp_vtn_inbound_messages_total", message_type="(invalid)", outcome="bad-request") == 1
    assert value(scraped, "xmpp_vtn_schema_rejections_total") == 1
    assert value(scraped, "xmpp_vtn_liveness_transitions_total", state="offline") == 1
    assert all(name.startswith("xmpp_vtn_") for name, _ in scraped)


class _EmptyDesk:
    """A desk with nothing in its store (the gauges read it at scrape time)."""

    connected = True

    def recorded_liveness(self) -> dict:
        return {}

    def vens(self) -> list:
        return []

    def owed_pushes(self) -> dict:
        return {}

    def quota_refusals(self) -> dict:
        return {}


def test_the_counts_kept_on_the_hot_path_scrape_as_prometheus_clients_own_counters_and_histogram_would():
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from xmpp_vtn.control.metrics import LATENCY_BUCKETS, VTNMetrics
    metrics = VTNMetrics(_EmptyDesk())
    registry = CollectorRegistry()
    acknowledged = Counter("xmpp_vtn_pushes_acknowledged", "", ["message_type"], registry=registry)
    failed = Counter("xmpp_vtn_pushes_failed", "", ["message_type", "reason"], registry=registry)
    latency = Histogram("xmpp_vtn_push_answer_seconds", "", ["message_type"], buckets=LATENCY_BUCKETS,
                        registry=registry)
    # On a bound, below the first, between, above the last; a refusal is timed, a failure is not.
    answers = [(0.001, "acknowledged"), (0.0002, "acknowledged"), (0.07, "acknowledged"), (45.0, "acknowledged"),
               (0.3, "refused"), (10.0, "failed")]
    for seconds, outcome in answers:
        metrics.push_answered("oadrDistributeEvent", "ven-1", outcome, seconds)
        if outcome == "acknowledged":
            acknowledged.labels("oadrDistributeEvent").inc()
        else:
            failed.labels("oadrDistributeEvent", outcome).inc()
        if outcome != "failed":
            latency.labels("oadrDistributeEvent").observe(seconds)
    ours = samples(metrics.exposition().decode())
    theirs = {key: number for key, number in samples(generate_latest(registry).decode()).items()
              if not key[0].endswith("_created")}
    assert theirs and {key: ours.get(key) for key in theirs} == theirs
    assert value(ours, "xmpp_vtn_schema_rejections_total") == 0.0     # there before the first rejection
