"""VTNComponent: the public facade. It wires the handler table, the services, the store and the
XMPP component together; everything OpenADR happens in :mod:`xmpp_vtn.services`."""
from __future__ import annotations

import copy
import inspect
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping

from . import codec
from .control.adhoc_commands import install_operator_commands
from .control.server import ControlServer, ControlTLS
from .runtime.backoff import Backoff
from .runtime.cluster import Cluster
from .runtime.collector import tune_for_serving
from .runtime.component import Answer, OadrComponent, PushFailed
from .runtime.effects import EffectRunner, EventAcknowledgements
from .runtime.http import DEFAULT_PATH_PREFIX, HttpPusher, HttpSettings, HttpTransport
from .runtime.inbound import InboundPipeline
from .runtime.observer import ExchangeObserver
from .runtime.outbox import DEFAULT_PUSH_CONCURRENCY, Courier
from .runtime.presence import VenPresence
from .runtime.scheduler import RealTimeScheduler, Scheduler
from .runtime.timers import Timers
from .services import Dispatcher, Handlers, Push, RegistrationService
from .services.registration import TRANSPORT
from .services.event_arguments import aware, build_event, ven_id_list
from .services.events import EventService
from .services.opts import OptService
from .services.quotas import QuotaGuard, Quotas
from .services.reports import VTN_REQUEST, ReportService, VTNReport
from .store import SIMPLE_HTTP, Delivery, Document, EventRecord, Store, VenRecord, open_store
from .store.documents import encode_document

log = logging.getLogger("xmpp_vtn")

DEFAULT_STORE = "xmpp-vtn.sqlite3"
# Up to this many VENs, deliveries_of reads each VEN's deliveries; beyond, all of them once.
_READS_PER_VEN = 64


@dataclass(frozen=True)
class EventState:
    """An event as :meth:`VTNComponent.events` reports it: status now, and per VEN what it holds."""

    event_id: str
    modification_number: int
    status: str
    event: dict
    deliveries: dict[str, Delivery]


