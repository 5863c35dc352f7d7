"""Nothing is promised before it is kept: with the SQLite store grouping one loop turn's changes
into one transaction, whatever the VTN tells anyone (an answer to a VEN, a push reported as
acknowledged, a delivery callback) is already committed: another connection to the file sees it."""
from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta, timezone

from xmpp_scene import run, scene


def committed_rows(path, query: str, *args) -> list[tuple]:
    """What a second connection to the store's file sees: committed rows only."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as other:
        return other.execute(query, args).fetchall()


def an_event(vtn, ven_ids, **options) -> str:
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    return vtn.add_event(ven_ids, "SIMPLE", "level",
                         [{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": 1.0}], **options)


def test_a_delivery_callback_runs_once_the_delivery_is_committed(prosody, tmp_path):
    path = tmp_path / "vtn.sqlite3"
    seen_at_callback = []

    def delivered(ven_id, event_id):
        seen_at_callback.append(committed_rows(path, "SELECT delivered_modification FROM event_vens "
                                                     "WHERE ven_id = ? AND event_id = ?", ven_id, event_id))

    async def scenario():
        async with scene(prosody, register=True, store=path) as (vtn, [ven]):
            an_event(vtn, [ven.ven_id], event_id="durable", delivery_callback=delivered)
            await ven.next_push("oadrDistributeEvent")
            await vtn.courier.idle()

    run(scenario())
    assert seen_at_callback == [[(0,)]]


def test_a_push_reported_acknowledged_is_gone_from_the_committed_outbox(prosody, tmp_path):
    path = tmp_path / "vtn.sqlite3"
    at_report = []

    class AtReport(logging.Handler):
        """Looks at the committed outbox the moment the exchange log reports the push acknowledged."""

        def emit(self, record):
            if "oadrRequestReregistration" in record.getMessage() and "acknowledged" in record.getMessage():
                at_report.append(committed_rows(path, "SELECT message_type FROM outbox"))

    async def scenario():
        async with scene(prosody, register=True, store=path) as (vtn, [ven]):
            await vtn.courier.idle()
            return await vtn.request_reregistration(ven.ven_id)

    exchange = logging.getLogger("xmpp_vtn.exchange")
    handler, level = AtReport(), exchange.level
    exchange.addHandler(handler)
    exchange.setLevel(logging.INFO)
    try:
        acknowledged = run(scenario())
    finally:
        exchange.removeHandler(handler)
        exchange.setLevel(level)
    assert acknowledged is True and at_report == [[]]


def test_a_ven_is_answered_once_its_opt_answer_is_committed(prosody, tmp_path):
    path = tmp_path / "vtn.sqlite3"
    at_answer = []

    async def scenario():
        async with scene(prosody, register=True, store=path) as (vtn, [ven]):
            ven.on_push("oadrDistributeEvent", lambda item: None)        # this VEN answers by hand
            event_id = an_event(vtn, [ven.ven_id], event_id="answered")
            await ven.next_push("oadrDistributeEvent")
            send_raw = vtn.component.xmpp.send_raw

            def watched(data):
                if b"oadrResponse" in (data if isinstance(data, bytes) else data.encode()):     # the answer, leaving
                    at_answer.append(committed_rows(path, "SELECT opt_type FROM event_vens WHERE event_id = ?",
                                                    event_id))
                send_raw(data)
            vtn.component.xmpp.send_raw = watched
            return await ven.created_event([{"response_code": 200, "response_description": "OK",
                                             "request_id": "r1", "event_id": event_id,
                                             "modification_number": 0, "opt_type": "optOut"}])

    answer = run(scenario())
    assert answer[0] == "oadrResponse" and answer[1]["response"]["response_code"] == 200
    assert at_answer == [[("optOut",)]]
