"""The simpleHTTP side of the VTN (OpenADR 2.0b simpleHTTP), beside the XMPP component.

It carries bytes, nothing more, like :mod:`~xmpp_vtn.runtime.component`: an aiohttp server takes
``POST {prefix}/EiRegisterParty|EiEvent|EiReport|EiOpt|OadrPoll``, works out who is speaking, and
hands the body to the same request pipeline as XMPP; the pipeline's answer is the response body.
:class:`HttpPusher` POSTs pushes to VENs that asked for them (``oadrHttpPullModel`` false).

Who is speaking: with TLS and client certificates, the certificate's fingerprint (OpenADR's: the
last 10 bytes of the SHA-256 of the DER certificate, colon-separated hex, as OpenLEADR computes
it), as ``x509:<fingerprint>``. Plain HTTP, or TLS without client certificates, authenticates
nobody: it is refused unless the operator sets ``allow_insecure``, and then the sender is whoever
the payload's venID says (``http-claim:<venID>``), which anyone who knows a venID can be.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import quote

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from lxml import etree

from .. import schema
from ..store import CERTIFICATE_IDENTITY, CLAIMED_IDENTITY
from . import exchange_log
from .component import IqRefused, PushFailed
from .inbound import Sender
from .signatures import SignatureCheck, SignatureRefused

log = logging.getLogger("xmpp_vtn.http")

DEFAULT_PATH_PREFIX = "/OpenADR2/Simple/2.0b"

#: The simpleHTTP endpoints and the messages each takes from a VEN (an oadrResponse goes anywhere).
SERVICE_MESSAGES: dict[str, frozenset[str]] = {
    "EiRegisterParty": frozenset({"oadrQueryRegistration", "oadrCreatePartyRegistration",
                                  "oadrCancelPartyRegistration", "oadrCanceledPartyRegistration"}),
    "EiEvent": frozenset({"oadrRequestEvent", "oadrCreatedEvent"}),
    "EiReport": frozenset({"oadrRegisterReport", "oadrRegisteredReport", "oadrCreateReport", "oadrCreatedReport",
                           "oadrUpdateReport", "oadrUpdatedReport", "oadrCancelReport", "oadrCanceledReport"}),
    "EiOpt": frozenset({"oadrCreateOpt", "oadrCancelOpt"}),
    "OadrPoll": frozenset({"oadrPoll"}),
}
#: Where the VTN POSTs each message it pushes, at the VEN's transport address.
PUSH_SERVICE = {
    "oadrDistributeEvent": "EiEvent", "oadrRequestReregistration": "EiRegisterParty",
    "oadrCancelPartyRegistration": "EiRegisterParty", "oadrRegisterReport": "EiReport",
    "oadrCreateReport": "EiReport", "oadrUpdateReport": "EiReport", "oadrCancelReport": "EiReport",
}

# How a transport-level refusal reads over HTTP.
_STATUS = {"bad-request": 400, "not-authorized": 403, "forbidden": 403, "feature-not-implemented": 501,
           "resource-constraint": 429, "internal-server-error": 500}

HttpRequestHandler = Callable[[Sender, str, bytes, "str | None"], Awaitable["bytes | None"]]


def certificate_fingerprint(der: bytes) -> str:
    """OpenADR's certificate fingerprint: the last 10 bytes of the SHA-256 of the DER certificate,
    upper-case hex pairs joined by colons (as OpenLEADR's ``utils.certificate_fingerprint``).

    >>> certificate_fingerprint(b"not a certificate")
    'D8:8A:2D:D6:80:FE:34:21:86:20'
    """
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest()[-10:])


@dataclass(frozen=True)
class HttpSettings:
    """Where and how the simpleHTTP transport listens; OpenLEADR's server argument names.

    ``cert``/``key`` make it HTTPS; ``ca_file`` makes it ask every VEN for a client certificate
    signed by that CA (the VEN's identity). ``allow_insecure`` accepts VENs without one.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    cert: str | None = None
    key: str | None = None
    ca_file: str | None = None
    path_prefix: str = DEFAULT_PATH_PREFIX
    allow_insecure: bool = False
    verify_message_signatures: bool = True
    max_body: int = schema.DEFAULT_MAX_BYTES

    @property
    def client_certificates(self) -> bool:
        """Whether VENs authenticate with TLS client certificates."""
        return bool(self.cert and self.key and self.ca_file)

    def check(self) -> None:
        """Raise ValueError for settings that cannot work (or would authenticate nobody unasked)."""
        if bool(self.cert) != bool(self.key):
            raise ValueError("http_cert and http_key go together (the VTN's certificate and its private key)")
        if self.ca_file and not self.cert:
            raise ValueError("http_ca_file (to verify VEN certificates) needs TLS: give http_cert and http_key")
        if not self.client_certificates and not self.allow_insecure:
            raise ValueError("simpleHTTP without TLS client certificates authenticates nobody: give http_cert, "
                             "http_key and http_ca_file, or set http_allow_insecure=True to accept that risk")
        if not self.path_prefix.startswith("/"):
            raise ValueError(f"http_path_prefix must start with '/', got {self.path_prefix!r}")

    def server_ssl(self) -> ssl.SSLContext | None:
        if not self.cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        if self.ca_file:
            context.load_verify_locations(self.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_ssl(self) -> ssl.SSLContext | bool:
        """For pushes: verify VENs against ``ca_file`` (else the system's CAs), present our certificate."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert:
            context.load_cert_chain(self.cert, self.key)
        return context


class HttpTransport:
    """The aiohttp server: ``await start()``, ``await stop()``; ``url`` once started.

    ``on_request(sender, addressed, body, account)`` is the request pipeline.
    """

    def __init__(self, settings: HttpSettings, on_request: HttpRequestHandler):
        settings.check()
        self.settings, self.on_request = settings, on_request
        self.signatures = SignatureCheck() if settings.client_certificates and settings.verify_message_signatures \
            else None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._stopping = False
        self.port: int | None = None

    @property
    def url(self) -> str:
        """The base URL VENs are given (``vtn_url`` for OpenLEADR's OpenADRClient)."""
        scheme = "https" if self.settings.cert else "http"
        return f"{scheme}://{self.settings.host}:{self.port}{self.settings.path_prefix.rstrip('/')}"

    async def start(self) -> None:
        """Listen; port 0 picks a free one (see :attr:`port`)."""
        if not self.settings.client_certificates:
            log.warning("simpleHTTP on %s:%s accepts VENs without client certificates (http_allow_insecure): "
                        "anyone who knows a venID can speak for it", self.settings.host, self.settings.port)
        app = web.Application(client_max_size=self.settings.max_body)
        prefix = self.settings.path_prefix.rstrip("/")
        for service in SERVICE_MESSAGES:
            app.router.add_post(f"{prefix}/{service}", self._handler(service))
        self._stopping = False
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.settings.host, self.settings.port,
                                 ssl_context=self.settings.server_ssl())
        await self._site.start()
        server = self._site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        log.info("simpleHTTP serving on %s", self.url)

    async def quiesce(self) -> None:
        """Refuse new requests (503) from now on; requests in flight finish."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop listening and close connections (requests in flight get up to 5 s)."""
        self._stopping = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None

    def _handler(self, service: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._serve(service, request)
        return handle

    async def _serve(self, service: str, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        if self._stopping:
            return _refuse(503, "the VTN is stopping; try again shortly", peer, service)
        content_type = request.headers.get("Content-Type", "")
        if not content_type.lower().startswith(("application/xml", "text/xml")):
            return _refuse(415, f"the Content-Type must be application/xml, not {content_type or 'absent'!r}",
                           peer, service)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"the body is larger than {self.settings.max_body} bytes", peer, service)
        der = _peer_certificate(request)
        if der is not None:
            identity = CERTIFICATE_IDENTITY + certificate_fingerprint(der)
            if self.signatures is not None:
                try:
                    self.signatures.check(body, ssl.DER_cert_to_PEM_cert(der))
                except SignatureRefused as refusal:
                    return _refuse(403, str(refusal), identity, service, body)
            sender: Sender = _at_endpoint(service, identity)
            account = identity
        elif self.settings.allow_insecure:
            # The in-flight limit counts per connection: counted per address, every VEN behind one
            # NAT or proxy (or on one test machine) would share 16 requests in flight.
            sender, account = _claimed(service), f"{CLAIMED_IDENTITY}{_peer_connection(request)}"
        else:
            return _refuse(403, "this VTN requires a TLS client certificate", peer, service, body)
        try:
            answer = await self.on_request(sender, service, body, account)
        except IqRefused as refusal:
            status = _STATUS.get(refusal.condition, 503 if refusal.error_type == "wait" else 400)
            headers = {"Retry-After": "1"} if status in (429, 503) else None
            return web.Response(status=status, text=refusal.text, headers=headers)
        except Exception:
            log.exception("simpleHTTP request from %s to %s could not be answered", peer, service)
            return web.Response(status=500, text="the VTN failed to process this request")
        return web.Response(status=200, body=answer or b"", content_type="application/xml")


def _refuse(status: int, text: str, peer: str, service: str, body: bytes = b"") -> web.Response:
    """An HTTP-level refusal, logged as an exchange like every other."""
    exchange_log.inbound(f"(HTTP {service})", peer, None, f"HTTP {status}: {text}", body)
    return web.Response(status=status, text=text, headers={"Retry-After": "1"} if status == 503 else None)


def _peer_connection(request: web.Request) -> str:
    """``host:port`` of the VEN's end of this connection."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if peer else (request.remote or "?")


def _peer_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _check_endpoint(service: str, message_type: str) -> None:
    if message_type != "oadrResponse" and message_type not in SERVICE_MESSAGES[service]:
        home = next((name for name, types in SERVICE_MESSAGES.items() if message_type in types), None)
        raise IqRefused("bad-request", f"{message_type} is not sent to {service}" +
                        (f"; POST it to {home}" if home else ""))


def _at_endpoint(service: str, identity: str) -> Sender:
    def sender(message_type: str, payload: dict) -> str:
        _check_endpoint(service, message_type)
        return identity
    return sender


def _claimed(service: str) -> Sender:
    """Without client certificates: the sender is the venID the payload claims."""
    def sender(message_type: str, payload: dict) -> str:
        _check_endpoint(service, message_type)
        ven_id = payload.get("ven_id")
        if message_type == "oadrCreatePartyRegistration" and not ven_id:
            raise IqRefused("bad-request", "without a TLS client certificate a VEN is known by its venID: "
                            "send oadrCreatePartyRegistration with your venID")
        # Quoted, so that no venID can make an identity look like another (or like a JID).
        return CLAIMED_IDENTITY + quote(ven_id or "", safe="")
    return sender


class HttpPusher:
    """POSTs pushes to simpleHTTP VENs at ``{transport address}/{service}``; a 2xx answer is the
    acknowledgement. A VEN that answers with an OpenADR payload (oadrCreatedEvent in the response
    instead of a request of its own) has it handed to ``on_answer(to, body)``."""

    def __init__(self, settings: HttpSettings, on_answer: Callable[[str, bytes], Awaitable[None]] | None = None):
        self.settings, self.on_answer = settings, on_answer
        self._session: ClientSession | None = None

    async def push(self, to: str, document: bytes, timeout: float = 10.0) -> None:
        """POST ``document`` to the VEN at ``to``; :class:`PushFailed` unless it answers 2xx."""
        if self._session is None:
            self._session = ClientSession(connector=TCPConnector(ssl=self.settings.client_ssl()
                                                                 if to.startswith("https://") else False))
        url = f"{to.rstrip('/')}/{PUSH_SERVICE.get(_message_type(document), 'EiEvent')}"
        try:
            async with self._session.post(url, data=document, headers={"Content-Type": "application/xml"},
                                          timeout=ClientTimeout(total=timeout)) as response:
                body = await response.read()
                status = response.status
        except asyncio.TimeoutError:
            raise PushFailed(to, f"no answer within {timeout} s") from None
        except (ClientError, OSError) as error:
            raise PushFailed(to, f"{type(error).__name__}: {error}") from None
        if not 200 <= status < 300:
            # The VEN rejects these bytes (4xx) for good, except "later" (408, 429); 5xx may pass.
            raise PushFailed(to, f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}",
                             refused=400 <= status < 500 and status not in (408, 429))
        if body.strip() and self.on_answer is not None:
            await self.on_answer(to, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _message_type(document: bytes) -> str:
    """The message inside one of our own oadrPayload documents."""
    root = etree.fromstring(document, schema.plain_parser())
    for signed in root:
        if isinstance(signed.tag, str) and signed.tag.endswith("oadrSignedObject"):
            for child in signed:
                if isinstance(child.tag, str):
                    return child.tag.rsplit("}", 1)[-1]
    return ""
