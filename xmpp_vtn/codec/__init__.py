"""OpenADR 2.0b XML <-> Python payloads, for all 23 messages of ``oadrSignedObject``.

>>> from xmpp_vtn import codec
>>> data = codec.serialize('oadrPoll', {'ven_id': '00123'})
>>> codec.parse(data)
('oadrPoll', {'ven_id': '00123'})

Payloads use OpenLEADR's representation (see ``docs``/the README): snake_case keys, lists
pluralised, ``qualifiedEventID`` flattened, timezone-aware datetimes, ``timedelta``
durations, numbers as numbers and identifiers always as strings. Dataclasses from
:mod:`xmpp_vtn.objects` are accepted wherever a dict is.
"""
from __future__ import annotations

from typing import Any

from lxml import etree

from .. import schema
from ..errors import SchemaError
from ..schema import NS_EI, NS_OADR, NSMAP
from .messages import MESSAGES
from .spec import DecodeError, EncodeError

__all__ = ["parse", "parse_element", "decode_message", "serialize", "build", "MESSAGE_TYPES",
           "SchemaError", "EncodeError", "DecodeError"]

#: The 23 message types, in the order of the schema's ``oadrSignedObject`` choice.
MESSAGE_TYPES: tuple[str, ...] = tuple(MESSAGES)

_PAYLOAD = f"{{{NS_OADR}}}oadrPayload"
_SIGNED_OBJECT = f"{{{NS_OADR}}}oadrSignedObject"
_SIGNED_OBJECT_ID = f"{{{NS_OADR}}}Id"
_SCHEMA_VERSION = f"{{{NS_EI}}}schemaVersion"
_OADR_PREFIX_LEN = len(NS_OADR) + 2
# Prefixes declared once on the root of documents we write; others are added where used.
_WRITE_NSMAP = {prefix: NSMAP[prefix] for prefix in
                ("oadr", "ei", "pyld", "emix", "xcal", "strm", "power", "scale")}


def decode_message(message: etree._Element) -> dict:
    """Decode one already validated message element (``oadr:oadrCreatedEvent``, ...) to its payload.

    Raises :class:`DecodeError` (a ``ValueError``) naming the element, for what the schema admits
    but a payload cannot hold: durations such as ``P1H`` or ``PT`` that only the schema's loose
    pattern allows, or the date-time 9999-12-31T24:00:00 (one day past what a datetime holds).
    """
    try:
        return MESSAGES[message.tag[_OADR_PREFIX_LEN:]].decode(message)
    except DecodeError:
        raise
    except (ValueError, TypeError, IndexError) as exc:  # pragma: no cover - a schema the codec does not expect
        raise DecodeError(str(exc), message) from None


def parse_element(root: etree._Element) -> tuple[str, dict]:
    """Decode an already validated ``oadrPayload`` element to ``(message_type, payload)``."""
    message = root[len(root) - 1][0]  # oadrSignedObject is last (after an optional ds:Signature)
    try:
        return message.tag[_OADR_PREFIX_LEN:], decode_message(message)
    except DecodeError as exc:
        # Worded like a schema violation: where, then why (the schema let these through).
        line, path = exc.element.sourceline, schema.element_path(exc.element)
        raise SchemaError(f"line {line}: {path}: {exc.problem}", line=line, path=path) from None


def parse(data: bytes | str, max_bytes: int = schema.DEFAULT_MAX_BYTES,
          max_depth: int = schema.DEFAULT_MAX_DEPTH) -> tuple[str, dict]:
    """Validate an ``oadrPayload`` document against the 2.0b XSD and decode it.

    Returns ``(message_type, payload)``, e.g. ``('oadrCreatedEvent', {...})``. Raises
    :class:`~xmpp_vtn.errors.SchemaError` naming the line, element path and what was expected.
    Any prefixes, default namespaces, indentation and XML declaration are accepted; a
    ``ds:Signature`` is allowed and kept out of the payload.
    """
    return parse_element(schema.parse_document(data, max_bytes=max_bytes, max_depth=max_depth))


def build(message_type: str, payload: Any, validate: bool = True) -> etree._Element:
    """Build the ``oadrPayload`` element for a message; validated against the XSD by default.

    Raises ``ValueError`` (:class:`EncodeError`) for a payload that cannot be written, naming
    the key, and :class:`SchemaError` if the result is not schema-valid (an enumeration value
    such as ``signal_type`` outside the schema, for example).
    """
    spec = MESSAGES.get(message_type)
    if spec is None:
        raise ValueError(f"unknown OpenADR message type {message_type!r}; expected one of {', '.join(MESSAGE_TYPES)}")
    root = etree.Element(_PAYLOAD, nsmap=_WRITE_NSMAP)
    signed = etree.SubElement(root, _SIGNED_OBJECT, {_SIGNED_OBJECT_ID: "oadrSignedObject"})
    message = etree.SubElement(signed, f"{{{NS_OADR}}}{message_type}", {_SCHEMA_VERSION: "2.0b"})
    spec.encode(message, payload)
    if validate:
        try:
            schema.validate_element(root)
        except SchemaError as exc:
            raise SchemaError(f"{message_type} payload does not produce valid OpenADR: {exc}",
                              line=exc.line, path=exc.path) from None
    return root


def serialize(message_type: str, payload: Any) -> bytes:
    """A complete, schema-valid ``oadrPayload`` document (UTF-8 bytes with an XML declaration).

    >>> serialize('oadrQueryRegistration', {'request_id': 'A & B <x>'})[:38]
    b"<?xml version='1.0' encoding='UTF-8'?>"
    """
    return etree.tostring(build(message_type, payload), encoding="UTF-8", xml_declaration=True)
