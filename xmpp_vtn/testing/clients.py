"""XMPP clients for tests, simulators and benchmarks: the login helpers of :mod:`xmpp_vtn.ops.login`
(plain for the loopback test servers, TLS with SCRAM for a server set up as for production)."""
from __future__ import annotations

from ..ops.login import (PLAIN, SCRAM_MECHANISMS, TLS_MODES, LoginFailed, Security, make_client,  # noqa: F401
                         plain_client, shared_ssl_context, wait_for_login)
