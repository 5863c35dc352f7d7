"""A VTN and simulated VENs on the session's real Prosody (or ejabberd), started and stopped around one test."""
from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Union

from xmpp_vtn import VTNComponent
from xmpp_vtn.runtime.backoff import Backoff
from xmpp_vtn.testing.ejabberd import EjabberdServer
from xmpp_vtn.testing.prosody import ProsodyServer
from xmpp_vtn.testing.ven import SimulatedVEN

_accounts = itertools.count(1)
PASSWORD = "ven-password"

#: Either private server: both have domain, component, secret, c2s_port, component_port and register().
Server = Union[ProsodyServer, EjabberdServer]


def run(scenario, timeout: float = 60.0) -> Any:
    """Run one async scenario; a hung exchange fails the test instead of hanging the suite."""
    return asyncio.run(asyncio.wait_for(scenario, timeout))


def new_account(server: Server, prefix: str = "ven") -> str:
    """A fresh account on ``server``; returns its bare JID."""
    return server.register(f"{prefix}{next(_accounts)}", PASSWORD)


def next_event(xmpp, name: str) -> asyncio.Future:
    """A future resolved by the next ``name`` event of a slixmpp stream, installed at once."""
    future = asyncio.get_running_loop().create_future()
    xmpp.add_event_handler(name, lambda *_: future.done() or future.set_result(None), disposable=True)
    return future


def issue_ids(payload: dict) -> tuple[str, str]:
    """The registration handler the tests use by default: keep the VEN's venID or assign one."""
    ven_id = payload.get("ven_id") or f"ven-{next(_accounts)}"
    return ven_id, f"reg-{ven_id}-{next(_accounts)}"


def make_vtn(server: Server, handlers: dict[str, Callable] | None = None, **options: Any) -> VTNComponent:
    options.setdefault("store", ":memory:")
    options.setdefault("reconnect_backoff", Backoff(initial=0.05, cap=0.5))
    vtn = VTNComponent("VTN-1", server.component, server.secret, port=server.component_port, **options)
    for name, handler in {"on_create_party_registration": issue_ids, **(handlers or {})}.items():
        vtn.add_handler(name, handler)
    return vtn


async def make_ven(server: Server, bare_jid: str | None = None, resource: str = "oadr",
                   **options: Any) -> SimulatedVEN:
    bare_jid = bare_jid or new_account(server)
    ven = SimulatedVEN(f"{bare_jid}/{resource}", PASSWORD, server.component, port=server.c2s_port, **options)
    return await ven.start()


@asynccontextmanager
async def scene(server: Server, vens: int = 1, handlers: dict[str, Callable] | None = None,
                register: bool = False, **options: Any) -> AsyncIterator[tuple[VTNComponent, list[SimulatedVEN]]]:
    """A serving VTN and ``vens`` logged-in VENs (registered when ``register``); all stopped after."""
    vtn = make_vtn(server, handlers, **options)
    await vtn.run()
    started: list[SimulatedVEN] = []
    try:
        for _ in range(vens):
            started.append(await make_ven(server))
        if register:
            await asyncio.gather(*(ven.register() for ven in started))
        yield vtn, started
    finally:
        await asyncio.gather(*(ven.stop() for ven in started))
        await vtn.stop()
