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


#: How xmpp-vtn calls each handler (the argument lists it may pass), for the messages that say so.
SIGNATURES: dict[str, tuple[str, ...]] = {
    **{name: ("payload",) for name in HANDLER_NAMES},
    "on_create_party_registration": ("payload", "payload, sender"),
    "on_poll": ("ven_id",), "on_request_event": ("ven_id",),
    "on_ven_online": ("ven_id",), "on_ven_offline": ("ven_id",),
    "on_register_report": ("report", "resource_id, measurement, unit, scale, min_sampling, max_sampling",
                           "ven_id, resource_id, measurement, unit, scale, min_sampling, max_sampling"),
    "on_targets": ("targets",),
}

_EVENT_CALLBACK_HINT = ("; (ven_id, event_id, opt_type) is the form of the per-event callback: "
                        "add_event(..., callback=fn)")


def signature_problem(name: str, handler: Callable[..., Any]) -> str | None:
    """Why ``handler`` cannot be called the way xmpp-vtn calls handler ``name`` (None: it can).

    >>> signature_problem("on_created_event", lambda ven_id, event_id, opt_type: None) is not None
    True
    """
    forms = SIGNATURES.get(name)
    if forms is None:
        return None
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None                                   # a builtin or extension: nothing to go by
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = len([p for p in positional if p.default is p.empty])
    most = float("inf") if any(p.kind is p.VAR_POSITIONAL for p in parameters) else len(positional)
    keyword_only = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    passed = _arguments_passed(name, len(positional), most)
    if not keyword_only and required <= passed <= most:
        return None
    expected = " or ".join(f"({form})" for form in forms)
    shown = f"{getattr(handler, '__name__', type(handler).__name__)}{signature}"
    problem = f"handler {name}: {shown} does not fit: it takes {expected}"
    if keyword_only:
        problem += f"; keyword-only argument {', '.join(keyword_only)} is never given"
    if name == "on_created_event" and required == 3:
        problem += _EVENT_CALLBACK_HINT
    return problem


def _arguments_passed(name: str, positional: int, most: float) -> int:
    """How many arguments the VTN passes this handler (some handlers' form depends on their own)."""
    if name == "on_register_report":
        # The services' rule: one parameter is the full form; seven or more take the venID first.
        return 1 if positional == 1 and most == 1 else 7 if positional >= 7 or most == float("inf") else 6
    if name == "on_create_party_registration":
        return 2 if positional >= 2 or most == float("inf") else 1
    return len(SIGNATURES[name][0].split(", "))


class Handlers:
    """Handlers by name. Plain functions and coroutine functions are both accepted.

    >>> handlers = Handlers()
    >>> handlers.add("on_create_party_registration", lambda payload: "reg-1")
    """

    def __init__(self) -> None:
        self._table: dict[str, Callable[..., Any]] = {}

    def add(self, name: str, handler: Callable[..., Any]) -> None:
        """Install ``handler`` under ``name`` (replacing any earlier one).

        TypeError when ``handler`` cannot take the arguments xmpp-vtn passes (the message gives the
        signature expected): found here rather than as a failed answer to every VEN.
        """
        if not callable(handler):
            raise TypeError(f"handler for {name!r} must be callable, not {type(handler).__name__}")
        problem = signature_problem(name, handler)
        if problem is not None:
            raise TypeError(problem)
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