class VTNComponent:
    """An OpenADR 2.0b VTN served as an XMPP external component.

    >>> vtn = VTNComponent("VTN-1", "vtn.example.com", "component-secret", port=5347)
    >>> vtn.add_handler("on_create_party_registration", lambda payload: "reg-" + payload["ven_id"])
    >>> await vtn.run()      # doctest: +SKIP  (connects, then serves in the background)
    >>> await vtn.stop()     # doctest: +SKIP

    ``store`` is a file path (the default: ``xmpp-vtn.sqlite3`` in the working directory),
    ``":memory:"``, or a :class:`~xmpp_vtn.store.Store`. ``push_timeout`` is how long a VEN has to
    acknowledge a push. ``requested_poll_freq``, when set, is offered to VENs at registration
    (only polling VENs need it; XMPP VENs are pushed to).

    Several instances can serve one VTN: connect each to the same component domain (ejabberd
    accepts several connections for it) with one shared ``postgresql://`` store. ``instance_id``
    names this one (default: random per start); ``lease_seconds`` bounds how long a dead instance's
    work waits before the others take it over. ``balancing="bare_source"`` says the server hands
    every stanza of one VEN to the same instance (ejabberd's ``domain_balancing`` of that type):
    each VEN is then pushed to from that instance, so its acknowledgements need no passing on.
    See :mod:`xmpp_vtn.runtime.cluster`.

    simpleHTTP beside XMPP, with OpenLEADR's server argument names: ``http_port`` starts a listener
    on ``http_host`` (no listener without it; 0 picks a free port) for ``POST
    {http_path_prefix}/EiRegisterParty|EiEvent|EiReport|EiOpt|OadrPoll``. ``http_cert``/``http_key``
    make it HTTPS, ``http_ca_file`` asks VENs for client certificates (their fingerprint is the
    identity a venID binds to); without them ``http_allow_insecure=True`` must say so.
    ``verify_message_signatures`` checks the XML signatures of VENs with client certificates.
    See docs/http.md.

    ``control_port`` opens the operator's window (:mod:`xmpp_vtn.control.server`): the control
    API, the dashboard and ``/metrics`` on ``control_host`` (loopback by default), for the bearer
    tokens whose hashes are in ``control_tokens`` (``xmpp-vtn token new``); ``control_tls`` adds
    TLS and client certificates. ``control_port=0`` picks a free port (see :attr:`control_url`).

    ``tune_gc=True`` tunes the process's garbage collector for serving when :meth:`run` starts
    (:func:`~xmpp_vtn.runtime.collector.tune_for_serving`: start-up objects frozen, a young
    threshold of 10,000), so that huge stanzas do not set off full collections. It changes the
    whole process, so it is off unless asked for; ``xmpp-vtn run`` turns it on.
    """

    def __init__(self, vtn_id: str, jid: str, secret: str, host: str = "127.0.0.1", port: int = 5347,
                 store: Store | str | Path = DEFAULT_STORE, *, push_timeout: float = 10.0,
                 requested_poll_freq: timedelta | None = None, reconnect_backoff: Backoff | None = None,
                 scheduler: Scheduler | None = None, push_concurrency: int = DEFAULT_PUSH_CONCURRENCY,
                 ping_interval: timedelta | None = timedelta(seconds=60), offline_after: int = 3,
                 max_requests_in_flight: int = 16, instance_id: str | None = None, lease_seconds: float = 15.0,
                 balancing: str = "random",
                 operators: Iterable[str] = (), http_host: str = "127.0.0.1", http_port: int | None = None,
                 http_cert: str | None = None, http_key: str | None = None, http_ca_file: str | None = None,
                 http_path_prefix: str = DEFAULT_PATH_PREFIX, http_allow_insecure: bool = False,
                 verify_message_signatures: bool = True, control_host: str = "127.0.0.1",
                 control_port: int | None = None, control_tokens: Iterable[str] | Mapping[str, str] = (),
                 control_tls: ControlTLS | None = None, quotas: Quotas | None = None, tune_gc: bool = False):
        if not vtn_id:
            raise ValueError("vtn_id must be a non-empty string")
        self.vtn_id = vtn_id
        self.tune_gc = tune_gc
        self.push_timeout = push_timeout
        self.ping_interval = ping_interval
        http = HttpSettings(http_host, http_port, http_cert, http_key, http_ca_file, http_path_prefix,
                            http_allow_insecure, verify_message_signatures) if http_port is not None else None
        if http is not None:
            http.check()
            # VENs that poll need a cadence, and liveness needs one to count missed polls: OpenLEADR's.
            requested_poll_freq = requested_poll_freq or timedelta(seconds=10)
        self.requested_poll_freq = requested_poll_freq
        self.store = open_store(store)
        self.cluster = Cluster(self.store, instance_id, lease_seconds, balancing)
        self.scheduler = scheduler or RealTimeScheduler()
        self._handlers = Handlers()
        #: The per-VEN limits (``quotas``, see docs/operations.md) and the refusals counted per limit.
        self.quota_guard = QuotaGuard(quotas)
        # The services: pure OpenADR, each publishing its own routes.
        self.registration = RegistrationService(self.store, self._handlers, vtn_id, requested_poll_freq,
                                                (TRANSPORT, SIMPLE_HTTP) if http is not None else (TRANSPORT,))
        self.event_service = EventService(self.store, self._handlers, vtn_id, self.scheduler.now,
                                          journal_owner=self.cluster.instance_id)
        self.report_service = ReportService(self.store, self._handlers, vtn_id, self.scheduler.now, self.quota_guard)
        self.opt_service = OptService(self.store, self._handlers, self.event_service, self.quota_guard)
        self.dispatcher = Dispatcher(self.store, self.registration, self.event_service, self.report_service,
                                     self.opt_service)
        # The runtime: the component carries bytes; the courier, timers and presence act on them.
        self.component = OadrComponent(jid, secret, host, port, self._on_request, backoff=reconnect_backoff,
                                       on_session_start=self._on_session_start, on_presence=self._on_presence,
                                       on_foreign_answer=self._forward_answer)
        #: The simpleHTTP listener (None without ``http_port``) and the client that pushes over HTTP.
        self.http = HttpTransport(http, self._on_http_request) if http is not None else None
        self.http_pusher = HttpPusher(http, self._on_http_push_answer) if http is not None else None
        acknowledgements = EventAcknowledgements(self.event_service)
        self.courier = Courier(self.store, self.component, self.event_service, push_timeout, push_concurrency,
                               acknowledgements, cluster=self.cluster, http=self.http_pusher,
                               scheduler=self.scheduler, quotas=self.quota_guard)
        self.presence = VenPresence(self.store, self._handlers, self.courier, self.scheduler.now, offline_after)
        self.timers = Timers(self.store, self.scheduler, self.cluster, self.component, self.courier, self.presence,
                             self.event_service, self.report_service, ping_interval=ping_interval,
                             requested_poll_freq=requested_poll_freq, push_timeout=push_timeout)
        self.effects = EffectRunner(self.store, self.courier, self.timers, self.presence, acknowledgements,
                                    self.report_service, self.opt_service)
        self.inbound = InboundPipeline(self.store, self.dispatcher, self.effects, self.presence,
                                       max_requests_in_flight, self.quota_guard)
        self.component.gate = self.inbound           # requests are admitted as they arrive
        if operators:           # XEP-0050 operator commands for these bare JIDs
            install_operator_commands(self, self.component.xmpp, operators)
        self.control: ControlServer | None = None
        if control_port is not None:         # the control API, dashboard and metrics
            self.control = ControlServer(self, control_host, control_port, control_tokens, control_tls)
            self.watch(self.control.observer)

    def watch(self, observer: ExchangeObserver) -> None:
        """Have ``observer`` told of every exchange (:mod:`xmpp_vtn.runtime.observer`)."""
        self.inbound.observer = self.courier.observer = self.presence.observer = observer

    @property
    def control_url(self) -> str | None:
        """The dashboard's address once running (None without ``control_port``)."""
        return self.control.url if self.control is not None and self.control.port is not None else None

    @property
    def replayed_answers(self) -> int:
        """Answers a killed predecessor (or, with several instances, a dead peer) had recorded but
        not finished handing to the handlers, handed over since. The only ones a handler can see twice."""
        return self.timers.replayed_answers

    @property
    def jid(self) -> str:
        """The component's JID, where VENs send their requests."""
        return self.component.jid.bare

    @property
    def connected(self) -> bool:
        """Whether the component has a session with its XMPP server right now."""
        return self.component.connected

    def add_handler(self, name: str, handler: Callable[..., Any]) -> None:
        """Install a handler by its OpenLEADR name, e.g. ``add_handler('on_create_party_registration', fn)``.

        Handlers may be plain functions or coroutine functions. An unknown name warns.
        """
        self._handlers.add(name, handler)

    async def run(self, timeout: float = 30.0) -> None:
        """Connect to the XMPP server and return once the component is serving.

        Serving continues in the background (reconnecting by itself) until :meth:`stop`. Raises
        :class:`~xmpp_vtn.runtime.stanzas.StreamFailed` if the server refuses the component.
        """
        if self.tune_gc:
            tune_for_serving()                  # start-up is done: what exists now lives as long as the VTN
        await self.timers.start()
        self.cluster.start(self.timers.sweep, self._settle_forwarded_answer,
                           listeners={"events": self.timers.on_event_changed})
        if self.control is not None and self.control.port is None:
            await self.control.start()          # before connecting: /healthz tells while it connects
        await self.component.start(timeout)
        if self.http is not None:
            await self.http.start()
        log.info("VTN %s serving as %s%s%s", self.vtn_id, self.jid,
                 f" and on {self.http.url}" if self.http is not None else "",
                 f" (instance {self.cluster.instance_id})" if self.cluster.shared else "")

    async def stop(self) -> None:
        """Stop taking requests, stop delivering, disconnect and release the store. What is still
        owed stays in the store and goes out on the next start."""
        await self.component.quiesce()
        if self.control is not None:
            await self.control.stop()
        if self.http is not None:
            await self.http.quiesce()
        await self.scheduler.shutdown()
        await self.courier.close()
        await self.presence.close()
        if self.http is not None:
            await self.http.stop()
            await self.http_pusher.close()

        await self.component.stop()
        self.inbound.close()
        await self.cluster.stop()
        self.store.close()

    # -- events ------------------------------------------------------------------------------------

    def add_event(self, ven_id: str | Iterable[str] | None, signal_name: str, signal_type: str, intervals: list,
                  callback: Callable[..., Any] | None = None, event_id: str | None = None,
                  targets: list | None = None, targets_by_type: dict | None = None,
                  market_context: str = "oadr://unknown.context", priority: int | None = None,
                  response_required: str = "always", notification_period: timedelta | None = None,
                  ramp_up_period: timedelta | None = None, recovery_period: timedelta | None = None,
                  signal_target_mrid: str | None = None, current_value: float | None = None,
                  test_event: bool = False, vtn_comment: str | None = None,
                  delivery_callback: Callable[..., Any] | None = None) -> str:
        """Create an event for one VEN or several and push it to them at once; returns its event_id.

        OpenLEADR's arguments, same meaning. ``intervals`` are dicts or :class:`~xmpp_vtn.objects.Interval`
        with ``dtstart`` (the first at least), ``duration`` and ``signal_payload``, contiguous.
        ``callback(ven_id, event_id, opt_type)`` is called when a VEN answers (sync or async);
        ``delivery_callback(ven_id, event_id)`` when a VEN acknowledges a new modification. Both
        live in this process only: after a restart, answers reach the ``on_created_event`` handler
        alone (the VTN logs a warning saying so, once), so handle anything that must not be lost there.

        With ``ven_id=None`` the event goes to the VENs the ``on_targets(targets)`` handler names for
        its ``targets`` (groups, resources, areas, ...).

        >>> vtn.add_event("ven-1", "SIMPLE", "level", [{"dtstart": start, "duration": timedelta(hours=1),
        ...                                              "signal_payload": 1.0}])   # doctest: +SKIP
        """
        if ven_id is None:
            ven_id = self._resolve_targets(targets, targets_by_type)
        ven_ids = self._registered_ven_ids(ven_id)
        event = build_event(
            ven_ids=ven_ids, signal_name=signal_name, signal_type=signal_type, intervals=intervals,
            event_id=event_id, targets=targets, targets_by_type=targets_by_type, market_context=market_context,
            priority=priority, response_required=response_required, notification_period=notification_period,
            ramp_up_period=ramp_up_period, recovery_period=recovery_period, signal_target_mrid=signal_target_mrid,
            current_value=current_value, test_event=test_event, vtn_comment=vtn_comment,
            created=self.scheduler.now())
        return self.timers.publish(self.event_service.add(event, ven_ids, callback, delivery_callback))

    def add_raw_event(self, ven_id: str | Iterable[str], event: Any, callback: Callable[..., Any] | None = None,
                      delivery_callback: Callable[..., Any] | None = None) -> str:
        """Add an event built by hand (an :class:`~xmpp_vtn.objects.Event` or its dict); returns its event_id.

        Its modification number and status are the VTN's to manage: they start at 0 and follow the clock.
        """
        ven_ids = self._registered_ven_ids(ven_id)
        event = self._normalized_raw(event)
        event["event_descriptor"]["modification_number"] = 0
        return self.timers.publish(self.event_service.add(event, ven_ids, callback, delivery_callback))

    def _normalized_raw(self, event: Any) -> dict:
        """A hand-built event as the dict the codec reads back (validated on the way)."""
        period = event["active_period"] if isinstance(event, dict) else event.active_period
        start = period["dtstart"] if isinstance(period, dict) else period.dtstart
        aware(start, "active_period.dtstart")             # a naive start is refused by the codec; warn first
        event = codec.parse(codec.serialize("oadrDistributeEvent", {
            "request_id": "raw", "vtn_id": self.vtn_id, "events": [event]}))[1]["events"][0]
        return event

    def modify_event(self, event_id: str, intervals: list | None = None, *, reason: str | None = None,
                     **changes: Any) -> int:
        """Change an event (new intervals, priority, ...); pushes it with the next modification number,
        which is returned. Keyword arguments are ``add_event``'s."""
        current = self.event_service.existing(event_id)
        if len(current.event["event_signals"]) > 1 or current.event.get("event_baseline"):
            raise ValueError(f"event {event_id!r} has several signals or a baseline: change it with "
                             "modify_raw_event(event_id, event)")
        descriptor = current.event["event_descriptor"]
        signal = current.event["event_signals"][0]
        period = current.event["active_period"]
        arguments = dict(
            ven_ids=list(current.ven_ids), signal_name=signal["signal_name"], signal_type=signal["signal_type"],
            intervals=intervals if intervals is not None else _with_starts(signal["intervals"], period["dtstart"]),
            event_id=event_id, targets=_own_targets(current), targets_by_type=None,
            market_context=descriptor["market_context"], priority=descriptor.get("priority"),
            response_required=current.event.get("response_required", "always"),
            notification_period=period.get("notification_period"), ramp_up_period=period.get("ramp_up_period"),
            recovery_period=period.get("recovery_period"), signal_target_mrid=None,
            current_value=signal.get("current_value"), test_event=bool(descriptor.get("test_event")),
            vtn_comment=descriptor.get("vtn_comment"), created=descriptor["created_date_time"])
        unknown = set(changes) - set(arguments) - {"signal_name", "signal_type"}
        if unknown:
            raise TypeError(f"modify_event got unknown arguments: {', '.join(sorted(unknown))}")
        if "ven_ids" in changes:
            changes["ven_ids"] = self._registered_ven_ids(changes["ven_ids"])
        arguments.update(changes)
        event = build_event(**arguments)
        event["event_signals"][0]["signal_id"] = signal["signal_id"]
        if "signal_target_mrid" not in changes and signal.get("targets"):
            event["event_signals"][0]["targets"] = signal["targets"]      # kept unless replaced
        record = self.event_service.replace(event_id, event, ven_ids=arguments["ven_ids"], reason=reason)
        self.timers.publish(record)
        return record.modification_number

    def modify_raw_event(self, event_id: str, event: Any, reason: str | None = None) -> int:
        """Replace an event with a hand-built one (an :class:`~xmpp_vtn.objects.Event` or dict);
        pushes it with the next modification number, which is returned."""
        event = self._normalized_raw(event)
        record = self.event_service.replace(event_id, event, reason=reason)
        self.timers.publish(record)
        return record.modification_number

    def cancel_event(self, event_id: str) -> None:
        """Cancel an event; the VENs holding it are told at once (status cancelled)."""
        self.timers.publish(self.event_service.cancel(event_id))

    def events(self, ven_id: str | None = None) -> list[EventState]:
        """The VTN's events (only ``ven_id``'s, when given) with their status and per-VEN delivery and opt."""
        return [self._state(record) for record in self.store.events(ven_id)]

    def event(self, event_id: str) -> EventState | None:
        """One event with its status and per-VEN delivery and opt (None for an unknown event)."""
        record = self.store.event(event_id)
        return self._state(record) if record is not None else None

    def _state(self, record: EventRecord) -> EventState:
        deliveries = {d.ven_id: d for d in self.store.deliveries(event_id=record.event_id)}
        # A copy: the stored event is shared with every push that reads it.
        return EventState(record.event_id, record.modification_number, self.event_service.status(record),
                          copy.deepcopy(record.event), deliveries)

    def _resolve_targets(self, targets: list | None, targets_by_type: dict | None) -> list[str]:
        handler = self._handlers.get("on_targets")
        if not targets and not targets_by_type:
            raise ValueError("add_event needs ven_id, or targets that the on_targets handler resolves to venIDs")
        if handler is None:
            raise ValueError("add_event without ven_id needs an on_targets(targets) handler returning venIDs")
        found = handler(targets if targets is not None else targets_by_type)
        if inspect.isawaitable(found):
            close = getattr(found, "close", None)
            if close:
                close()
            raise TypeError("on_targets must be a plain function: add_event is not a coroutine")
        found = list(found or [])
        if not found:
            raise ValueError(f"on_targets found no VEN for targets {targets or targets_by_type!r}")
        return found

    # -- reports -----------------------------------------------------------------------------------

    async def request_report(self, ven_id: str, report_specifier_id: str, r_ids: Iterable[str] | None = None,
                             granularity: timedelta = timedelta(0), report_back_duration: timedelta = timedelta(0),
                             start: datetime | None = None, duration: timedelta | None = None,
                             callback: Callable[..., Any] | None = None) -> str:
        """Ask ``ven_id`` for a report it offered (oadrCreateReport, pushed); returns the report request id.

        ``callback(data)`` gets each update's ``[(datetime, value), ...]`` per rID. ``start`` and
        ``duration`` bound the report (a history report's window). ValueError for a report or rID
        the VEN did not offer.
        """
        ven = self._registered(ven_id)
        push = self.report_service.request(ven_id, report_specifier_id, r_ids, granularity, report_back_duration,
                                           callback, start, duration)
        await self._deliver(ven, push)            # owed until acknowledged, like every push
        return push.payload["report_requests"][0]["report_request_id"]

    async def cancel_report(self, ven_id: str, report_request_id: str) -> bool:
        """Stop a report the VTN asked ``ven_id`` for (oadrCancelReport, pushed). True once
        acknowledged; False if it stays owed until the VEN shows up."""
        ven = self._registered(ven_id)
        return await self._deliver(ven, self.report_service.cancel(ven_id, report_request_id))

    def report_requests(self, ven_id: str | None = None) -> list:
        """The VTN's report requests to VENs (documents with ``key`` = report request id and ``state``)."""
        return self.report_service.requests(ven_id)

    def report_offers(self, ven_id: str | None = None) -> list:
        """The reports VENs offered (their METADATA reports)."""
        return self.report_service.offers(ven_id)

    def add_report(self, callback: Callable[[], Any], report_specifier_id: str, r_id: str | None = None,
                   resource_id: str | None = None, measurement: str = "energyReal", unit: str = "Wh",
                   scale: str = "none", description: str | None = None, report_name: str = "TELEMETRY_USAGE",
                   report_type: str = "usage", reading_type: str = "Direct Read",
                   sampling_rate: timedelta = timedelta(seconds=10)) -> str:
        """Offer one of the VTN's own readings to VENs; ``callback()`` (sync or async) gives its value
        (or a list of ``(datetime, value)``). Returns the rID. Offered to each VEN after it registers."""
        r_id = r_id or uuid.uuid4().hex
        item = {"name": measurement, "description": description or _ITEM_DESCRIPTIONS.get(measurement, measurement),
                "unit": unit, "scale": scale}
        if measurement.startswith("power"):
            item["power_attributes"] = {"hertz": 60, "voltage": 120, "ac": True}
        entry = {"r_id": r_id, "report_type": report_type, "reading_type": reading_type, "measurement": item,
                 "sampling_rate": {"min_period": sampling_rate, "max_period": sampling_rate, "on_change": False}}
        if resource_id is not None:
            entry["report_data_source"] = {"resource_id": [resource_id]}
        existing = self.report_service.vtn_reports.get(report_specifier_id)
        report = dict(existing.report) if existing else {
            "report_specifier_id": report_specifier_id, "report_name": f"METADATA_{report_name}",
            "report_request_id": "0", "created_date_time": self.scheduler.now(), "report_descriptions": []}
        report["report_descriptions"] = [*report["report_descriptions"], entry]
        encode_document("report_offer", report)          # refuse a bad description now, not at a VEN
        sources = {**(existing.sources if existing else {}), r_id: callback}
        self.report_service.add_vtn_report(VTNReport(report, sources))
        return r_id

    # -- opts ---------------------------------------------------------------------------------------

    def opts(self, ven_id: str | None = None) -> list[dict]:
        """The opt schedules VENs sent (oadrCreateOpt payloads) that are in force."""
        return self.opt_service.opts(ven_id)

    def _registered(self, ven_id: str) -> VenRecord:
        ven = self.store.ven(ven_id)
        if ven is None:
            raise KeyError(f"venID {ven_id!r} is not registered")
        return ven

    def _registered_ven_ids(self, ven_id: str | Iterable[str]) -> list[str]:
        ven_ids = ven_id_list(ven_id)
        unknown = [item for item in ven_ids if self.store.ven(item) is None]
        if unknown:
            raise ValueError(f"venID {', '.join(unknown)} is not registered with this VTN")
        return ven_ids

    def _on_session_start(self) -> None:
        self.courier.wake_everyone()

    # -- several instances ---------------------------------------------------------------------------

    def _forward_answer(self, answer: Answer) -> None:
        """A VEN's answer to an iq another instance sent (the server chose us): pass it on."""
        self.cluster.pass_on_answer(answer.encode())

    def _settle_forwarded_answer(self, line: str) -> None:
        try:
            self.component.settle(Answer.decode(line))
        except (ValueError, TypeError):
            log.warning("ignored a malformed forwarded answer: %.200r", line)

    def _on_presence(self, sender: str, available: bool) -> None:
        self.presence.on_presence(sender, available)

    # -- liveness ----------------------------------------------------------------------------------

    def is_online(self, ven_id: str) -> bool | None:
        """Whether ``ven_id`` is online, as far as the VTN knows (None: not heard of since start)."""
        return self.presence.is_online(ven_id)

    def vens(self) -> list[VenRecord]:
        """The registered VENs: venID, registration id, bare JID and the full JID pushes go to."""
        return self.store.vens()

    async def cancel_party_registration(self, ven_id: str) -> bool:
        """Cancel ``ven_id``'s registration and tell the VEN (oadrCancelPartyRegistration).

        The registration is gone at once. Returns True when the VEN acknowledged, False when it
        could not be reached yet: the message stays owed and is delivered when it shows up.
        Raises KeyError for a venID that is not registered.
        """
        ven, push = self.registration.cancel_by_vtn(ven_id)
        self.effects.forget(ven_id)
        return await self._deliver(ven, push)

    async def request_reregistration(self, ven_id: str) -> bool:
        """Ask ``ven_id`` to register again (oadrRequestReregistration). True once acknowledged;
        False if it stays owed (the VEN is offline), to be delivered when it shows up."""
        ven, push = self.registration.reregistration_request(ven_id)
        return await self._deliver(ven, push)

    async def _deliver(self, ven: VenRecord, push: Push) -> bool:
        """Queue ``push`` in the outbox and send it: True once acknowledged, False if it stays owed."""
        return await self.courier.send(ven.ven_id, ven.transport_address, push)

    async def _on_request(self, sender: str, addressed: str, data: bytes) -> bytes | None:
        """One inbound iq, through the pipeline (:mod:`xmpp_vtn.runtime.inbound`); the component
        admitted it when it arrived."""
        return await self.inbound(sender, addressed, data, admitted=True)

    async def _on_http_request(self, sender, addressed: str, data: bytes, account: str | None) -> bytes | None:
        """One simpleHTTP POST, through the same pipeline."""
        return await self.inbound(sender, addressed, data, account)

    async def _on_http_push_answer(self, to: str, body: bytes) -> None:
        """A VEN answered a push with an OpenADR message in the response body: take it as its request."""
        ven = next((ven for ven in self.store.vens() if ven.transport_address == to), None)
        if ven is None:
            return
        try:
            await self.inbound(ven.bare_jid, "", body, answered=False)
        except Exception as error:            # the VEN gets no answer to an answer; say why here
            log.warning("venID %s answered a push with a message the VTN could not take: %s", ven.ven_id, error)

    @property
    def http_url(self) -> str | None:
        """The simpleHTTP base URL VENs use (OpenLEADR's ``vtn_url``), once running; None without HTTP."""
        return self.http.url if self.http is not None and self.http.port is not None else None

    # -- the operator's desk (:class:`xmpp_vtn.control.desk.OperatorDesk`) ---------------------------

    def event_ven_ids(self, event_id: str) -> list[str]:
        """The venIDs event ``event_id`` is for (empty for an unknown event)."""
        record = self.store.event(event_id)
        return list(record.ven_ids) if record is not None else []

    def is_registered(self, ven_id: str) -> bool:
        """Whether ``ven_id`` is registered with this VTN."""
        return self.store.ven(ven_id) is not None

    def now(self) -> datetime:
        """The VTN's clock (the scheduler's)."""
        return self.scheduler.now()

    @property
    def resolves_targets(self) -> bool:
        """Whether ``add_event`` may be given targets instead of venIDs (``on_targets`` is installed)."""
        return self._handlers.get("on_targets") is not None

    def quota_refusals(self) -> dict[str, int]:
        """Limit name -> refusals by this process since start (see docs/operations.md, quotas)."""
        return dict(self.quota_guard.counters)

    def recorded_liveness(self) -> dict[str, tuple[str, datetime | None]]:
        """venID -> (state, last seen) as the instances recorded it in the store."""
        return self.store.liveness()

    def owed_pushes(self) -> dict[str, int]:
        """venID -> how many queued pushes it is owed."""
        return dict(Counter(item.ven_id for item in self.store.outbox()))

    def deliveries_of(self, ven_ids: Collection[str]) -> dict[str, list[Delivery]]:
        """venID -> its deliveries and opt answers, for each of ``ven_ids``."""
        if len(ven_ids) <= _READS_PER_VEN:
            return {ven_id: self.store.deliveries(ven_id=ven_id) for ven_id in ven_ids}
        found: dict[str, list[Delivery]] = {ven_id: [] for ven_id in ven_ids}
        for delivery in self.store.deliveries():        # many VENs: one read, not one each
            if delivery.ven_id in found:
                found[delivery.ven_id].append(delivery)
        return found

    def served_report_requests(self, ven_id: str | None = None) -> list[Document]:
        """The VENs' requests for the VTN's own reports (``add_report``)."""
        return self.store.documents(VTN_REQUEST, ven_id)

    def store_reachable(self) -> bool:
        """Whether the store answers a read now."""
        try:
            self.store.ven("")
        except Exception:
            return False
        return True


