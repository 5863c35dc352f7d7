"""The codec's edges: three-digit response codes, xsi:type item bases, repeated Green Button
payloads, one-or-list keys given twice, values only the schema's loose patterns admit, and the
dataclasses against the messages they stand for."""
from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from xmpp_vtn import SchemaError, codec, objects
from xmpp_vtn.codec import EncodeError
from xmpp_vtn.ops.validate import explain
from payloads import CATALOGUE, EVENT_MIN, GREENBUTTON_FEED, POWER_REAL, T0

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def response(code) -> dict:
    return {"response": {"response_code": code, "request_id": "r1"}, "ven_id": "v1"}


# -- response codes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, number", [("000", 0), ("099", 99), ("200", 200), ("469", 469)])
def test_a_response_code_reads_as_an_int_and_is_written_back_in_three_digits(text, number):
    data = codec.serialize("oadrResponse", response(200)).replace(
        b"<ei:responseCode>200<", f"<ei:responseCode>{text}<".encode())
    message_type, payload = codec.parse(data)
    assert payload["response"]["response_code"] == number
    assert f"<ei:responseCode>{text}</ei:responseCode>".encode() in codec.serialize(message_type, payload)


@pytest.mark.parametrize("given, written", [(0, "000"), (7, "007"), (99, "099"), ("0", "000"), ("000", "000"),
                                            ("99", "099"), (" 200 ", "200"), (452, "452")])
def test_a_response_code_is_written_in_three_digits_whatever_is_passed(given, written):
    for message_type, payload in (("oadrResponse", response(given)), ("oadrCreatedEvent", {
            "response": {"response_code": 200, "request_id": None}, "ven_id": "v1",
            "event_responses": [{"response_code": given, "request_id": None, "event_id": "e1",
                                 "modification_number": 0, "opt_type": "optIn"}]})):
        data = codec.serialize(message_type, payload)
        assert f"<ei:responseCode>{written}</ei:responseCode>".encode() in data
        assert int(written) in [r["response_code"] for r in
                                [codec.parse(data)[1].get("response")] + codec.parse(data)[1].get("event_responses", [])]


@pytest.mark.parametrize("given, message", [
    (1000, "response code 1000 is not three digits"), (-1, "response code -1 is not three digits"),
    ("2OO", "expected a response code such as 200"), (True, "expected a response code such as 200"),
    (200.0, "expected a response code such as 200")])
def test_a_response_code_that_is_not_three_digits_names_the_key(given, message):
    with pytest.raises(EncodeError, match=rf"^response\.response_code: {message}"):
        codec.serialize("oadrResponse", response(given))


def test_the_response_dataclass_writes_three_digits():
    data = codec.serialize("oadrResponse", {"response": objects.Response(response_code=0, request_id="r")})
    assert b"<ei:responseCode>000</ei:responseCode>" in data


# -- xsi:type on power:powerItem / power:energyItem -------------------------------------------------

def _signal_with(measurement_xml: str) -> bytes:
    event = copy.deepcopy(EVENT_MIN)
    event["event_signals"][0]["measurement"] = POWER_REAL
    data = codec.serialize("oadrDistributeEvent", {"request_id": "r1", "vtn_id": "V", "events": [event]}).decode()
    start, end = data.index("<power:powerReal>"), data.index("</power:powerReal>") + len("</power:powerReal>")
    return (data[:start] + measurement_xml + data[end:]).encode()


POWER_ITEM = (f'<power:powerItem {XSI} xsi:type="power:PowerRealType"><power:itemDescription>RealPower'
              '</power:itemDescription><power:itemUnits>W</power:itemUnits><scale:siScaleCode>k</scale:siScaleCode>'
              '<power:powerAttributes><power:hertz>60</power:hertz><power:voltage>120.5</power:voltage>'
              '<power:ac>true</power:ac></power:powerAttributes></power:powerItem>')
ENERGY_ITEM = (f'<power:energyItem {XSI} xmlns:p2="http://docs.oasis-open.org/ns/emix/2011/06/power" '
               'xsi:type="p2:EnergyReactiveType"><power:itemDescription>ReactiveEnergy</power:itemDescription>'
               '<power:itemUnits>VARh</power:itemUnits><scale:siScaleCode>none</scale:siScaleCode></power:energyItem>')


