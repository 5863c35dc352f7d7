"""PostgreSQL fixtures: one throwaway server for the session, an empty database per test.

Loaded by ``pytest_plugins`` in conftest.py. The server is started only when a test asks for it,
so a run that never touches PostgreSQL does not need it installed.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import pytest

from xmpp_vtn.testing.postgres import PostgresServer

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL on 127.0.0.1 for the whole session, stopped by PID at the end."""
    # Default settings (fsync and synchronous commits on), as a real deployment has them: turning
    # synchronous_commit off made no measurable difference to this suite.
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def postgres_database(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database of its own for one test; dropped afterwards."""
    name = f"test_{next(_database_numbers)}"
    url = postgres.create_database(name)
    yield url
    # FORCE: a connection the test left open must not keep its database (and disk) alive.
    postgres.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
