"""Templated documents are byte for byte what the codec writes, for any identifier."""
from __future__ import annotations

import pytest

from xmpp_vtn import codec
from xmpp_vtn.codec import templates

AWKWARD = ["ven-1", "a&b<c>d", "quote\"'apos", "  spaced  ", "ünï©ødé", "x" * 300, "]]>", "&amp;"]


@pytest.mark.parametrize("value", AWKWARD)
@pytest.mark.parametrize("code", [200, 452])
def test_a_plain_response_from_its_template_is_the_codecs_document(value, code):
    payload = {"response": {"response_code": code, "response_description": "OK", "request_id": value},
               "ven_id": value[::-1]}
    document = templates.serialize("oadrResponse", payload)
    assert document == codec.serialize("oadrResponse", payload)
    assert codec.parse(document) == ("oadrResponse", codec.parse(codec.serialize("oadrResponse", payload))[1])
    assert codec.parse(document)[1]["ven_id"] == value[::-1]


def test_absent_identifiers_and_other_messages_take_the_codec():
    without = {"response": {"response_code": 200, "response_description": "OK", "request_id": None}}
    assert templates.serialize("oadrResponse", without) == codec.serialize("oadrResponse", without)
    other = {"response": {"response_code": 200, "response_description": "OK", "request_id": "r"},
             "ven_id": "v", "registration_id": "reg"}
    assert templates.serialize("oadrCanceledPartyRegistration", other) == \
        codec.serialize("oadrCanceledPartyRegistration", other)


def test_the_template_is_built_once_per_shape():
    templates._templates.clear()
    for n in range(50):
        templates.serialize("oadrResponse", {"response": {"response_code": 200, "response_description": "OK",
                                                          "request_id": f"r{n}"}, "ven_id": f"v{n}"})
    assert len(templates._templates) == 1
