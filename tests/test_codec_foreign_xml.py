"""XML as other implementations write it: other prefixes, default namespaces, indentation,
declarations with encodings, signatures, optional parts absent."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from xmpp_vtn import codec

CREATED_EVENT_DEFAULT_NAMESPACES = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07">
    <oadrSignedObject>
        <oadrCreatedEvent>
            <eiCreatedEvent xmlns="http://docs.oasis-open.org/ns/energyinterop/201110/payloads">
                <eiResponse xmlns="http://docs.oasis-open.org/ns/energyinterop/201110">
                    <responseCode>200</responseCode>
                    <responseDescription>OK</responseDescription>
                    <requestID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110/payloads"/>
                </eiResponse>
                <eventResponses xmlns="http://docs.oasis-open.org/ns/energyinterop/201110">
                    <eventResponse>
                        <responseCode>200</responseCode>
                        <requestID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110/payloads">req 7</requestID>
                        <qualifiedEventID>
                            <eventID>0042</eventID>
                            <modificationNumber>2</modificationNumber>
                        </qualifiedEventID>
                        <optType>optOut</optType>
                    </eventResponse>
                </eventResponses>
                <venID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110">00123</venID>
            </eiCreatedEvent>
        </oadrCreatedEvent>
    </oadrSignedObject>
</oadrPayload>
"""


def test_default_namespaces_and_indentation():
    message_type, payload = codec.parse(CREATED_EVENT_DEFAULT_NAMESPACES)
    assert message_type == "oadrCreatedEvent"
    assert payload == {
        "response": {"response_code": 200, "response_description": "OK", "request_id": None},
        "event_responses": [{"response_code": 200, "request_id": "req 7", "event_id": "0042",
                             "modification_number": 2, "opt_type": "optOut"}],
        "ven_id": "00123",
    }


def test_unusual_prefixes_and_latin1_declaration():
    document = ("""<?xml version='1.0' encoding='ISO-8859-1'?>
<p:oadrPayload xmlns:p="http://openadr.org/oadr-2.0b/2012/07"><p:oadrSignedObject>
<p:oadrCreatePartyRegistration xmlns:ns1="http://docs.oasis-open.org/ns/energyinterop/201110"
 xmlns:ns2="http://docs.oasis-open.org/ns/energyinterop/201110/payloads" ns1:schemaVersion="2.0b">
 <ns2:requestID>r1</ns2:requestID>
 <p:oadrProfileName>2.0b</p:oadrProfileName>
 <p:oadrTransportName>xmpp</p:oadrTransportName>
 <p:oadrTransportAddress>ven@host/r\u00e9source</p:oadrTransportAddress>
 <p:oadrReportOnly>0</p:oadrReportOnly>
 <p:oadrXmlSignature>false</p:oadrXmlSignature>
 <p:oadrVenName>Caf\u00e9</p:oadrVenName>
</p:oadrCreatePartyRegistration></p:oadrSignedObject></p:oadrPayload>""").encode("latin-1")
    message_type, payload = codec.parse(document)
    assert message_type == "oadrCreatePartyRegistration"
    assert payload == {"request_id": "r1", "profile_name": "2.0b", "transport_name": "xmpp",
                       "transport_address": "ven@host/r\u00e9source", "report_only": False,
                       "xml_signature": False, "ven_name": "Caf\u00e9"}


def test_str_input_with_a_declaration():
    text = codec.serialize("oadrPoll", {"ven_id": "v\u00e9"}).decode("utf-8")
    assert codec.parse(text) == ("oadrPoll", {"ven_id": "v\u00e9"})


SIGNED = b"""<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07" xmlns:o="http://openadr.org/oadr-2.0b/2012/07">
  <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
    <SignedInfo>
      <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
      <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <Reference URI="#oadrSignedObject">
        <DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <DigestValue>AAAA</DigestValue>
      </Reference>
    </SignedInfo>
    <SignatureValue>AAAA</SignatureValue>
  </Signature>
  <oadrSignedObject o:Id="oadrSignedObject"><oadrPoll><venID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110">v1</venID></oadrPoll></oadrSignedObject>
</oadrPayload>"""


