"""A PostgreSQL connection of its own, used from one worker thread, for statements the event loop
need not wait for.

The store's main connection is synchronous: each of its round trips holds the loop (see
:mod:`.postgresql`). What every exchange of a fan-out asks (the leases of its deliveries and
their release, the answers passed on to other instances, each delivery's outbox and delivery
rows, the acknowledgements, the opt answers) touches no cached state, so it goes here instead, a
loop turn at a time (:class:`TurnBatch`): the loop hands the statements to the thread and serves
other VENs while the database answers. One thread runs them in the order they were handed over,
which is what keeps a release from overtaking a later claim of the same lease.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Generic, TypeVar

import psycopg

log = logging.getLogger("xmpp_vtn.store")

Item = TypeVar("Item")
Result = TypeVar("Result")


class OffLoopConnection:
    """``await fetch(query, args)`` runs one autocommit statement on a connection opened (and
    reopened after a loss) by ``connect``, in a worker thread; returns its rows ([] for none)."""

    def __init__(self, connect: Callable[[], psycopg.Connection]):
        self._connect = connect
        self._db: psycopg.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xmpp-vtn-store")

    async def fetch(self, query: str, args: Any = ()) -> list[tuple]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._fetch, query, args)

    async def fetch_each(self, statements: list[tuple[str, Any]]) -> list[list[tuple] | Exception]:
        """:meth:`fetch` of each (query, args), one after another in one hand-over to the thread.
        Each stands alone: one that fails gives its error in its place, and the others run all the
        same."""
        def run_each() -> list[list[tuple] | Exception]:
            results: list[list[tuple] | Exception] = []
            for query, args in statements:
                try:
                    results.append(self._fetch(query, args))
                except Exception as error:
                    results.append(error)
            return results
        return await asyncio.get_running_loop().run_in_executor(self._thread, run_each)

    def submit(self, query: str, args: Any = ()) -> "Future[list[tuple]]":
        """:meth:`fetch` without the event loop: the statement is handed to the thread now, after
        everything handed over before it, and the future completes in the thread."""
        return self._thread.submit(self._fetch, query, args)

    def _fetch(self, query: str, args: Any) -> list[tuple]:
        for attempt in (1, 2):
            if self._db is None or self._db.closed or self._db.broken:
                self._db = self._connect()
            try:
                cursor = self._db.execute(query, args)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.errors.DeadlockDetected:
                # Two instances' batches met on the same rows; the server rolled ours back whole.
                if attempt == 2:
                    raise
                log.info("a coordination batch met another instance's on the same rows; running it again")
            except psycopg.OperationalError:
                if attempt == 2 or not (self._db.closed or self._db.broken):
                    raise
                log.warning("off-loop connection to PostgreSQL lost; reconnecting")
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Finish what was handed over, then close the connection."""
        self._thread.shutdown(wait=True)
        if self._db is not None:
            self._db.close()


class TurnBatch(Generic[Item, Result]):
    """The calls of one event-loop turn, carried out together: ``await add(item)`` gathers
    ``item`` with the others added before the batch is sent, and ``run(items)`` (one statement,
    say) returns one result per item, in order; an exception in an item's place is raised to that
    item's caller alone. Batches are sent one after another."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Result]]]):
        self._run = run
        self._items: list[Item] = []
        self._askers: list[asyncio.Future] = []
        self._sender: asyncio.Task | None = None
        #: Batches sent (for tests and benchmarks: how well the turns were gathered).
        self.sent = 0

    def add(self, item: Item) -> "asyncio.Future[Result]":
        asker = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._askers.append(asker)
        if self._sender is None:
            # Its first step runs after the tasks that are ready now: what they add joins this batch.
            self._sender = asyncio.get_running_loop().create_task(self._send())
        return asker

    async def _send(self) -> None:
        try:
            while self._items:
                items, self._items = self._items, []
                askers, self._askers = self._askers, []
                self.sent += 1
                try:
                    results = await self._run(items)
                except Exception as error:
                    for asker in askers:
                        if not asker.done():
                            asker.set_exception(error)
                    continue
                for asker, result in zip(askers, results):
                    if asker.done():
                        continue
                    if isinstance(result, Exception):
                        asker.set_exception(result)
                    else:
                        asker.set_result(result)
        finally:
            self._sender = None
