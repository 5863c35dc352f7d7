"""XMPP clients for tests, simulators and benchmarks on loopback servers."""
from __future__ import annotations

import ssl
from functools import lru_cache

from slixmpp import ClientXMPP

from ..runtime.stanzas import send_payloads_raw


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client: building one per client costs about 50 ms (the CA store)."""
    return ssl.create_default_context()


def plain_client(jid: str, password: str, tls: bool = False) -> ClientXMPP:
    """A client that logs in with PLAIN; without TLS unless ``tls`` (loopback test servers)."""
    # The shared context goes in at construction: slixmpp builds (and loads the CA store into)
    # a new one otherwise, about 80 ms per client.
    client = ClientXMPP(jid, password, sasl_mech="PLAIN", ssl_context=shared_ssl_context(),
                        plugin_config={"feature_mechanisms": {"unencrypted_plain": not tls}})
    client.enable_direct_tls = False
    client.enable_starttls = tls
    client.enable_plaintext = not tls
    send_payloads_raw(client)
    return client
