"""The embedded default store: one SQLite file in WAL mode with a versioned schema."""
from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from dataclasses import replace
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from .base import Delivery, Document, DroppedPushes, EventRecord, OutboxItem, Store, StoreSchemaError, VenRecord
from .documents import decode_document, decode_event, encode_document, encode_event
from .sql import (COUNT_DROPPED, DELIVERY_COLUMNS, DROPPED_PUSHES, DOCUMENT_COLUMNS, JOURNAL_COLUMNS, MARK_DELIVERED, OUTBOX_COLUMNS,
                  OWED_VEN_IDS, PURGE_EVENT_STATE, PURGED_TABLES, PUT_VEN, RESTORE_OPT, SET_OPT, VEN_COLUMNS,
                  delivered_rows, held_rank, opt_rows, statement, status_rank)

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
        report_only       INTEGER NOT NULL,
        xml_signature     INTEGER NOT NULL,
        http_pull_model   INTEGER,
        registered_at     TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE events (
        event_id            TEXT PRIMARY KEY,
        position            INTEGER NOT NULL,
        modification_number INTEGER NOT NULL,
        cancelled           INTEGER NOT NULL,
        document            BLOB NOT NULL
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
    """,
    """
    CREATE TABLE documents (
        kind     TEXT NOT NULL,
        key      TEXT NOT NULL,
        ven_id   TEXT NOT NULL,
        state    TEXT NOT NULL,
        position INTEGER NOT NULL,
        document BLOB NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX documents_by_ven ON documents (kind, ven_id);
    """,
    """
    CREATE TABLE outbox (
        item_id      INTEGER PRIMARY KEY AUTOINCREMENT,
        ven_id       TEXT NOT NULL,
        destination  TEXT NOT NULL,
        message_type TEXT NOT NULL,
        document     BLOB NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_by_ven ON outbox (ven_id, item_id);
    """,
    """
    CREATE TABLE journal (
        entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
        ven_id   TEXT NOT NULL,
        document BLOB NOT NULL
    );
    """,
    """
    ALTER TABLE journal ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    CREATE TABLE liveness (
        ven_id    TEXT PRIMARY KEY,
        state     TEXT NOT NULL,
        last_seen TEXT
    );
    """,
    # Bounded outboxes: what an item is about (superseded by a newer one) and when it goes stale.
    """
    ALTER TABLE outbox ADD COLUMN topic TEXT;
    ALTER TABLE outbox ADD COLUMN expires_at REAL;
    CREATE INDEX outbox_by_topic ON outbox (ven_id, topic);
    """,
    # For operators: how long a push has waited, and what the bounded-outbox policy let go.
    """
    ALTER TABLE outbox ADD COLUMN queued_at REAL;
    CREATE TABLE outbox_drops (
        ven_id  TEXT NOT NULL,
        reason  TEXT NOT NULL,
        dropped INTEGER NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (ven_id, reason)
    );
    """,
]


@functools.cache
def _sql(template: str) -> str:
    """A statement of :mod:`.sql` with this backend's placeholders."""
    return statement(template, "?")


def _ahead(held: Delivery, modification: int, status: str) -> bool:
    """Whether (modification, status) is ahead of what ``held`` records: the rule of
    :data:`~xmpp_vtn.store.sql.MARK_DELIVERED`, applied to the copy kept in memory."""
    if held.delivered_modification is None or held.delivered_modification < modification:
        return True
    return held.delivered_modification == modification and held_rank(held.delivered_status) < status_rank(status)


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file (or ``:memory:``); ``read_only=True`` opens an existing
    file without creating, migrating or writing anything.

    Commits after every change, with ``synchronous=NORMAL`` in WAL mode: a committed registration
    survives the process dying; only a power loss can take the last few commits.
    """

    def __init__(self, path: str | Path = ":memory:", read_only: bool = False):
        self.path = str(path)
        self.read_only = read_only
        self.durable = self.path != ":memory:"
        # The open group transaction, when changes are being grouped: who waits for its commit.
        self._group: list[asyncio.Future] | None = None
        # Journal entries made in the open group, written with its commit unless done by then.
        self._pending_journal: dict[int, tuple[str, bytes, str]] = {}
        # Journal entries handed over since the group opened: deleted with its commit.
        self._done_journal: list[int] = []
        self._next_journal_entry: int | None = None
        # Per VEN and event, the delivery and opt state (the event_vens rows), loaded once.
        self._deliveries: dict[str, dict[str, Delivery]] | None = None
        if read_only:
            self._db = self._open_read_only()
        else:
            # isolation_level=None: we decide where transactions begin and end.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        self._vens: dict[str, VenRecord] | None = None
        self._by_jid: dict[str, VenRecord] = {}
        self._by_registration: dict[str, VenRecord] = {}
        self._events: dict[str, EventRecord] | None = None

    def _open_read_only(self) -> sqlite3.Connection:
        """An existing store file over a ``mode=ro`` connection: SQLite creates no file and
        refuses every write; a VTN writing the file meanwhile is undisturbed (WAL mode)."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            raise ValueError(f"{self.path}: give the store's file to open it read-only")
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such store file")
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                             check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:          # not an SQLite file at all
            db.close()
            raise StoreSchemaError(str(path), 0, len(MIGRATIONS)) from None
        if version != len(MIGRATIONS):
            db.close()
            raise StoreSchemaError(str(path), version, len(MIGRATIONS))
        return db

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreSchemaError(self.path, version, len(MIGRATIONS))
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._transaction():
                for command in filter(str.strip, script.split(";")):
                    self._db.execute(command)
                self._db.execute(f"PRAGMA user_version={number}")

    def _grouping(self) -> bool:
        """Open this loop turn's group transaction if there is a loop and none is open yet;
        whether changes are being grouped (False: no loop, each change commits at once)."""
        if self._group is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._db.execute("BEGIN IMMEDIATE")
        self._group = []
        loop.call_soon(self._commit_group)
        return True

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One atomic change of several statements. Inside a running event loop, the changes of
        one loop turn share one transaction (group commit), committed at the end of the turn: each
        change is a savepoint in it, rolled back alone if it fails. Without a loop, each change
        commits at once."""
        if not self._grouping():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return
        self._db.execute("SAVEPOINT change")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO change")
            self._db.execute("RELEASE change")
            raise
        self._db.execute("RELEASE change")

    def _write(self, statement: str, arguments: tuple | list = (), many: bool = False) -> sqlite3.Cursor:
        """One change of one statement: atomic by itself, so it needs no savepoint of its own (a
        statement run for several rows does: each row is an execution of its own)."""
        if many and len(arguments) > 1:
            with self._transaction():
                return self._db.executemany(statement, arguments)
        self._grouping()
        return (self._db.executemany if many else self._db.execute)(statement, arguments)

    def _commit_group(self) -> None:
        waiters, self._group = self._group, None
        if waiters is None:
            return
        try:
            # Answers whose handlers are still running are journaled with this commit; those
            # already handed over need no journal entry at all.
            if self._pending_journal:
                self._db.executemany("INSERT INTO journal (entry_id, ven_id, document, owner) VALUES (?, ?, ?, ?)",
                                     [(entry_id, *entry) for entry_id, entry in self._pending_journal.items()])
                self._pending_journal.clear()
            if self._done_journal:
                self._db.executemany("DELETE FROM journal WHERE entry_id = ?",
                                     [(entry_id,) for entry_id in self._done_journal])
                self._done_journal.clear()
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            log.error("the store could not commit (%s): this turn's changes are lost", error)
            self._db.execute("ROLLBACK")
            self._forget_cached()                  # the caches may hold what was rolled back
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def committed(self) -> None:
        if self._group is not None:
            waiter = asyncio.get_running_loop().create_future()
            self._group.append(waiter)
            await waiter

    def _forget_cached(self) -> None:
        self._vens, self._events, self._deliveries = None, None, None
        self._by_jid, self._by_registration = {}, {}
        self._pending_journal.clear()
        self._done_journal.clear()

    # Registrations are read on every request (who is speaking) and every push (where to): they
    # are kept in memory as well, loaded once. This store is the only writer of its file.

    def _registrations(self) -> dict[str, VenRecord]:
        if self._vens is None:
            rows = self._db.execute(f"SELECT {VEN_COLUMNS} FROM vens").fetchall()
            self._vens = {row[0]: _ven_from_row(row) for row in rows}
            self._by_jid = {ven.bare_jid: ven for ven in self._vens.values()}
            self._by_registration = {ven.registration_id: ven for ven in self._vens.values()}
        return self._vens

    def put_ven(self, ven: VenRecord) -> None:
        registrations = self._registrations()
        with self._transaction():
            self._db.execute("DELETE FROM vens WHERE bare_jid = ? AND ven_id <> ?", (ven.bare_jid, ven.ven_id))
            # Upsert on the venID only (a clash must raise, not silently delete another VEN's row,
            # which the in-memory copy would not know about).
            self._db.execute(
                _sql(PUT_VEN),
                (ven.ven_id, ven.registration_id, ven.bare_jid, ven.transport_address, ven.ven_name,
                 ven.profile_name, int(ven.report_only), int(ven.xml_signature),
                 None if ven.http_pull_model is None else int(ven.http_pull_model),
                 ven.registered_at.isoformat()))
        for replaced in {registrations.get(ven.ven_id), self._by_jid.get(ven.bare_jid)} - {None}:
            self._forget(replaced)
        registrations[ven.ven_id] = ven
        self._by_jid[ven.bare_jid] = ven
        self._by_registration[ven.registration_id] = ven

    def _forget(self, ven: VenRecord) -> None:
        self._vens.pop(ven.ven_id, None)
        if self._by_jid.get(ven.bare_jid) is ven:
            del self._by_jid[ven.bare_jid]
        if self._by_registration.get(ven.registration_id) is ven:
            del self._by_registration[ven.registration_id]

    def ven(self, ven_id: str) -> VenRecord | None:
        return self._registrations().get(ven_id)

    def ven_by_jid(self, bare_jid: str) -> VenRecord | None:
        self._registrations()
        return self._by_jid.get(bare_jid)

    def ven_by_registration(self, registration_id: str) -> VenRecord | None:
        self._registrations()
        return self._by_registration.get(registration_id)

    def remove_ven(self, ven_id: str) -> bool:
        ven = self._registrations().get(ven_id)
        with self._transaction():
            self._db.execute("DELETE FROM vens WHERE ven_id = ?", (ven_id,))
            self._db.execute("DELETE FROM liveness WHERE ven_id = ?", (ven_id,))
        if ven is not None:
            self._forget(ven)
        return ven is not None

    def vens(self) -> list[VenRecord]:
        return sorted(self._registrations().values(), key=lambda ven: ven.ven_id)

    # -- events ------------------------------------------------------------------------------------

    # Events are read for every push and every answer; like registrations, they are also kept in
    # memory (the decoded dicts, shared: callers copy before changing one).

    def _event_cache(self) -> dict[str, EventRecord]:
        if self._events is None:
            rows = self._db.execute(
                "SELECT e.event_id, e.modification_number, e.cancelled, e.document, "
                "(SELECT group_concat(ven_id, char(31)) FROM event_vens v WHERE v.event_id = e.event_id) "
                "FROM events e ORDER BY e.position").fetchall()
            self._events = {}
            for event_id, modification, cancelled, document, vens in rows:
                ven_ids = tuple(sorted(vens.split(chr(31)))) if vens else ()
                self._events[event_id] = EventRecord(event_id, modification, decode_event(document), ven_ids,
                                                     bool(cancelled))
        return self._events

    def put_event(self, record: EventRecord) -> None:
        cache = self._event_cache()
        document = encode_event(record.event)
        with self._transaction():
            row = self._db.execute("SELECT position FROM events WHERE event_id = ?", (record.event_id,)).fetchone()
            position = row[0] if row else self._db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM events").fetchone()[0]
            # An upsert, not INSERT OR REPLACE: SQLite's REPLACE deletes the row first, and the
            # foreign key cascade would take every VEN's delivery and opt state with it.
            self._db.execute("INSERT INTO events VALUES (?,?,?,?,?) ON CONFLICT(event_id) DO UPDATE SET "
                             "modification_number = excluded.modification_number, cancelled = excluded.cancelled, "
                             "document = excluded.document",
                             (record.event_id, position, record.modification_number, int(record.cancelled), document))
            self._db.execute(f"DELETE FROM event_vens WHERE event_id = ? AND ven_id NOT IN "
                             f"({','.join('?' * len(record.ven_ids))})", (record.event_id, *record.ven_ids))
            self._db.executemany("INSERT OR IGNORE INTO event_vens (event_id, ven_id) VALUES (?, ?)",
                                 [(record.event_id, ven_id) for ven_id in record.ven_ids])
        ven_ids = tuple(sorted(record.ven_ids))
        cache[record.event_id] = EventRecord(record.event_id, record.modification_number, decode_event(document),
                                             ven_ids, record.cancelled)
        deliveries = self._delivery_cache()
        for ven_id, per_ven in deliveries.items():             # VENs the event no longer targets
            if record.event_id in per_ven and not cache[record.event_id].is_for(ven_id):
                del per_ven[record.event_id]
        for ven_id in ven_ids:
            deliveries.setdefault(ven_id, {}).setdefault(record.event_id, Delivery(record.event_id, ven_id))

    def event(self, event_id: str) -> EventRecord | None:
        return self._event_cache().get(event_id)

    def events(self, ven_id: str | None = None) -> list[EventRecord]:
        return [record for record in self._event_cache().values() if ven_id is None or record.is_for(ven_id)]

    # The delivery and opt state is read on every push, acknowledgement and answer: it is kept in
    # memory too, changed only by the methods below, which write it through to the file.

    def _delivery_cache(self) -> dict[str, dict[str, Delivery]]:
        if self._deliveries is None:
            self._deliveries = {}
            for row in self._db.execute(f"SELECT {DELIVERY_COLUMNS} FROM event_vens"):
                self._deliveries.setdefault(row[1], {})[row[0]] = Delivery(*row)
        return self._deliveries

    def deliveries(self, event_id: str | None = None, ven_id: str | None = None) -> list[Delivery]:
        cache = self._delivery_cache()
        rows = cache.get(ven_id, {}).values() if ven_id is not None else \
            [delivery for per_ven in cache.values() for delivery in per_ven.values()]
        found = [delivery for delivery in rows if event_id is None or delivery.event_id == event_id]
        return sorted(found, key=lambda delivery: (delivery.event_id, delivery.ven_id))

    def mark_delivered(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> list[str]:
        delivered_rows(ven_id, delivered)                  # an unknown status raises before anything changes
        held = self._delivery_cache().get(ven_id, {})
        changed = {}                                       # per event the most advanced given
        for event_id, modification, status in delivered:
            if event_id in held and _ahead(changed.get(event_id, held[event_id]), modification, status):
                changed[event_id] = Delivery(event_id, ven_id, modification, status)
        if not changed:
            return []
        self._write(_sql(MARK_DELIVERED), delivered_rows(ven_id, [
            (event_id, delivery.delivered_modification, delivery.delivered_status)
            for event_id, delivery in changed.items()]), many=True)
        news = [event_id for event_id, delivery in changed.items()
                if held[event_id].delivered_modification != delivery.delivered_modification]
        for event_id, delivery in changed.items():
            held[event_id] = replace(held[event_id], delivered_modification=delivery.delivered_modification,
                                     delivered_status=delivery.delivered_status)
        return news

    def set_opt(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes | None = None,
                owner: str = "") -> int | None:
        if journal is not None and not isinstance(journal, (bytes, bytearray)):
            raise TypeError(f"a journal entry is the answer's bytes, not {type(journal).__name__}")
        held = self._delivery_cache().get(ven_id, {})
        changed = [(event_id, opt_type, modification) for event_id, opt_type, modification in opts
                   if event_id in held and (held[event_id].opt_modification is None
                                            or held[event_id].opt_modification <= modification)]
        if changed:
            self._write(_sql(SET_OPT), opt_rows(ven_id, changed), many=True)
            for event_id, opt_type, modification in changed:
                held[event_id] = replace(held[event_id], opt_type=opt_type, opt_modification=modification)
        if journal is None:
            return None
        if self._next_journal_entry is None:
            self._next_journal_entry = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'journal'").fetchone()[0]
            self._next_journal_entry = max(self._next_journal_entry, self._db.execute(
                "SELECT COALESCE(MAX(entry_id), 0) FROM journal").fetchone()[0])
        if not self._grouping():
            entry_id = self._db.execute("INSERT INTO journal (ven_id, document, owner) VALUES (?, ?, ?)",
                                        (ven_id, journal, owner)).lastrowid
            self._next_journal_entry = max(self._next_journal_entry, entry_id)
            return entry_id
        self._next_journal_entry += 1
        self._pending_journal[self._next_journal_entry] = (ven_id, journal, owner)
        return self._next_journal_entry

    def restore_opt(self, ven_id: str, restored: list[tuple[str, str | None, int | None]],
                    written: list[tuple[str, str, int]]) -> None:
        held = self._delivery_cache().get(ven_id, {})
        written_by_event = {event_id: (opt_type, modification) for event_id, opt_type, modification in written}
        back = [(event_id, opt_type, modification) for event_id, opt_type, modification in restored
                if event_id in held and (held[event_id].opt_type, held[event_id].opt_modification)
                == written_by_event[event_id]]
        if not back:
            return
        self._write(_sql(RESTORE_OPT), [(opt_type, modification, event_id, ven_id, *written_by_event[event_id])
                                        for event_id, opt_type, modification in back], many=True)
        for event_id, opt_type, modification in back:
            held[event_id] = replace(held[event_id], opt_type=opt_type, opt_modification=modification)

    def journal(self) -> list[tuple[int, str, bytes, str]]:
        done = set(self._done_journal)
        stored = [entry for entry in self._db.execute(
            f"SELECT {JOURNAL_COLUMNS} FROM journal ORDER BY entry_id") if entry[0] not in done]
        return stored + [(entry_id, *entry) for entry_id, entry in sorted(self._pending_journal.items())]

    def journal_done(self, entry_id: int) -> None:
        if self._pending_journal.pop(entry_id, None) is not None:
            return                                    # never written: nothing to take back
        if self._grouping():
            self._done_journal.append(entry_id)       # deleted with the group's commit, in one statement
        else:
            self._db.execute("DELETE FROM journal WHERE entry_id = ?", (entry_id,))

    # -- other documents -----------------------------------------------------------------------------

    def put_document(self, document: Document, encoded: bytes | None = None) -> None:
        data = encoded if encoded is not None else encode_document(document.kind, document.payload)
        with self._transaction():
            row = self._db.execute("SELECT position FROM documents WHERE kind = ? AND key = ?",
                                   (document.kind, document.key)).fetchone()
            position = row[0] if row else self._db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM documents").fetchone()[0]
            self._db.execute("INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?)",
                             (document.kind, document.key, document.ven_id, document.state, position, data))

    def _documents(self, where: str, args: tuple) -> list[Document]:
        rows = self._db.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE {where} "
                                "ORDER BY position", args).fetchall()
        return [Document(kind, key, ven_id, decode_document(kind, data), state)
                for kind, key, ven_id, state, data in rows]

    def document(self, kind: str, key: str) -> Document | None:
        found = self._documents("kind = ? AND key = ?", (kind, key))
        return found[0] if found else None

    def documents(self, kind: str, ven_id: str | None = None) -> list[Document]:
        if ven_id is None:
            return self._documents("kind = ?", (kind,))
        return self._documents("kind = ? AND ven_id = ?", (kind, ven_id))

    def document_keys(self, kind: str, ven_id: str) -> list[str]:
        return [key for key, in self._db.execute("SELECT key FROM documents WHERE kind = ? AND ven_id = ? "
                                                 "ORDER BY position", (kind, ven_id))]

    def remove_document(self, kind: str, key: str) -> bool:
        return self._write("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key)).rowcount > 0

    # -- outbox ------------------------------------------------------------------------------------

    def enqueue(self, ven_id: str, to: str, message_type: str, document: bytes) -> int:
        return self._write("INSERT INTO outbox (ven_id, destination, message_type, document, queued_at) "
                           "VALUES (?,?,?,?,?)", (ven_id, to, message_type, document, time.time())).lastrowid

    def outbox(self, ven_id: str | None = None) -> list[OutboxItem]:
        where, args = ("WHERE ven_id = ?", (ven_id,)) if ven_id is not None else ("", ())
        rows = self._db.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox {where} ORDER BY item_id", args).fetchall()
        return [OutboxItem(*row) for row in rows]

    def attempted(self, item_id: int) -> None:
        self._write("UPDATE outbox SET attempts = attempts + 1 WHERE item_id = ?", (item_id,))

    def dequeue(self, item_id: int) -> None:
        self._write("DELETE FROM outbox WHERE item_id = ?", (item_id,))

    def owed_ven_ids(self) -> set[str]:
        rows = self._db.execute(OWED_VEN_IDS).fetchall()
        return {row[0] for row in rows}

    def queued_ven_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT ven_id FROM outbox").fetchall()}

    def enqueue_bounded(self, ven_id: str, to: str, message_type: str, document: bytes, *,
                        topic: str | None = None, limit: int | None = None,
                        expires_at: float | None = None) -> int | None:
        now = time.time()
        with self._transaction():
            if topic is not None:
                superseded = self._db.execute("DELETE FROM outbox WHERE ven_id = ? AND topic = ?",
                                              (ven_id, topic)).rowcount
                if superseded:
                    self._db.execute(_sql(COUNT_DROPPED), (ven_id, "superseded", superseded, now))
            if limit is not None and self._db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE ven_id = ?", (ven_id,)).fetchone()[0] >= limit:
                self._db.execute(_sql(COUNT_DROPPED), (ven_id, "outbox_full", 1, now))
                return None
            return self._db.execute("INSERT INTO outbox (ven_id, destination, message_type, document, topic, "
                                    "expires_at, queued_at) VALUES (?,?,?,?,?,?,?)",
                                    (ven_id, to, message_type, document, topic, expires_at, now)).lastrowid

    def expire_outbox(self, now: float) -> int:
        with self._transaction():
            gone = Counter(row[0] for row in self._db.execute(
                "DELETE FROM outbox WHERE expires_at < ? RETURNING ven_id", (now,)).fetchall())
            self._db.executemany(_sql(COUNT_DROPPED), [(ven_id, "expired", count, time.time())
                                                       for ven_id, count in gone.items()])
            return sum(gone.values())

    def dequeue_topic(self, ven_id: str, topic: str) -> int:
        with self._transaction():
            return self._db.execute("DELETE FROM outbox WHERE ven_id = ? AND topic = ?", (ven_id, topic)).rowcount

    def outbox_depth(self, ven_id: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox WHERE ven_id = ?", (ven_id,)).fetchone()[0]

    def count_dropped(self, ven_id: str, reason: str, count: int = 1) -> None:
        self._write(_sql(COUNT_DROPPED), (ven_id, reason, count, time.time()))

    def dropped_pushes(self) -> list[DroppedPushes]:
        return [DroppedPushes(*row) for row in self._db.execute(DROPPED_PUSHES).fetchall()]

    def purge_ven(self, ven_id: str) -> dict[str, int]:
        ven = self._registrations().get(ven_id)
        with self._transaction():
            removed = {table: self._db.execute(f"DELETE FROM {table} WHERE ven_id = ?", (ven_id,)).rowcount
                       for table in PURGED_TABLES}
            removed["event_vens"] = self._db.execute(statement(PURGE_EVENT_STATE, "?"), (ven_id,)).rowcount
        # What the caches and the open group hold of it goes too.
        pending = [entry_id for entry_id, entry in self._pending_journal.items() if entry[0] == ven_id]
        for entry_id in pending:
            del self._pending_journal[entry_id]
        removed["journal"] += len(pending)
        if self._deliveries is not None:
            held = self._deliveries.get(ven_id, {})
            for event_id, delivery in held.items():
                held[event_id] = Delivery(delivery.event_id, delivery.ven_id)
        if ven is not None:
            self._forget(ven)
        return removed

    # -- liveness ----------------------------------------------------------------------------------

    def set_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        self._write("INSERT OR REPLACE INTO liveness VALUES (?, ?, ?)",
                    (ven_id, state, last_seen.isoformat() if last_seen else None))

    def liveness(self) -> dict[str, tuple[str, datetime | None]]:
        rows = self._db.execute("SELECT ven_id, state, last_seen FROM liveness").fetchall()
        return {ven_id: (state, datetime.fromisoformat(seen) if seen else None) for ven_id, state, seen in rows}

    def close(self) -> None:
        self._commit_group()
        self._db.close()


def _ven_from_row(row: tuple) -> VenRecord:
    (ven_id, registration_id, bare_jid, transport_address, ven_name, profile_name,
     report_only, xml_signature, http_pull_model, registered_at) = row
    return VenRecord(ven_id=ven_id, registration_id=registration_id, bare_jid=bare_jid,
                     transport_address=transport_address, ven_name=ven_name, profile_name=profile_name,
                     report_only=bool(report_only), xml_signature=bool(xml_signature),
                     http_pull_model=None if http_pull_model is None else bool(http_pull_model),
                     registered_at=datetime.fromisoformat(registered_at))
