"""Documents rendered once and reused: for messages the VTN sends again and again that differ only
in identifiers (the plain ``oadrResponse`` that answers most VEN messages).

A template is built and validated by the codec with random stand-ins for the identifiers; each
use substitutes the real values, escaped for XML. Identifiers are ``xs:string`` in the schema, so
any value the codec would accept gives a document that validates (``tests/test_codec_templates.py``
checks it against the schema for awkward values).
"""
from __future__ import annotations

import uuid
from typing import Any
from xml.sax.saxutils import escape

_REQUEST_STAND_IN = "req" + uuid.uuid4().hex
_VEN_STAND_IN = "ven" + uuid.uuid4().hex
_templates: dict[tuple, bytes] = {}


def _plain_response_key(message_type: str, payload: dict) -> tuple | None:
    """The template key of a plain oadrResponse (response + venID, nothing else), or None."""
    if message_type != "oadrResponse" or not set(payload) <= {"response", "ven_id"}:
        return None
    response = payload.get("response")
    if not isinstance(response, dict) or not set(response) <= {"response_code", "response_description", "request_id"}:
        return None
    request_id, ven_id = response.get("request_id"), payload.get("ven_id")
    if not isinstance(request_id, (str, type(None))) or not isinstance(ven_id, (str, type(None))):
        return None
    return (response.get("response_code"), response.get("response_description"), request_id is None, ven_id is None)


def serialize(message_type: str, payload: Any) -> bytes:
    """``codec.serialize(message_type, payload)``, from a template when the message is one that has
    one (a plain oadrResponse); the same bytes either way but for the identifiers' values."""
    from . import serialize as full
    key = _plain_response_key(message_type, payload) if isinstance(payload, dict) else None
    if key is None:
        return full(message_type, payload)
    template = _templates.get(key)
    if template is None:
        response = payload["response"]
        stand_in = {"response": {**response, "request_id": None if key[2] else _REQUEST_STAND_IN},
                    "ven_id": None if key[3] else _VEN_STAND_IN}
        template = full(message_type, {name: value for name, value in stand_in.items() if value is not None})
        if len(_templates) > 64:
            _templates.clear()
        _templates[key] = template
    document = template
    if not key[2]:
        document = document.replace(_REQUEST_STAND_IN.encode(), escape(payload["response"]["request_id"]).encode())
    if not key[3]:
        document = document.replace(_VEN_STAND_IN.encode(), escape(payload["ven_id"]).encode())
    return document
