"""A VTN with its control listener on a free loopback port, VENs on the session's Prosody, and an
HTTP client holding an operator's token; all stopped after one test."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import aiohttp

from xmpp_vtn.control.auth import hash_token
from xmpp_scene import scene

#: The operator's token; the VTN is configured with its hash only, under the name "alice".
TOKEN = "alice-token-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER_TOKEN = "mallory-token-0123456789abcdefghijklmnopqrstuv"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def control_scene(server: Any, vens: int = 1, register: bool = True, authorized: bool = True,
                        **options: Any) -> AsyncIterator[tuple[Any, list, aiohttp.ClientSession]]:
    """(vtn, vens, client): ``client`` talks to the control listener (with the token when ``authorized``)."""
    options.setdefault("control_tokens", {"alice": hash_token(TOKEN)})
    async with scene(server, vens=vens, register=register, control_port=0, **options) as (vtn, started):
        # unsafe: keep cookies from an IP address host (127.0.0.1), as a browser does
        async with aiohttp.ClientSession(base_url=vtn.control_url, headers=AUTH if authorized else None,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            yield vtn, started, client


def hour_event(ven_ids: Any, start: str = "2030-01-31T14:00:00Z", payload: float = 1.0, **extra: Any) -> dict:
    """A POST /api/events body: one hour of SIMPLE level ``payload`` from ``start``."""
    body = {"signal_name": "SIMPLE", "signal_type": "level",
            "intervals": [{"dtstart": start, "duration": "PT1H", "signal_payload": payload}], **extra}
    if ven_ids is not None:
        body["ven_ids"] = ven_ids
    return body


async def wait_for_answer(vtn, event_id: str, ven_id: str, modification: int = 0) -> None:
    """Until the VTN records ``ven_id``'s opt for that modification (its answer arrives after the ack)."""
    for _ in range(200):
        state = vtn.event(event_id)
        held = state.deliveries.get(ven_id) if state else None
        if held is not None and held.opt_modification == modification:
            return
        await asyncio.sleep(0.02)           # polling the store: the answer has no event of its own here
    raise AssertionError(f"{ven_id} never answered {event_id} modification {modification}")
