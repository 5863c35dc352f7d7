"""parse(serialize(p)) == p for all 23 messages, and the representation's promises."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from xmpp_vtn import bundle, codec, objects
from xmpp_vtn.codec import values
from payloads import CATALOGUE, EVENT_FULL, T0


def test_catalogue_covers_every_message_in_the_schema():
    xsd = etree.parse(str(bundle.verify()))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    refs = xsd.xpath("//xs:element[@name='oadrSignedObject']//xs:choice/xs:element/@ref", namespaces=ns)
    in_schema = [ref.split(":")[1] for ref in refs]
    assert len(in_schema) == 23
    assert list(codec.MESSAGE_TYPES) == in_schema
    assert sorted(CATALOGUE) == sorted(in_schema)


@pytest.mark.parametrize("variant", ["full", "minimal"])
@pytest.mark.parametrize("message_type", sorted(CATALOGUE))
def test_round_trip(message_type, variant):
    payload = CATALOGUE[message_type][0 if variant == "full" else 1]
    data = codec.serialize(message_type, payload)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert codec.parse(data) == (message_type, payload)


def test_text_is_escaped_and_survives():
    payload = {"request_id": 'A & B <x> ]]> "q" \u00e9'}
    data = codec.serialize("oadrQueryRegistration", payload)
    assert b"A &amp; B &lt;x&gt;" in data
    assert codec.parse(data)[1] == payload


def test_identifiers_stay_strings():
    _, payload = codec.parse(codec.serialize("oadrPoll", {"ven_id": "00123"}))
    assert payload == {"ven_id": "00123"}
    _, payload = codec.parse(codec.serialize("oadrCreatedOpt", {
        "response": {"response_code": 200, "request_id": "007"}, "opt_id": "1e3"}))
    assert payload["response"]["request_id"] == "007" and payload["opt_id"] == "1e3"


def test_numbers_are_numbers():
    _, payload = codec.parse(codec.serialize("oadrDistributeEvent",
                                             {"request_id": "r", "vtn_id": "v", "events": [EVENT_FULL]}))
    event = payload["events"][0]
    assert isinstance(event["event_descriptor"]["modification_number"], int)
    assert isinstance(event["event_signals"][0]["intervals"][0]["signal_payload"], float)


def test_datetimes_come_back_utc_aware():
    plus_two = timezone(timedelta(hours=2))
    payload = {"request_id": "r", "vtn_id": "v", "events": [{**EVENT_FULL, "event_descriptor": {
        **EVENT_FULL["event_descriptor"], "created_date_time": datetime(2026, 11, 23, 14, 0, tzinfo=plus_two)}}]}
    _, parsed = codec.parse(codec.serialize("oadrDistributeEvent", payload))
    created = parsed["events"][0]["event_descriptor"]["created_date_time"]
    assert created == T0 and created.tzinfo == timezone.utc


def test_naive_datetime_is_refused_with_the_key_path():
    payload = {"opt_id": "o", "opt_type": "optIn", "opt_reason": "economic", "ven_id": "v",
               "created_date_time": datetime(2026, 1, 1), "request_id": "r", "targets": []}
    with pytest.raises(ValueError, match=r"created_date_time: naive datetime"):
        codec.serialize("oadrCreateOpt", payload)


@pytest.mark.parametrize("delta, text", [
    (timedelta(minutes=10), "PT10M"), (timedelta(0), "PT0S"), (timedelta(days=1), "P1D"),
    (timedelta(days=1, seconds=3661), "P1DT1H1M1S"), (-timedelta(minutes=5), "-PT5M"),
    (timedelta(hours=2), "PT2H"), (timedelta(seconds=90), "PT1M30S"),
])
def test_durations(delta, text):
    assert values.format_duration(delta) == text
    assert values.parse_duration(text) == delta


@pytest.mark.parametrize("text, delta", [("+PT1S", timedelta(seconds=1)),
                                         ("P1Y", timedelta(days=365)), ("P1M", timedelta(days=30))])
def test_duration_forms_other_implementations_write(text, delta):
    assert values.parse_duration(text) == delta


def test_sub_second_duration_is_refused():
    with pytest.raises(ValueError, match="whole seconds"):
        values.format_duration(timedelta(milliseconds=1500))


@pytest.mark.parametrize("text", ["2026-11-23T12:00:00Z", "2026-11-23T12:00:00", "2026-11-23T12:00:00.000000001Z"])
def test_datetime_forms(text):
    assert values.parse_datetime(text) == T0


def test_floats_write_as_xs_float():
    assert [values.format_float(v) for v in (1.5, 3, float("inf"), float("-inf"), 1e-05)] == \
        ["1.5", "3", "INF", "-INF", "1e-05"]
    assert values.parse_float("NaN") != values.parse_float("NaN")


def test_dataclasses_are_accepted_wherever_a_dict_is():
    start = T0
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(event_id="ev1", modification_number=0,
                                                 market_context="http://mc", event_status="far",
                                                 created_date_time=start),
        event_signals=[objects.EventSignal(
            intervals=[objects.Interval(dtstart=start + i * timedelta(minutes=10),
                                        duration=timedelta(minutes=10), signal_payload=float(i)) for i in range(3)],
            signal_name="SIMPLE", signal_type="level", signal_id="s1",
            measurement=objects.Measurement(name="powerReal", description="RealPower", unit="W", scale="k",
                                            power_attributes=objects.PowerAttributes()))],
        targets=[objects.Target(ven_id="ven1", group_id="g1")])
    _, parsed = codec.parse(codec.serialize("oadrDistributeEvent",
                                            {"request_id": "r", "vtn_id": "v", "events": [event]}))
    parsed_event = parsed["events"][0]
    assert parsed_event["active_period"] == {"dtstart": start, "duration": timedelta(minutes=30)}
    assert parsed_event["targets_by_type"] == {"group_id": ["g1"], "ven_id": ["ven1"]}
    assert parsed_event["event_signals"][0]["measurement"]["power_attributes"] == {"hertz": 60, "voltage": 120, "ac": True}

    report = objects.Report(report_specifier_id="spec", report_name="METADATA_TELEMETRY_USAGE",
                            created_date_time=start, report_descriptions=[objects.ReportDescription(
                                r_id="r1", reading_type="Direct Read", report_type="usage",
                                report_subject=objects.Target(resource_id="dev1"),
                                sampling_rate=objects.SamplingRate(timedelta(seconds=10), timedelta(minutes=1)))])
    _, parsed = codec.parse(codec.serialize("oadrRegisterReport", {"request_id": "r", "reports": [report]}))
    description = parsed["reports"][0]["report_descriptions"][0]
    assert description["report_subject"] == {"resource_id": "dev1"}
    assert parsed["reports"][0]["report_request_id"] == "0"


def test_targets_by_type_alone_is_enough_to_encode():
    payload = {**CATALOGUE["oadrCreateOpt"][1], "targets": None, "targets_by_type": {"ven_id": ["a", "b"]}}
    _, parsed = codec.parse(codec.serialize("oadrCreateOpt", payload))
    assert parsed["targets"] == [{"ven_id": "a"}, {"ven_id": "b"}]


def test_openleadr_style_single_report_request_id_in_cancel_report():
    _, parsed = codec.parse(codec.serialize("oadrCancelReport", {
        "request_id": "r", "report_request_id": "rr1", "report_to_follow": False}))
    assert parsed["report_request_id"] == "rr1" and parsed["report_request_ids"] == ["rr1"]


def test_schema_version_and_signed_object_id_are_written():
    data = codec.serialize("oadrPoll", {"ven_id": "v"})
    assert re.search(rb'oadr:oadrSignedObject oadr:Id="oadrSignedObject"', data)
    assert b'ei:schemaVersion="2.0b"' in data
