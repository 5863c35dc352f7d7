"""Large inbound documents are parsed beside the event loop, each account's in the order they
came (runtime/parsing.py). Pure logic: no server."""
from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from xmpp_vtn import codec
from xmpp_vtn.errors import SchemaError
from xmpp_vtn.runtime import parsing
from xmpp_vtn.runtime.parsing import OrderedParser

sys.path.insert(0, os.path.dirname(__file__))
from hostile_attacker import _offer  # noqa: E402

LARGE = codec.serialize("oadrRegisterReport", {"request_id": "big", "ven_id": "v1", "reports": [_offer(0, 200)]})
SMALL = codec.serialize("oadrQueryRegistration", {"request_id": "small"})


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_large_document_is_parsed_in_the_worker_thread_and_a_small_one_in_place(monkeypatch):
    threads = []
    parse = codec.parse

    def recording(data):
        threads.append(threading.current_thread().name)
        return parse(data)

    monkeypatch.setattr(codec, "parse", recording)

    async def scenario():
        parser = OrderedParser()
        try:
            return await parser.parse("a@grid", LARGE), await parser.parse("a@grid", SMALL), parser.parsed_off_loop
        finally:
            parser.close()

    large, small, off_loop = run(scenario())
    assert len(LARGE) >= parsing.OFF_LOOP_BYTES > len(SMALL)
    assert large == parse(LARGE) and small == parse(SMALL)
    assert off_loop == 1
    assert threads[0].startswith("xmpp-vtn-parse") and threads[1] == threading.current_thread().name


def test_an_accounts_small_document_waits_for_its_large_one_and_nobody_elses_does():
    async def scenario():
        parser = OrderedParser()
        handed_back = []

        async def parse(account, data, name):
            await parser.parse(account, data)
            handed_back.append(name)

        try:
            # Both start before the large one's thread is done: the small one parses at once
            # but is handed back second; another account's is not held up.
            tasks = [asyncio.create_task(parse("a@grid", LARGE, "a large")),
                     asyncio.create_task(parse("a@grid", SMALL, "a small")),
                     asyncio.create_task(parse("b@grid", SMALL, "b small"))]
            await asyncio.gather(*tasks)
            return handed_back
        finally:
            parser.close()

    assert run(scenario()) == ["b small", "a large", "a small"]


def test_a_large_document_refused_still_lets_the_next_go_and_says_why():
    bad = LARGE.replace(b"<ei:reportType>usage</ei:reportType>", b"<ei:reportType>nonsense</ei:reportType>", 1)

    async def scenario():
        parser = OrderedParser()
        try:
            first = asyncio.create_task(parser.parse("a@grid", bad))
            second = asyncio.create_task(parser.parse("a@grid", SMALL))
            with pytest.raises(SchemaError, match="reportType"):
                await first
            return await second
        finally:
            parser.close()

    assert run(scenario()) == codec.parse(SMALL)


def test_the_switch_interval_is_short_only_while_a_large_document_is_parsed(monkeypatch):
    seen = []
    parse = codec.parse
    monkeypatch.setattr(codec, "parse", lambda data: (seen.append(sys.getswitchinterval()), parse(data))[1])
    before = sys.getswitchinterval()

    async def scenario():
        parser = OrderedParser()
        try:
            await parser.parse("a@grid", LARGE)
            await parser.parse("a@grid", SMALL)
        finally:
            parser.close()

    run(scenario())
    assert seen == [min(before, parsing.SWITCH_INTERVAL), before]
    assert sys.getswitchinterval() == before
