"""The handler table users fill by name, and calling handlers that may be functions or coroutines."""
from __future__ import annotations

import inspect
import logging
import warnings
from typing import Any, Callable

log = logging.getLogger("xmpp_vtn")

HANDLER_NAMES = frozenset({
    "on_create_party_registration", "on_query_registration", "on_cancel_party_registration",
    "on_poll", "on_request_event", "on_created_event",
    "on_request_report", "on_register_report", "on_create_report", "on_created_report",
    "on_update_report", "on_cancel_report",
    "on_create_opt", "on_cancel_opt",
    "on_ven_online", "on_ven_offline", "on_targets",
})


class Handlers:
    """Handlers by name. Plain functions and coroutine functions are both accepted.

    >>> handlers = Handlers()
    >>> handlers.add("on_create_party_registration", lambda payload: "reg-1")
    """

    def __init__(self) -> None:
        self._table: dict[str, Callable[..., Any]] = {}

    def add(self, name: str, handler: Callable[..., Any]) -> None:
        """Install ``handler`` under ``name`` (replacing any earlier one)."""
        if not callable(handler):
            raise TypeError(f"handler for {name!r} must be callable, not {type(handler).__name__}")
        if name not in HANDLER_NAMES:
            close = [known for known in sorted(HANDLER_NAMES) if known.split("_")[-1] == name.split("_")[-1]]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            warnings.warn(f"{name!r} is not a handler xmpp-vtn calls{hint}; known: {', '.join(sorted(HANDLER_NAMES))}",
                          stacklevel=3)
        self._table[name] = handler

    def get(self, name: str) -> Callable[..., Any] | None:
        """The handler installed under ``name``, or None."""
        return self._table.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    async def call_with_sender(self, name: str, payload: dict, sender: str, default: Any = None) -> Any:
        """Call ``name(payload)``, or ``name(payload, sender)`` when the handler takes two arguments:
        the sender is the full JID the XMPP server authenticated, which the payload cannot prove."""
        handler = self._table.get(name)
        if handler is None:
            return default
        return await self.call(name, *((payload, sender) if _takes_two(handler) else (payload,)))

    async def call(self, name: str, *args: Any, default: Any = None) -> Any:
        """Call handler ``name``; ``default`` when none is installed. Awaits coroutines."""
        handler = self._table.get(name)
        if handler is None:
            return default
        return await invoke(handler, *args)


async def invoke(function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` and await the result when it is awaitable: handlers and callbacks
    may be plain functions or coroutine functions, as in OpenLEADR."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _takes_two(handler: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)
