"""What one open dashboard stream has shown, and the messages that bring it up to date.

A topic sent whole is one server-sent event named after it (``vens``, ``events``, ``reports``,
``opts``) carrying the topic's JSON, as the GET routes give it. What single VENs changed is sent
as a patch, one message per window however many VENs changed in it:

- ``deliveries``: ``{"events": {event_id: [delivery, ...]}}``, the changed VENs' deliveries and
  opt answers for the events the stream shows, shaped as in the ``events`` topic;
- ``ven-rows``: ``{"vens": [row, ...]}``, the changed VENs' rows, shaped as in the ``vens`` topic
  (a VEN that just registered is a row the page adds).

A patch reads only the changed VENs' deliveries (and the VEN rows' own maps), never every event's
every VEN, and is only sent against what the stream has shown: when a change does not fit it (an
event the page has not seen, a modification or a status newer than the one it shows), the
topic is sent whole instead.
"""
from __future__ import annotations

import json
from typing import Any, Collection, Iterable

from . import views
from .live import EVENTS, OPTS, REPORTS, VENS, Changes
from .state import Control

#: The events the dashboard shows (the newest), with every VEN's delivery.
SHOWN_EVENTS = 50
DELIVERIES, VEN_ROWS = "deliveries", "ven-rows"


def sse(name: str, data: Any) -> str:
    """One server-sent event ``name`` carrying ``data`` as compact JSON."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


class StreamView:
    """The state one stream has sent, so that it can send what changed instead of everything."""

    def __init__(self, control: Control):
        self.control, self.desk = control, control.desk
        self._shown_events: dict[str, tuple[int, str]] = {}     # event_id -> (modification, status) shown
        self._event_ids: set[str] = set()                        # every event at the last whole send
        self._ven_ids: set[str] = set()                          # the VENs the page lists

    def whole(self, topics: Iterable[str]) -> list[str]:
        """``topics`` sent whole."""
        return [self._whole(topic) for topic in sorted(topics)]

    def messages(self, changes: Changes) -> list[str]:
        """What brings the stream up to date with ``changes``: the topics marked whole, then one
        patch per kind of per-VEN change (or its topic whole, when the patch would not fit)."""
        topics = set(changes.topics)
        patches = []
        if changes.deliveries and EVENTS not in topics:
            deliveries = self._deliveries(changes.deliveries)
            if deliveries is None:
                topics.add(EVENTS)
            elif deliveries:
                patches.append(sse(DELIVERIES, {"events": deliveries}))
        if changes.ven_rows and VENS not in topics:
            rows = self._ven_rows(changes.ven_rows)
            if rows:
                patches.append(sse(VEN_ROWS, {"vens": rows}))
        return self.whole(topics) + patches

    def _whole(self, topic: str) -> str:
        desk = self.desk
        if topic == EVENTS:
            states = desk.events()
            shown = [views.event(state, with_deliveries=True) for state in states[-SHOWN_EVENTS:]]
            self._event_ids = {state.event_id for state in states}
            self._shown_events = {event["event_id"]: (event["modification_number"], event["status"])
                                  for event in shown}
            return sse(EVENTS, {"events": shown, "resolves_targets": desk.resolves_targets})
        if topic == VENS:
            rows = views.vens(desk)
            self._ven_ids = {row["ven_id"] for row in rows}
            return sse(VENS, {"vens": rows, "connected": desk.connected})
        if topic == REPORTS:
            return sse(REPORTS, {"readings": self.control.readings.view()})
        if topic == OPTS:
            return sse(OPTS, {"opts": views.opts(desk)})
        raise ValueError(f"unknown topic {topic!r}")

    def _deliveries(self, ven_ids: Collection[str]) -> dict[str, list[dict]] | None:
        """The changed VENs' deliveries of the shown events (None: the events must be sent whole)."""
        patch: dict[str, list[dict]] = {}
        for held in self.desk.deliveries_of(ven_ids).values():
            for item in held:
                shown = self._shown_events.get(item.event_id)
                if shown is None:
                    if item.event_id in self._event_ids:
                        continue                        # an older event than the page shows
                    return None                         # an event the page has not seen
                modification, status = shown
                if _newer_than_shown(item, modification, status):
                    return None
                patch.setdefault(item.event_id, []).append(views.delivery(item, modification, status))
        return patch

    def _ven_rows(self, ven_ids: Collection[str]) -> list[dict]:
        """The changed VENs' rows; VENs no longer registered are left to the registration's own
        change (it sends the VENs whole)."""
        rows = views.vens(self.desk, only=ven_ids)
        self._ven_ids.update(row["ven_id"] for row in rows)
        return rows


def _newer_than_shown(item: Any, modification: int, status: str) -> bool:
    """Whether a delivery speaks of a modification or status of its event that the page does not
    show yet (changed through another instance, or by the clock)."""
    delivered, opted = item.delivered_modification, item.opt_modification
    return ((delivered is not None and (delivered > modification
                                        or (delivered == modification and item.delivered_status != status)))
            or (opted is not None and opted > modification))
