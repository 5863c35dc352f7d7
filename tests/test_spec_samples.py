"""Sample payloads in the style of the OpenADR 2.0b specification's published samples.

The files in ``samples_2_0b/`` are bare messages (``oadr:oadrDistributeEvent`` as the root, every
namespace declared on it, an ``xsi:schemaLocation`` hint), the way the specification prints them
and the way most files an integrator has at hand look. Each one goes through ``xmpp-vtn validate``
as it is, and through ``codec.parse`` + ``serialize`` inside the ``oadrPayload`` it travels in.
The two ``*-reportBackDuration-as-text`` files write ``<ei:reportBackDuration>PT1M</ei:reportBackDuration>``
as some published samples do; the 2.0b XSD wants ``xcal:duration`` inside, so both are refused,
with that reason.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from xmpp_vtn import SchemaError, codec
from xmpp_vtn.ops.validate import BARE_MESSAGE, explain, explain_file, render

SAMPLES = Path(__file__).resolve().parent / "samples_2_0b"
ALL = sorted(SAMPLES.glob("*.xml"))
TEXT_DURATION = [path for path in ALL if path.stem.endswith("-reportBackDuration-as-text")]
VALID = [path for path in ALL if path not in TEXT_DURATION]
OADR = "http://openadr.org/oadr-2.0b/2012/07"
ids = [path.stem for path in ALL]


def message_type_of(path: Path) -> str:
    return path.stem.split("-")[0]


def wrapped(path: Path) -> bytes:
    """The bare sample inside ``oadrPayload/oadrSignedObject``, as it travels on the wire."""
    message = etree.parse(str(path)).getroot()
    payload = etree.Element(f"{{{OADR}}}oadrPayload", nsmap={None: OADR})
    etree.SubElement(payload, f"{{{OADR}}}oadrSignedObject").append(copy.deepcopy(message))
    return etree.tostring(payload, xml_declaration=True, encoding="UTF-8")


def test_the_samples_cover_every_message_and_both_refusals():
    assert {message_type_of(path) for path in VALID} == set(codec.MESSAGE_TYPES)
    assert [message_type_of(path) for path in TEXT_DURATION] == ["oadrCreateReport", "oadrRegisteredReport"]


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_a_valid_sample_is_valid_and_judged_as_a_bare_message(path):
    verdict = explain_file(path)
    assert verdict.valid, render(verdict)
    assert verdict.message_type == message_type_of(path) and verdict.judged_as == BARE_MESSAGE
    assert render(verdict) == f"{path}: valid ({message_type_of(path)}, judged as a bare message)"


@pytest.mark.parametrize("path", VALID, ids=[path.stem for path in VALID])
def test_a_valid_sample_round_trips_through_the_codec(path):
    message_type, payload = codec.parse(wrapped(path))
    assert message_type == message_type_of(path)
    written = codec.serialize(message_type, payload)
    assert codec.parse(written) == (message_type, payload)
    assert explain(written).valid and explain(written).judged_as is None


def test_the_canceled_report_keeps_its_three_digit_response_code():
    _, payload = codec.parse(wrapped(SAMPLES / "oadrCanceledReport.xml"))
    assert payload["response"] == {"response_code": 0, "request_id": "ReportCancel092520_160000_178"}
    assert payload["response"]["response_code"] == 0          # an int, as OpenLEADR handlers compare it
    assert b"<ei:responseCode>000</ei:responseCode>" in codec.serialize("oadrCanceledReport", payload)


def test_what_the_samples_carry_arrives_in_the_payload():
    _, event = codec.parse(wrapped(SAMPLES / "oadrDistributeEvent.xml"))
    [load_control] = [s for s in event["events"][0]["event_signals"] if s["signal_name"] == "LOAD_CONTROL"]
    assert load_control["measurement"]["name"] == "powerReal" and load_control["targets"] == [
        {"resource_id": "resource1"}]
    _, update = codec.parse(wrapped(SAMPLES / "oadrUpdateReport.xml"))
    first = update["reports"][0]["intervals"][0]
    assert [p["value"] for p in first["report_payloads"]] == [25.5, 1530.0] and "report_payload" not in first


@pytest.mark.parametrize("path", TEXT_DURATION, ids=[path.stem for path in TEXT_DURATION])
def test_a_text_report_back_duration_is_refused_with_the_reason(path):
    verdict = explain_file(path)
    assert verdict.kind == "invalid" and verdict.judged_as == BARE_MESSAGE
    [problem] = verdict.problems
    assert problem.path == f"{message_type_of(path)}/oadrReportRequest/reportSpecifier/reportBackDuration"
    assert problem.message == ("value 'PT1M' is written as plain text, but the 2.0b schema wants it inside "
                               "xcal:duration: <ei:reportBackDuration><xcal:duration>PT1M</xcal:duration>"
                               "</ei:reportBackDuration>")
    assert problem.line == next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                                if "reportBackDuration" in line)
    with pytest.raises(SchemaError, match=r"reportSpecifier/reportBackDuration: .*element-only"):
        codec.parse(wrapped(path))


def test_the_validate_command_gives_a_verdict_on_every_sample():
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "validate", *map(str, ALL)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    headings = [line for line in result.stdout.splitlines() if not line.startswith("  ")]
    assert headings == [
        f"{path}: invalid ({message_type_of(path)}, judged as a bare message), 1 problem" if path in TEXT_DURATION
        else f"{path}: valid ({message_type_of(path)}, judged as a bare message)" for path in ALL]
    assert result.stdout.count("is written as plain text, but the 2.0b schema wants it inside xcal:duration") == 2
    valid_only = subprocess.run([sys.executable, "-m", "xmpp_vtn", "validate", *map(str, VALID)],
                                capture_output=True, text=True, timeout=60)
    assert valid_only.returncode == 0, valid_only.stdout + valid_only.stderr