def test_signature_is_accepted_and_kept_out_of_the_payload():
    assert codec.parse(SIGNED) == ("oadrPoll", {"ven_id": "v1"})


def test_openleadr_style_event_with_empty_components_and_uid_text():
    document = b"""<?xml version="1.0" encoding="utf-8"?>
<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07">
<oadr:oadrSignedObject xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07" oadr:Id="oadrSignedObject">
<oadr:oadrDistributeEvent ei:schemaVersion="2.0b" xmlns:ei="http://docs.oasis-open.org/ns/energyinterop/201110">
<requestID xmlns="http://docs.oasis-open.org/ns/energyinterop/201110/payloads">r1</requestID>
<ei:vtnID>VTN</ei:vtnID>
<oadr:oadrEvent><ei:eiEvent><ei:eventDescriptor><ei:eventID>ev1</ei:eventID>
<ei:modificationNumber>0</ei:modificationNumber><ei:priority>1</ei:priority>
<ei:eiMarketContext><marketContext xmlns="http://docs.oasis-open.org/ns/emix/2011/06">http://mc</marketContext></ei:eiMarketContext>
<ei:createdDateTime>2026-11-23T12:00:00.000000Z</ei:createdDateTime><ei:eventStatus>far</ei:eventStatus>
<ei:testEvent>x-maybe</ei:testEvent></ei:eventDescriptor>
<ei:eiActivePeriod><properties xmlns="urn:ietf:params:xml:ns:icalendar-2.0"><dtstart><date-time>2026-11-23T12:00:00.000000Z</date-time></dtstart>
<duration><duration>PT10M</duration></duration></properties><components xmlns="urn:ietf:params:xml:ns:icalendar-2.0" /></ei:eiActivePeriod>
<ei:eiEventSignals><ei:eiEventSignal><strm:intervals xmlns:strm="urn:ietf:params:xml:ns:icalendar-2.0:stream" xmlns:xcal="urn:ietf:params:xml:ns:icalendar-2.0">
<ei:interval><xcal:dtstart><xcal:date-time>2026-11-23T12:00:00.000000Z</xcal:date-time></xcal:dtstart>
<xcal:duration><xcal:duration>PT10M</xcal:duration></xcal:duration><uid xmlns="urn:ietf:params:xml:ns:icalendar-2.0"><text>0</text></uid>
<ei:signalPayload><ei:payloadFloat><ei:value>1</ei:value></ei:payloadFloat></ei:signalPayload></ei:interval></strm:intervals>
<ei:signalName>SIMPLE</ei:signalName><ei:signalType>level</ei:signalType><ei:signalID>s1</ei:signalID></ei:eiEventSignal></ei:eiEventSignals>
<ei:eiTarget><ei:venID>00123</ei:venID></ei:eiTarget></ei:eiEvent><oadr:oadrResponseRequired>always</oadr:oadrResponseRequired></oadr:oadrEvent>
</oadr:oadrDistributeEvent></oadr:oadrSignedObject></oadr:oadrPayload>"""
    _, payload = codec.parse(document)
    event = payload["events"][0]
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    assert event["event_descriptor"]["test_event"] == "x-maybe"  # rule 006: anything but 'false' is a test
    assert event["active_period"] == {"dtstart": t0, "duration": timedelta(minutes=10)}
    assert event["event_signals"][0]["intervals"] == [
        {"dtstart": t0, "duration": timedelta(minutes=10), "uid": "0", "signal_payload": 1.0}]
    assert event["targets"] == [{"ven_id": "00123"}]


def test_token_values_are_whitespace_collapsed_as_the_schema_reads_them():
    document = CREATED_EVENT_DEFAULT_NAMESPACES.replace(b"<optType>optOut</optType>",
                                                        b"<optType>\n      optOut\n   </optType>")
    assert codec.parse(document)[1]["event_responses"][0]["opt_type"] == "optOut"
