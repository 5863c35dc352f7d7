"""Scalar conversions between OpenADR XML text and Python values.

Datetimes are UTC-aware ``datetime`` objects (the 2.0b schema only allows UTC, written with a
trailing ``Z``; a missing ``Z`` is read as UTC too). Durations are ``timedelta`` objects in
Python and RFC 5545 / ISO 8601 strings on the wire.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from datetime import datetime, timedelta, timezone

logger = logging.getLogger("xmpp_vtn.codec")

_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<weeks>\d+)W|(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?$")
# What the schema's pattern for durations, (\+|\-)?P((\d+Y)?(\d+M)?(\d+D)?T?(\d+H)?(\d+M)?(\d+S)?)|(\d+W),
# admits that ISO 8601 does not: time parts without their T, and weeks without their P.
_TIME_WITHOUT_T = re.compile(r"^([+-]?)P((?:\d+Y)?(?:\d+M)?(?:\d+D)?)((?:\d+H)?(?:\d+M)?(?:\d+S)?)$")
_WEEKS_WITHOUT_P = re.compile(r"^([+-]?)(\d+W)$")
_MIDNIGHT_24 = re.compile(r"T24:00:00(?:\.0*)?(?=Z?$)")


def parse_datetime(text: str) -> datetime:
    """``'2026-11-23T12:00:00Z'`` -> ``datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)``.

    ``T24:00:00``, which xs:dateTime allows for the end of a day, is midnight of the next day.
    """
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = _parse_datetime_slowly(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _parse_datetime_slowly(text: str) -> datetime:
    # What fromisoformat refuses: 24:00:00, long fractions (before 3.11), and real mistakes.
    end_of_day = _MIDNIGHT_24.search(text)
    match = _DATETIME.match(_MIDNIGHT_24.sub("T00:00:00", text) if end_of_day else text)
    if not match:
        if text.startswith("-"):  # the schema's pattern admits a sign; xs:dateTime makes it a year BCE
            raise ValueError(f"value {text!r} is a date before year 1, which a payload cannot hold")
        raise ValueError(f"value {text!r} is not a date-time such as 2026-11-23T12:00:00Z")
    fraction = (match.group(7) or "0")[:6].ljust(6, "0")
    try:
        value = datetime(*(int(g) for g in match.groups()[:6]), int(fraction))
        return value + timedelta(days=1) if end_of_day else value
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"value {text!r} is not a date-time that exists ({exc})") from None


def format_datetime(value: datetime) -> str:
    """A timezone-aware ``datetime`` as UTC text with a ``Z``; naive datetimes are refused."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, not {type(value).__name__} ({value!r})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give it a timezone "
                         "(e.g. datetime.now(timezone.utc))")
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    # isoformat is several times faster than strftime and omits a zero fraction, as we want.
    return value.replace(tzinfo=None).isoformat() + "Z"


@functools.lru_cache(maxsize=512)
def parse_duration(text: str) -> timedelta:
    """``'PT10M'`` -> ``timedelta(minutes=10)``. Years count 365 days and months 30, with a warning."""
    match = _DURATION.match(text.strip())
    if not match or text.strip().lstrip("+-") in ("P", "PT"):
        raise ValueError(_why_not_a_duration(text.strip()))
    parts = {name: int(value) for name, value in match.groupdict().items()
             if value is not None and name != "sign"}
    days = parts.get("days", 0)
    if parts.get("years") or parts.get("months"):
        logger.warning("duration %s uses years or months; counting 365 and 30 days", text)
        days += 365 * parts.get("years", 0) + 30 * parts.get("months", 0)
    value = timedelta(weeks=parts.get("weeks", 0), days=days, hours=parts.get("hours", 0),
                      minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0))
    return -value if match.group("sign") == "-" else value


def _why_not_a_duration(text: str) -> str:
    """Why ``text`` is not an ISO 8601 / RFC 5545 duration, with the form that was meant."""
    prefix = f"value {text!r} is not an ISO 8601 duration"
    if text.lstrip("+-") in ("P", "PT"):
        return f"{prefix}: it has no number and unit (zero is PT0S)"
    time_without_t = _TIME_WITHOUT_T.match(text)
    if time_without_t and time_without_t.group(3):
        sign, date, time = time_without_t.groups()
        return f"{prefix}: hours, minutes and seconds go after a T ({sign}P{date}T{time})"
    weeks = _WEEKS_WITHOUT_P.match(text)
    if weeks:
        return f"{prefix}: it needs a P before the weeks ({weeks.group(1)}P{weeks.group(2)})"
    return f"{prefix} such as PT10M"


@functools.lru_cache(maxsize=512)
def format_duration(value: timedelta) -> str:
    """``timedelta(minutes=10)`` -> ``'PT10M'``; whole seconds only (the schema has no fractions)."""
    if not isinstance(value, timedelta):
        raise TypeError(f"expected a timedelta, not {type(value).__name__} ({value!r})")
    sign = ""
    if value < timedelta(0):
        sign, value = "-", -value
    if value.microseconds:
        raise ValueError(f"duration {value} has fractions of a second; OpenADR durations are whole seconds")
    days = value.days
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P"
    if days:
        text += f"{days}D"
    if hours or minutes or seconds or not days:
        text += "T"
        if hours:
            text += f"{hours}H"
        if minutes:
            text += f"{minutes}M"
        if seconds or not (hours or minutes):
            text += f"{seconds}S"
    return text


def parse_bool(text: str) -> bool:
    """xs:boolean: ``true``/``1`` and ``false``/``0``."""
    text = text.strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def format_bool(value: object) -> str:
    """``True`` -> ``'true'``; the strings ``'true'``/``'false'`` pass through."""
    if value is True or value == "true":
        return "true"
    if value is False or value == "false":
        return "false"
    raise ValueError(f"expected True or False, not {value!r}")


def parse_float(text: str) -> float:
    """xs:float / xs:double text, including ``INF``, ``-INF`` and ``NaN``."""
    return float(text)


def format_float(value: float | int) -> str:
    """A number as xs:float text; ``int`` stays integral (``3`` -> ``'3'``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, not {type(value).__name__} ({value!r})")
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(value)


def parse_decimal(text: str) -> int | float:
    """xs:decimal text as ``int`` when it has no fraction, else ``float``."""
    text = text.strip()
    return float(text) if "." in text else int(text)
