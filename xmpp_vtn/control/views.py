"""What the control API and the dashboard show, as JSON-ready dicts built from the
:class:`~xmpp_vtn.control.desk.OperatorDesk` (so from the store: every instance of a cluster
shows the same VTN).

Datetimes are ISO 8601 in UTC with a ``Z``; durations are ISO 8601 durations (``PT1H``), as in
the requests the API takes.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Collection

from ..codec.values import format_datetime, format_duration
from ..services import lifecycle
from ..store import Document, VenRecord
from .desk import OperatorDesk
from .readings import Readings


def jsonable(value: Any) -> Any:
    """``value`` with datetimes and durations as ISO 8601 text, tuples as lists, recursively."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, timedelta):
        return format_duration(value) if not value.microseconds else f"PT{value.total_seconds()}S"
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    return value


def transport_of(transport_address: str, http_pull_model: bool | None) -> str:
    """``"simpleHttp"`` for a VEN reached over HTTP (a URL, or pulling), otherwise ``"xmpp"``."""
    if transport_address.startswith(("http://", "https://")) or http_pull_model:
        return "simpleHttp"
    return "xmpp"


def vens(desk: OperatorDesk, only: Collection[str] | None = None) -> list[dict]:
    """Every registered VEN (those in ``only``, when given): registration, transport, liveness as
    recorded, owed pushes."""
    liveness = desk.recorded_liveness()
    owed = desk.owed_pushes()
    return [ven_row(ven, liveness.get(ven.ven_id, (None, None)), owed.get(ven.ven_id, 0))
            for ven in desk.vens() if only is None or ven.ven_id in only]


def ven_row(ven: VenRecord, liveness: tuple[str | None, datetime | None], owed: int) -> dict:
    """One registered VEN as the API shows it, given its recorded (state, last seen) and owed pushes."""
    state, last_seen = liveness
    return {
        "ven_id": ven.ven_id, "ven_name": ven.ven_name, "registration_id": ven.registration_id,
        "jid": ven.bare_jid, "transport": transport_of(ven.transport_address, ven.http_pull_model),
        "transport_address": ven.transport_address, "registered_at": format_datetime(ven.registered_at),
        "online": None if state is None else state == "online", "state": state or "unknown",
        "last_seen": format_datetime(last_seen) if last_seen else None,
        "owed_pushes": owed,
    }


def delivery(item: Any, modification_number: int, status: str) -> dict:
    """One VEN's hold on one event: what it acknowledged, whether that is current, its opt answer."""
    return {
        "ven_id": item.ven_id, "delivered_modification": item.delivered_modification,
        "delivered_status": item.delivered_status,
        "up_to_date": (item.delivered_modification, item.delivered_status) == (modification_number, status),
        "opt_type": item.opt_type, "opt_modification": item.opt_modification,
        # An opt given for an older modification says nothing about this one.
        "opt_current": item.opt_type is not None and item.opt_modification == modification_number,
    }


def event(state: Any, with_deliveries: bool = True) -> dict:
    """An ``EventState`` as the API shows it; ``with_deliveries`` adds each VEN's delivery and opt."""
    record = state.event
    descriptor, period = record["event_descriptor"], record["active_period"]
    signal = record["event_signals"][0]
    start, end = lifecycle.bounds(period)
    deliveries = [delivery(item, state.modification_number, state.status)
                  for _, item in sorted(state.deliveries.items())]
    opts = Counter(item["opt_type"] if item["opt_current"] else "none" for item in deliveries)
    shown = {
        "event_id": state.event_id, "modification_number": state.modification_number, "status": state.status,
        "signal_name": signal["signal_name"], "signal_type": signal["signal_type"],
        "signals": len(record["event_signals"]),
        "intervals": jsonable([{"duration": interval["duration"], "signal_payload": interval.get("signal_payload")}
                               for interval in signal.get("intervals") or []]),
        "start": format_datetime(start), "duration": jsonable(period["duration"]),
        "end": format_datetime(end) if end else None,
        "market_context": descriptor.get("market_context"), "priority": descriptor.get("priority"),
        "test_event": bool(descriptor.get("test_event")), "vtn_comment": descriptor.get("vtn_comment"),
        "modification_reason": descriptor.get("modification_reason"),
        "created": jsonable(descriptor.get("created_date_time")),
        "targets": jsonable(record.get("targets") or []),
        "ven_ids": sorted(state.deliveries),
        "summary": {"vens": len(deliveries), "up_to_date": sum(item["up_to_date"] for item in deliveries),
                    "opt_in": opts.get("optIn", 0), "opt_out": opts.get("optOut", 0),
                    "no_answer": opts.get("none", 0)},
    }
    if with_deliveries:
        shown["deliveries"] = deliveries
    return shown


def events(desk: OperatorDesk, with_deliveries: bool = False, newest: int | None = None) -> list[dict]:
    """The events, oldest first (only the ``newest`` ones, when given)."""
    states = desk.events()
    if newest is not None:
        states = states[-newest:]
    return [event(state, with_deliveries) for state in states]


def subscription(document: Document, direction: str) -> dict:
    """A report subscription (either way) as the API shows it."""
    specifier = document.payload.get("report_specifier") or {}
    return {
        "report_request_id": document.payload.get("report_request_id"), "ven_id": document.ven_id,
        "direction": direction, "state": document.state,
        "report_specifier_id": specifier.get("report_specifier_id"),
        "r_ids": [item.get("r_id") for item in specifier.get("specifier_payloads") or []],
        "granularity": jsonable(specifier.get("granularity")),
        "report_back_duration": jsonable(specifier.get("report_back_duration")),
    }


def reports(desk: OperatorDesk, readings: Readings, ven_id: str | None = None) -> dict:
    """Report offers, subscriptions both ways, and the latest readings this instance received."""
    return {
        "offers": [{"ven_id": document.ven_id, "report_specifier_id": document.payload.get("report_specifier_id"),
                    "report_name": document.payload.get("report_name"),
                    "r_ids": [item.get("r_id") for item in document.payload.get("report_descriptions") or []]}
                   for document in desk.report_offers(ven_id)],
        "subscriptions": [subscription(document, "ven_to_vtn") for document in desk.report_requests(ven_id)]
        + [subscription(document, "vtn_to_ven") for document in desk.served_report_requests(ven_id)],
        "readings": readings.view(ven_id),
    }


def opts(desk: OperatorDesk, ven_id: str | None = None) -> list[dict]:
    """The opt schedules in force, as the VENs sent them."""
    return [jsonable(opt) for opt in desk.opts(ven_id)]
