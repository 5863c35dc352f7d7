"""How structured OpenADR values are kept on disk: as the schema-valid XML the codec writes.

An event dict holds datetimes, durations and nested lists; rather than invent a second format,
the store keeps the event as the ``oadrEvent`` the VTN would send, and reads it back exactly.
"""
from __future__ import annotations

from functools import lru_cache

from .. import codec

_HOLDER = {"request_id": "stored", "vtn_id": "stored"}


def encode_event(event: dict) -> bytes:
    """The event as a one-event oadrDistributeEvent document (validated on the way out)."""
    return codec.serialize("oadrDistributeEvent", {**_HOLDER, "events": [event]})


@lru_cache(maxsize=4096)
def decode_event(document: bytes) -> dict:
    """The event dict :func:`encode_event` stored.

    Cached: every push and every answer reads the same few events. The dict is shared, so
    callers copy before they change it (the event service does).
    """
    return codec.parse(document)[1]["events"][0]
