"""Shared fixtures. The XSD bundle must be installed (the README's test command does it)."""
from __future__ import annotations

import gc
import os
import sys

# The catalogue of payloads lives beside the tests.
sys.path.insert(0, os.path.dirname(__file__))

pytest_plugins = ["fixtures_postgres", "fixtures_ejabberd", "fixtures_tls"]

import pytest  # noqa: E402

from xmpp_vtn.testing.prosody import ProsodyServer  # noqa: E402


@pytest.fixture(scope="session")
def prosody():
    """A real Prosody on loopback for the whole session, stopped by PID at the end."""
    server = ProsodyServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def collector_restored():
    """This process's garbage collector as it was before the test (a VTN with ``tune_gc=True``
    freezes objects and raises the thresholds); yields the thresholds it had."""
    thresholds = gc.get_threshold()
    assert gc.get_freeze_count() == 0, "objects were frozen before this test"
    yield thresholds
    gc.unfreeze()
    gc.set_threshold(*thresholds)
