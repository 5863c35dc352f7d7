"""EiReport in both directions, free of I/O.

VEN -> VTN: a VEN offers reports (oadrRegisterReport); the application picks what it wants
through ``on_register_report`` (OpenLEADR's compact or full form); the VTN asks for it in the
answer (oadrRegisteredReport) or later (:meth:`ReportService.request`), and the VEN's
oadrUpdateReport readings reach the callbacks.

VTN -> VEN: the application describes its own reports (``add_report``); the VTN offers them to
every VEN that registers; a VEN's request (oadrRegisteredReport or oadrCreateReport) becomes a
subscription the facade serves on schedule.

Stored: offers (kind ``report_offer``), the VTN's requests to VENs (``report_request``) and the
VENs' requests to the VTN (``vtn_report_request``), each with a state: requested, active.
"""
from __future__ import annotations

import inspect
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from ..store import Document, Store, VenRecord
from ..store.documents import received_offers
from . import codes
from .handlers import Handlers, invoke
from .outcome import Outcome, Push, Refusal, Request, Route, ScheduleReport, UnscheduleReport, acknowledge, response
from .quotas import QuotaGuard
from .registration import new_request_id

log = logging.getLogger("xmpp_vtn.reports")

OFFER, REQUEST, VTN_REQUEST = "report_offer", "report_request", "vtn_report_request"
REQUESTED, ACTIVE = "requested", "active"
# Reports the compact handler is asked about at registration. History reports are asked for
# later, for a window the application chooses (VTNComponent.request_report with start/duration).
TELEMETRY = ("METADATA_TELEMETRY_USAGE", "METADATA_TELEMETRY_STATUS")
ReadingCallback = Callable[[list[tuple[datetime, Any]]], Any]


@dataclass
class VTNReport:
    """One report the VTN itself offers: its METADATA description and a value source per rID."""

    report: dict
    sources: dict[str, Callable[[], Any]] = field(default_factory=dict)


def _offer_key(ven_id: str, report_specifier_id: str) -> str:
    return f"{ven_id}\x1f{report_specifier_id}"


def _descriptions(report: dict) -> dict[str, dict]:
    return {description["r_id"]: description for description in report.get("report_descriptions") or []}


