"""The JSON bodies of ``POST /api/events`` and ``PATCH /api/events/{id}``, checked and turned into
``add_event`` / ``modify_event`` arguments. Every problem raises :class:`BadInput` naming the field
(``intervals[1].duration``), before anything is changed.

A body names its fields as ``add_event`` names its arguments; datetimes are ISO 8601 with a
timezone (``2030-01-31T14:00:00Z``), durations ISO 8601 durations (``PT1H30M``)::

    {"ven_ids": ["ven-1"], "signal_name": "SIMPLE", "signal_type": "level",
     "intervals": [{"dtstart": "2030-01-31T14:00:00Z", "duration": "PT1H", "signal_payload": 1}]}
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ..codec.values import parse_duration

MAX_INTERVALS = 1000
MAX_VEN_IDS = 100_000
MAX_TEXT = 1024


class BadInput(ValueError):
    """The body cannot be used: ``field`` names the part that is wrong; ``status`` the HTTP answer."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


def _text(field: str, value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(field, "must be a non-empty string")
    if len(value) > limit:
        raise BadInput(field, f"must be at most {limit} characters")
    return value


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(field, "must be a number")
    return float(value)


def _integer(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadInput(field, "must be a whole number, 0 or more")
    return value


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadInput(field, "must be true or false")
    return value


def parse_instant(field: str, value: Any) -> datetime:
    """An ISO 8601 date and time with a timezone."""
    text = _text(field, value, 64).strip()
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text     # Python 3.10's fromisoformat lacks Z
    try:
        instant = datetime.fromisoformat(iso)
    except ValueError:
        raise BadInput(field, f"{text!r} is not an ISO 8601 date and time such as 2030-01-31T14:00:00Z") from None
    if instant.tzinfo is None:
        raise BadInput(field, f"{text!r} has no timezone: end it with Z (UTC) or an offset such as +01:00")
    return instant.astimezone(timezone.utc)


def parse_period(field: str, value: Any, positive: bool = False) -> timedelta:
    """An ISO 8601 duration such as ``PT1H``: whole seconds, not negative (above zero if ``positive``)."""
    text = _text(field, value, 64).strip()
    try:
        period = parse_duration(text.upper())
    except ValueError:
        raise BadInput(field, f"{text!r} is not an ISO 8601 duration such as PT1H or PT15M") from None
    if period < timedelta(0) or (positive and period == timedelta(0)):
        raise BadInput(field, f"{text!r} must be {'more than zero' if positive else 'zero or more'}")
    return period


def _ven_ids(field: str, value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > MAX_VEN_IDS:
        raise BadInput(field, "must be a venID or a non-empty list of venIDs")
    for index, item in enumerate(items):
        _text(f"{field}[{index}]", item)
    return list(dict.fromkeys(items))


_TARGET_KINDS = ("ven_id", "group_id", "group_name", "resource_id", "party_id")


def _targets(field: str, value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadInput(field, 'must be a non-empty list of targets such as [{"group_id": "north"}]')
    targets = []
    for index, target in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(target, dict) or len(target) != 1:
            raise BadInput(where, f"must be one kind and its value, such as {{\"group_id\": \"north\"}}; "
                                  f"kinds: {', '.join(_TARGET_KINDS)}")
        [(kind, item)] = target.items()
        if kind not in _TARGET_KINDS:
            raise BadInput(where, f"unknown target kind {kind!r}; kinds: {', '.join(_TARGET_KINDS)}")
        targets.append({kind: _text(f"{where}.{kind}", item)})
    return targets


def _intervals(field: str, value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadInput(field, "must be a non-empty list of intervals, each with duration and signal_payload "
                              "(and dtstart on the first)")
    if len(value) > MAX_INTERVALS:
        raise BadInput(field, f"at most {MAX_INTERVALS} intervals")
    intervals = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise BadInput(where, "must be an object with duration and signal_payload")
        unknown = sorted(set(item) - {"dtstart", "duration", "signal_payload", "uid"})
        if unknown:
            raise BadInput(f"{where}.{unknown[0]}", "unknown field; an interval has dtstart, duration, "
                                                    "signal_payload (and uid)")
        interval: dict[str, Any] = {}
        if "dtstart" in item:
            interval["dtstart"] = parse_instant(f"{where}.dtstart", item["dtstart"])
        elif index == 0:
            raise BadInput(f"{where}.dtstart", "the first interval needs a dtstart (the event's start)")
        if "duration" not in item:
            raise BadInput(f"{where}.duration", "missing (required)")
        interval["duration"] = parse_period(f"{where}.duration", item["duration"], positive=True)
        if "signal_payload" not in item:
            raise BadInput(f"{where}.signal_payload", "missing (required)")
        interval["signal_payload"] = _number(f"{where}.signal_payload", item["signal_payload"])
        if "uid" in item:
            interval["uid"] = _text(f"{where}.uid", item["uid"], 64)
        intervals.append(interval)
    return intervals


# field -> how to read it. Shared by create and modify; `event_id` only on create, `reason` only on modify.
_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "ven_ids": _ven_ids, "targets": _targets,
    "signal_name": _text, "signal_type": _text, "intervals": _intervals,
    "event_id": lambda field, value: _text(field, value, 256),
    "market_context": _text, "priority": _integer,
    "response_required": lambda field, value: _choice(field, value, ("always", "never")),
    "notification_period": parse_period, "ramp_up_period": parse_period, "recovery_period": parse_period,
    "test_event": _boolean, "vtn_comment": _text, "current_value": _number, "signal_target_mrid": _text,
    "reason": _text,
}
CREATE_FIELDS = tuple(name for name in _FIELDS if name != "reason")
MODIFY_FIELDS = tuple(name for name in _FIELDS if name != "event_id")


def _choice(field: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise BadInput(field, f"must be one of {', '.join(options)}")
    return value


def _read(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadInput("body", "must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        close = [name for name in allowed if name.replace("_", "") == unknown[0].replace("_", "").lower()]
        hint = f"; did you mean {close[0]}?" if close else f"; fields: {', '.join(allowed)}"
        raise BadInput(unknown[0], f"unknown field{hint}")
    return {name: _FIELDS[name](name, value) for name, value in body.items() if value is not None}


def create_arguments(body: Any, resolves_targets: bool) -> dict[str, Any]:
    """``add_event`` keyword arguments (with ``ven_id``) for a ``POST /api/events`` body."""
    arguments = _read(body, CREATE_FIELDS)
    for required in ("signal_name", "signal_type", "intervals"):
        if required not in arguments:
            raise BadInput(required, "missing (required)")
    ven_ids = arguments.pop("ven_ids", None)
    if ven_ids is None:
        if "targets" not in arguments:
            raise BadInput("ven_ids", "give ven_ids, or targets" + (" (resolved by the VTN's on_targets handler)"
                                                                    if resolves_targets else ""))
        if not resolves_targets:
            raise BadInput("targets", "this VTN has no on_targets handler to resolve targets to VENs: give ven_ids")
    return {"ven_id": ven_ids, **arguments}


def modify_arguments(body: Any) -> dict[str, Any]:
    """``modify_event`` keyword arguments for a ``PATCH /api/events/{id}`` body."""
    arguments = _read(body, MODIFY_FIELDS)
    if not arguments or set(arguments) == {"reason"}:
        raise BadInput("body", f"nothing to change; fields: {', '.join(MODIFY_FIELDS)}")
    return arguments


_FIELD_IN_MESSAGE = re.compile(r"^(\w+)(\[\d+\])?(\.\w+)?")


def field_of(message: str) -> str:
    """The field an ``add_event`` / ``modify_event`` error message is about (``body`` if none)."""
    if message.startswith(("venID ", "ven_id ", "add_event needs ven_id")):
        return "ven_ids"
    if message.startswith("on_targets"):
        return "targets"
    if message.startswith("an event with event_id"):
        return "event_id"
    match = _FIELD_IN_MESSAGE.match(message)
    if match and match.group(1) in _FIELDS:
        return match.group(0)
    return "body"
