"""Turning ``add_event``'s arguments (OpenLEADR's, same meaning) into an OpenADR event dict,
with errors that say what is wrong before anything is stored or sent."""
from __future__ import annotations

import uuid
import warnings
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

SIGNAL_NAMES = ("SIMPLE", "simple", "ELECTRICITY_PRICE", "ENERGY_PRICE", "DEMAND_CHARGE", "BID_PRICE",
                "BID_LOAD", "BID_ENERGY", "CHARGE_STATE", "LOAD_DISPATCH", "LOAD_CONTROL")
SIGNAL_TYPES = ("delta", "level", "multiplier", "price", "priceMultiplier", "priceRelative", "setpoint",
                "x-loadControlCapacity", "x-loadControlLevelOffset", "x-loadControlPercentOffset",
                "x-loadControlSetpoint")
RESPONSE_REQUIRED = ("always", "never")


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def aware(value: datetime, name: str) -> datetime:
    """``value`` with a timezone; a naive one is taken as UTC, with a warning."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        warnings.warn(f"{name} {value.isoformat()} has no timezone; taken as UTC", stacklevel=4)
        return value.replace(tzinfo=timezone.utc)
    return value


def check_signal(signal_name: str, signal_type: str) -> None:
    if signal_name not in SIGNAL_NAMES and not str(signal_name).startswith("x-"):
        raise ValueError(f"signal_name {signal_name!r} is not an OpenADR 2.0b signal name "
                         f"({', '.join(SIGNAL_NAMES)}) nor a custom 'x-' name")
    if signal_type not in SIGNAL_TYPES:
        raise ValueError(f"signal_type {signal_type!r} is not one of {', '.join(SIGNAL_TYPES)}")


def contiguous_intervals(intervals: Iterable[Any]) -> tuple[list[dict], datetime, timedelta]:
    """Intervals as dicts with uids, checked to follow each other; returns them, the start and the total."""
    result: list[dict] = []
    start: datetime | None = None
    total = timedelta(0)
    for index, raw in enumerate(intervals):
        interval = dict(_plain(raw))
        duration = interval.get("duration")
        if not isinstance(duration, timedelta) or duration <= timedelta(0):
            raise ValueError(f"intervals[{index}].duration must be a positive timedelta, not {duration!r}")
        if duration.microseconds:
            raise ValueError(f"intervals[{index}].duration {duration} has fractions of a second; "
                             "OpenADR durations are whole seconds")
        if "signal_payload" not in interval or interval["signal_payload"] is None:
            raise ValueError(f"intervals[{index}] needs a signal_payload")
        dtstart = interval.get("dtstart")
        if dtstart is not None:
            dtstart = interval["dtstart"] = aware(dtstart, f"intervals[{index}].dtstart")
            if start is None:
                start = dtstart
            elif dtstart != start + total:
                raise ValueError(f"intervals[{index}] starts at {dtstart.isoformat()}, but the previous one "
                                 f"ends at {(start + total).isoformat()}: intervals must be contiguous")
        elif index == 0:
            raise ValueError("intervals[0] needs a dtstart (the event's start)")
        interval.setdefault("uid", str(index))
        interval = {key: value for key, value in interval.items() if value is not None}
        result.append(interval)
        total += duration
    if not result:
        raise ValueError("an event needs at least one interval")
    assert start is not None
    return result, start, total


def ven_id_list(ven_id: str | Iterable[str]) -> list[str]:
    ids = [ven_id] if isinstance(ven_id, str) else list(ven_id)
    if not ids or not all(isinstance(item, str) and item for item in ids):
        raise ValueError(f"ven_id must be a venID or a non-empty list of venIDs, not {ven_id!r}")
    return list(dict.fromkeys(ids))


def build_event(*, ven_ids: list[str], signal_name: str, signal_type: str, intervals: Iterable[Any],
                event_id: str | None, targets: list | None, targets_by_type: dict | None,
                market_context: str, priority: int | None, response_required: str,
                notification_period: timedelta | None, ramp_up_period: timedelta | None,
                recovery_period: timedelta | None, signal_target_mrid: str | None, current_value: float | None,
                test_event: bool, vtn_comment: str | None, created: datetime) -> dict:
    """The event dict for ``add_event``'s arguments. Raises ValueError or TypeError naming the argument."""
    check_signal(signal_name, signal_type)
    if response_required not in RESPONSE_REQUIRED:
        raise ValueError(f"response_required must be 'always' or 'never', not {response_required!r}")
    for name, value in (("notification_period", notification_period), ("ramp_up_period", ramp_up_period),
                        ("recovery_period", recovery_period)):
        if value is not None and (not isinstance(value, timedelta) or value < timedelta(0)):
            raise ValueError(f"{name} must be a non-negative timedelta, not {value!r}")
    interval_dicts, start, total = contiguous_intervals(intervals)
    signal: dict[str, Any] = {"intervals": interval_dicts, "signal_name": signal_name, "signal_type": signal_type,
                              "signal_id": uuid.uuid4().hex}
    if current_value is not None:
        signal["current_value"] = float(current_value)
    if signal_target_mrid is not None:
        signal["targets"] = [{"end_device_asset": {"mrid": signal_target_mrid}}]
    if targets is None and targets_by_type is None:
        targets = [{"ven_id": ven_id} for ven_id in ven_ids]
    event = {
        "event_descriptor": {"event_id": event_id or uuid.uuid4().hex, "modification_number": 0,
                             "market_context": market_context, "created_date_time": created,
                             "event_status": "far", "priority": priority, "test_event": test_event or None,
                             "vtn_comment": vtn_comment},
        "active_period": {"dtstart": start, "duration": total, "notification_period": notification_period,
                          "ramp_up_period": ramp_up_period, "recovery_period": recovery_period},
        "event_signals": [signal],
        "response_required": response_required,
    }
    if targets is not None:
        event["targets"] = [_plain(target) for target in targets]
    if targets_by_type is not None:
        event["targets_by_type"] = targets_by_type
    for part in ("event_descriptor", "active_period"):
        event[part] = {key: value for key, value in event[part].items() if value is not None}
    return event
