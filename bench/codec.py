"""Codec throughput: ``xmpp_vtn.codec`` against OpenLEADR 0.5.36 and against bare lxml.

Four cases, each measured in messages per second:

1. receive ``oadrCreatedEvent``
2. receive ``oadrDistributeEvent`` (1 event, 1 signal, 4 intervals)
3. receive ``oadrUpdateReport`` (1 report, 10 intervals)
4. build ``oadrDistributeEvent`` (the content of case 2)

The contenders:

* **ours**: ``codec.parse(data)`` to receive (validate against the 2.0b XSD while parsing, then
  decode to a dict); ``codec.serialize(message_type, payload)`` to build (build with lxml,
  validate, serialize to bytes).
* **OpenLEADR**: what its VTN server (``openleadr.service.VTNService.handler``) does with a
  request body: ``messaging.validate_xml_schema(data)`` and then ``messaging.parse_message(data)``.
  ``parse_message`` alone does not validate. To build, ``messaging.create_message(message_type,
  **payload)`` without a certificate or key, so unsigned; OpenLEADR does not validate what it
  builds.
* **bare lxml**: ``etree.fromstring(data, parser)`` with the same hardened, validating parser
  our codec uses. This is the floor for a validating receive: no decoding to a dict at all.
  It is not measured for the build case.

All three receive measurements use the same bytes, written once by ``codec.serialize``; before
timing, the script checks that both codecs accept them and agree on the message type and keys.

Each contender is calibrated to run for about ``--seconds``, then timed with
``time.perf_counter`` ``--repeats`` times; the best rate counts. The contenders are
interleaved, in a rotating order, within every repetition so that machine noise affects all
of them alike. Targets: ours at least 5x OpenLEADR on every case, and at least 0.4 of bare
lxml on the receive cases. The script reports whether the targets are met and exits 0 either
way.

Needs the ``bench`` extra (``pip install -e '.[bench]'``, i.e. ``openleadr==0.5.36``). Run
from the repository root::

    python bench/codec.py                # about 1 s per measurement, about half a minute in all
    python bench/codec.py --seconds 0.2  # quicker, noisier
"""
from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

# Measure the checkout this script belongs to, whether or not the package is installed.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lxml import etree  # noqa: E402

from xmpp_vtn import codec, schema  # noqa: E402

try:
    from openleadr import messaging as openleadr_messaging
except ImportError:  # pragma: no cover - depends on the environment
    raise SystemExit("bench/codec.py needs OpenLEADR: pip install -e '.[bench]' "
                     "(openleadr==0.5.36)") from None

OPENLEADR_VERSION = "0.5.36"
TARGET_VS_OPENLEADR = 5.0
TARGET_VS_LXML = 0.4
CALIBRATION_SECONDS = 0.05

START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

Call = Callable[[], Any]


# --- payloads ------------------------------------------------------------------------------

def created_event_payload() -> dict:
    """A VEN's opt-in answer to one event."""
    return {
        "response": {"response_code": 200, "response_description": "OK", "request_id": "req1"},
        "event_responses": [{"response_code": 200, "response_description": "OK",
                             "request_id": "req1", "event_id": "ev1", "modification_number": 0,
                             "opt_type": "optIn"}],
        "ven_id": "ven123",
    }


def distribute_event_payload() -> dict:
    """One event with one SIMPLE level signal of four 10-minute intervals."""
    step = timedelta(minutes=10)
    intervals = [{"dtstart": START + i * step, "duration": step, "uid": str(i),
                  "signal_payload": 1.0} for i in range(4)]
    event = {
        "event_descriptor": {"event_id": "ev1", "modification_number": 0,
                             "market_context": "http://mc", "event_status": "far",
                             "created_date_time": START, "priority": 1},
        "active_period": {"dtstart": START, "duration": 4 * step},
        "event_signals": [{"intervals": intervals, "signal_name": "SIMPLE",
                           "signal_type": "level", "signal_id": "sig1"}],
        "targets": [{"ven_id": "ven123"}],
        "response_required": "always",
    }
    return {"request_id": "r1", "vtn_id": "VTN", "events": [event]}


