"""Parse, validate and decode inbound documents; large ones in a worker thread, so that one
account's 200 KB oadrRegisterReport does not hold the event loop (and every other VEN) for the
10-20 ms it takes.

lxml parses and validates without the GIL, so that part runs beside the loop on another core;
the decode is Python, which shares the GIL with the loop: while one runs, the interpreter's
switch interval is lowered from Python's 5 ms to 0.5 ms, so that the loop waits at most that
long for its turn. Small documents, nearly all of them, are parsed in place: handing one to a
thread costs more than parsing it.
"""
from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import codec

#: Documents of this many bytes or more are parsed in the worker thread. An oadrCreatedEvent
#: or an oadrUpdateReport of a few readings is 1-5 KB; an offer of 30 readings is 20 KB.
OFF_LOOP_BYTES = 16 * 1024
#: The interpreter's switch interval while a large document is parsed beside the loop.
SWITCH_INTERVAL = 0.0005


class _ShortSwitches:
    """Lowers the interpreter's switch interval while any large document is being parsed in
    any VTN of the process, and gives back what it was once none is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsing = 0
        self._saved = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if self._parsing == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL))
            self._parsing += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._parsing -= 1
            if self._parsing == 0:
                sys.setswitchinterval(self._saved)


_short_switches = _ShortSwitches()


class OrderedParser:
    """``await parser.parse(account, data)``: ``codec.parse(data)``, each account's documents
    handed back in the order they were given, however long each took to parse.

    The services take one account's requests in the order they reach them (the dispatcher's
    lock per account is taken in call order); a small request must not overtake the large one
    its VEN sent before it. ``account`` None: a sender not known before the document is read,
    parsed in place.
    """

    def __init__(self, off_loop_bytes: int = OFF_LOOP_BYTES):
        self.off_loop_bytes = off_loop_bytes
        #: Documents parsed in the worker thread since start.
        self.parsed_off_loop = 0
        self._thread: ThreadPoolExecutor | None = None
        # account -> resolved once that account's latest document has been handed back
        self._turns: dict[str, asyncio.Future] = {}

    async def parse(self, account: str | None, data: bytes) -> tuple[str, dict]:
        """``(message_type, payload)``; raises :class:`~xmpp_vtn.errors.SchemaError` as
        ``codec.parse`` does."""
        large = len(data) >= self.off_loop_bytes
        earlier = self._turns.get(account) if account is not None else None
        if earlier is None and (account is None or not large):
            return codec.parse(data)
        loop = asyncio.get_running_loop()
        turn = self._turns[account] = loop.create_future()
        try:
            try:
                if large:
                    self.parsed_off_loop += 1
                    with _short_switches:
                        return await loop.run_in_executor(self._worker(), codec.parse, data)
                return codec.parse(data)
            finally:
                if earlier is not None:
                    await earlier           # the account's earlier document goes on first
        finally:
            # The caller goes on to the services without yielding, so a later document waiting
            # for this turn reaches them after it.
            turn.set_result(None)
            if self._turns.get(account) is turn:
                del self._turns[account]

    def _worker(self) -> ThreadPoolExecutor:
        if self._thread is None:
            # One thread: large documents are few, and two would only share the GIL's Python part.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="xmpp-vtn-parse")
        return self._thread

    def close(self) -> None:
        """Let the worker thread end (a parse under way finishes first, unawaited)."""
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None
