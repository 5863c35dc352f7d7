"""The shared store: one PostgreSQL database behind one or several VTN instances.

Chosen with a ``postgresql://`` URL. Unlike the embedded store it keeps nothing in memory but
decoded event documents (keyed by their bytes, so a newer modification is never served stale):
other instances write the same tables. Work that must run once across instances runs under a
lease row (:meth:`claim`), and instances tell each other things with ``NOTIFY`` (:meth:`publish`).

Reads and writes use a synchronous psycopg connection, like the SQLite store, because the
:class:`~xmpp_vtn.store.base.Store` interface is synchronous: each call is one round trip to the
server (about 100 µs on loopback) during which the event loop waits. ``listen`` is the one
asynchronous part: it holds its own connection and awaits notifications.
"""
from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .base import Delivery, Document, DroppedPushes, EventRecord, OutboxItem, Store, StoreSchemaError, VenRecord
from .documents import decode_document, decode_event, encode_document, encode_event
from .sql import (COUNT_DROPPED, DELIVERY_COLUMNS, DROPPED_PUSHES, DOCUMENT_COLUMNS, JOURNAL_COLUMNS, MARK_DELIVERED, OUTBOX_COLUMNS,
                  OWED_VEN_IDS, PURGE_EVENT_STATE, PURGED_TABLES, PUT_VEN, RESTORE_OPT, SET_OPT, VEN_COLUMNS,
                  delivered_rows, opt_rows, statement)

log = logging.getLogger("xmpp_vtn.store")