def _positional_count(function: Callable) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return 99                                   # takes anything: give it everything
    return len([p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


class ReportService:
    """Report offers, subscriptions both ways, and the VENs' readings."""

    def __init__(self, store: Store, handlers: Handlers, vtn_id: str, now: Callable[[], datetime],
                 quotas: QuotaGuard | None = None):
        self.store, self.handlers, self.vtn_id, self.now = store, handlers, vtn_id, now
        self.quotas = quotas or QuotaGuard()
        # Python callables live as long as the process: (report_request_id, r_id) -> callback.
        self.callbacks: dict[tuple[str, str], ReadingCallback] = {}
        self.vtn_reports: dict[str, VTNReport] = {}
        # reportIDs already delivered to callbacks, newest last: a VEN resending an update it got
        # no answer to must not make a callback fire twice. Bounded; lost on restart.
        self._delivered_reports: dict[str, OrderedDict[str, None]] = {}
        self._said_nothing_requested = False
        self._callback_owners: dict[str, str] = {}      # report_request_id -> venID, for forget()

    # -- VEN -> VTN: offers and the application's choice -----------------------------------------

    @property
    def routes(self) -> dict[str, Route]:
        """The EiReport messages a registered VEN may send: its own reports (VEN -> VTN) and its
        requests for the VTN's (VTN -> VEN)."""
        return {
            "oadrRegisterReport": Route(self.register_report, "oadrRegisteredReport"),
            "oadrCreatedReport": Route(self.created_report),
            "oadrUpdateReport": Route(self.update_report, "oadrUpdatedReport"),
            "oadrCanceledReport": Route(self.canceled_report),
            "oadrUpdatedReport": Route(self.updated_report),
            "oadrRegisteredReport": Route(self.registered_report),
            "oadrCreateReport": Route(self.create_report, "oadrCreatedReport"),
            "oadrCancelReport": Route(self.cancel_report, "oadrCanceledReport"),
        }

    async def register_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrRegisterReport from a VEN: keep its offers, ask for what the application wants."""
        reports = request.payload.get("reports") or []
        limits = self.quotas.quotas
        self.quotas.check("report_offers_per_ven", request.bare_jid, len(reports), limits.report_offers_per_ven,
                          "reports offered in one oadrRegisterReport")
        for report in reports:
            self.quotas.check("readings_per_report", request.bare_jid, len(report.get("report_descriptions") or []),
                              limits.readings_per_report, f"readings in report {report['report_specifier_id']}")
        chosen = []
        for report in reports:
            chosen.extend(await self._choose(ven.ven_id, report))
        # A new registration replaces the old offers, and with them every request the VTN made
        # for them: the picks just made ask again for what is still wanted.
        for key in self.store.document_keys(OFFER, ven.ven_id):
            self.store.remove_document(OFFER, key)
        for key in self.store.document_keys(REQUEST, ven.ven_id):
            self._drop_request(key)
        received = received_offers(request.document) if request.document is not None and reports else []
        if len(received) != len(reports):
            received = [None] * len(reports)             # encoded again from the dicts
        for report, encoded in zip(reports, received):
            self.store.put_document(Document(OFFER, _offer_key(ven.ven_id, report["report_specifier_id"]),
                                             ven.ven_id, report, "offered"), encoded)
        report_requests = [self._subscribe(ven.ven_id, *group) for group in _grouped(chosen)]
        if reports and not chosen and "on_register_report" in self.handlers and not self._said_nothing_requested:
            # Once per process: usually a handler whose names or return value do not fit, which
            # otherwise looks like VENs that never send readings.
            self._said_nothing_requested = True
            offered = sorted({(description.get("measurement") or {}).get("name") or description.get("report_type")
                              for report in reports for description in report.get("report_descriptions") or []})
            log.warning("on_register_report requested nothing of venID %s's offer (%s); it must return "
                        "(callback, sampling_interval) for a reading it wants (said once)", ven.ven_id,
                        ", ".join(str(name) for name in offered) or "no readings")
        return Outcome(("oadrRegisteredReport", {"response": response(codes.OK, request.request_id),
                                                 "report_requests": report_requests, "ven_id": ven.ven_id}))

    async def _choose(self, ven_id: str, report: dict) -> list[tuple]:
        """[(report, description, callback, sampling_interval, report_interval)] the application wants."""
        handler = self.handlers.get("on_register_report")
        if handler is None:
            return []
        descriptions = _descriptions(report)
        if _positional_count(handler) == 1:                       # the full form: the whole report
            picks = await self.handlers.call("on_register_report", report) or []
            choices = []
            for pick in picks:
                if not isinstance(pick, (tuple, list)) or len(pick) not in (3, 4):
                    log.warning("on_register_report (full form) must return [(callback, r_id, sampling_interval"
                                "[, report_interval]), ...]; ignored %r for venID %s", pick, ven_id)
                    continue
                callback, r_id, sampling, *rest = pick
                if r_id not in descriptions:
                    log.warning("on_register_report picked rID %s, which report %s of venID %s does not offer; "
                                "not requested", r_id, report["report_specifier_id"], ven_id)
                    continue
                choices.append((report, descriptions[r_id], callback, sampling, rest[0] if rest else None))
        elif report.get("report_name") in TELEMETRY:              # the compact form: one call per reading
            choices = []
            with_ven = _positional_count(handler) >= 7
            for description in descriptions.values():
                measurement = description.get("measurement") or {}
                rate = description.get("sampling_rate") or {}
                resources = (description.get("report_data_source") or {}).get("resource_id")
                # One resource reads back as a string, several as a list.
                resource_id = resources[0] if isinstance(resources, list) else resources
                arguments = (resource_id, measurement.get("name") or description.get("report_type"),
                             measurement.get("unit"), measurement.get("scale"),
                             rate.get("min_period"), rate.get("max_period"))
                picked = await self.handlers.call("on_register_report", *((ven_id,) + arguments if with_ven
                                                                          else arguments))
                if not picked:
                    continue
                if not isinstance(picked, (tuple, list)) or len(picked) not in (2, 3):
                    log.warning("on_register_report must return (callback, sampling_interval[, report_interval]) "
                                "or None; ignored %r for rID %s of venID %s", picked, description["r_id"], ven_id)
                    continue
                callback, sampling, *rest = picked
                choices.append((report, description, callback, sampling, rest[0] if rest else None))
        else:
            return []
        return [choice for choice in choices if self._within_range(ven_id, *choice)]

    @staticmethod
    def _within_range(ven_id: str, report: dict, description: dict, callback: Any, sampling: Any,
                      report_interval: Any) -> bool:
        rate = description.get("sampling_rate") or {}
        low, high = rate.get("min_period"), rate.get("max_period")
        # A None callback is allowed: the readings then go to on_update_report only.
        if not isinstance(sampling, timedelta) or not (callback is None or callable(callback)):
            log.warning("on_register_report must return (callback, sampling_interval[, report_interval]); got "
                        "(%r, %r) for rID %s of venID %s: not requested", callback, sampling, description["r_id"],
                        ven_id)
            return False
        if (low is not None and sampling < low) or (high is not None and high > timedelta(0) and sampling > high):
            log.warning("rID %s of venID %s samples between %s and %s; %s was asked for: not requested",
                        description["r_id"], ven_id, low, high, sampling)
            return False
        return True

    def _subscribe(self, ven_id: str, report: dict, granularity: timedelta, report_back: timedelta,
                   picks: list[tuple[dict, Any]], start: datetime | None = None,
                   duration: timedelta | None = None) -> dict:
        """Store one report request (state requested) and remember its callbacks; returns it."""
        specifier: dict[str, Any] = {
            "report_specifier_id": report["report_specifier_id"], "granularity": granularity,
            "report_back_duration": report_back,
            "specifier_payloads": [{key: value for key, value in (
                ("r_id", description["r_id"]), ("measurement", description.get("measurement")),
                ("reading_type", description.get("reading_type") or "Direct Read")) if value is not None}
                for description, _ in picks]}
        if start is not None:
            specifier["report_interval"] = {"dtstart": start, "duration": duration or timedelta(0)}
        report_request = {"report_request_id": uuid.uuid4().hex, "report_specifier": specifier}
        self.store.put_document(Document(REQUEST, report_request["report_request_id"], ven_id, report_request,
                                         REQUESTED))
        for description, callback in picks:
            if callback is not None:
                self.callbacks[(report_request["report_request_id"], description["r_id"])] = callback
                self._callback_owners[report_request["report_request_id"]] = ven_id
        return report_request

    def request(self, ven_id: str, report_specifier_id: str, r_ids: Iterable[str] | None,
                granularity: timedelta, report_back_duration: timedelta, callback: ReadingCallback | None,
                start: datetime | None = None, duration: timedelta | None = None) -> Push:
        """The oadrCreateReport asking ``ven_id`` for a report it offered (ValueError if it did not)."""
        offer = self.store.document(OFFER, _offer_key(ven_id, report_specifier_id))
        if offer is None:
            raise ValueError(f"venID {ven_id} offers no report {report_specifier_id!r}")
        descriptions = _descriptions(offer.payload)
        wanted = list(r_ids) if r_ids is not None else list(descriptions)
        missing = [r_id for r_id in wanted if r_id not in descriptions]
        if missing or not wanted:
            raise ValueError(f"report {report_specifier_id!r} of venID {ven_id} has no rID {', '.join(missing)}; "
                             f"it offers {', '.join(descriptions) or 'none'}")
        report_request = self._subscribe(ven_id, offer.payload, granularity, report_back_duration,
                                         [(descriptions[r_id], callback) for r_id in wanted], start, duration)
        return Push(ven_id, "oadrCreateReport", {"request_id": new_request_id(), "report_requests": [report_request],
                                                 "ven_id": ven_id})

    def cancel(self, ven_id: str, report_request_id: str) -> Push:
        """Forget a request to ``ven_id`` and return the oadrCancelReport that tells it."""
        document = self.store.document(REQUEST, report_request_id)
        if document is None or document.ven_id != ven_id:
            raise KeyError(f"no report request {report_request_id!r} to venID {ven_id}")
        self._drop_request(report_request_id)
        return Push(ven_id, "oadrCancelReport", {"request_id": new_request_id(), "report_request_ids":
                                                 [report_request_id], "report_request_id": report_request_id,
                                                 "report_to_follow": False, "ven_id": ven_id})

    def _drop_request(self, report_request_id: str) -> None:
        self.store.remove_document(REQUEST, report_request_id)
        self._drop_callbacks(report_request_id)

    def _drop_callbacks(self, report_request_id: str) -> None:
        self._callback_owners.pop(report_request_id, None)
        for key in [key for key in self.callbacks if key[0] == report_request_id]:
            del self.callbacks[key]

    def requests(self, ven_id: str | None = None) -> list[Document]:
        """The VTN's report requests to VENs, with their state."""
        return self.store.documents(REQUEST, ven_id)

    def forget(self, ven_id: str) -> None:
        """A VEN's registration is gone: drop what this process keeps of it (reading callbacks,
        delivered report ids). The stored documents went with :meth:`Store.purge_ven`."""
        for report_request_id in [rrid for rrid, owner in self._callback_owners.items() if owner == ven_id]:
            self._drop_callbacks(report_request_id)
        self._delivered_reports.pop(ven_id, None)

    def offers(self, ven_id: str | None = None) -> list[Document]:
        """The reports VENs offered."""
        return self.store.documents(OFFER, ven_id)

    # -- VEN -> VTN: the VEN's messages ----------------------------------------------------------

    async def created_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCreatedReport: the VEN confirms the requests it will serve (pending reports)."""
        pending = [item["report_request_id"] for item in request.payload.get("pending_reports") or []]
        for report_request_id in pending:
            document = self.store.document(REQUEST, report_request_id)
            if document is not None and document.ven_id == ven.ven_id and document.state != ACTIVE:
                self.store.put_document(replace(document, state=ACTIVE))
        await self.handlers.call("on_created_report", request.payload)
        return acknowledge(request, ven.ven_id)

    async def update_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrUpdateReport: readings for requests the VTN made. All are checked before any callback."""
        deliveries = []
        for report in request.payload.get("reports") or []:
            report_request_id = report.get("report_request_id")
            document = self.store.document(REQUEST, report_request_id)
            if document is None or document.ven_id != ven.ven_id:
                raise Refusal(codes.INVALID_ID, f"no report request {report_request_id} for this VEN")
            asked = {item["r_id"] for item in document.payload["report_specifier"]["specifier_payloads"]}
            readings = _readings(report)
            unknown = sorted(set(readings) - asked)
            if unknown:
                raise Refusal(codes.INVALID_ID, f"rID {', '.join(unknown)} was not requested in {report_request_id}")
            deliveries.append((document, readings))
        fresh = [(document, readings, report_id) for (document, readings), report_id in
                 # An empty eiReportID (OpenLEADR's VENs send one) identifies nothing: never a resend.
                 zip(deliveries, [report.get("report_id") or None for report in request.payload.get("reports") or []])
                 if report_id is None or report_id not in self._delivered_reports.get(ven.ven_id, {})]
        # Noted before any handler awaits: a resend arriving meanwhile must not be delivered too.
        seen = self._delivered_reports.setdefault(ven.ven_id, OrderedDict())
        for _, _, report_id in fresh:
            if report_id is not None:
                seen[report_id] = None
                while len(seen) > 256:                 # per VEN: one VEN cannot push out the others'
                    seen.popitem(last=False)
        verdict = None
        if "on_update_report" in self.handlers:
            if fresh:
                try:
                    verdict = await self.handlers.call("on_update_report", request.payload)
                except Exception:
                    # The handler refused the readings (469): a resend must reach it again.
                    for _, _, report_id in fresh:
                        seen.pop(report_id, None)
                    raise
        else:
            for document, readings, _ in fresh:
                for r_id, data in readings.items():
                    await self._run_reading_callback(ven.ven_id, document.key, r_id, data)
        cancelled = self._cancelled_by(verdict, ven.ven_id, [document.key for document, _ in deliveries])
        for document, _ in deliveries:                 # readings arriving means the request is live
            if document.state != ACTIVE and document.key not in cancelled:
                self.store.put_document(replace(document, state=ACTIVE))
        answer = {"response": response(codes.OK, request.request_id), "ven_id": ven.ven_id}
        if cancelled:
            for report_request_id in cancelled:
                self._drop_request(report_request_id)
            log.info("on_update_report cancelled report request %s of venID %s", ", ".join(cancelled), ven.ven_id)
            answer["cancel_report"] = {"request_id": new_request_id(), "report_request_ids": cancelled,
                                       "report_to_follow": False, "ven_id": ven.ven_id}
        return Outcome(("oadrUpdatedReport", answer))

    def _cancelled_by(self, verdict: Any, ven_id: str, answered: list[str]) -> list[str]:
        """The report requests ``on_update_report``'s return value cancels: ``False`` cancels the
        ones this update answered; an iterable of report request ids cancels those of this VEN's
        requests; anything else (None, True) cancels nothing."""
        if verdict is False:
            return list(dict.fromkeys(answered))
        if isinstance(verdict, (list, tuple, set, frozenset)):
            chosen = []
            for report_request_id in verdict:
                document = self.store.document(REQUEST, str(report_request_id))
                if document is None or document.ven_id != ven_id:
                    log.warning("on_update_report asked to cancel report request %r, which venID %s does not "
                                "hold: ignored", report_request_id, ven_id)
                    continue
                chosen.append(document.key)
            return list(dict.fromkeys(chosen))
        return []

    async def _run_reading_callback(self, ven_id: str, key: str, r_id: str, data: list) -> None:
        """A per-reading ``callback(data)``, sync or async. Like an event's callback it is told
        after the fact: a failure is logged and the VEN's update is still acknowledged."""
        callback = self.callbacks.get((key, r_id))
        if callback is None:
            return
        try:
            await invoke(callback, data)
        except Exception:
            log.exception("report callback for rID %s of venID %s failed", r_id, ven_id)

    async def canceled_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCanceledReport: the VEN confirms a cancellation the VTN pushed."""
        return acknowledge(request, ven.ven_id)

    # -- VTN -> VEN: the VTN's own reports -------------------------------------------------------

    def add_vtn_report(self, report: VTNReport) -> None:
        self.vtn_reports[report.report["report_specifier_id"]] = report

    def register_push(self, ven_id: str) -> Push:
        """The oadrRegisterReport the VTN sends a VEN after it registers (empty if nothing is offered)."""
        reports = [dict(item.report, created_date_time=self.now()) for item in self.vtn_reports.values()]
        return Push(ven_id, "oadrRegisterReport", {"request_id": new_request_id(), "reports": reports,
                                                   "ven_id": ven_id, "report_request_id": "0"})

    def _accept_vtn_requests(self, ven: VenRecord, report_requests: list[dict]) -> list[dict]:
        """Check a VEN's requests for the VTN's reports: all are accepted, or a Refusal for the first
        bad one (nothing stored). A sampling period outside what the VTN offers for an rID is
        refused with 454 (invalid data); subscriptions beyond the VEN's quota with 451."""
        for report_request in report_requests:
            specifier = report_request["report_specifier"]
            offered = self.vtn_reports.get(specifier["report_specifier_id"])
            if offered is None:
                raise Refusal(codes.REPORT_NOT_SUPPORTED,
                              f"this VTN offers no report {specifier['report_specifier_id']}")
            missing = [item["r_id"] for item in specifier["specifier_payloads"] if item["r_id"] not in offered.sources]
            if missing:
                raise Refusal(codes.INVALID_ID, f"report {specifier['report_specifier_id']} has no rID "
                              f"{', '.join(missing)}")
            descriptions = _descriptions(offered.report)
            for item in specifier["specifier_payloads"]:
                problem = _outside_sampling(descriptions[item["r_id"]], specifier)
                if problem:
                    raise Refusal(codes.INVALID_DATA, f"report {specifier['report_specifier_id']} rID {item['r_id']}: "
                                  f"{problem}")
        held = set(self.store.document_keys(VTN_REQUEST, ven.ven_id))
        wanted = held | {subscription_key(ven.ven_id, item["report_request_id"]) for item in report_requests}
        self.quotas.check("subscriptions_per_ven", ven.bare_jid, len(wanted), self.quotas.quotas.subscriptions_per_ven,
                          "subscriptions to this VTN's reports")
        return report_requests

    def _store_vtn_requests(self, ven_id: str, report_requests: list[dict]) -> list[str]:
        """Store accepted requests; returns their keys. Keyed per VEN: two VENs may pick the same id."""
        keys = []
        for report_request in report_requests:
            key = subscription_key(ven_id, report_request["report_request_id"])
            self.store.put_document(Document(VTN_REQUEST, key, ven_id, report_request, ACTIVE))
            keys.append(key)
        return keys

    async def registered_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrRegisteredReport from a VEN (its answer to our offer): the requests it makes of us.

        With requests, the answer is the ceremony's oadrCreatedReport (in the iq result, as every
        answer); without, a plain oadrResponse.
        """
        accepted = self._accept_vtn_requests(ven, request.payload.get("report_requests") or [])
        scheduled = tuple(ScheduleReport(key) for key in self._store_vtn_requests(ven.ven_id, accepted))
        if not accepted:
            return acknowledge(request, ven.ven_id)
        return Outcome(("oadrCreatedReport", {"response": response(codes.OK, request.request_id),
                                              "pending_reports": self._pending(ven.ven_id),
                                              "ven_id": ven.ven_id}), scheduled)

    async def create_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCreateReport from a VEN: requests for the VTN's reports -> oadrCreatedReport."""
        accepted = self._accept_vtn_requests(ven, request.payload.get("report_requests") or [])
        await self.handlers.call("on_create_report", request.payload)   # raising here refuses, nothing stored
        scheduled = tuple(ScheduleReport(key) for key in self._store_vtn_requests(ven.ven_id, accepted))
        return Outcome(("oadrCreatedReport", {"response": response(codes.OK, request.request_id),
                                              "pending_reports": self._pending(ven.ven_id),
                                              "ven_id": ven.ven_id}), scheduled)

    async def cancel_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrCancelReport from a VEN: stop sending it the VTN's reports -> oadrCanceledReport."""
        ids = list(dict.fromkeys(request.payload.get("report_request_ids") or []))
        keys = [subscription_key(ven.ven_id, report_request_id) for report_request_id in ids]
        for report_request_id, key in zip(ids, keys):
            if self.store.document(VTN_REQUEST, key) is None:
                raise Refusal(codes.INVALID_ID, f"no report request {report_request_id} from this VEN",
                              pending_reports=self._pending(ven.ven_id))
        await self.handlers.call("on_cancel_report", request.payload)
        for key in keys:
            self.store.remove_document(VTN_REQUEST, key)
        return Outcome(("oadrCanceledReport", {"response": response(codes.OK, request.request_id),
                                               "pending_reports": self._pending(ven.ven_id),
                                               "ven_id": ven.ven_id}), tuple(UnscheduleReport(key) for key in keys))

    async def updated_report(self, request: Request, ven: VenRecord) -> Outcome:
        """oadrUpdatedReport: the VEN's answer to an update the VTN pushed."""
        return acknowledge(request, ven.ven_id)

    def _pending(self, ven_id: str) -> list[dict]:
        return [{"report_request_id": document.payload["report_request_id"]}
                for document in self.store.documents(VTN_REQUEST, ven_id)]

    async def update_push(self, key: str) -> Push | None:
        """The oadrUpdateReport owed for a VEN's subscription now (None once it is cancelled, or
        when the application no longer offers that report)."""
        document = self.store.document(VTN_REQUEST, key)
        if document is None:
            return None
        report_request_id = document.payload["report_request_id"]
        specifier = document.payload["report_specifier"]
        offered = self.vtn_reports.get(specifier["report_specifier_id"])
        if offered is None:
            log.warning("venID %s subscribes to report %s, which this VTN no longer offers (add_report): "
                        "no update sent", document.ven_id, specifier["report_specifier_id"])
            return None
        now = self.now()
        granularity = specifier.get("granularity") or timedelta(0)
        intervals = []
        for item in specifier["specifier_payloads"]:
            value = await invoke(offered.sources[item["r_id"]])
            samples = value if isinstance(value, list) else [(now, value)]
            for at, sample in samples:
                intervals.append({"dtstart": at, "duration": granularity,
                                  "report_payload": {"r_id": item["r_id"], "value": float(sample)}})
        report = {"report_id": uuid.uuid4().hex, "report_request_id": report_request_id,
                  "report_specifier_id": specifier["report_specifier_id"],
                  "report_name": offered.report["report_name"].removeprefix("METADATA_"),
                  "created_date_time": now, "intervals": intervals, "report_descriptions": []}
        return Push(document.ven_id, "oadrUpdateReport", {"request_id": new_request_id(), "reports": [report],
                                                          "ven_id": document.ven_id})


def _outside_sampling(description: dict, specifier: dict) -> str | None:
    """Why ``specifier`` asks ``description`` (an offered rID) for readings more often or more
    rarely than it is offered, or None. A zero granularity or report-back duration asks for no
    period of its own (one reading, or whatever the other says) and is always within range."""
    rate = description.get("sampling_rate") or {}
    low, high = rate.get("min_period"), rate.get("max_period")
    granularity = specifier.get("granularity") or timedelta(0)
    report_back = specifier.get("report_back_duration") or timedelta(0)
    if granularity > timedelta(0):
        if low is not None and granularity < low:
            return f"granularity {granularity} is shorter than the offered sampling period {low}"
        if high is not None and high > timedelta(0) and granularity > high:
            return f"granularity {granularity} is longer than the offered sampling period {high}"
    if report_back > timedelta(0) and low is not None and report_back < low:
        return f"reportBackDuration {report_back} is shorter than the offered sampling period {low}"
    return None


def subscription_key(ven_id: str, report_request_id: str) -> str:
    """Where a VEN's request for a VTN report is kept: report request ids are the VEN's to choose."""
    return f"{ven_id}\x1f{report_request_id}"


def subscription_owner(key: str) -> str:
    """The venID of a :func:`subscription_key`."""
    return key.split("\x1f", 1)[0]


def _grouped(choices: list[tuple]) -> list[tuple]:
    """One report request per (report, granularity, report-back duration), as the schema needs."""
    groups: dict[tuple, list] = {}
    reports = {}
    for report, description, callback, sampling, report_interval in choices:
        key = (report["report_specifier_id"], sampling, report_interval or sampling)
        reports[key] = report
        groups.setdefault(key, []).append((description, callback))
    return [(reports[key], key[1], key[2], picks) for key, picks in groups.items()]


def readings_of(report: dict) -> dict[str, list[tuple[datetime | None, Any]]]:
    """rID -> [(datetime, value)] of one report of an oadrUpdateReport (as its callbacks get them)."""
    return _readings(report)


def _readings(report: dict) -> dict[str, list[tuple[datetime | None, Any]]]:
    """rID -> [(datetime, value)] from a report's intervals; a status payload's value is its dict."""
    readings: dict[str, list] = {}
    at = report.get("dtstart")
    for interval in report.get("intervals") or []:
        start = interval.get("dtstart") or at
        payloads = interval.get("report_payloads") or ([interval["report_payload"]]
                                                       if interval.get("report_payload") else [])
        for item in payloads:
            value = item.get("value", item.get("resource_status"))
            readings.setdefault(item["r_id"], []).append((start, value))
        if start is not None and interval.get("duration"):
            at = start + interval["duration"]
    return readings
