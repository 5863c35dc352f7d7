"""Logging an XMPP client in, securely and with reasons: STARTTLS or direct TLS, the server's
certificate verified, SCRAM; or plain PLAIN for the loopback test servers. Used by the operator
commands (``xmpp-vtn event``), ven-sim and the simulated VEN.

>>> client = make_client("ven1@localhost/oadr", "pw", Security("starttls", ca_file="ca.pem"))  # doctest: +SKIP
>>> client.connect("127.0.0.1", 5222)                                                      # doctest: +SKIP
>>> await wait_for_login(client, "127.0.0.1", 5222)                                       # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from slixmpp import ClientXMPP

from ..runtime.stanzas import StreamFailed, send_payloads_raw

#: How a client reaches the server: "none" (plain TCP, PLAIN password: loopback test servers
#: only), "starttls" (the client port, upgraded before login) or "direct" (TLS from the first
#: byte, XEP-0368, usually port 5223).
TLS_MODES = ("none", "starttls", "direct")

#: SASL mechanisms tried over TLS, best first. slixmpp's SCRAM is pure-Python PBKDF2: about
#: 35 ms of CPU per login at Prosody's 4096 iterations.
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1")


@dataclass(frozen=True)
class Security:
    """How a client secures its login.

    ``tls`` is one of :data:`TLS_MODES`. With TLS the server's certificate is verified against
    ``ca_file`` (a PEM file) or, without one, the system's trust store; ``insecure`` skips the
    check (a test server with a throwaway certificate, never a real one). ``mechanism`` forces
    one SASL mechanism ("PLAIN", "SCRAM-SHA-1", ...); by default PLAIN without TLS, SCRAM with it.
    """

    tls: str = "none"
    ca_file: str | None = None
    insecure: bool = False
    mechanism: str | None = None

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {self.tls!r}")

    @property
    def encrypted(self) -> bool:
        """Whether the client uses TLS."""
        return self.tls != "none"


PLAIN = Security()


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one per client costs about 50 ms (the CA store)."""
    return ssl.create_default_context()


@lru_cache(maxsize=8)
def _verifying_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """One context per trust setting, shared by every client that uses it (see shared_ssl_context)."""
    if ca_file is None and not insecure:
        return shared_ssl_context()
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def make_client(jid: str, password: str, security: Security = PLAIN) -> ClientXMPP:
    """A client for ``jid`` that logs in as ``security`` says (see :class:`Security`)."""
    if not security.encrypted:
        return plain_client(jid, password, mechanism=security.mechanism or "PLAIN")
    context = _verifying_context(security.ca_file, security.insecure)
    mechanisms = {security.mechanism} if security.mechanism else set(SCRAM_MECHANISMS)
    # Never a password in the clear: no unencrypted_* option, so slixmpp refuses to authenticate
    # on a stream TLS did not protect (a server offering no STARTTLS fails with a reason).
    client = ClientXMPP(jid, password, ssl_context=context,
                        plugin_config={"feature_mechanisms": {"use_mechs": mechanisms}})
    client.enable_direct_tls = security.tls == "direct"
    client.enable_starttls = security.tls == "starttls"
    client.enable_plaintext = security.tls == "starttls"    # the TCP connection STARTTLS upgrades
    send_payloads_raw(client)
    return client


def plain_client(jid: str, password: str, tls: bool = False, mechanism: str = "PLAIN") -> ClientXMPP:
    """A client that logs in with PLAIN; without TLS unless ``tls`` (loopback test servers)."""
    # The shared context goes in at construction: slixmpp builds (and loads the CA store into)
    # a new one otherwise, about 80 ms per client.
    client = ClientXMPP(jid, password, sasl_mech=mechanism, ssl_context=shared_ssl_context(),
                        plugin_config={"feature_mechanisms": {"unencrypted_plain": not tls,
                                                              "unencrypted_scram": not tls}})
    client.enable_direct_tls = False
    client.enable_starttls = tls
    client.enable_plaintext = not tls
    send_payloads_raw(client)
    return client


class LoginFailed(StreamFailed):
    """A client could not log in; the message says why in words a person can act on."""


async def wait_for_login(xmpp: ClientXMPP, host: str, port: int, timeout: float = 10.0) -> None:
    """Wait for the session of a client that was just told to ``connect(host, port)``.

    Fails at the first sign of trouble with :class:`LoginFailed` naming it: connection refused,
    certificate not trusted, TLS required by the server (or offered by none), login refused.
    """
    where = f"{host}:{port}"
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def fail(reason: str) -> None:
        if not done.done():
            done.set_exception(LoginFailed(f"{xmpp.boundjid.bare}: {reason}"))

    def encrypted() -> bool:
        return xmpp.transport is not None and xmpp.transport.get_extra_info("ssl_object") is not None

    def connection_failed(error: Any) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            fail(_untrusted(where, error))
        elif isinstance(error, ConnectionRefusedError):
            fail(f"connection refused at {where}: nothing listens there")
        elif isinstance(error, ssl.SSLError):
            fail(f"TLS handshake with {where} failed ({error.reason or error}): is it a direct TLS port?")
        elif isinstance(error, OSError):
            fail(f"cannot connect to {where}: {error.strerror or error}")
        else:
            fail(f"cannot connect to {where}: {error}")

    def invalid_chain(error: Any) -> None:
        fail(_untrusted(where, error))
        xmpp.abort()

    def failed_auth(stanza: Any) -> None:
        condition = stanza["condition"] if hasattr(stanza, "__getitem__") else stanza
        fail(f"login refused by {where} ({condition or 'not-authorized'}): wrong password or no such account")

    def no_auth(*_: Any) -> None:
        if not encrypted():
            fail(f"{where} offers no TLS, and this client does not send a password unencrypted "
                 "(for a plain loopback test server, use --tls none)")
        else:
            fail(f"{where} offers no login method this client accepts")

    def negotiated(*_: Any) -> None:
        # Stream features ran out before any login: on an unencrypted stream that is a server
        # which wants TLS first (Prosody: c2s_require_encryption).
        if "mechanisms" in xmpp.features:
            return
        if not encrypted():
            fail(f"{where} requires TLS before login: use --tls starttls (or --tls direct on its "
                 "direct TLS port)")
        else:
            fail(f"{where} offered no login method")

    def stream_error(error: Any) -> None:
        fail(f"{where} closed the stream: {error['condition']}{': ' + error['text'] if error['text'] else ''}")

    handlers = {"session_start": lambda *_: done.done() or done.set_result(None),
                "connection_failed": connection_failed, "ssl_invalid_chain": invalid_chain,
                "failed_auth": failed_auth, "no_auth": no_auth, "stream_negotiated": negotiated,
                "stream_error": stream_error}
    for event, handler in handlers.items():
        xmpp.add_event_handler(event, handler)
    try:
        await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        raise LoginFailed(f"{xmpp.boundjid.bare}: no XMPP session with {where} within {timeout:g} s") from None
    except LoginFailed:
        xmpp.cancel_connection_attempt()         # slixmpp would keep retrying on its own schedule
        raise
    finally:
        for event, handler in handlers.items():
            xmpp.del_event_handler(event, handler)


def _untrusted(where: str, error: Any) -> str:
    detail = getattr(error, "verify_message", None) or str(error)
    return (f"the certificate of {where} is not trusted ({detail}): give the CA that signed it with "
            "--ca-file PATH (or --insecure for a throwaway test certificate)")