# Each entry upgrades the schema by one version; never edit one that has shipped, append instead.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE vens (
        ven_id            TEXT PRIMARY KEY,
        registration_id   TEXT NOT NULL UNIQUE,
        bare_jid          TEXT NOT NULL UNIQUE,
        transport_address TEXT NOT NULL,
        ven_name          TEXT,
        profile_name      TEXT NOT NULL,
        report_only       BOOLEAN NOT NULL,
        xml_signature     BOOLEAN NOT NULL,
        http_pull_model   BOOLEAN,
        registered_at     TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE events (
        event_id            TEXT PRIMARY KEY,
        position            BIGINT GENERATED ALWAYS AS IDENTITY,
        modification_number INTEGER NOT NULL,
        cancelled           BOOLEAN NOT NULL,
        document            BYTEA NOT NULL
    );
    CREATE TABLE event_vens (
        event_id                TEXT NOT NULL REFERENCES events(event_id) ON DELETE CASCADE,
        ven_id                  TEXT NOT NULL,
        delivered_modification  INTEGER,
        delivered_status        TEXT,
        opt_type                TEXT,
        opt_modification        INTEGER,
        PRIMARY KEY (event_id, ven_id)
    );
    CREATE INDEX event_vens_by_ven ON event_vens (ven_id);
    CREATE TABLE documents (
        kind     TEXT NOT NULL,
        key      TEXT NOT NULL,
        ven_id   TEXT NOT NULL,
        state    TEXT NOT NULL,
        position BIGINT GENERATED ALWAYS AS IDENTITY,
        document BYTEA NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX documents_by_ven ON documents (kind, ven_id);
    CREATE TABLE outbox (
        item_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ven_id       TEXT NOT NULL,
        destination  TEXT NOT NULL,
        message_type TEXT NOT NULL,
        document     BYTEA NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_by_ven ON outbox (ven_id, item_id);
    CREATE TABLE journal (
        entry_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ven_id   TEXT NOT NULL,
        document BYTEA NOT NULL,
        owner    TEXT NOT NULL
    );
    CREATE TABLE liveness (
        ven_id    TEXT PRIMARY KEY,
        state     TEXT NOT NULL,
        last_seen TIMESTAMPTZ
    );
    CREATE TABLE leases (
        name    TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        expires TIMESTAMPTZ NOT NULL
    );
    """,
    # Bounded outboxes: what an item is about (superseded by a newer one) and when it goes stale.
    """
    ALTER TABLE outbox ADD COLUMN topic TEXT;
    ALTER TABLE outbox ADD COLUMN expires_at DOUBLE PRECISION;
    CREATE INDEX outbox_by_topic ON outbox (ven_id, topic);
    """,
    # For operators: how long a push has waited, and what the bounded-outbox policy let go.
    """
    ALTER TABLE outbox ADD COLUMN queued_at DOUBLE PRECISION;
    CREATE TABLE outbox_drops (
        ven_id  TEXT NOT NULL,
        reason  TEXT NOT NULL,
        dropped BIGINT NOT NULL,
        last_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (ven_id, reason)
    );
    """,
]


@functools.cache
def _sql(template: str) -> str:
    """A statement of :mod:`.sql` with this backend's placeholders."""
    return statement(template, "%s")


# Instances of one VTN share the database; notification channels are namespaced to us.
_CHANNEL_PREFIX = "xmpp_vtn_"
# Two instances starting on an empty database must not both create the tables.
_MIGRATION_LOCK = 0x786D7070   # "xmpp"


class PostgreSQLStore(Store):
    """A :class:`Store` in a PostgreSQL database, safe to share between VTN instances.

    ``read_only=True`` checks the schema version instead of migrating, and runs every
    transaction read-only (``default_transaction_read_only``), so the server refuses writes.

    >>> store = PostgreSQLStore("postgresql://vtn@127.0.0.1:5432/vtn")   # doctest: +SKIP
    """

    shared = True

    def __init__(self, url: str, connect_timeout: float = 10.0, read_only: bool = False):
        self.url = url
        self.connect_timeout = connect_timeout
        self.read_only = read_only
        self._db = self._connect()
        try:
            if read_only:
                self._check_version()
            else:
                self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> psycopg.Connection:
        # autocommit: a statement outside _transaction() commits at once, as in the SQLite store.
        try:
            db = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.OperationalError as error:
            # The driver's reason spans lines ("... failed: Connection refused", then a hint): keep all.
            reason = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) \
                or type(error).__name__
            raise ConnectionError(f"store: cannot connect to PostgreSQL at {self.where}: {reason}") from None
        if self.read_only:
            # Every transaction of this session, implicit ones included: the server refuses writes.
            db.execute("SET default_transaction_read_only = on")
        return db

    @property
    def where(self) -> str:
        """host:port/dbname of the database, without credentials (for messages and logs)."""
        parts = conninfo_to_dict(self.url)
        return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"

    @property
    def schema_version(self) -> int:
        return self._version(self._db)

    @staticmethod
    def _version(db: psycopg.Connection) -> int:
        """The schema version written in the database; 0 when it holds no xmpp-vtn store. Reads only."""
        if db.execute("SELECT to_regclass('xmpp_vtn_schema')").fetchone()[0] is None:
            return 0
        row = db.execute("SELECT version FROM xmpp_vtn_schema").fetchone()
        return row[0] if row else 0

    def _check_version(self) -> None:
        version = self._version(self._db)
        if version != len(MIGRATIONS):
            raise StoreSchemaError(f"the database at {self.where}", version, len(MIGRATIONS))

    def _migrate(self) -> None:
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            self._db.execute("CREATE TABLE IF NOT EXISTS xmpp_vtn_schema (version INTEGER NOT NULL)")
            version = self._version(self._db)
            if version > len(MIGRATIONS):
                raise StoreSchemaError(f"the database at {self.where}", version, len(MIGRATIONS))
            for script in MIGRATIONS[version:]:
                self._db.execute(script)
            if version == 0:
                self._db.execute("INSERT INTO xmpp_vtn_schema VALUES (%s)", (len(MIGRATIONS),))
            else:
                self._db.execute("UPDATE xmpp_vtn_schema SET version = %s", (len(MIGRATIONS),))

    def _reconnect_if_broken(self) -> bool:
        """After an error: if the connection itself is gone (the server restarted), open a new one."""
        if not self._db.closed and not self._db.broken:
            return False
        log.warning("connection to PostgreSQL lost; reconnecting")
        self._db = self._connect()
        return True

    def _execute(self, query: str, args: Any = ()) -> psycopg.Cursor:
        """One statement; retried once on a fresh connection if the server went away in between."""
        try:
            return self._db.execute(query, args)
        except psycopg.OperationalError:
            if not self._reconnect_if_broken():
                raise
            return self._db.execute(query, args)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        transaction = self._db.transaction()
        try:
            transaction.__enter__()          # BEGIN: a dead connection fails here, before any work
        except psycopg.OperationalError:
            if not self._reconnect_if_broken():
                raise
            transaction = self._db.transaction()
            transaction.__enter__()
        try:
            yield self._db
        except BaseException as error:
            if not transaction.__exit__(type(error), error, error.__traceback__):
                raise
        else:
            transaction.__exit__(None, None, None)

    # -- registrations -------------------------------------------------------------------------------

    def put_ven(self, ven: VenRecord) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM vens WHERE bare_jid = %s AND ven_id <> %s", (ven.bare_jid, ven.ven_id))
            db.execute(_sql(PUT_VEN),
                (ven.ven_id, ven.registration_id, ven.bare_jid, ven.transport_address, ven.ven_name,
                 ven.profile_name, ven.report_only, ven.xml_signature, ven.http_pull_model, ven.registered_at))

    def _vens(self, where: str = "TRUE", args: tuple = ()) -> list[VenRecord]:
        rows = self._execute(f"SELECT {VEN_COLUMNS} FROM vens WHERE {where} ORDER BY ven_id", args).fetchall()
        return [VenRecord(*row) for row in rows]

    def _one_ven(self, column: str, value: str) -> VenRecord | None:
        found = self._vens(f"{column} = %s", (value,))
        return found[0] if found else None

    def ven(self, ven_id: str) -> VenRecord | None:
        return self._one_ven("ven_id", ven_id)

    def ven_by_jid(self, bare_jid: str) -> VenRecord | None:
        return self._one_ven("bare_jid", bare_jid)

    def ven_by_registration(self, registration_id: str) -> VenRecord | None:
        return self._one_ven("registration_id", registration_id)

    def remove_ven(self, ven_id: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM liveness WHERE ven_id = %s", (ven_id,))
            return db.execute("DELETE FROM vens WHERE ven_id = %s", (ven_id,)).rowcount > 0

    def vens(self) -> list[VenRecord]:
        return self._vens()

    # -- events ------------------------------------------------------------------------------------

    def put_event(self, record: EventRecord) -> None:
        document = encode_event(record.event)
        with self._transaction() as db:
            db.execute("INSERT INTO events (event_id, modification_number, cancelled, document) "
                       "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO UPDATE SET "
                       "modification_number = excluded.modification_number, cancelled = excluded.cancelled, "
                       "document = excluded.document",
                       (record.event_id, record.modification_number, record.cancelled, document))
            db.execute("DELETE FROM event_vens WHERE event_id = %s AND NOT ven_id = ANY(%s)",
                       (record.event_id, list(record.ven_ids)))
            with db.cursor() as cursor:
                cursor.executemany("INSERT INTO event_vens (event_id, ven_id) VALUES (%s, %s) "
                                   "ON CONFLICT DO NOTHING", [(record.event_id, ven_id) for ven_id in record.ven_ids])

    def _events(self, where: str, args: tuple) -> list[EventRecord]:
        rows = self._execute(
            "SELECT e.event_id, e.modification_number, e.cancelled, e.document, "
            "ARRAY(SELECT v.ven_id FROM event_vens v WHERE v.event_id = e.event_id ORDER BY v.ven_id) "
            f"FROM events e WHERE {where} ORDER BY e.position", args).fetchall()
        # decode_event is cached by the document's bytes: a newer modification is new bytes.
        return [EventRecord(event_id, modification, decode_event(bytes(document)), tuple(ven_ids), cancelled)
                for event_id, modification, cancelled, document, ven_ids in rows]

    def event(self, event_id: str) -> EventRecord | None:
        found = self._events("e.event_id = %s", (event_id,))
        return found[0] if found else None

    def events(self, ven_id: str | None = None) -> list[EventRecord]:
        if ven_id is None:
            return self._events("TRUE", ())
        return self._events("EXISTS (SELECT 1 FROM event_vens v WHERE v.event_id = e.event_id AND v.ven_id = %s)",
                            (ven_id,))

    def deliveries(self, event_id: str | None = None, ven_id: str | None = None) -> list[Delivery]:
        conditions = [(column, value) for column, value in (("event_id", event_id), ("ven_id", ven_id))
                      if value is not None]
        where = " AND ".join(f"{column} = %s" for column, _ in conditions) or "TRUE"
        rows = self._execute(
            f"SELECT {DELIVERY_COLUMNS} FROM event_vens WHERE {where} ORDER BY event_id, ven_id",
            [value for _, value in conditions])
        return [Delivery(*row) for row in rows]

    def mark_delivered(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> None:
        rows = delivered_rows(ven_id, delivered)
        with self._transaction() as db, db.cursor() as cursor:
            cursor.executemany(_sql(MARK_DELIVERED), rows)

    def set_opt(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes | None = None,
                owner: str = "") -> int | None:
        with self._transaction() as db:
            with db.cursor() as cursor:
                cursor.executemany(_sql(SET_OPT), opt_rows(ven_id, opts))
            if journal is None:
                return None
            return db.execute("INSERT INTO journal (ven_id, document, owner) VALUES (%s, %s, %s) RETURNING entry_id",
                              (ven_id, journal, owner)).fetchone()[0]

    def restore_opt(self, ven_id: str, restored: list[tuple[str, str | None, int | None]],
                    written: list[tuple[str, str, int]]) -> None:
        written_by_event = {event_id: (opt_type, modification) for event_id, opt_type, modification in written}
        with self._transaction() as db, db.cursor() as cursor:
            cursor.executemany(_sql(RESTORE_OPT), [
                (opt_type, modification, event_id, ven_id, *written_by_event[event_id])
                for event_id, opt_type, modification in restored])

    def journal(self) -> list[tuple[int, str, bytes, str]]:
        rows = self._execute(f"SELECT {JOURNAL_COLUMNS} FROM journal ORDER BY entry_id").fetchall()
        return [(entry_id, ven_id, bytes(document), owner) for entry_id, ven_id, document, owner in rows]

    def journal_done(self, entry_id: int) -> None:
        self._execute("DELETE FROM journal WHERE entry_id = %s", (entry_id,))

    # -- other documents -----------------------------------------------------------------------------

    def put_document(self, document: Document) -> None:
        data = encode_document(document.kind, document.payload)
        self._execute("INSERT INTO documents (kind, key, ven_id, state, document) VALUES (%s, %s, %s, %s, %s) "
                      "ON CONFLICT (kind, key) DO UPDATE SET ven_id = excluded.ven_id, state = excluded.state, "
                      "document = excluded.document",
                      (document.kind, document.key, document.ven_id, document.state, data))

    def _documents(self, where: str, args: tuple) -> list[Document]:
        rows = self._execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE {where} "
                             "ORDER BY position", args).fetchall()
        return [Document(kind, key, ven_id, decode_document(kind, bytes(data)), state)
                for kind, key, ven_id, state, data in rows]

    def document(self, kind: str, key: str) -> Document | None:
        found = self._documents("kind = %s AND key = %s", (kind, key))
        return found[0] if found else None

    def documents(self, kind: str, ven_id: str | None = None) -> list[Document]:
        if ven_id is None:
            return self._documents("kind = %s", (kind,))
        return self._documents("kind = %s AND ven_id = %s", (kind, ven_id))

    def remove_document(self, kind: str, key: str) -> bool:
        return self._execute("DELETE FROM documents WHERE kind = %s AND key = %s", (kind, key)).rowcount > 0

    # -- outbox ------------------------------------------------------------------------------------

    def enqueue(self, ven_id: str, to: str, message_type: str, document: bytes) -> int:
        return self._execute("INSERT INTO outbox (ven_id, destination, message_type, document, queued_at) "
                             "VALUES (%s, %s, %s, %s, %s) RETURNING item_id",
                             (ven_id, to, message_type, document, time.time())).fetchone()[0]

    def outbox(self, ven_id: str | None = None) -> list[OutboxItem]:
        where, args = ("WHERE ven_id = %s", (ven_id,)) if ven_id is not None else ("", ())
        rows = self._execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox {where} ORDER BY item_id", args).fetchall()
        return [OutboxItem(item_id, ven, to, message_type, bytes(document), attempts, queued_at)
                for item_id, ven, to, message_type, document, attempts, queued_at in rows]

    def attempted(self, item_id: int) -> None:
        self._execute("UPDATE outbox SET attempts = attempts + 1 WHERE item_id = %s", (item_id,))

    def dequeue(self, item_id: int) -> None:
        self._execute("DELETE FROM outbox WHERE item_id = %s", (item_id,))

    def owed_ven_ids(self) -> set[str]:
        return {row[0] for row in self._execute(OWED_VEN_IDS).fetchall()}

    def enqueue_bounded(self, ven_id: str, to: str, message_type: str, document: bytes, *,
                        topic: str | None = None, limit: int | None = None,
                        expires_at: float | None = None) -> int | None:
        with self._transaction() as db:
            if limit is not None:
                # Two instances queueing for one VEN at once must not both pass the count.
                db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("outbox:" + ven_id,))
            now = time.time()
            if topic is not None:
                superseded = db.execute("DELETE FROM outbox WHERE ven_id = %s AND topic = %s",
                                        (ven_id, topic)).rowcount
                if superseded:
                    db.execute(_sql(COUNT_DROPPED), (ven_id, "superseded", superseded, now))
            if limit is not None and db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE ven_id = %s", (ven_id,)).fetchone()[0] >= limit:
                db.execute(_sql(COUNT_DROPPED), (ven_id, "outbox_full", 1, now))
                return None
            return db.execute("INSERT INTO outbox (ven_id, destination, message_type, document, topic, expires_at, "
                              "queued_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING item_id",
                              (ven_id, to, message_type, document, topic, expires_at, now)).fetchone()[0]

    def expire_outbox(self, now: float) -> int:
        with self._transaction() as db:
            gone = Counter(row[0] for row in db.execute(
                "DELETE FROM outbox WHERE expires_at < %s RETURNING ven_id", (now,)).fetchall())
            if gone:
                db.cursor().executemany(_sql(COUNT_DROPPED), [(ven_id, "expired", count, time.time())
                                                              for ven_id, count in gone.items()])
            return sum(gone.values())

    def dequeue_topic(self, ven_id: str, topic: str) -> int:
        return self._execute("DELETE FROM outbox WHERE ven_id = %s AND topic = %s", (ven_id, topic)).rowcount

    def outbox_depth(self, ven_id: str) -> int:
        return self._execute("SELECT COUNT(*) FROM outbox WHERE ven_id = %s", (ven_id,)).fetchone()[0]

    def count_dropped(self, ven_id: str, reason: str, count: int = 1) -> None:
        self._execute(_sql(COUNT_DROPPED), (ven_id, reason, count, time.time()))

    def dropped_pushes(self) -> list[DroppedPushes]:
        return [DroppedPushes(*row) for row in self._execute(DROPPED_PUSHES).fetchall()]

    def purge_ven(self, ven_id: str) -> dict[str, int]:
        with self._transaction() as db:
            removed = {table: db.execute(f"DELETE FROM {table} WHERE ven_id = %s", (ven_id,)).rowcount
                       for table in PURGED_TABLES}
            removed["event_vens"] = db.execute(statement(PURGE_EVENT_STATE, "%s"), (ven_id,)).rowcount
        return removed

    # -- liveness ----------------------------------------------------------------------------------

    def set_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        self._execute("INSERT INTO liveness VALUES (%s, %s, %s) ON CONFLICT (ven_id) DO UPDATE SET "
                      "state = excluded.state, last_seen = excluded.last_seen", (ven_id, state, last_seen))

    def liveness(self) -> dict[str, tuple[str, datetime | None]]:
        rows = self._execute("SELECT ven_id, state, last_seen FROM liveness").fetchall()
        return {ven_id: (state, last_seen) for ven_id, state, last_seen in rows}

    # -- coordination ------------------------------------------------------------------------------

    def claim(self, name: str, owner: str, seconds: float) -> bool:
        # The database's clock decides expiry, so instances with skewed clocks still agree.
        row = self._execute(
            "INSERT INTO leases (name, owner, expires) VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires "
            "WHERE leases.owner = excluded.owner OR leases.expires < clock_timestamp() RETURNING owner",
            (name, owner, seconds)).fetchone()
        return row is not None

    def release(self, name: str, owner: str) -> None:
        self._execute("DELETE FROM leases WHERE name = %s AND owner = %s", (name, owner))

    def lease_holder(self, name: str) -> str | None:
        row = self._execute("SELECT owner FROM leases WHERE name = %s AND expires > clock_timestamp()",
                            (name,)).fetchone()
        return row[0] if row else None

    def lease_holders(self, prefix: str) -> list[str]:
        rows = self._execute("SELECT owner FROM leases WHERE starts_with(name, %s) AND expires > clock_timestamp() "
                             "ORDER BY owner", (prefix,)).fetchall()
        return [row[0] for row in rows]

    def forget_expired_leases(self, older_than: float = 3600.0) -> int:
        """Drop leases that expired more than ``older_than`` seconds ago (they only take room)."""
        return self._execute("DELETE FROM leases WHERE expires < clock_timestamp() - make_interval(secs => %s)",
                             (older_than,)).rowcount

    def publish(self, channel: str, message: str) -> None:
        self._execute("SELECT pg_notify(%s, %s)", (_CHANNEL_PREFIX + channel, message))

    async def listen(self, channel: str, receive: Callable[[str], None]) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                         connect_timeout=max(1, int(self.connect_timeout))) as db:
            await db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(_CHANNEL_PREFIX + channel)))
            async for notification in db.notifies():
                receive(notification.payload)

    def close(self) -> None:
        self._db.close()