def update_report_payload() -> dict:
    """One telemetry report with ten 10-second readings."""
    step = timedelta(seconds=10)
    intervals = [{"dtstart": START + i * step, "duration": step,
                  "report_payload": {"r_id": "rid1", "value": 230.5 + i}} for i in range(10)]
    report = {"report_specifier_id": "spec1", "report_name": "TELEMETRY_USAGE",
              "report_request_id": "rr1", "created_date_time": START, "dtstart": START,
              "duration": 10 * step, "report_id": "rep1", "intervals": intervals}
    return {"request_id": "r3", "ven_id": "ven123", "reports": [report]}


# --- contenders ----------------------------------------------------------------------------

def openleadr_receive(data: bytes) -> tuple[str, dict]:
    """Validate and parse a request body the way OpenLEADR's VTN server does."""
    openleadr_messaging.validate_xml_schema(data)
    return openleadr_messaging.parse_message(data)


@dataclass(frozen=True)
class Case:
    name: str
    ours: Call
    openleadr: Call
    lxml: Optional[Call] = None  # None: not measured for this case

    def contenders(self) -> list[tuple[str, Call]]:
        calls = [("ours", self.ours), ("openleadr", self.openleadr), ("lxml", self.lxml)]
        return [(label, call) for label, call in calls if call is not None]


def check_receive_input(message_type: str, data: bytes) -> None:
    """Both codecs must accept ``data`` as ``message_type`` and decode the same top-level keys."""
    ours_type, ours = codec.parse(data)
    theirs_type, theirs = openleadr_receive(data)
    if not ours_type == theirs_type == message_type:
        raise RuntimeError(f"{message_type}: decoded as {ours_type} by us, "
                           f"{theirs_type} by OpenLEADR")
    if set(ours) != set(theirs):
        raise RuntimeError(f"{message_type}: top-level keys differ: ours {sorted(ours)}, "
                           f"OpenLEADR {sorted(theirs)}")


def check_build_output(message_type: str, payload: dict) -> None:
    """Both builders must produce schema-valid documents of ``message_type``."""
    ours_type, _ = codec.parse(codec.serialize(message_type, payload))
    theirs = openleadr_messaging.create_message(message_type, **payload)
    theirs_type, _ = codec.parse(theirs.encode("utf-8"))  # validates against the XSD
    if not ours_type == theirs_type == message_type:
        raise RuntimeError(f"build {message_type}: wrote {ours_type} (ours), "
                           f"{theirs_type} (OpenLEADR)")


def receive_case(name: str, message_type: str, payload: dict,
                 lxml_parser: etree.XMLParser) -> Case:
    data = codec.serialize(message_type, payload)
    check_receive_input(message_type, data)
    return Case(name=name,
                ours=partial(codec.parse, data),
                openleadr=partial(openleadr_receive, data),
                lxml=partial(etree.fromstring, data, lxml_parser))


def build_case(name: str, message_type: str, payload: dict) -> Case:
    check_build_output(message_type, payload)
    return Case(name=name,
                ours=partial(codec.serialize, message_type, payload),
                openleadr=partial(openleadr_messaging.create_message, message_type, **payload))


def make_cases() -> list[Case]:
    lxml_parser = schema._hardened_parser(schema.compiled_schema())
    return [
        receive_case("receive oadrCreatedEvent", "oadrCreatedEvent",
                     created_event_payload(), lxml_parser),
        receive_case("receive oadrDistributeEvent (1 ev, 4 iv)", "oadrDistributeEvent",
                     distribute_event_payload(), lxml_parser),
        receive_case("receive oadrUpdateReport (10 iv)", "oadrUpdateReport",
                     update_report_payload(), lxml_parser),
        build_case("build oadrDistributeEvent (1 ev, 4 iv)", "oadrDistributeEvent",
                   distribute_event_payload()),
    ]


