"""Bad input: every case gets a SchemaError (a ValueError) with a useful message."""
from __future__ import annotations

import re

import pytest

from xmpp_vtn import SchemaError, codec
from xmpp_vtn.codec import EncodeError
from payloads import CATALOGUE

POLL = codec.serialize("oadrPoll", {"ven_id": "v1"})
OADR = "http://openadr.org/oadr-2.0b/2012/07"
EI = "http://docs.oasis-open.org/ns/energyinterop/201110"


def test_schema_error_is_a_value_error_with_line_and_path():
    bad = POLL.replace(b"<ei:venID>v1</ei:venID>", b"\n<ei:vtnID>v1</ei:vtnID>")
    with pytest.raises(ValueError) as caught:
        codec.parse(bad)
    error = caught.value
    assert isinstance(error, SchemaError)
    assert error.line == 3
    assert error.path == "/oadrPayload/oadrSignedObject/oadrPoll/vtnID"
    assert "ei:vtnID" in str(error) and "Expected is ( ei:venID )" in str(error)
    assert str(error).startswith("line 3: /oadrPayload/oadrSignedObject/oadrPoll/vtnID:")


def test_enumeration_violation_names_the_value():
    data = codec.serialize("oadrCreatedEvent", CATALOGUE["oadrCreatedEvent"][0]).replace(b"optIn", b"maybe")
    with pytest.raises(SchemaError, match=r"optType.*'maybe'.*not an element of the set"):
        codec.parse(data)


def test_missing_required_element():
    data = codec.serialize("oadrCancelOpt", CATALOGUE["oadrCancelOpt"][0]).replace(b"<ei:optID>opt-1</ei:optID>", b"")
    with pytest.raises(SchemaError, match=r"oadrCancelOpt/venID.*Expected is \( ei:optID \)"):
        codec.parse(data)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07"><oadrSignedObject><oadrPoll>
<venID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110">&x;</venID></oadrPoll></oadrSignedObject></oadrPayload>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07"><oadrSignedObject><oadrPoll>
<venID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110">&lol3;</venID></oadrPoll></oadrSignedObject></oadrPayload>"""


