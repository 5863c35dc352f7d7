"""The dashboard: one page (plain HTML, CSS and JavaScript written for it, no third-party code)
served by the control listener behind the same authentication, and its live feed.

The page opens ``/api/stream`` (server-sent events) and redraws what each event carries: VENs
with their online state, events with each VEN's delivery and opt answer, recent readings as a
small SVG chart per VEN. Its form creates, modifies and cancels events through the JSON API.
A person logs in with a token once (``/login``); the token is exchanged for a session cookie.
"""
from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources

from aiohttp import web

from .auth import SESSION_COOKIE, SESSION_SECONDS
from .live import COALESCE_SECONDS, PACING, REFRESH_SECONDS, TOPICS
from .state import CONTROL, WHO
from .stream_view import StreamView

log = logging.getLogger("xmpp_vtn.control")

_STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _page(name: str, **values: str) -> str:
    text = _asset(name).decode("utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def page(request: web.Request) -> web.Response:
    control = request.app[CONTROL]
    return web.Response(text=_page("dashboard.html", vtn_id=_html_escape(control.desk.vtn_id),
                                   who=_html_escape(request[WHO])),
                        content_type="text/html", headers={"Cache-Control": "no-store"})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=_asset(name), content_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


# -- login ---------------------------------------------------------------------------------------

async def login_form(request: web.Request, problem: str = "") -> web.Response:
    notice = f'<p class="problem" role="alert">{_html_escape(problem)}</p>' if problem else ""
    return web.Response(text=_page("login.html", problem=notice), content_type="text/html",
                        status=401 if problem else 200, headers={"Cache-Control": "no-store"})


async def login(request: web.Request) -> web.StreamResponse:
    """The login form's POST: a valid token opens a session (cookie), then the dashboard."""
    control = request.app[CONTROL]
    form = await request.post()
    token = str(form.get("token", "")).strip()
    who = control.tokens.who(token) if token else None
    if who is None:
        log.warning("dashboard login refused from %s", request.remote)
        return await login_form(request, "That token is not one this VTN knows.")
    response = web.HTTPSeeOther("/")
    response.set_cookie(SESSION_COOKIE, control.sessions.open(who), httponly=True, samesite="Strict",
                        secure=control.tls, path="/", max_age=int(SESSION_SECONDS))
    log.info("dashboard login: %s", who)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    control = request.app[CONTROL]
    control.sessions.close(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# -- the live feed -------------------------------------------------------------------------------

async def stream(request: web.Request) -> web.StreamResponse:
    """``text/event-stream``: every topic at once, then what changed (:mod:`.stream_view`), and
    every topic again after :data:`REFRESH_SECONDS` without a change (which also keeps proxies
    from closing the stream)."""
    control = request.app[CONTROL]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    subscription = control.feed.subscribe()
    view = StreamView(control)
    try:
        messages = view.whole(TOPICS)
        # What the page is sent on opening is read once: it does not hold up the first change.
        began = time.perf_counter()
        while not subscription.closed:
            cost = time.perf_counter() - began
            if messages:
                await response.write("".join(messages).encode("utf-8"))
            if await subscription.wait(REFRESH_SECONDS):
                # Let a burst of answers become one update; a costly update waits longer.
                await asyncio.sleep(min(max(COALESCE_SECONDS, PACING * cost), REFRESH_SECONDS))
                began = time.perf_counter()
                messages = view.messages(subscription.take())
            else:
                began = time.perf_counter()
                messages = view.whole(TOPICS)
    except ConnectionResetError:
        pass                                             # the browser went away
    finally:
        control.feed.unsubscribe(subscription)
    return response


ROUTES = [
    ("GET", "/", page),
    ("GET", "/static/{name}", static),
    ("GET", "/login", login_form),
    ("POST", "/login", login),
    ("POST", "/logout", logout),
    ("GET", "/api/stream", stream),
]
