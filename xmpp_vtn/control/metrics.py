"""Prometheus metrics of one VTN, served at ``/metrics``.

The exchange observer counts on the hot path in plain numbers (a dict increment per message;
a bucket index for the latency), and the counters and the histogram are built from them when
Prometheus scrapes: a ``prometheus_client`` ``Counter`` takes a lock and checks its state on every
increment, which made the metrics the larger part of what the control listener cost a fan-out.
Everything runs on the VTN's event loop, scrapes included, so the counts need no lock. Gauges
that need the store (VENs registered and online, outbox depth) are computed when Prometheus
scrapes, never per message. Each VTN has its own :class:`~prometheus_client.CollectorRegistry`, so several VTNs in
one process (tests, a multi-tenant host) do not mix their numbers.

=========================================  ===========================================================
metric                                     meaning
=========================================  ===========================================================
``xmpp_vtn_vens_registered``               registered VENs (store)
``xmpp_vtn_vens_online``                   VENs whose recorded liveness is online (store)
``xmpp_vtn_outbox_depth``                  queued pushes owed to VENs (store)
``xmpp_vtn_xmpp_connected``                1 while the component has a session with its server
``xmpp_vtn_pushes_sent_total``             pushes sent, by message type
``xmpp_vtn_pushes_acknowledged_total``     pushes the VEN acknowledged, by message type
``xmpp_vtn_pushes_failed_total``           pushes not acknowledged, by message type and reason
``xmpp_vtn_push_answer_seconds``           from sending a push to the VEN's answer (histogram)
``xmpp_vtn_inbound_messages_total``        requests from VENs, by message type and outcome
``xmpp_vtn_schema_rejections_total``       requests refused as not schema-valid
``xmpp_vtn_liveness_transitions_total``    VENs going online or offline
=========================================  ===========================================================
"""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..runtime.observer import ExchangeObserver
from .desk import OperatorDesk

CONTENT_TYPE = CONTENT_TYPE_LATEST

# A push answered over loopback takes about a millisecond; a VEN on a slow link, seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# name, help, label names of each counter.
_COUNTERS = {
    "pushes_sent": ("Pushes sent to VENs", ("message_type",)),
    "pushes_acknowledged": ("Pushes the VEN acknowledged", ("message_type",)),
    "pushes_failed": ("Pushes not acknowledged (refused: the VEN answered with an error; failed: timeout, "
                      "unreachable, disconnected)", ("message_type", "reason")),
    "inbound_messages": ("Requests from VENs, by message type and outcome (the answer's response code, empty, "
                         "bad-request, not-implemented)", ("message_type", "outcome")),
    "schema_rejections": ("Requests refused as not schema-valid", ()),
    "liveness_transitions": ("VENs going online or offline", ("state",)),
}
_LATENCY_HELP = "Seconds from sending a push to the VEN's answer (acknowledgement or error)"


class _StoreGauges(Collector):
    """The gauges read from the store at scrape time, and the refusal counts the VTN keeps."""

    def __init__(self, desk: OperatorDesk):
        self.desk = desk

    def collect(self) -> Iterator[Metric]:
        liveness = self.desk.recorded_liveness()
        registered = self.desk.vens()
        online = sum(1 for ven in registered if liveness.get(ven.ven_id, ("",))[0] == "online")
        yield GaugeMetricFamily("xmpp_vtn_vens_registered", "Registered VENs", value=len(registered))
        yield GaugeMetricFamily("xmpp_vtn_vens_online", "Registered VENs whose recorded liveness is online",
                                value=online)
        yield GaugeMetricFamily("xmpp_vtn_outbox_depth", "Queued pushes owed to VENs",
                                value=sum(self.desk.owed_pushes().values()))
        yield GaugeMetricFamily("xmpp_vtn_xmpp_connected", "1 while the component has a session with its server",
                                value=1 if self.desk.connected else 0)
        refusals = CounterMetricFamily("xmpp_vtn_quota_refusals", "Requests and stanzas refused by this process "
                                       "for a quota or size limit, by limit", labels=("limit",))
        for limit, count in sorted(self.desk.quota_refusals().items()):
            refusals.add_metric((limit,), count)
        yield refusals

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())                 # not called at registration: no store read before the VTN runs


class _Latency:
    """One label set's push-to-answer histogram: a count per bucket (the last one, above every
    bound, is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound is counted in that bucket (le means <=).
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


class VTNMetrics(ExchangeObserver, Collector):
    """The metrics registry of one VTN, and the observer that feeds it."""

    def __init__(self, desk: OperatorDesk):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StoreGauges(desk))
        self.registry.register(self)
        # counter -> label values -> count
        self._counts: dict[str, defaultdict[tuple[str, ...], int]] = {name: defaultdict(int) for name in _COUNTERS}
        self._latency: dict[str, _Latency] = {}

    # -- the observer --------------------------------------------------------------------------

    def inbound(self, message_type: str, ven_id: str | None, outcome: str, payload: dict | None) -> None:
        self._counts["inbound_messages"][(message_type, outcome)] += 1
        if outcome == "bad-request":
            self._counts["schema_rejections"][()] += 1

    def push_sent(self, message_type: str, ven_id: str) -> None:
        self._counts["pushes_sent"][(message_type,)] += 1

    def push_answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        if outcome == "acknowledged":
            self._counts["pushes_acknowledged"][(message_type,)] += 1
        else:
            self._counts["pushes_failed"][(message_type, outcome)] += 1
            if outcome != "refused":             # a refusal is an answer, if not the one hoped for
                return
        latency = self._latency.get(message_type)
        if latency is None:
            latency = self._latency[message_type] = _Latency()
        latency.observe(seconds)

    def liveness(self, ven_id: str, state: str) -> None:
        self._counts["liveness_transitions"][(state,)] += 1

    # -- the scrape ----------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The counters and the histogram, from the counts (called by the registry at scrape time)."""
        for name, (documentation, labels) in _COUNTERS.items():
            family = CounterMetricFamily(f"xmpp_vtn_{name}", documentation, labels=labels)
            counts = self._counts[name]
            if not labels and not counts:
                family.add_metric((), 0)        # an unlabelled counter is there from the start
            for values, count in sorted(counts.items()):
                family.add_metric(values, count)
            yield family
        histogram = HistogramMetricFamily("xmpp_vtn_push_answer_seconds", _LATENCY_HELP, labels=("message_type",))
        for message_type, latency in sorted(self._latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), latency.counts):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            histogram.add_metric((message_type,), buckets, latency.total)
        yield histogram

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
