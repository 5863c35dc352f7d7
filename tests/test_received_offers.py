"""A VEN's report offers are stored cut from the document it sent, not encoded again: each reads
back as the dict the received document decoded to, whatever prefixes, namespaces or signature it
was written with (store/documents.py: received_offers)."""
from __future__ import annotations

import os
import re
import sys

import pytest

from xmpp_vtn import codec
from xmpp_vtn.store.documents import decode_document, encode_document, received_offers

sys.path.insert(0, os.path.dirname(__file__))
from hostile_attacker import _offer  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(__file__), "samples_2_0b", "oadrRegisterReport.xml")
SIGNATURE = b"""<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>
  <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
  <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
  <Reference URI="#oadrSignedObject"><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
  <DigestValue>AAAA</DigestValue></Reference></SignedInfo><SignatureValue>AAAA</SignatureValue></Signature>"""


def _foreign_document() -> bytes:
    """The spec's sample oadrRegisterReport (its prefixes declared on the message itself), inside
    an oadrPayload in the default namespace, signed, with the VEN's venID after its reports."""
    with open(SAMPLE, "rb") as sample:
        message = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", sample.read())
    if b"<ei:venID>" not in message:
        message = message.replace(b"</oadr:oadrRegisterReport>", b"<ei:venID>ven-7</ei:venID></oadr:oadrRegisterReport>")
    return (b'<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07" xmlns:o="http://openadr.org/oadr-2.0b/2012/07">'
            + SIGNATURE + b'<oadrSignedObject o:Id="oadrSignedObject">' + message + b"</oadrSignedObject></oadrPayload>")


def _codec_document() -> bytes:
    return codec.serialize("oadrRegisterReport", {"request_id": "rr-1", "ven_id": "ven-1",
                                                  "reports": [_offer(n, 3 + n) for n in range(3)]})


@pytest.mark.parametrize("document", [_foreign_document(), _codec_document()], ids=["foreign", "codec"])
def test_each_received_offer_reads_back_as_the_report_the_document_decoded_to(document):
    message_type, payload = codec.parse(document)
    assert message_type == "oadrRegisterReport"
    offers = received_offers(document)
    assert len(offers) == len(payload["reports"]) >= 1
    for offer, report in zip(offers, payload["reports"]):
        assert decode_document("report_offer", offer) == report
        assert decode_document("report_offer", encode_document("report_offer", report)) == report
        # Only that one report is kept: no signature (it no longer holds), no venID, no others.
        assert b"Signature" not in offer and b"venID" not in offer
        assert offer.count(b"reportSpecifierID>") == 2


def test_an_offer_names_no_request_but_the_stored_one():
    for offer in received_offers(_codec_document()):
        assert codec.parse(offer)[1]["request_id"] == "stored"
