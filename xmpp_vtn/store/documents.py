"""How structured OpenADR values are kept on disk: as the schema-valid XML the codec writes.

An event dict holds datetimes, durations and nested lists; rather than invent a second format,
the store keeps the event as the ``oadrEvent`` the VTN would send, and reads it back exactly.
"""
from __future__ import annotations

from .. import codec

_HOLDER = {"request_id": "stored", "vtn_id": "stored"}


def encode_event(event: dict) -> bytes:
    """The event as a one-event oadrDistributeEvent document (validated on the way out)."""
    return codec.serialize("oadrDistributeEvent", {**_HOLDER, "events": [event]})


def decode_event(document: bytes) -> dict:
    """The event dict :func:`encode_event` stored."""
    return codec.parse(document)[1]["events"][0]
