"""The embedded default store: one SQLite file in WAL mode with a versioned schema."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from .base import Delivery, Document, EventRecord, OutboxItem, Store, VenRecord
from .documents import decode_document, decode_event, encode_document, encode_event

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
]

_VEN_COLUMNS = ("ven_id, registration_id, bare_jid, transport_address, ven_name, profile_name, "
                "report_only, xml_signature, http_pull_model, registered_at")


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file (or ``:memory:``).

    Commits after every change, with ``synchronous=NORMAL`` in WAL mode: a committed registration
    survives the process dying; only a power loss can take the last few commits.
    """

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        # isolation_level=None: we decide where transactions begin and end.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # The open group transaction, when changes are being grouped: done once committed.
        self._group: asyncio.Future | None = None
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._vens: dict[str, VenRecord] | None = None
        self._by_jid: dict[str, VenRecord] = {}
        self._by_registration: dict[str, VenRecord] = {}
        self._events: dict[str, tuple[EventRecord, frozenset[str]]] | None = None

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise RuntimeError(f"{self.path} has store schema version {version}; this xmpp-vtn knows "
                               f"{len(MIGRATIONS)}: upgrade xmpp-vtn")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._transaction():
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One atomic change. Inside a running event loop, the changes of one loop turn share one
        transaction (group commit), committed at the end of the turn: each change is a savepoint
        in it, rolled back alone if it fails. Without a loop, each change commits at once."""
        if self._group is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._group = loop.create_future()
            loop.call_soon(self._commit_group)
        self._db.execute("SAVEPOINT change")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO change")
            self._db.execute("RELEASE change")
            raise
        self._db.execute("RELEASE change")

    def _commit_group(self) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            log.error("the store could not commit (%s): this turn's changes are lost", error)
            self._db.execute("ROLLBACK")
            self._forget_cached()                  # the caches may hold what was rolled back
            if not group.done():
                group.set_exception(error)
            return
        if not group.done():
            group.set_result(None)

    async def committed(self) -> None:
        group = self._group
        if group is not None:
            await asyncio.shield(group)

    def _forget_cached(self) -> None:
        self._vens, self._events = None, None
        self._by_jid, self._by_registration = {}, {}

    # Registrations are read on every request (who is speaking) and every push (where to): they
    # are kept in memory as well, loaded once. This store is the only writer of its file.

    def _registrations(self) -> dict[str, VenRecord]:
        if self._vens is None:
            rows = self._db.execute(f"SELECT {_VEN_COLUMNS} FROM vens").fetchall()
            self._vens = {row[0]: _ven_from_row(row) for row in rows}
            self._by_jid = {ven.bare_jid: ven for ven in self._vens.values()}
            self._by_registration = {ven.registration_id: ven for ven in self._vens.values()}
        return self._vens

    def put_ven(self, ven: VenRecord) -> None:
        registrations = self._registrations()
        with self._transaction():
            self._db.execute("DELETE FROM vens WHERE bare_jid = ? AND ven_id <> ?", (ven.bare_jid, ven.ven_id))
            # Upsert on the venID only: a clash on registration id or JID must raise, not silently
            # delete another VEN's row (which the in-memory copy would not know about).
            self._db.execute(
                f"INSERT INTO vens ({_VEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(ven_id) DO UPDATE SET "
                "registration_id = excluded.registration_id, bare_jid = excluded.bare_jid, "
                "transport_address = excluded.transport_address, ven_name = excluded.ven_name, "
                "profile_name = excluded.profile_name, report_only = excluded.report_only, "
                "xml_signature = excluded.xml_signature, http_pull_model = excluded.http_pull_model, "
                "registered_at = excluded.registered_at",
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

    def _event_cache(self) -> dict[str, tuple[EventRecord, frozenset[str]]]:
        if self._events is None:
            rows = self._db.execute(
                "SELECT e.event_id, e.modification_number, e.cancelled, e.document, "
                "(SELECT group_concat(ven_id, char(31)) FROM event_vens v WHERE v.event_id = e.event_id) "
                "FROM events e ORDER BY e.position").fetchall()
            self._events = {}
            for event_id, modification, cancelled, document, vens in rows:
                ven_ids = tuple(sorted(vens.split(chr(31)))) if vens else ()
                self._events[event_id] = (EventRecord(event_id, modification, decode_event(document), ven_ids,
                                                      bool(cancelled)), frozenset(ven_ids))
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
        cache[record.event_id] = (EventRecord(record.event_id, record.modification_number, decode_event(document),
                                              ven_ids, record.cancelled), frozenset(ven_ids))

    def event(self, event_id: str) -> EventRecord | None:
        found = self._event_cache().get(event_id)
        return found[0] if found else None

    def events(self, ven_id: str | None = None) -> list[EventRecord]:
        return [record for record, ven_ids in self._event_cache().values() if ven_id is None or ven_id in ven_ids]

    def deliveries(self, event_id: str | None = None, ven_id: str | None = None) -> list[Delivery]:
        conditions = [(column, value) for column, value in (("event_id", event_id), ("ven_id", ven_id))
                      if value is not None]
        where = " AND ".join(f"{column} = ?" for column, _ in conditions) or "1"
        rows = self._db.execute(
            "SELECT event_id, ven_id, delivered_modification, delivered_status, opt_type, opt_modification "
            f"FROM event_vens WHERE {where} ORDER BY event_id, ven_id", [value for _, value in conditions])
        return [Delivery(*row) for row in rows]

    def mark_delivered(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> None:
        with self._transaction():
            self._db.executemany(
                "UPDATE event_vens SET delivered_modification = ?, delivered_status = ? "
                "WHERE event_id = ? AND ven_id = ?",
                [(modification, status, event_id, ven_id) for event_id, modification, status in delivered])

    def set_opt(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes | None = None,
                owner: str = "") -> int | None:
        with self._transaction():
            self._db.executemany(
                "UPDATE event_vens SET opt_type = ?, opt_modification = ? WHERE event_id = ? AND ven_id = ?",
                [(opt_type, modification, event_id, ven_id) for event_id, opt_type, modification in opts])
            if journal is None:
                return None
            return self._db.execute("INSERT INTO journal (ven_id, document, owner) VALUES (?, ?, ?)",
                                    (ven_id, journal, owner)).lastrowid

    def journal(self) -> list[tuple[int, str, bytes, str]]:
        return self._db.execute("SELECT entry_id, ven_id, document, owner FROM journal ORDER BY entry_id").fetchall()

    def journal_done(self, entry_id: int) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM journal WHERE entry_id = ?", (entry_id,))

    # -- other documents -----------------------------------------------------------------------------

    def put_document(self, document: Document) -> None:
        data = encode_document(document.kind, document.payload)
        with self._transaction():
            row = self._db.execute("SELECT position FROM documents WHERE kind = ? AND key = ?",
                                   (document.kind, document.key)).fetchone()
            position = row[0] if row else self._db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM documents").fetchone()[0]
            self._db.execute("INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?)",
                             (document.kind, document.key, document.ven_id, document.state, position, data))

    def _documents(self, where: str, args: tuple) -> list[Document]:
        rows = self._db.execute(f"SELECT kind, key, ven_id, state, document FROM documents WHERE {where} "
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

    def remove_document(self, kind: str, key: str) -> bool:
        with self._transaction():
            return self._db.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key)).rowcount > 0

    # -- outbox ------------------------------------------------------------------------------------

    def enqueue(self, ven_id: str, to: str, message_type: str, document: bytes) -> int:
        with self._transaction():
            return self._db.execute("INSERT INTO outbox (ven_id, destination, message_type, document) "
                                    "VALUES (?,?,?,?)", (ven_id, to, message_type, document)).lastrowid

    def outbox(self, ven_id: str | None = None) -> list[OutboxItem]:
        where, args = ("WHERE ven_id = ?", (ven_id,)) if ven_id is not None else ("", ())
        rows = self._db.execute("SELECT item_id, ven_id, destination, message_type, document, attempts "
                                f"FROM outbox {where} ORDER BY item_id", args).fetchall()
        return [OutboxItem(*row) for row in rows]

    def attempted(self, item_id: int) -> None:
        with self._transaction():
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE item_id = ?", (item_id,))

    def dequeue(self, item_id: int) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM outbox WHERE item_id = ?", (item_id,))

    def owed_ven_ids(self) -> set[str]:
        rows = self._db.execute(OWED_VEN_IDS).fetchall()
        return {row[0] for row in rows}

    # -- liveness ----------------------------------------------------------------------------------

    def set_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO liveness VALUES (?, ?, ?)",
                             (ven_id, state, last_seen.isoformat() if last_seen else None))

    def liveness(self) -> dict[str, tuple[str, datetime | None]]:
        rows = self._db.execute("SELECT ven_id, state, last_seen FROM liveness").fetchall()
        return {ven_id: (state, datetime.fromisoformat(seen) if seen else None) for ven_id, state, seen in rows}

    def close(self) -> None:
        self._commit_group()
        self._db.close()


# VENs possibly owed a push. Standard SQL: the PostgreSQL store runs it too. "completed" and
# "cancelled" are the statuses an event never leaves unless modified (a new modification number).
OWED_VEN_IDS = """
    SELECT ven_id FROM outbox
    UNION
    SELECT v.ven_id FROM event_vens v JOIN events e ON e.event_id = v.event_id
    WHERE v.delivered_modification IS NULL OR v.delivered_modification <> e.modification_number
       OR v.delivered_status IS NULL OR v.delivered_status NOT IN ('completed', 'cancelled')
"""


def _ven_from_row(row: tuple) -> VenRecord:
    (ven_id, registration_id, bare_jid, transport_address, ven_name, profile_name,
     report_only, xml_signature, http_pull_model, registered_at) = row
    return VenRecord(ven_id=ven_id, registration_id=registration_id, bare_jid=bare_jid,
                     transport_address=transport_address, ven_name=ven_name, profile_name=profile_name,
                     report_only=bool(report_only), xml_signature=bool(xml_signature),
                     http_pull_model=None if http_pull_model is None else bool(http_pull_model),
                     registered_at=datetime.fromisoformat(registered_at))