def _own_targets(record: EventRecord) -> list | None:
    """An event's targets for modify_event: None when they are just its venIDs (add_event wrote
    them), so that a change of ``ven_ids`` rewrites them too."""
    targets = record.event.get("targets") or []
    if all(set(target) == {"ven_id"} for target in targets) and \
            {target["ven_id"] for target in targets} == set(record.ven_ids):
        return None
    return targets


# The schema fixes each item base's description; these are what a user means by the name.
_ITEM_DESCRIPTIONS = {
    "powerReal": "RealPower", "powerApparent": "ApparentPower", "powerReactive": "ReactivePower",
    "energyReal": "RealEnergy", "energyApparent": "ApparentEnergy", "energyReactive": "ReactiveEnergy",
    "voltage": "Voltage", "current": "Current", "frequency": "Frequency", "currencyPerThm": "currency",
    "pulseCount": "pulse count",
}


def _with_starts(intervals: list[dict], start: datetime) -> list[dict]:
    """Stored intervals with their dtstart filled in, as add_event takes them."""
    result, at = [], start
    for interval in intervals:
        result.append({**interval, "dtstart": interval.get("dtstart") or at})
        at = result[-1]["dtstart"] + interval["duration"]
    return result


__all__ = ["VTNComponent", "EventState", "PushFailed"]
