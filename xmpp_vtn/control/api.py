"""The control API: JSON over HTTP for operators and their management systems.

=========================  ==================================================================
route                      what it does
=========================  ==================================================================
``GET /api/vens``          registered VENs: registration, transport, liveness, owed pushes
``GET /api/events``        events with status and a summary of deliveries and opts
``POST /api/events``       create an event (``add_event``'s arguments as JSON) -> 201
``GET /api/events/{id}``   one event with each VEN's delivery and opt answer
``PATCH /api/events/{id}`` modify an event (``modify_event``'s arguments) -> new modification
``DELETE /api/events/{id}`` cancel an event
``GET /api/reports``       report offers, subscriptions both ways, latest readings
``GET /api/opts``          opt schedules in force
``GET /api/openapi.json``  the OpenAPI 3 description of all of this
=========================  ==================================================================

Bad input gets a 4xx with ``{"error": "...", "field": "..."}`` and changes nothing. Every change
(and every refused attempt at one) is written to the exchange log with who asked.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..runtime import exchange_log
from . import views
from .event_input import BadInput, create_arguments, field_of, modify_arguments
from .openapi import document as openapi_document
from .state import CONTROL, WHO, Control

log = logging.getLogger("xmpp_vtn.control")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1024 * 1024
_DONE = ("cancelled", "completed")


def error(status: int, field: str, message: str) -> web.Response:
    """The JSON error every 4xx and 5xx answer carries."""
    return web.json_response({"error": message, "field": field}, status=status,
                             headers={"Cache-Control": "no-store"})


def answer(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store", **headers},
                             dumps=lambda value: json.dumps(value, ensure_ascii=False))


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; BadInput (415, 413, 400) when it is not one."""
    if request.content_type != "application/json":
        raise BadInput("Content-Type", "send the body as application/json", 415)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadInput("body", f"larger than {MAX_BODY} bytes", 413)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadInput("body", f"larger than {MAX_BODY} bytes", 413)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as problem:
        raise BadInput("body", f"not valid JSON: {problem}") from None


def _control(request: web.Request) -> Control:
    return request.app[CONTROL]


def _ven_filter(request: web.Request) -> str | None:
    ven_id = request.query.get("ven_id")
    if ven_id is not None and not ven_id.strip():
        raise BadInput("ven_id", "must be a venID")
    return ven_id


# -- reading ---------------------------------------------------------------------------------------

async def list_vens(request: web.Request) -> web.Response:
    return answer({"vens": views.vens(_control(request).desk)})


async def list_events(request: web.Request) -> web.Response:
    desk = _control(request).desk
    ven_id = _ven_filter(request)
    return answer({"events": [views.event(state, with_deliveries=False) for state in desk.events(ven_id)]})


async def get_event(request: web.Request) -> web.Response:
    state = _control(request).desk.event(request.match_info["event_id"])
    if state is None:
        return error(404, "event_id", f"no event {request.match_info['event_id']!r}")
    return answer(views.event(state))


async def list_reports(request: web.Request) -> web.Response:
    control = _control(request)
    return answer(views.reports(control.desk, control.readings, _ven_filter(request)))


async def list_opts(request: web.Request) -> web.Response:
    return answer({"opts": views.opts(_control(request).desk, _ven_filter(request))})


async def openapi(request: web.Request) -> web.Response:
    return answer(openapi_document())


# -- changing --------------------------------------------------------------------------------------

def _refused(action: str, subject: str, who: str, problem: BadInput) -> web.Response:
    exchange_log.operator(action, subject, who, f"refused {problem.status} {problem.field}: {problem.message}")
    return error(problem.status, problem.field, problem.message)


def _from_facade(error_: Exception) -> BadInput:
    """An ``add_event`` / ``modify_event`` refusal as BadInput naming its field."""
    message = str(error_.args[0]) if isinstance(error_, KeyError) and error_.args else str(error_)
    if isinstance(error_, KeyError):
        return BadInput("event_id", message, 404)
    field = field_of(message)
    conflict = message.startswith("an event with event_id") or "cannot be modified" in message \
        or "several signals or a baseline" in message
    return BadInput(field, message, 409 if conflict else 400)


async def create_event(request: web.Request) -> web.Response:
    control = _control(request)
    who = request[WHO]
    try:
        arguments = create_arguments(await read_json(request), control.desk.resolves_targets)
        try:
            event_id = control.desk.add_event(**arguments)
        except (ValueError, TypeError) as refusal:
            raise _from_facade(refusal) from None
    except BadInput as problem:
        return _refused("create-event", "-", who, problem)
    exchange_log.operator("create-event", event_id, who, "201 created")
    control.changed("events")
    return answer({"event_id": event_id}, 201, Location=f"/api/events/{event_id}")


async def modify_event(request: web.Request) -> web.Response:
    control = _control(request)
    who, event_id = request[WHO], request.match_info["event_id"]
    try:
        state = control.desk.event(event_id)
        if state is None:
            raise BadInput("event_id", f"no event {event_id!r}", 404)
        arguments = modify_arguments(await read_json(request))
        if state.status in _DONE:
            raise BadInput("event_id", f"event {event_id!r} is {state.status} and cannot be modified", 409)
        intervals = arguments.pop("intervals", None)
        reason = arguments.pop("reason", None)
        try:
            modification = control.desk.modify_event(event_id, intervals, reason=reason, **arguments)
        except (ValueError, TypeError, KeyError) as refusal:
            raise _from_facade(refusal) from None
    except BadInput as problem:
        return _refused("modify-event", event_id, who, problem)
    exchange_log.operator("modify-event", event_id, who, f"200 modification {modification}")
    control.changed("events")
    return answer({"event_id": event_id, "modification_number": modification})


async def cancel_event(request: web.Request) -> web.Response:
    control = _control(request)
    who, event_id = request[WHO], request.match_info["event_id"]
    state = control.desk.event(event_id)
    if state is None:
        return _refused("cancel-event", event_id, who, BadInput("event_id", f"no event {event_id!r}", 404))
    if state.status == "completed":
        return _refused("cancel-event", event_id, who,
                        BadInput("event_id", f"event {event_id!r} is completed already", 409))
    if state.status != "cancelled":                 # cancelling twice is not an error, and not a change
        control.desk.cancel_event(event_id)
        exchange_log.operator("cancel-event", event_id, who, "200 cancelled")
        control.changed("events")
        state = control.desk.event(event_id)
    return answer({"event_id": event_id, "status": "cancelled", "modification_number": state.modification_number})


#: (method, path, handler) of every API route; the OpenAPI document describes exactly these.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/vens", list_vens),
    ("GET", "/api/events", list_events),
    ("POST", "/api/events", create_event),
    ("GET", "/api/events/{event_id}", get_event),
    ("PATCH", "/api/events/{event_id}", modify_event),
    ("DELETE", "/api/events/{event_id}", cancel_event),
    ("GET", "/api/reports", list_reports),
    ("GET", "/api/opts", list_opts),
    ("GET", "/api/openapi.json", openapi),
]
