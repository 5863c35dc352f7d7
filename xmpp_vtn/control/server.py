"""The control listener: one aiohttp application on its own port (loopback by default) serving
the control API, the dashboard, ``/metrics`` and ``/healthz`` for one VTN.

Only ``/healthz`` and the login form are open to anyone; everything else needs a bearer token,
a client certificate (with a CA configured) or a dashboard session (:mod:`.auth`).

>>> server = ControlServer(vtn, port=8480, tokens=[hash_token(token)])   # doctest: +SKIP
>>> await server.start(); print(server.url)                              # doctest: +SKIP
http://127.0.0.1:8480/
"""
from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

from ..runtime.observer import ExchangeObserver
from . import api, dashboard
from .api import error
from .auth import SESSION_COOKIE, Sessions, Tokens, bearer_token, certificate_subject
from .desk import OperatorDesk
from .event_input import BadInput
from .live import LiveFeed
from .metrics import CONTENT_TYPE, VTNMetrics
from .state import CONTROL, WHO, Control

log = logging.getLogger("xmpp_vtn.control")

# The login form needs its style sheet before anyone has logged in; neither holds any data.
_OPEN = frozenset({"/healthz", "/login", "/static/dashboard.css"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SECURITY_HEADERS = {
    # The dashboard's own files only: no inline script, nothing from elsewhere, never in a frame.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class ControlTLS:
    """TLS for the control listener: its certificate and key, and optionally a CA whose client
    certificates are accepted in place of a token."""

    certfile: str
    keyfile: str
    cafile: str | None = None

    def context(self) -> ssl.SSLContext:
        """The server-side SSL context (client certificates optional, verified against ``cafile``)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certfile, self.keyfile)
        if self.cafile:
            context.load_verify_locations(cafile=self.cafile)
            context.verify_mode = ssl.CERT_OPTIONAL
        return context


class _Observers(ExchangeObserver):
    """Both observers the control listener installs, as the one the runtime calls."""

    def __init__(self, metrics: VTNMetrics, feed: LiveFeed):
        self.metrics, self.feed = metrics, feed

    def inbound(self, message_type: str, ven_id: str | None, outcome: str, payload: dict | None) -> None:
        self.metrics.inbound(message_type, ven_id, outcome, payload)
        self.feed.inbound(message_type, ven_id, outcome, payload)

    def push_sent(self, message_type: str, ven_id: str) -> None:
        self.metrics.push_sent(message_type, ven_id)

    def push_answered(self, message_type: str, ven_id: str, outcome: str, seconds: float) -> None:
        self.metrics.push_answered(message_type, ven_id, outcome, seconds)
        self.feed.push_answered(message_type, ven_id, outcome, seconds)

    def liveness(self, ven_id: str, state: str) -> None:
        self.metrics.liveness(ven_id, state)
        self.feed.liveness(ven_id, state)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (``localhost``, ``127.0.0.1``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- middlewares -----------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors under /api (and for /metrics, /healthz); never a traceback to the client."""
    try:
        return await handler(request)
    except BadInput as problem:
        return error(problem.status, problem.field, problem.message)
    except web.HTTPException as exception:
        if exception.status >= 400 and not request.path.startswith(("/static/",)) and request.path != "/":
            field = "method" if exception.status == 405 else "path"
            return error(exception.status, field, exception.reason)
        raise
    except Exception:
        log.exception("control request %s %s failed", request.method, request.path)
        return error(500, "-", "the VTN failed to answer this request; see its log")


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token, client certificate or session; else 401 (the dashboard: the login form)."""
    if request.path in _OPEN:
        return await handler(request)
    control = request.app[CONTROL]
    header = request.headers.get("Authorization")
    token = bearer_token(header)
    who = None
    if token is not None:
        # A request that brings a token is judged by it alone, never by a cookie beside it.
        who = control.tokens.who(token) if token else None
        if who is None:
            log.warning("control request %s %s from %s refused: %s", request.method, request.path, request.remote,
                        "malformed Authorization header" if token == "" else "unknown token")
            return _unauthorized("Authorization", "malformed Authorization header: send 'Bearer TOKEN'"
                                 if token == "" else "unknown token")
    else:
        who = certificate_subject(request.transport.get_extra_info("peercert") if request.transport else None)
    if who is None:
        who = control.sessions.who(request.cookies.get(SESSION_COOKIE))
        if who is not None and request.method not in _SAFE_METHODS and not _same_origin(request):
            return error(403, "Origin", "a cross-site request cannot change the VTN")
    if who is None:
        if request.method == "GET" and request.path == "/":
            raise web.HTTPSeeOther("/login")
        return _unauthorized("Authorization", "send Authorization: Bearer TOKEN (or log in at /login)")
    request[WHO] = who
    return await handler(request)


def _unauthorized(field: str, message: str) -> web.Response:
    response = error(401, field, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="xmpp-vtn"'
    return response


def _same_origin(request: web.Request) -> bool:
    """A session-authenticated change must come from the dashboard's own pages. The cookie is
    SameSite=Strict and the API takes only JSON (preflighted cross-site); this checks the Origin a
    browser sends as well."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exception:
        exception.headers.update(_SECURITY_HEADERS)
        raise
    response.headers.update(_SECURITY_HEADERS)
    return response


# -- the routes outside the API ----------------------------------------------------------------------

async def _health(request: web.Request) -> web.Response:
    desk = request.app[CONTROL].desk
    connected, reachable = desk.connected, desk.store_reachable()
    healthy = connected and reachable
    return web.json_response({"ok": healthy, "xmpp_connected": connected, "store_reachable": reachable,
                              "vtn_id": desk.vtn_id}, status=200 if healthy else 503,
                             headers={"Cache-Control": "no-store"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[CONTROL].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def build_app(control: Control) -> web.Application:
    """The aiohttp application serving ``control`` (without a listener: tests may serve it themselves)."""
    app = web.Application(middlewares=[_headers, _errors, _authenticate], client_max_size=api.MAX_BODY)
    app[CONTROL] = control
    for method, path, handler in [*api.ROUTES, *dashboard.ROUTES, ("GET", "/healthz", _health),
                                  ("GET", "/metrics", _metrics)]:
        app.router.add_route(method, path, handler)
    return app


class ControlServer:
    """The control listener of one VTN; ``observer`` is what the VTN's runtime must call."""

    def __init__(self, desk: OperatorDesk, host: str = "127.0.0.1", port: int = 0,
                 tokens: Iterable[str] | Mapping[str, str] = (), tls: ControlTLS | None = None):
        self.host, self.requested_port = host, port
        self.ssl_context = tls.context() if tls is not None else None
        self.metrics = VTNMetrics(desk)
        self.feed = LiveFeed()
        self.observer: ExchangeObserver = _Observers(self.metrics, self.feed)
        self.control = Control(desk, self.feed, self.metrics, Tokens(tokens), Sessions(),
                               tls=self.ssl_context is not None)
        self.app = build_app(self.control)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the dashboard is, e.g. ``http://127.0.0.1:8480/`` (once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}/"

    async def start(self) -> None:
        """Listen. Warns when the host is not loopback, or when there is no way in."""
        if not is_loopback(self.host):
            log.warning("the control listener binds %s, which is not loopback: anyone who can reach it may try "
                        "tokens%s", self.host, "" if self.ssl_context else ", and tokens travel unencrypted (no TLS)")
        if not len(self.control.tokens) and not (self.ssl_context and self.ssl_context.verify_mode != ssl.CERT_NONE):
            log.warning("the control listener has no tokens and no client-certificate CA: it will refuse everyone "
                        "(make a token with `xmpp-vtn token new`)")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("control listener at %s", self.url)

    async def stop(self) -> None:
        """End the dashboards' streams and stop listening."""
        self.feed.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.port = None
