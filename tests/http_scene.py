"""OpenLEADR's own, unmodified OpenADRClient against our VTN over loopback simpleHTTP."""
from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator, Callable

from openleadr import OpenADRClient

from xmpp_vtn import VTNComponent
from xmpp_scene import make_vtn

_names = itertools.count(1)


class Seen:
    """Collects calls (of a callback or handler) and lets a test await a condition on them."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[tuple] = []
        self.result = result
        self._changed = asyncio.Condition()

    async def __call__(self, *args) -> Any:
        async with self._changed:
            self.calls.append(args)
            self._changed.notify_all()
        return self.result

    async def wait(self, count: int = 1, timeout: float = 20) -> list[tuple]:
        return await self.until(lambda calls: len(calls) >= count, timeout)

    async def until(self, condition: Callable[[list[tuple]], bool], timeout: float = 20) -> list[tuple]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: condition(self.calls)), timeout)
        return list(self.calls)


async def until(condition: Callable[[], bool], timeout: float = 20, step: float = 0.02) -> None:
    """Wait for state that no callback announces (a client attribute): checked often, bounded."""
    async def loop() -> None:
        while not condition():
            await asyncio.sleep(step)
    await asyncio.wait_for(loop(), timeout)


def http_vtn(server, handlers: dict | None = None, **options: Any) -> VTNComponent:
    """A VTN on the session's Prosody that also serves simpleHTTP on a free loopback port."""
    options.setdefault("http_port", 0)
    options.setdefault("requested_poll_freq", timedelta(seconds=1))
    if not options.get("http_ca_file"):
        options.setdefault("http_allow_insecure", True)
    return make_vtn(server, handlers, **options)


def openleadr_ven(vtn: VTNComponent, ven_id: str | None = None, on_event: Callable | None = None,
                  **options: Any) -> OpenADRClient:
    """An OpenADRClient for ``vtn``; opts in to every event unless ``on_event`` says otherwise."""
    name = f"http-ven-{next(_names)}"
    client = OpenADRClient(ven_name=name, vtn_url=vtn.http_url, ven_id=ven_id or name,
                           show_fingerprint=False, **options)

    async def opt_in(event: dict) -> str:
        return "optIn"
    client.add_handler("on_event", on_event or opt_in)
    client.add_handler("on_update_event", on_event or opt_in)
    return client


@asynccontextmanager
async def running(*clients: OpenADRClient) -> AsyncIterator[None]:
    """Run the clients (registered once this enters) and stop them after."""
    try:
        for client in clients:
            await client.run()
        yield
    finally:
        for client in clients:
            if client.client_session is not None:
                await client.stop()
