"""What a VTN's store holds, for operators: ``xmpp-vtn status``.

:func:`gather` reads a :class:`~xmpp_vtn.store.Store` (and nothing else: no XMPP) and returns
plain dicts and lists (datetimes as :class:`datetime`, durations in seconds), so that tests and
other tools can use the facts; :func:`to_json` and :func:`render_text` present them.
:func:`open_for_reading` opens a store read-only, without changing it, also while a VTN is
running on it (WAL mode lets a reader in beside the writer of a SQLite file).
"""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .config import redact_url
from ..services import lifecycle
from ..store import DROP_REASONS, Delivery, Document, EventRecord, Store, StoreSchemaError, open_store

SUBSCRIPTION_KINDS = {
    # kind -> who reports to whom
    "report_request": "VEN reports to the VTN",
    "vtn_report_request": "VTN reports to the VEN",
}


class StoreUnavailable(Exception):
    """The store cannot be read: missing file, unreachable server, a schema this xmpp-vtn does not
    read (older, newer, or no xmpp-vtn store at all)."""


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a store can raise when the store, not the code, is the problem."""
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)     # OSError: ConnectionError too
    try:
        import psycopg
    except ImportError:
        return errors
    return (*errors, psycopg.Error)


READ_ERRORS = _read_errors()


# -- opening ---------------------------------------------------------------------------------------

def open_for_reading(store: str | Path) -> Store:
    """Open ``store`` (a file path, ``sqlite:///path`` or a ``postgresql://`` URL) to read it.

    Read-only through :func:`~xmpp_vtn.store.open_store`: no file or table is created, no
    migration runs and nothing is written, so a running VTN is undisturbed. A store that is not
    at the schema version this xmpp-vtn reads is reported, not changed. Raises
    :class:`StoreUnavailable` saying why it cannot be read.
    """
    try:
        return open_store(store, read_only=True)
    except (FileNotFoundError, StoreSchemaError, ConnectionError) as exc:
        raise StoreUnavailable(str(exc)) from None
    except (ValueError, *READ_ERRORS) as exc:
        raise StoreUnavailable(f"{redact_url(str(store))}: {exc}") from None


# -- gathering -------------------------------------------------------------------------------------

def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _vens(store: Store) -> list[dict]:
    liveness = store.liveness()
    vens = []
    for ven in store.vens():
        state, last_seen = liveness.get(ven.ven_id, (None, None))
        vens.append({
            "ven_id": ven.ven_id, "ven_name": ven.ven_name, "registration_id": ven.registration_id,
            "bare_jid": ven.bare_jid, "transport_address": ven.transport_address,
            "registered_at": ven.registered_at, "http_pull_model": ven.http_pull_model,
            "report_only": ven.report_only,
            # None: no VTN has recorded this VEN's liveness yet.
            "state": state, "last_seen": last_seen,
        })
    return vens


def _delivery(delivery: Delivery, record: EventRecord, status: str) -> dict:
    return {
        "ven_id": delivery.ven_id,
        "delivered_modification": delivery.delivered_modification,
        "delivered_status": delivery.delivered_status,
        # What the VEN acknowledged is what the VTN holds now; otherwise the VEN is owed a push.
        "up_to_date": (delivery.delivered_modification, delivery.delivered_status) == (record.modification_number,
                                                                                      status),
        "opt_type": delivery.opt_type,
        "opt_modification": delivery.opt_modification,
    }


def _event(store: Store, record: EventRecord, now: datetime) -> dict:
    period = record.event["active_period"]
    status = lifecycle.status_at(period, now, record.cancelled)
    start, end = lifecycle.bounds(period)
    descriptor = record.event["event_descriptor"]
    return {
        "event_id": record.event_id, "modification_number": record.modification_number, "status": status,
        "cancelled": record.cancelled, "start": start, "end": end,
        "duration_seconds": _seconds(period["duration"]),
        "ramp_up_seconds": _seconds(period.get("ramp_up_period")),
        "next_transition": None if record.cancelled else lifecycle.next_transition(period, now),
        "market_context": descriptor.get("market_context"), "priority": descriptor.get("priority"),
        "test_event": descriptor.get("test_event", False),
        "signals": [{"signal_name": signal["signal_name"], "signal_type": signal["signal_type"]}
                    for signal in record.event["event_signals"]],
        "ven_ids": list(record.ven_ids),
        "deliveries": [_delivery(delivery, record, status) for delivery in store.deliveries(event_id=record.event_id)],
    }


def _subscription(document: Document) -> dict:
    specifier = document.payload.get("report_specifier", {})
    interval = specifier.get("report_interval") or {}
    return {
        "kind": document.kind, "direction": SUBSCRIPTION_KINDS[document.kind], "ven_id": document.ven_id,
        "report_request_id": document.payload.get("report_request_id"), "state": document.state,
        "report_specifier_id": specifier.get("report_specifier_id"),
        "r_ids": [payload.get("r_id") for payload in specifier.get("specifier_payloads", [])],
        "granularity_seconds": _seconds(specifier.get("granularity")),
        "report_back_seconds": _seconds(specifier.get("report_back_duration")),
        "interval_start": interval.get("dtstart"), "interval_seconds": _seconds(interval.get("duration")),
    }


def _instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


def _outbox(store: Store, now: datetime) -> list[dict]:
    per_ven: dict[str, dict] = {}
    for item in store.outbox():
        entry = per_ven.setdefault(item.ven_id, {"ven_id": item.ven_id, "to": item.to, "count": 0,
                                                 "message_types": Counter(), "attempts": 0, "max_attempts": 0,
                                                 "oldest_queued_at": None})
        entry["count"] += 1
        entry["message_types"][item.message_type] += 1
        entry["attempts"] += item.attempts
        entry["max_attempts"] = max(entry["max_attempts"], item.attempts)
        entry["to"] = item.to                    # the newest item's address is where it goes now
        queued = _instant(item.queued_at)        # None: queued before xmpp-vtn recorded when
        if queued is not None and (entry["oldest_queued_at"] is None or queued < entry["oldest_queued_at"]):
            entry["oldest_queued_at"] = queued
    return [{**entry, "message_types": dict(sorted(entry["message_types"].items())),
             "oldest_age_seconds": None if entry["oldest_queued_at"] is None
             else max(0.0, (now - entry["oldest_queued_at"]).total_seconds())}
            for _, entry in sorted(per_ven.items())]


def _dropped(store: Store) -> list[dict]:
    per_ven: dict[str, dict] = {}
    for dropped in store.dropped_pushes():
        entry = per_ven.setdefault(dropped.ven_id, {"ven_id": dropped.ven_id or None, **dict.fromkeys(DROP_REASONS, 0),
                                                    "last_at": None})
        entry[dropped.reason] = dropped.count
        last = _instant(dropped.last_at)
        entry["last_at"] = last if entry["last_at"] is None else max(entry["last_at"], last)
    return [entry for _, entry in sorted(per_ven.items())]


def gather(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """Everything an operator asks about, as plain data.

    ``{"time", "vens", "events", "report_subscriptions", "outbox", "dropped_pushes"}``:
    registered VENs with their liveness as last recorded; events with their status at ``now``
    (default: the clock) and, per VEN, the modification and status it acknowledged and its opt;
    report subscriptions both ways; owed pushes per VEN (count, message types, attempts, when
    the oldest was queued and its age); and per VEN, how many pushes the bounded-outbox policy
    let go unsent, by reason (:data:`~xmpp_vtn.store.DROP_REASONS`; ``ven_id`` None counts
    those of venIDs no longer registered).
    """
    now = now or datetime.now(timezone.utc)
    return {
        "time": now,
        "vens": _vens(store),
        "events": [_event(store, record, now) for record in store.events()],
        "report_subscriptions": [_subscription(document) for kind in SUBSCRIPTION_KINDS
                                 for document in store.documents(kind)],
        "outbox": _outbox(store, now),
        "dropped_pushes": _dropped(store),
    }


# -- presenting ------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(facts: dict[str, Any]) -> str:
    """The facts as one JSON document (datetimes in ISO 8601)."""
    return json.dumps(facts, default=_plain, indent=2, ensure_ascii=False)


def _when(value: datetime | None) -> str:
    # Seconds are enough to read; the JSON form carries the full value.
    return "-" if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return _when(value)
    return str(value)


def table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """Columns aligned to their widest cell; ``-`` for nothing."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(indent + "  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip()
                     for line in lines)


