"""Where the VTN keeps what must survive a restart.

One small interface (:class:`~xmpp_vtn.store.base.Store`) with an embedded SQLite backend as the
default. :func:`open_store` turns what a user passes as ``store=`` into a store:

>>> store = open_store(":memory:")          # tests
>>> store = open_store("/var/lib/vtn.db")   # doctest: +SKIP
>>> store = open_store("postgresql://vtn@db.internal/vtn")   # doctest: +SKIP  (shared by instances)
>>> store = open_store("/var/lib/vtn.db", read_only=True)    # doctest: +SKIP  (operators' tools)
"""
from __future__ import annotations

from pathlib import Path

from .base import (CERTIFICATE_IDENTITY, CLAIMED_IDENTITY, DROP_REASONS, HTTP_IDENTITIES, SIMPLE_HTTP,
                   UNREGISTERED_VENS, XMPP, Delivery, Document, DroppedPushes, EventRecord, OutboxItem, Store,
                   StoreSchemaError, VenRecord, transport_of)
from .sqlite import SQLiteStore

__all__ = ["Delivery", "Document", "DroppedPushes", "EventRecord", "OutboxItem", "Store", "StoreSchemaError", "VenRecord",
           "DROP_REASONS", "UNREGISTERED_VENS",
           "SQLiteStore", "open_store", "CERTIFICATE_IDENTITY", "CLAIMED_IDENTITY", "HTTP_IDENTITIES", "SIMPLE_HTTP",
           "XMPP", "transport_of"]


def open_store(store: "Store | str | Path", read_only: bool = False) -> Store:
    """A ready store from a :class:`Store`, a file path, ``sqlite:///path``, ``:memory:`` or a
    ``postgresql://`` URL (the shared backend; needs the ``postgresql`` extra: psycopg 3).

    A store is created when missing and its schema upgraded when older. With ``read_only=True``
    nothing is created, migrated or written, also beside a running VTN: the store must exist
    (``FileNotFoundError`` for a missing file) at this xmpp-vtn's schema version
    (:class:`StoreSchemaError` otherwise, naming the version found); SQLite is read over a
    ``mode=ro`` connection, PostgreSQL in read-only transactions. ``ConnectionError`` when a
    database server cannot be reached.
    """
    if isinstance(store, Store):
        if read_only and not store.read_only:
            raise ValueError("store: already open for writing; give its file or URL to open it read-only")
        return store
    text = str(store)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from .postgresql import PostgreSQLStore
        except ImportError as error:
            raise ValueError(f"store: {text.split('@')[-1]!r} needs psycopg 3: pip install 'xmpp-vtn[postgresql]' "
                             f"({error})") from None
        return PostgreSQLStore(text, read_only=read_only)
    # URL form as SQLAlchemy writes it: sqlite:///relative.db, sqlite:////absolute.db
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    elif "://" in text:
        raise ValueError(f"store: unsupported URL scheme {text.split('://')[0]!r}; give a file path, 'sqlite:///path', ':memory:' or 'postgresql://...'")
    if not text:
        raise ValueError("store: give a file path, 'sqlite:///path' or ':memory:'")
    if read_only and text == ":memory:":
        raise ValueError("store: a :memory: store lives inside its VTN process; give the store's file")
    return SQLiteStore(text, read_only=read_only)
