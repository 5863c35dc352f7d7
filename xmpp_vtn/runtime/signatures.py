"""XML signatures on simpleHTTP messages (XMLDSig, as OpenADR 2.0b and OpenLEADR use them).

A VEN with a certificate signs every message: a detached ``ds:Signature`` beside
``oadrSignedObject``, with a second reference to a ``dsp:ReplayProtect`` (timestamp and nonce).
:class:`SignatureCheck` verifies one against the certificate the VEN presented in its TLS
handshake, with signxml (the library OpenLEADR signs with), and refuses a replayed message.
The crypto is signxml's; what this module adds is what it must be checked against.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime, timezone

from lxml import etree

from .. import schema

DS = "{http://www.w3.org/2000/09/xmldsig#}"
DSP = "{http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties}"
OADR = "{http://openadr.org/oadr-2.0b/2012/07}"


class SignatureRefused(Exception):
    """The message's signature is missing, does not verify, or was seen before."""


class SignatureCheck:
    """``check(document, certificate_pem)``: raises :class:`SignatureRefused` unless ``document`` is
    signed by the key of ``certificate_pem``, over its own ``oadrSignedObject``, recently, once.

    ``replay_window`` (seconds) bounds how old a signature's timestamp may be (and how far in the
    future, for clock skew); nonces seen within it are refused.
    """

    def __init__(self, replay_window: float = 60.0, max_nonces: int = 100_000):
        # Imported here: only a VTN that verifies signatures needs signxml.
        try:
            from signxml import XMLVerifier
        except ImportError as error:                      # pragma: no cover - packaging
            raise RuntimeError("verifying XML signatures needs signxml: pip install signxml") from error
        self._verifier = XMLVerifier()
        self.replay_window = replay_window
        self.max_nonces = max_nonces
        self._nonces: OrderedDict[str, float] = OrderedDict()

    def check(self, document: bytes, certificate_pem: str) -> None:
        from signxml.exceptions import InvalidInput, InvalidSignature
        try:
            root = etree.fromstring(document, schema.plain_parser())
        except etree.XMLSyntaxError as error:
            raise SignatureRefused(f"not well-formed XML: {error}") from None
        if root.find(f"{DS}Signature") is None:
            raise SignatureRefused("the message is not signed: this VTN verifies XML signatures of VENs with "
                                   "client certificates")
        signed_object = root.find(f"{OADR}oadrSignedObject")
        try:
            results = self._verifier.verify(root, x509_cert=certificate_pem, expect_references=2)
        except (InvalidSignature, InvalidInput) as error:
            raise SignatureRefused(f"the XML signature does not verify against the client certificate: {error}") \
                from None
        results = results if isinstance(results, list) else [results]
        signed = [result.signed_xml for result in results]
        # The signature must cover the very oadrSignedObject the VTN will read (no wrapped copy).
        if signed_object is None or not any(_same(element, signed_object) for element in signed):
            raise SignatureRefused("the XML signature does not cover the message's oadrSignedObject")
        replay = next((element for element in signed if element is not None and element.find(f".//{DSP}nonce")
                       is not None), None)
        if replay is None:
            raise SignatureRefused("the XML signature has no signed ReplayProtect (timestamp and nonce)")
        self._once(replay.findtext(f".//{DSP}timestamp") or "", replay.findtext(f".//{DSP}nonce") or "")

    def _once(self, timestamp: str, nonce: str) -> None:
        try:
            signed_at = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise SignatureRefused(f"ReplayProtect timestamp {timestamp[:40]!r} is not a date-time") from None
        if signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=timezone.utc)
        age = time.time() - signed_at.timestamp()
        if abs(age) > self.replay_window:
            raise SignatureRefused(f"the message was signed {age:.0f} s ago; this VTN accepts {self.replay_window:.0f} s")
        now = time.monotonic()
        while self._nonces and (next(iter(self._nonces.values())) < now - 2 * self.replay_window
                                or len(self._nonces) >= self.max_nonces):
            self._nonces.popitem(last=False)
        key = f"{timestamp}|{nonce}"
        if not nonce or key in self._nonces:
            raise SignatureRefused("this signature's nonce was used before: a replayed message")
        self._nonces[key] = now


def _same(signed: etree._Element | None, element: etree._Element) -> bool:
    """Whether what the signature covers is ``element`` (canonical forms equal)."""
    if signed is None:
        return False
    return etree.tostring(signed, method="c14n") == etree.tostring(element, method="c14n")