@pytest.mark.parametrize("xml, expected", [
    (POWER_ITEM, POWER_REAL),
    (ENERGY_ITEM, {"name": "energyReactive", "description": "ReactiveEnergy", "unit": "VARh", "scale": "none"}),
], ids=["powerItem", "energyItem"])
def test_an_item_base_given_by_xsi_type_keeps_its_measurement(xml, expected):
    data = _signal_with(xml)
    message_type, payload = codec.parse(data)
    signal = payload["events"][0]["event_signals"][0]
    assert signal["measurement"] == expected
    # Written back as the concrete element it stands for, which every peer reads.
    written = codec.serialize(message_type, payload)
    assert f"<power:{expected['name']}>".encode() in written and b"xsi:type" not in written
    assert codec.parse(written) == (message_type, payload)
    assert explain(data).valid


def test_an_item_base_xsi_type_the_schema_does_not_derive_is_refused():
    with pytest.raises(SchemaError, match=r"eiEventSignal/powerItem: .*EnergyRealType.*not validly derived"):
        codec.parse(_signal_with(POWER_ITEM.replace("PowerRealType", "EnergyRealType")))
    with pytest.raises(SchemaError, match=r"eiEventSignal/powerItem: .*abstract"):
        codec.parse(_signal_with(POWER_ITEM.replace(' xsi:type="power:PowerRealType"', "")))


# -- several payloads in one interval ---------------------------------------------------------------

OTHER_FEED = GREENBUTTON_FEED.replace("urn:uuid:1", "urn:uuid:2")


def _report_with(interval: dict) -> dict:
    return {"request_id": "req", "ven_id": "v1", "reports": [{
        "intervals": [interval], "report_descriptions": [], "report_request_id": "rr", "report_specifier_id": "s",
        "report_name": "HISTORY_GREENBUTTON", "created_date_time": T0}]}


def test_several_green_button_payloads_in_one_interval_are_all_kept():
    payload = _report_with({"dtstart": T0, "greenbutton_feeds": [GREENBUTTON_FEED, OTHER_FEED]})
    data = codec.serialize("oadrUpdateReport", payload)
    assert data.count(b"<oadr:oadrGBPayload>") == 2
    _, parsed = codec.parse(data)
    [interval] = parsed["reports"][0]["intervals"]
    assert "greenbutton_feed" not in interval
    assert [feed.count("urn:uuid:") for feed in interval["greenbutton_feeds"]] == [1, 1]
    assert "urn:uuid:1" in interval["greenbutton_feeds"][0] and "urn:uuid:2" in interval["greenbutton_feeds"][1]
    assert codec.parse(codec.serialize("oadrUpdateReport", parsed))[1] == parsed


def test_one_green_button_payload_stays_single():
    _, parsed = codec.parse(codec.serialize("oadrUpdateReport", _report_with(
        {"dtstart": T0, "greenbutton_feed": GREENBUTTON_FEED})))
    assert set(parsed["reports"][0]["intervals"][0]) == {"dtstart", "greenbutton_feed"}


@pytest.mark.parametrize("single, plural, one, several", [
    ("report_payload", "report_payloads", {"r_id": "a", "value": 1.0}, [{"r_id": "b", "value": 2.0}]),
    ("greenbutton_feed", "greenbutton_feeds", GREENBUTTON_FEED, [OTHER_FEED]),
])
def test_giving_both_the_single_and_the_list_key_is_an_error(single, plural, one, several):
    payload = _report_with({"dtstart": T0, single: one, plural: several})
    with pytest.raises(EncodeError, match=rf"^reports\[0\]\.intervals\[0\]\.{single}: give either '{single}' "
                                          rf"\(one\) or '{plural}' \(a list\), not both$"):
        codec.serialize("oadrUpdateReport", payload)


def test_giving_both_signal_payload_keys_is_an_error():
    event = copy.deepcopy(EVENT_MIN)
    event["event_signals"][0]["intervals"][0]["signal_payloads"] = [2.0]
    with pytest.raises(EncodeError, match=r"intervals\[0\]\.signal_payload: give either 'signal_payload'"):
        codec.serialize("oadrDistributeEvent", {"request_id": "r", "vtn_id": "v", "events": [event]})


# -- values the schema's patterns admit but a payload cannot hold -----------------------------------