def _held(delivery: dict) -> str:
    if delivery["delivered_modification"] is None:
        return "nothing yet"
    return f"mod {delivery['delivered_modification']} {delivery['delivered_status']}"


def _opt(delivery: dict) -> str:
    if delivery["opt_type"] is None:
        return "-"
    return f"{delivery['opt_type']} (mod {delivery['opt_modification']})"


def _section(title: str, count: int, body: str) -> str:
    return f"{title} ({count})\n{body if count else '  none'}"


def render_text(facts: dict[str, Any], source: str = "") -> str:
    """Compact aligned tables for a terminal."""
    vens = facts["vens"]
    parts = [f"xmpp-vtn status{' of ' + source if source else ''} at {_when(facts['time'])}"]
    parts.append(_section("VENs", len(vens), table(
        ["VEN", "NAME", "REGISTRATION", "JID", "STATE", "LAST SEEN"],
        [[v["ven_id"], v["ven_name"], v["registration_id"], v["transport_address"], v["state"] or "unknown",
          v["last_seen"]] for v in vens])))
    events = facts["events"]
    parts.append(_section("Events", len(events), table(
        ["EVENT", "STATUS", "MOD", "START", "END", "SIGNALS", "VENS"],
        [[e["event_id"], e["status"], e["modification_number"], e["start"], e["end"] or "open",
          ", ".join(f"{s['signal_name']}/{s['signal_type']}" for s in e["signals"]), len(e["ven_ids"])]
         for e in events])))
    deliveries = [(e, d) for e in events for d in e["deliveries"]]
    if deliveries:
        parts.append(_section("Event delivery", len(deliveries), table(
            ["EVENT", "VEN", "HOLDS", "CURRENT", "OPT"],
            [[e["event_id"], d["ven_id"], _held(d), "yes" if d["up_to_date"] else "owed", _opt(d)]
             for e, d in deliveries])))
    subscriptions = facts["report_subscriptions"]
    parts.append(_section("Report subscriptions", len(subscriptions), table(
        ["REQUEST", "VEN", "DIRECTION", "REPORT", "STATE", "EVERY", "rIDs"],
        [[s["report_request_id"], s["ven_id"], s["direction"], s["report_specifier_id"], s["state"],
          f"{s['report_back_seconds']:g} s" if s["report_back_seconds"] else "once", ", ".join(s["r_ids"])]
         for s in subscriptions])))
    outbox = facts["outbox"]
    parts.append(_section("Owed pushes (outbox)", sum(entry["count"] for entry in outbox), table(
        ["VEN", "COUNT", "OLDEST", "MESSAGES", "ATTEMPTS", "MAX", "TO"],
        [[o["ven_id"], o["count"], _age(o["oldest_age_seconds"]),
          ", ".join(f"{name} x{n}" if n > 1 else name for name, n in o["message_types"].items()),
          o["attempts"], o["max_attempts"], o["to"]] for o in outbox])))
    dropped = facts["dropped_pushes"]
    parts.append(_section("Pushes let go unsent (outbox quota)", len(dropped), table(
        ["VEN", *(reason.upper().replace("_", " ") for reason in DROP_REASONS), "LAST"],
        [[d["ven_id"] or "(venIDs no longer registered)", *(d[reason] for reason in DROP_REASONS), d["last_at"]]
         for d in dropped])))
    return "\n\n".join(parts)


def _age(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 10m``, ``3d 4h``: how long an owed push has waited."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
