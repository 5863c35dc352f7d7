"""What xmpp-vtn does today, end to end on one machine: an OpenADR 2.0b event built, validated
against the bundled XSD, read back exactly, and hostile or invalid payloads refused.

Run it with ``.venv/bin/python examples/codec_tour.py`` after ``make setup``. The live demo over
Prosody (``make demo``) is ``examples/demo.py``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from xmpp_vtn import SchemaError, codec, objects


def build_event(start: datetime) -> objects.Event:
    """A one-hour load-shed event for VEN ``00123`` with four 15-minute levels."""
    intervals = [objects.Interval(dtstart=start + i * timedelta(minutes=15), duration=timedelta(minutes=15),
                                  signal_payload=level) for i, level in enumerate((1.0, 2.0, 3.0, 1.0))]
    return objects.Event(
        event_descriptor=objects.EventDescriptor(event_id="shed-2026-11-23", modification_number=0,
                                                 market_context="http://grid.example/dr", event_status="far",
                                                 created_date_time=start - timedelta(hours=1)),
        event_signals=[objects.EventSignal(intervals=intervals, signal_name="SIMPLE", signal_type="level",
                                           signal_id="sig-1")],
        targets=[objects.Target(ven_id="00123")])


def main() -> int:
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    data = codec.serialize("oadrDistributeEvent", {"request_id": "req-1", "vtn_id": "demo-vtn",
                                                   "events": [build_event(start)]})
    print(f"1. built oadrDistributeEvent: {len(data)} bytes, valid against the OpenADR 2.0b XSD")
    message_type, payload = codec.parse(data)
    event = payload["events"][0]
    print(f"2. parsed it back as {message_type}: event {event['event_descriptor']['event_id']} for "
          f"VEN {event['targets'][0]['ven_id']!r} (still a string), starts {event['active_period']['dtstart']:%H:%M} UTC, "
          f"levels {[i['signal_payload'] for i in event['event_signals'][0]['intervals']]}")
    answer = codec.serialize("oadrCreatedEvent", {
        "response": {"response_code": 200, "response_description": "OK", "request_id": "req-1"},
        "event_responses": [{"response_code": 200, "request_id": "req-1", "event_id": "shed-2026-11-23",
                             "modification_number": 0, "opt_type": "optIn"}], "ven_id": "00123"})
    print(f"3. the VEN's answer parses as {codec.parse(answer)[0]} with opt_type "
          f"{codec.parse(answer)[1]['event_responses'][0]['opt_type']!r}")
    hostile = {
        "entity expansion": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>',
        "wrong opt type": answer.replace(b"optIn", b"maybe"),
        "truncated": answer[:-40],
    }
    for name, document in hostile.items():
        try:
            codec.parse(document)
        except SchemaError as error:
            print(f"4. refused ({name}): {str(error)[:110]}")
        else:  # pragma: no cover - would be a bug
            print(f"4. BUG: accepted {name}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
