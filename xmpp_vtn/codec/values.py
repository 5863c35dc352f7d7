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


def parse_datetime(text: str) -> datetime:
    """``'2026-11-23T12:00:00Z'`` -> ``datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)``."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        match = _DATETIME.match(text)
        if not match:
            raise ValueError(f"not an OpenADR date-time: {text!r}") from None
        fraction = (match.group(7) or "0")[:6].ljust(6, "0")
        value = datetime(*(int(g) for g in match.groups()[:6]), int(fraction))
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


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
    if not match or text.strip() in ("P", "PT", "-P", "+P"):
        raise ValueError(f"not an RFC 5545 duration: {text!r}")
    parts = {name: int(value) for name, value in match.groupdict().items()
             if value is not None and name != "sign"}
    days = parts.get("days", 0)
    if parts.get("years") or parts.get("months"):
        logger.warning("duration %s uses years or months; counting 365 and 30 days", text)
        days += 365 * parts.get("years", 0) + 30 * parts.get("months", 0)
    value = timedelta(weeks=parts.get("weeks", 0), days=days, hours=parts.get("hours", 0),
                      minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0))
    return -value if match.group("sign") == "-" else value


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