# --- measurement ---------------------------------------------------------------------------

def elapsed(call: Call, calls: int) -> float:
    """Seconds taken by ``calls`` calls of ``call``."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return time.perf_counter() - start


def calibrate(call: Call, seconds: float) -> int:
    """How many calls of ``call`` take about ``seconds`` (also warms caches up)."""
    calls = 1
    while True:
        taken = elapsed(call, calls)
        if taken >= CALIBRATION_SECONDS:
            return max(1, round(calls * seconds / taken))
        calls *= 2


def measure(case: Case, seconds: float, repeats: int) -> dict[str, float]:
    """Best msg/s of each contender over ``repeats`` interleaved repetitions."""
    contenders = case.contenders()
    calls = {label: calibrate(call, seconds) for label, call in contenders}
    best = {label: 0.0 for label, _ in contenders}
    for repetition in range(repeats):
        shift = repetition % len(contenders)
        for label, call in contenders[shift:] + contenders[:shift]:
            rate = calls[label] / elapsed(call, calls[label])
            best[label] = max(best[label], rate)
    return best


# --- report --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    case: str
    ours: float
    openleadr: float
    lxml: Optional[float]

    @property
    def vs_openleadr(self) -> float:
        return self.ours / self.openleadr

    @property
    def vs_lxml(self) -> Optional[float]:
        return None if self.lxml is None else self.ours / self.lxml

    def misses(self) -> list[str]:
        missed = []
        if self.vs_openleadr < TARGET_VS_OPENLEADR:
            missed.append(f"{self.case}: {self.vs_openleadr:.2f}x OpenLEADR "
                          f"(target {TARGET_VS_OPENLEADR:g}x)")
        if self.vs_lxml is not None and self.vs_lxml < TARGET_VS_LXML:
            missed.append(f"{self.case}: {self.vs_lxml:.3f} of bare lxml "
                          f"(target {TARGET_VS_LXML:g})")
        return missed


def format_table(results: Sequence[Result]) -> str:
    header = ("case", "ours msg/s", "OpenLEADR msg/s", "ratio", "bare lxml msg/s",
              "ratio to lxml")
    rows = [header]
    for r in results:
        rows.append((r.case, f"{r.ours:,.0f}", f"{r.openleadr:,.0f}", f"{r.vs_openleadr:.1f}x",
                     "-" if r.lxml is None else f"{r.lxml:,.0f}",
                     "-" if r.vs_lxml is None else f"{r.vs_lxml:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:]))
        return "  ".join((first, *rest))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows[1:])])


def environment() -> str:
    openleadr_version = metadata.version("openleadr")
    note = "" if openleadr_version == OPENLEADR_VERSION else f" (expected {OPENLEADR_VERSION})"
    lxml_version = ".".join(map(str, etree.LXML_VERSION[:3]))
    libxml2_version = ".".join(map(str, etree.LIBXML_VERSION))
    return (f"Python {platform.python_version()}, lxml {lxml_version} (libxml2 "
            f"{libxml2_version}), OpenLEADR {openleadr_version}{note}")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Codec throughput: ours vs OpenLEADR vs bare lxml.")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="approximate duration of each timed run (default: 1.0)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per contender and case; the best counts (default: 3)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    print(environment())
    print(f"best of {args.repeats} runs of about {args.seconds:g} s per contender and case\n")
    results = []
    for case in make_cases():
        print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
        rates = measure(case, args.seconds, args.repeats)
        results.append(Result(case.name, rates["ours"], rates["openleadr"], rates.get("lxml")))
    print(format_table(results))
    print(f"\nratio: ours / OpenLEADR (target >= {TARGET_VS_OPENLEADR:g}x on every case); "
          f"ratio to lxml: ours / bare lxml (target >= {TARGET_VS_LXML:g} on receive)")
    misses = [miss for result in results for miss in result.misses()]
    print("targets: all met" if not misses else "targets missed:\n  " + "\n  ".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