EVENT = codec.serialize("oadrDistributeEvent", {"request_id": "r1", "vtn_id": "V", "events": [EVENT_MIN]})
ACTIVE_DURATION = "/oadrPayload/oadrSignedObject/oadrDistributeEvent/oadrEvent/eiEvent/eiActivePeriod/properties/" \
                  "duration/duration"


@pytest.mark.parametrize("text, why", [
    ("P1H", "hours, minutes and seconds go after a T (PT1H)"),
    ("P1D2H30M", "hours, minutes and seconds go after a T (P1DT2H30M)"),
    ("P10S", "hours, minutes and seconds go after a T (PT10S)"),
    ("PT", "it has no number and unit (zero is PT0S)"),
    ("P", "it has no number and unit (zero is PT0S)"),
    ("-PT", "it has no number and unit (zero is PT0S)"),
    ("2W", "it needs a P before the weeks (P2W)"),
])
def test_a_duration_only_the_schema_pattern_admits_is_explained_in_words(text, why):
    data = EVENT.replace(b">PT10M<", f">{text}<".encode())
    with pytest.raises(SchemaError) as raised:
        codec.parse(data)
    error = raised.value
    assert str(error) == f"line 2: {ACTIVE_DURATION}: value {text!r} is not an ISO 8601 duration: {why}"
    assert error.path == ACTIVE_DURATION and error.line == 2
    # validate agrees with the VTN: what the VTN refuses, validate does not call valid.
    verdict = explain(data)
    assert not verdict.valid
    assert [p.describe() for p in verdict.problems] == [
        f"2: oadrDistributeEvent/oadrEvent/eiEvent/eiActivePeriod/properties/duration/duration: "
        f"value {text!r} is not an ISO 8601 duration: {why}"]


def test_the_element_of_a_refused_value_is_named_on_its_own_line():
    pretty = EVENT.replace(b"<xcal:duration><xcal:duration>PT10M", b"<xcal:duration>\n<xcal:duration>P1H")
    with pytest.raises(SchemaError) as raised:
        codec.parse(pretty)
    assert raised.value.line == 3


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T24:00:00Z", datetime(2026, 11, 24, tzinfo=timezone.utc)),
    ("2026-12-31T24:00:00.000Z", datetime(2027, 1, 1, tzinfo=timezone.utc)),
])
def test_24_00_00_is_midnight_of_the_next_day_as_xs_datetime_defines_it(text, expected):
    data = EVENT.replace(b"<ei:createdDateTime>2026-11-23T12:00:00Z<", f"<ei:createdDateTime>{text}<".encode())
    message_type, payload = codec.parse(data)
    assert payload["events"][0]["event_descriptor"]["created_date_time"] == expected
    assert expected.strftime("%Y-%m-%dT00:00:00Z").encode() in codec.serialize(message_type, payload)
    assert explain(data).valid


@pytest.mark.parametrize("text, why", [
    # libxml2 refuses 31 June and year 0000 itself; these two pass the schema and reach the codec.
    ("9999-12-31T24:00:00Z", "is not a date-time that exists (date value out of range)"),
    ("-0001-01-01T00:00:00Z", "is a date before year 1, which a payload cannot hold"),
])
def test_a_date_time_a_payload_cannot_hold_is_explained_where_it_is(text, why):
    data = EVENT.replace(b"<ei:createdDateTime>2026-11-23T12:00:00Z<", f"<ei:createdDateTime>{text}<".encode())
    path = "/oadrPayload/oadrSignedObject/oadrDistributeEvent/oadrEvent/eiEvent/eventDescriptor/createdDateTime"
    with pytest.raises(SchemaError) as raised:
        codec.parse(data)
    assert str(raised.value) == f"line 2: {path}: value {text!r} {why}"
    assert not explain(data).valid


# -- the dataclasses --------------------------------------------------------------------------------

def test_opt_has_request_id_and_serializes_as_oadr_create_opt():
    opt = objects.Opt(opt_type="optOut", opt_reason="participating", opt_id="o1", ven_id="v1", request_id="req-9",
                      created_date_time=T0, targets_by_type={"ven_id": ["v1"]},
                      vavailability=objects.Vavailability(components=[objects.VavailabilityComponent(
                          dtstart=T0, duration=timedelta(hours=1), notification_period=timedelta(minutes=5))]))
    _, parsed = codec.parse(codec.serialize("oadrCreateOpt", opt))
    assert parsed["request_id"] == "req-9" and parsed["targets"] == [{"ven_id": "v1"}]
    assert parsed["vavailability"]["components"][0]["notification_period"] == timedelta(minutes=5)


