"""The dashboard's live feed budgets its work by what changed: a fan-out's answers, however many,
reach an open stream as one patch per window carrying every VEN's delivery and opt answer, read
for the VENs that changed alone; what a patch cannot express is sent whole. Against a VTN on a
real Prosody with simulated VENs, through the feed the runtime drives and over the listener."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from xmpp_vtn.control.live import COALESCE_SECONDS, EVENTS, REPORTS, TOPICS
from xmpp_vtn.control.stream_view import VEN_ROWS, StreamView
from control_scene import control_scene, hour_event, wait_for_answer
from xmpp_scene import make_ven, run

INTERVALS = [{"dtstart": datetime(2030, 1, 31, 14, tzinfo=timezone.utc), "duration": timedelta(hours=1),
              "signal_payload": 1.0}]


class CountingDesk:
    """The VTN as the stream's desk, recording which of its methods the stream calls."""

    def __init__(self, desk: Any):
        self._desk, self.calls = desk, []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._desk, name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return value(*args, **kwargs)
        return counted


def parsed(messages: list[str]) -> list[tuple[str, Any]]:
    """Server-sent events as (name, data)."""
    found = []
    for message in messages:
        fields = dict(line.split(": ", 1) for line in message.strip("\n").split("\n"))
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def patched(events: list[dict], patch: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """event_id -> venID -> delivery, after ``patch`` (as the page applies it)."""
    shown = {event["event_id"]: {item["ven_id"]: item for item in event["deliveries"]} for event in events}
    for event_id, changed in patch.items():
        shown[event_id].update({item["ven_id"]: item for item in changed})
    return shown


def test_a_fan_out_reaches_an_open_stream_as_one_patch_reading_only_the_vens_that_changed(prosody):
    async def scenario():
        async with control_scene(prosody, vens=12) as (vtn, vens, _):
            ven_ids = sorted(ven.ven_id for ven in vens)
            desk = CountingDesk(vtn)
            view = StreamView(replace(vtn.control.control, desk=desk))
            vtn.add_event(ven_ids, "SIMPLE", "level", INTERVALS, event_id="shed")
            subscription = vtn.control.feed.subscribe()      # before any VEN can answer
            first = parsed(view.whole(TOPICS))
            await asyncio.gather(*(wait_for_answer(vtn, "shed", ven_id) for ven_id in ven_ids))
            changes = subscription.take()                     # one window's worth: 12 acks, 12 answers
            desk.calls.clear()
            window = parsed(view.messages(changes))
            reads = list(desk.calls)
            whole = parsed(view.whole([EVENTS]))
            return ven_ids, first, changes, window, reads, whole

    ven_ids, first, changes, window, reads, whole = run(scenario())
    # (The VENs offer reports as they register, and the VTN pushes its own requests: their
    # acknowledgements touch the reports and the VENs' rows, not the fan-out's events.)
    assert changes.topics <= {REPORTS} and changes.deliveries == set(ven_ids)
    # One message for the whole fan-out, carrying every VEN's delivery and opt answer...
    [(name, data)] = [(name, data) for name, data in window if name not in (REPORTS, VEN_ROWS)]
    assert name == "deliveries"
    assert list(data["events"]) == ["shed"]
    assert sorted(item["ven_id"] for item in data["events"]["shed"]) == ven_ids
    assert all(item["delivered_modification"] == 0 and item["up_to_date"] and item["opt_type"] == "optIn"
               and item["opt_current"] for item in data["events"]["shed"])
    # ...read from the changed VENs' deliveries alone, not from every event and every VEN...
    assert reads.count("deliveries_of") == 1 and "events" not in reads and "event" not in reads
    # ...and the page it patches is the page the whole topic draws.
    [(_, before)] = [(name, data) for name, data in first if name == EVENTS]
    assert [item["delivered_modification"] for item in before["events"][0]["deliveries"]] == [None] * 12
    assert patched(before["events"], data["events"]) == patched(whole[0][1]["events"], {})


def test_what_a_patch_cannot_show_is_sent_whole(prosody):
    offline = asyncio.Event()

    async def gone(ven_id):
        offline.set()

    async def scenario():
        async with control_scene(prosody, vens=3, handlers={"on_ven_offline": gone}) as (vtn, vens, _):
            ven_ids = [ven.ven_id for ven in vens]
            view = StreamView(vtn.control.control)
            subscription = vtn.control.feed.subscribe()
            view.whole(TOPICS)
            seen = {}

            # An event the stream has not shown (added without the listener, as another instance
            # would): the events whole.
            vtn.add_event(ven_ids, "SIMPLE", "level", INTERVALS, event_id="e1")
            await asyncio.gather(*(wait_for_answer(vtn, "e1", ven_id) for ven_id in ven_ids))
            seen["new event"] = parsed(view.messages(subscription.take()))
            # A modification the page does not show yet: the events whole again.
            vtn.modify_event("e1", [{**INTERVALS[0], "signal_payload": 2.0}], reason="more")
            await asyncio.gather(*(wait_for_answer(vtn, "e1", ven_id, modification=1) for ven_id in ven_ids))
            seen["modified"] = parsed(view.messages(subscription.take()))
            # A VEN going offline: its row alone.
            await vens[0].stop()
            await asyncio.wait_for(offline.wait(), 10)
            seen["offline"] = parsed(view.messages(subscription.take()))
            # A VEN that registers: its row, added.
            newcomer = await make_ven(prosody)
            try:
                await newcomer.register()
                seen["registered"] = parsed(view.messages(subscription.take()))
                seen["newcomer"] = newcomer.ven_id
            finally:
                await newcomer.stop()
            return ven_ids, seen

    ven_ids, seen = run(scenario())
    for step in ("new event", "modified"):             # (see the test above)
        seen[step] = [(name, data) for name, data in seen[step] if name not in (REPORTS, VEN_ROWS)]
    [(name, data)] = seen["new event"]
    assert name == "events" and [event["event_id"] for event in data["events"]] == ["e1"]
    assert all(item["opt_type"] == "optIn" and item["up_to_date"] for item in data["events"][0]["deliveries"])
    [(name, data)] = seen["modified"]
    assert name == "events" and data["events"][0]["modification_number"] == 1
    assert all(item["delivered_modification"] == 1 and item["opt_current"] for item in data["events"][0]["deliveries"])
    [(name, data)] = [(name, data) for name, data in seen["offline"] if name != REPORTS]
    assert name == VEN_ROWS and [row["state"] for row in data["vens"] if row["ven_id"] == ven_ids[0]] == ["offline"]
    [(name, data)] = [(name, data) for name, data in seen["registered"] if name != REPORTS]
    assert name == VEN_ROWS and [row["ven_id"] for row in data["vens"]] == [seen["newcomer"]]


async def read_stream(response, until, received: list[tuple[float, str, Any]]) -> None:
    """Read server-sent events into ``received`` (time, name, data) until ``until(received)``."""
    name = None
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            received.append((time.monotonic(), name, json.loads(line[len("data: "):])))
            if until(received):
                return


def test_an_open_dashboard_sees_every_ven_answer_in_a_message_a_window(prosody):
    async def scenario():
        async with control_scene(prosody, vens=10) as (vtn, vens, client):
            ven_ids = sorted(ven.ven_id for ven in vens)
            page: dict[str, Any] = {"events": [], "patch": {}}
            received: list[tuple[float, str, Any]] = []

            def until(received) -> bool:
                _, name, data = received[-1]
                if name == EVENTS:
                    page["events"], page["patch"] = data["events"], {}
                elif name == "deliveries":
                    for event_id, changed in data["events"].items():
                        page["patch"].setdefault(event_id, []).extend(changed)
                if not page["events"]:
                    return False
                shown = patched(page["events"], page["patch"]).get("shed", {})
                return sorted(shown) == ven_ids and all(item["opt_current"] for item in shown.values())

            async with client.get("/api/stream") as stream:
                reading = asyncio.ensure_future(read_stream(stream, lambda got: len(got) >= 4, received))
                await asyncio.wait_for(reading, 10)           # the topics at once
                began = time.monotonic()
                async with client.post("/api/events", json=hour_event(ven_ids, event_id="shed")) as created:
                    assert created.status == 201
                await asyncio.wait_for(read_stream(stream, until, received), 20)
                ended = time.monotonic()
            async with client.get("/api/events/shed") as detail:
                stored = await detail.json()
            during = [(name, data) for at, name, data in received[4:]]
            return ven_ids, page, during, ended - began, stored

    ven_ids, page, during, seconds, stored = run(scenario())
    # What the page drew from the stream is what the store holds.
    assert patched(page["events"], page["patch"])["shed"] == {item["ven_id"]: item for item in stored["deliveries"]}
    # Twenty changes (an acknowledgement and an answer per VEN) in at most one message per kind a window.
    windows = seconds / COALESCE_SECONDS + 1
    assert len([name for name, _ in during if name == "deliveries"]) <= windows
    assert len([name for name, _ in during if name == EVENTS]) <= windows
