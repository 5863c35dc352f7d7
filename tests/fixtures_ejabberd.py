"""ejabberd fixture: one private server for the session, on loopback, stopped by PID at the end.

Loaded by ``pytest_plugins`` in conftest.py. The server is started only when a test asks for it,
so a run that never touches ejabberd does not need it installed.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from xmpp_vtn.testing.ejabberd import EjabberdServer


@pytest.fixture(scope="session")
def ejabberd() -> Iterator[EjabberdServer]:
    """A real ejabberd (the Debian package's) serving ``localhost`` and the component ``vtn.localhost``.

    No ``domain_balancing`` entry: with several component connections each stanza to the domain
    goes to one of them at random, and one connection alone gets everything. (With a type, ejabberd
    23.01 needs ``component_number`` too, and then drops the stanzas of every slot nobody holds:
    a single VTN would lose part of its VENs. Tests of that build their own server.)
    """
    server = EjabberdServer()
    try:
        yield server.start()
    finally:
        server.close()