@pytest.mark.parametrize("document", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_doctype_and_entities_are_refused(document):
    with pytest.raises(SchemaError, match="DOCTYPE and entity declarations are not allowed"):
        codec.parse(document)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_wide_encodings_cannot_hide_a_doctype(encoding):
    document = XXE.replace(b'<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{encoding}"?>'.encode())
    with pytest.raises(SchemaError, match="only UTF-8 and other ASCII-compatible encodings are accepted"):
        codec.parse(document.decode().encode(encoding))


def test_the_parser_itself_never_loads_an_external_dtd(tmp_path):
    """Second line of defence behind the byte scan: the hardened parser refuses external resources."""
    from lxml import etree
    from xmpp_vtn.schema import _hardened_parser
    dtd = tmp_path / "secret.dtd"
    dtd.write_text('<!ENTITY leak "SECRET">')
    document = f'<!DOCTYPE r SYSTEM "file://{dtd}"><r>&leak;</r>'.encode()
    try:
        parsed = etree.tostring(etree.fromstring(document, _hardened_parser()))
    except (etree.XMLSyntaxError, ValueError):
        parsed = b""
    assert b"SECRET" not in parsed


def test_text_that_is_not_unicode_clean():
    with pytest.raises(SchemaError, match="cannot be encoded as UTF-8"):
        codec.parse("<oadrPayload>\ud800</oadrPayload>")


def test_oversized_document_is_refused_before_parsing():
    with pytest.raises(SchemaError, match=r"more than the limit of 100"):
        codec.parse(POLL, max_bytes=100)
    big = POLL.replace(b"<ei:venID>v1</ei:venID>", b"<ei:venID>" + b"x" * 1_100_000 + b"</ei:venID>")
    with pytest.raises(SchemaError, match="limit of 1048576"):
        codec.parse(big)


def _signed_poll_with_object(depth: int) -> bytes:
    nested = "<d>" * depth + "</d>" * depth
    return f"""<oadrPayload xmlns="{OADR}"><Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
<SignedInfo><CanonicalizationMethod Algorithm="a"/><SignatureMethod Algorithm="b"/>
<Reference><DigestMethod Algorithm="c"/><DigestValue>AA==</DigestValue></Reference></SignedInfo>
<SignatureValue>AA==</SignatureValue><Object>{nested}</Object></Signature>
<oadrSignedObject><oadrPoll><venID xmlns="{EI}">v1</venID></oadrPoll></oadrSignedObject></oadrPayload>""".encode()


def test_depth_limit():
    assert codec.parse(_signed_poll_with_object(10))[0] == "oadrPoll"   # open content is allowed...
    with pytest.raises(SchemaError, match="nested deeper than the limit of 48"):
        codec.parse(_signed_poll_with_object(60))                       # ...but not without bound
    with pytest.raises(SchemaError, match="nested deeper than the limit of 12"):
        codec.parse(_signed_poll_with_object(10), max_depth=12)
    with pytest.raises(SchemaError):
        codec.parse(_signed_poll_with_object(300))                      # libxml2's own hard limit


@pytest.mark.parametrize("document, message", [
    (b"", r"^empty document$"),
    (b"  \n", r"^empty document$"),
    (b"not xml at all", r"line 1: not well-formed XML"),
    (POLL[:-30], r"not well-formed XML"),
    (b"<foo/>", r"root element is foo, expected oadr:oadrPayload"),
    (POLL.replace(OADR.encode(), b"http://openadr.org/oadr-2.0a/2012/07"),
     r"root element is \{http://openadr.org/oadr-2.0a/2012/07\}oadrPayload, expected oadr:oadrPayload"),
    (POLL.replace(b"oadrPoll", b"oadrFoo"), r"oadr:oadrFoo.*not expected"),
    (POLL.replace(b"v1", b"\xff\xfe"), r"not well-formed XML.*(UTF-8|encoding|Input is not proper)"),
    ("<?xml version='1.0'?><oadrPayload xmlns='x'>\u00e9</oadrPayload>".encode("latin-1"), r"not well-formed XML"),
], ids=["empty", "blank", "text", "truncated", "wrong-root", "wrong-namespace", "unknown-message", "bad-utf8", "latin1-undeclared"])
def test_bad_documents(document, message):
    with pytest.raises(SchemaError, match=message):
        codec.parse(document)


def test_parse_refuses_non_text_types():
    with pytest.raises(TypeError):
        codec.parse(12)  # type: ignore[arg-type]


def test_unknown_message_type_on_serialize():
    with pytest.raises(ValueError, match="unknown OpenADR message type 'oadrFoo'"):
        codec.serialize("oadrFoo", {})


def test_missing_required_key_names_the_path():
    with pytest.raises(EncodeError, match=r"^events\[0\]\.event_descriptor\.event_id: required by eventDescriptor"):
        codec.serialize("oadrDistributeEvent", {"request_id": "r", "vtn_id": "v", "events": [
            {**CATALOGUE["oadrDistributeEvent"][0]["events"][1],
             "event_descriptor": {"market_context": "http://mc", "event_status": "far"}}]})


def test_value_outside_an_enumeration_names_the_element():
    payload = {**CATALOGUE["oadrCreateOpt"][1], "opt_type": "sometimes"}
    with pytest.raises(SchemaError, match=r"oadrCreateOpt payload does not produce valid OpenADR.*optType.*'sometimes'"):
        codec.serialize("oadrCreateOpt", payload)


@pytest.mark.parametrize("payload, message", [
    ({"ven_id": "a\x00b"}, r"ven_id: All strings must be XML compatible"),
    ({"ven_id": 1.5}, r"ven_id: expected a string, not float"),
    ({"ven_id": ["a"]}, r"ven_id: expected a string, not list"),
])
def test_bad_values_name_the_key(payload, message):
    with pytest.raises(EncodeError, match=message):
        codec.serialize("oadrPoll", payload)


def test_encoder_crashes_become_value_errors():
    from datetime import datetime, timedelta, timezone
    payload = {**CATALOGUE["oadrCreateOpt"][1],
               "created_date_time": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}
    with pytest.raises(EncodeError, match="^created_date_time: "):
        codec.serialize("oadrCreateOpt", payload)
    area = {"service_area": {"feature_collection": {"location": {"polygon": {"exterior": {
        "linear_ring": {"pos_list": [1.0, None]}}}}}}}
    with pytest.raises(EncodeError, match=r"pos_list: expected a list of numbers"):
        codec.serialize("oadrCreateOpt", {**CATALOGUE["oadrCreateOpt"][1], "targets": [area]})
    with pytest.raises(EncodeError, match=r"measurement\.name: unknown measurement \['powerReal'\]"):
        codec.serialize("oadrRegisterReport", {"request_id": "r", "reports": [{
            "report_specifier_id": "s", "created_date_time": datetime.now(timezone.utc), "report_descriptions": [{
                "r_id": "r", "report_type": "usage", "reading_type": "Direct Read",
                "measurement": {"name": ["powerReal"]}}]}]})


def test_wrong_container_types():
    with pytest.raises(EncodeError, match=r"events: expected a list"):
        codec.serialize("oadrDistributeEvent", {"request_id": "r", "vtn_id": "v", "events": {"a": 1}})
    with pytest.raises(EncodeError, match=r"unknown target type\(s\) \['venid'\]"):
        codec.serialize("oadrCreateOpt", {**CATALOGUE["oadrCreateOpt"][1], "targets": [{"venid": "x"}]})
    with pytest.raises(EncodeError, match=r"measurement\.name: unknown measurement 'watts'"):
        codec.serialize("oadrDistributeEvent", {"request_id": "r", "vtn_id": "v", "events": [{
            **CATALOGUE["oadrDistributeEvent"][0]["events"][1], "event_signals": [{
                "intervals": [{"signal_payload": 1.0}], "signal_name": "SIMPLE", "signal_type": "level",
                "signal_id": "s", "measurement": {"name": "watts"}}]}]})


def test_error_messages_never_leak_lxml_tracebacks():
    with pytest.raises(SchemaError) as caught:
        codec.parse(b"<oadrPayload xmlns='" + OADR.encode() + b"'><oadrSignedObject/></oadrPayload>")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert re.match(r"line 1: /oadrPayload/oadrSignedObject: ", str(caught.value))