def test_every_dataclass_field_is_a_key_the_codec_knows_and_the_reverse():
    """A user holding a dataclass can write whatever the codec reads for that element."""
    from xmpp_vtn.codec import kinds, messages as m
    from xmpp_vtn.codec.spec import Nested

    def keys(spec) -> set:
        found = set()
        for field in spec.fields:
            if field.flatten:
                found |= keys(field.kind.spec) if isinstance(field.kind, Nested) else {"targets", "targets_by_type"}
            else:
                found |= {field.key} | ({field.plural} if field.plural else set())
        return found

    def child(spec, key):
        return next(f.kind.spec for f in spec.fields if f.key == key)

    interval_keys = keys(m.INTERVAL)
    report_only = {"report_payload", "report_payloads", "greenbutton_feed", "greenbutton_feeds"}
    pairs = {
        objects.Response: keys(m.RESPONSE), objects.EventDescriptor: keys(m.EVENT_DESCRIPTOR),
        objects.ActivePeriod: keys(m.PROPERTIES), objects.EventSignal: keys(m.EVENT_SIGNAL),
        objects.EventBaseline: keys(m.EVENT_BASELINE), objects.Event: keys(m.EVENT),
        objects.SamplingRate: keys(m.SAMPLING_RATE), objects.ReportDescription: keys(m.REPORT_DESCRIPTION),
        objects.ReportPayload: keys(child(m.INTERVAL, "report_payload")), objects.Report: keys(m.REPORT),
        objects.SpecifierPayload: keys(child(m.REPORT_SPECIFIER, "specifier_payloads")),
        objects.ReportSpecifier: keys(m.REPORT_SPECIFIER), objects.ReportRequest: keys(m.REPORT_REQUEST),
        objects.VavailabilityComponent: keys(m.PROPERTIES), objects.Vavailability: keys(m.VAVAILABILITY),
        objects.Opt: keys(m.MESSAGES["oadrCreateOpt"]), objects.PowerAttributes: keys(kinds._POWER_ATTRIBUTES),
        # An event interval and a report interval are one schema type, split by what they carry.
        objects.Interval: interval_keys - report_only,
        objects.ReportInterval: (interval_keys & report_only) | {"dtstart", "duration", "uid"},
    }
    for cls, codec_keys in pairs.items():
        assert {f.name for f in dataclasses.fields(cls)} == codec_keys, cls.__name__


def test_interval_dataclasses_take_one_or_a_list_never_both():
    interval = objects.ReportInterval(dtstart=T0, report_payloads=[objects.ReportPayload(r_id="a", value=1.0),
                                                                   objects.ReportPayload(r_id="b", value=2.0)])
    payload = _report_with(interval)
    payload["reports"][0]["report_name"] = "TELEMETRY_USAGE"
    _, parsed = codec.parse(codec.serialize("oadrUpdateReport", payload))
    assert [p["r_id"] for p in parsed["reports"][0]["intervals"][0]["report_payloads"]] == ["a", "b"]
    with pytest.raises(ValueError, match="either report_payload .* or report_payloads"):
        objects.ReportInterval(dtstart=T0, report_payload={"r_id": "a"}, report_payloads=[{"r_id": "b"}])
    with pytest.raises(ValueError, match="needs report_payload"):
        objects.ReportInterval(dtstart=T0)
    with pytest.raises(ValueError, match="either signal_payload .* or signal_payloads"):
        objects.Interval(signal_payload=1.0, signal_payloads=[2.0])
    assert objects.ReportInterval(T0, {"r_id": "a", "value": 1.0}).report_payload == {"r_id": "a", "value": 1.0}


def test_the_catalogue_still_round_trips_after_these_changes():
    for message_type, (full, minimal) in CATALOGUE.items():
        for payload in (full, minimal):
            parsed = codec.parse(codec.serialize(message_type, payload))
            assert codec.parse(codec.serialize(*parsed)) == parsed, message_type
