"""A Prosody that requires TLS, as docs/servers.md sets one up: STARTTLS on the client port, direct
TLS on another, a self-signed certificate for localhost that clients verify (``server.ca_file``)."""
from __future__ import annotations

import pytest

from xmpp_vtn.testing.prosody import ProsodyServer


@pytest.fixture(scope="session")
def prosody_tls():
    """A real TLS-requiring Prosody on loopback for the whole session, stopped by PID at the end."""
    server = ProsodyServer(tls=True).start()
    try:
        yield server
    finally:
        server.close()
