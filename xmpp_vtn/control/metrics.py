"""Prometheus metrics of one VTN, served at ``/metrics``.

Counters are incremented by the exchange observer on the hot path (a dict lookup and an
increment; label children are cached so no label lock is taken per message). Gauges that need the
store (VENs registered and online, outbox depth) are computed when Prometheus scrapes, never per
message. Each VTN has its own :class:`~prometheus_client.CollectorRegistry`, so several VTNs in
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

from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..runtime.observer import ExchangeObserver
from .desk import OperatorDesk

CONTENT_TYPE = CONTENT_TYPE_LATEST

# A push answered over loopback takes about a millisecond; a VEN on a slow link, seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _StoreGauges(Collector):
    """The gauges read from the store at scrape time."""

    def __init__(self, desk: OperatorDesk):
        self.desk = desk

    def collect(self) -> Iterator[GaugeMetricFamily]:
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

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())                 # not called at registration: no store read before the VTN runs


class VTNMetrics(ExchangeObserver):
    """The metrics registry of one VTN, and the observer that feeds it."""

    def __init__(self, desk: OperatorDesk):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StoreGauges(desk))
        self.pushes_sent = Counter("xmpp_vtn_pushes_sent", "Pushes sent to VENs", ["message_type"],
                                   registry=self.registry)
        self.pushes_acknowledged = Counter("xmpp_vtn_pushes_acknowledged", "Pushes the VEN acknowledged",
                                           ["message_type"], registry=self.registry)
        self.pushes_failed = Counter("xmpp_vtn_pushes_failed", "Pushes not acknowledged (refused: the VEN "
                                     "answered with an error; failed: timeout, unreachable, disconnected)",
                                     ["message_type", "reason"], registry=self.registry)
        self.push_answer_seconds = Histogram("xmpp_vtn_push_answer_seconds", "Seconds from sending a push to the "
                                             "VEN's answer (acknowledgement or error)", ["message_type"],
                                             buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inbound_messages = Counter("xmpp_vtn_inbound_messages", "Requests from VENs, by message type and "
                                        "outcome (the answer's response code, empty, bad-request, not-implemented)",
                                        ["message_type", "outcome"], registry=self.registry)
        self.schema_rejections = Counter("xmpp_vtn_schema_rejections", "Requests refused as not schema-valid",
                                         registry=self.registry)
        self.liveness_transitions = Counter("xmpp_vtn_liveness_transitions", "VENs going online or offline",
                                            ["state"], registry=self.registry)
        self._children: dict[tuple, Callable] = {}

    def _inc(self, metric: Counter, *labels: str) -> None:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels).inc
        child()

    # -- the observer --------------------------------------------------------------------------

    def inbound(self, message_type: str, ven_id: str | None, outcome: str, payload: dict | None) -> None:
        self._inc(self.inbound_messages, message_type, outcome)
        if outcome == "bad-request":
            self.schema_rejections.inc()

    def push_sent(self, message_type: str, ven_id: str) -> None:
        self._inc(self.pushes_sent, message_type)

    def push_answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        key = ("latency", message_type)
        observe = self._children.get(key)
        if observe is None:
            observe = self._children[key] = self.push_answer_seconds.labels(message_type).observe
        if outcome == "acknowledged":
            self._inc(self.pushes_acknowledged, message_type)
            observe(seconds)
        else:
            self._inc(self.pushes_failed, message_type, outcome)
            if outcome == "refused":             # an answer, if not the one hoped for
                observe(seconds)

    def liveness(self, ven_id: str, state: str) -> None:
        self._inc(self.liveness_transitions, state)

    # -- the scrape ----------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
