"""The shared store: one PostgreSQL database behind one or several VTN instances.

Chosen with a ``postgresql://`` URL. Work that must run once across instances runs under a
lease row (:meth:`claim`), and instances tell each other things with ``NOTIFY`` (:meth:`publish`).

Most reads and writes use a synchronous psycopg connection, like the SQLite store, because the
:class:`~xmpp_vtn.store.base.Store` interface is synchronous: each such call that reaches the
server is one round trip (about 100 µs on loopback, a millisecond under load) during which the
event loop waits. So what is read on every exchange and rarely written, the registrations and the
events, is kept in memory, and other writers are noticed by a trigger's ``NOTIFY`` (see
:mod:`.changes` for how soon). Several rows are written in one statement (atomic by itself: no
BEGIN/COMMIT round trips), and handed-over journal entries are deleted together at the end of the
loop turn. ``listen`` is asynchronous: it holds its own connection and awaits notifications.

What every exchange of a fan-out costs goes another way: the coroutines ``claim_batch``,
``release_batch``, ``publish_batch``, ``delivery_state_async``, ``mark_delivered_async`` and
``record_answers_async`` run on a connection of their own in a worker thread (:mod:`.off_loop`),
and those asked in one loop turn go together: one statement for the turn's lease claims, its
deliveries' reads (per table) and its acknowledgements; the turn's answers in one hand-over, each
still its own statement and journal entry. None of them reads or writes what the caches hold
(leases, outbox, delivery and opt state, the journal), so the caches need not know of them. At
1,000 VENs that took a fan-out from about 5.6 statements per exchange to 1.0 (bench/fanout.py
--statements).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .base import Delivery, Document, DroppedPushes, EventRecord, OutboxItem, Store, StoreSchemaError, VenRecord
from .changes import CHANNEL as CHANGES_CHANNEL
from .changes import EVERYTHING, VEN_CHANGED, ChangeFeed
from .documents import decode_document, decode_event, encode_document, encode_event
from .off_loop import OffLoopConnection, TurnBatch
from .sql import (COUNT_DROPPED, DELIVERY_COLUMNS, DROPPED_PUSHES, DOCUMENT_COLUMNS, JOURNAL_COLUMNS, OUTBOX_COLUMNS,
                  OWED_VEN_IDS, PURGE_EVENT_STATE, PURGED_TABLES, PUT_VEN, RANK_SQL, RESTORE_OPT, VEN_COLUMNS,
                  statement, status_rank)

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
    # The caches of registrations and events learn of every write, whoever makes it (see .changes).
    # Statement-level: one notification per statement, folded into one per transaction.
    f"""
    CREATE FUNCTION xmpp_vtn_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CHANGES_CHANNEL}', TG_ARGV[0]);
        RETURN NULL;
    END $$;
    CREATE TRIGGER vens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vens
        FOR EACH STATEMENT EXECUTE FUNCTION xmpp_vtn_changed('vens');
    CREATE TRIGGER events_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION xmpp_vtn_changed('events');
    -- Which VENs an event is for; its rows' delivery and opt columns are not cached.
    CREATE TRIGGER event_vens_changed AFTER INSERT OR DELETE OR TRUNCATE ON event_vens
        FOR EACH STATEMENT EXECUTE FUNCTION xmpp_vtn_changed('events');
    """,
    # Registrations are forgotten per venID, so that a storm of registrations by some VENs leaves
    # every other VEN's served from memory: each changed row names its venID, before and after
    # (see .changes, VEN_CHANGED). A TRUNCATE still says "all of them".
    f"""
    -- A venID too long for a notification's payload (8,000 bytes) names them all instead.
    CREATE FUNCTION xmpp_vtn_ven_notice(ven_id TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN octet_length(ven_id) <= 1000 THEN '{VEN_CHANGED}' || ven_id ELSE 'vens' END
    $$;
    CREATE FUNCTION xmpp_vtn_ven_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM pg_notify('{CHANGES_CHANNEL}', xmpp_vtn_ven_notice(NEW.ven_id));
        ELSE
            PERFORM pg_notify('{CHANGES_CHANNEL}', xmpp_vtn_ven_notice(OLD.ven_id));
            IF TG_OP = 'UPDATE' AND NEW.ven_id <> OLD.ven_id THEN
                PERFORM pg_notify('{CHANGES_CHANNEL}', xmpp_vtn_ven_notice(NEW.ven_id));
            END IF;
        END IF;
        RETURN NULL;
    END $$;
    DROP TRIGGER vens_changed ON vens;
    CREATE TRIGGER ven_row_changed AFTER INSERT OR UPDATE OR DELETE ON vens
        FOR EACH ROW EXECUTE FUNCTION xmpp_vtn_ven_changed();
    CREATE TRIGGER vens_truncated AFTER TRUNCATE ON vens
        FOR EACH STATEMENT EXECUTE FUNCTION xmpp_vtn_changed('vens');
    """,
    # Which instance the XMPP server hands each VEN's stanzas to, where it keeps to one (see
    # note_heard): the instances push to each VEN from there.
    """
    CREATE TABLE ven_instances (
        ven_id      TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL
    );
    """,
]
#: What a purge removes here: the tables of every store, and the instance that heard the VEN.
_PURGED_HERE = (*PURGED_TABLES, "ven_instances")

# Several (VEN, event, modification, status) in one statement, each row moving only forward (the
# rule of MARK_DELIVERED in .sql, evaluated per row as the update takes it): one VEN's
# acknowledgement, or those of a whole loop turn. The rows are locked first, in key order (event,
# then VEN, as every statement here locks them, so two batches that meet wait for each other
# instead of deadlocking), to read the modification each held: FOR UPDATE waits for a concurrent
# writer and returns the row as it committed, and the UPDATE re-checks its condition on that same
# version, so the modification returned as "before" is the one the update replaced.
_MARK_DELIVERED_ROWS = (
    "WITH a AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[], %s::int[]) "
    "AS a(ven_id, event_id, modification, status, rank)), "
    "held AS (SELECT v.ven_id, v.event_id, v.delivered_modification AS before FROM event_vens v JOIN a "
    "ON a.event_id = v.event_id AND a.ven_id = v.ven_id ORDER BY v.event_id, v.ven_id FOR UPDATE OF v) "
    "UPDATE event_vens SET delivered_modification = a.modification, delivered_status = a.status "
    "FROM a JOIN held ON held.event_id = a.event_id AND held.ven_id = a.ven_id "
    "WHERE event_vens.event_id = a.event_id AND event_vens.ven_id = a.ven_id AND (delivered_modification IS NULL "
    "OR delivered_modification < a.modification OR (delivered_modification = a.modification AND "
    + RANK_SQL + " < a.rank)) "
    "RETURNING event_vens.ven_id, event_vens.event_id, held.before IS DISTINCT FROM a.modification")
# SET_OPT of .sql for several rows, and the journal entry written by the same statement.
_SET_OPT_MANY = (
    "UPDATE event_vens SET opt_type = a.opt_type, opt_modification = a.modification "
    "FROM unnest(%s::text[], %s::text[], %s::int[]) AS a(event_id, opt_type, modification) "
    "WHERE event_vens.event_id = a.event_id AND event_vens.ven_id = %s "
    "AND (opt_modification IS NULL OR opt_modification <= a.modification)")
_SET_OPT_JOURNALED = (f"WITH opted AS ({_SET_OPT_MANY} RETURNING 1) "
                      "INSERT INTO journal (ven_id, document, owner) VALUES (%s, %s, %s) RETURNING entry_id")
# Store.record_answers in one statement: the rows are locked and read first (as for
# _MARK_DELIVERED_ROWS), and the answers are written and journaled only when one of them differs
# from what is recorded. Always one row: the entry's id (None for a resend), then each row's
# (event, opt_type, opt_modification) before, or NULLs when the VEN has none of the events.
_RECORD_ANSWERS = (
    "WITH a AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]) AS a(event_id, opt_type, modification)), "
    "held AS (SELECT v.event_id, v.opt_type, v.opt_modification FROM event_vens v JOIN a "
    "ON a.event_id = v.event_id WHERE v.ven_id = %s ORDER BY v.event_id FOR UPDATE OF v), "
    "fresh AS (SELECT 1 WHERE %s OR EXISTS (SELECT 1 FROM a LEFT JOIN held ON held.event_id = a.event_id "
    "WHERE (held.opt_type, held.opt_modification) IS DISTINCT FROM (a.opt_type, a.modification))), "
    "opted AS (UPDATE event_vens SET opt_type = a.opt_type, opt_modification = a.modification FROM a "
    "WHERE EXISTS (SELECT 1 FROM fresh) AND event_vens.event_id = a.event_id AND event_vens.ven_id = %s "
    "AND (event_vens.opt_modification IS NULL OR event_vens.opt_modification <= a.modification)), "
    "journaled AS (INSERT INTO journal (ven_id, document, owner) SELECT %s, %s, %s WHERE EXISTS (SELECT 1 FROM fresh) "
    "RETURNING entry_id) "
    "SELECT (SELECT entry_id FROM journaled), held.event_id, held.opt_type, held.opt_modification "
    "FROM (SELECT 1) AS one LEFT JOIN held ON TRUE")
# Past this many registrations kept (three entries per VEN), the cache starts over.
_CACHE_LIMIT = 300_000


def _most_advanced(delivered: list[tuple[str, int, str]]) -> dict[str, tuple[int, int, str]]:
    """Per event the most advanced (modification, status rank, status) of ``delivered`` (one
    statement updates a row once). An unknown status raises here, before anything changes."""
    ahead: dict[str, tuple[int, int, str]] = {}
    for event_id, modification, status in delivered:
        rank = status_rank(status)
        if event_id not in ahead or ahead[event_id][:2] < (modification, rank):
            ahead[event_id] = (modification, rank, status)
    return ahead


def _mark_delivered(batch: list[tuple[str, dict[str, tuple[int, int, str]]]]) -> tuple[str, tuple]:
    """_MARK_DELIVERED_ROWS and its arguments for (venID, :func:`_most_advanced` of its acknowledgement)
    pairs: one row per (VEN, event), the most advanced where a pair is named twice."""
    rows: dict[tuple[str, str], tuple[int, int, str]] = {}
    for ven_id, ahead in batch:
        for event_id, state in ahead.items():
            key = (ven_id, event_id)
            if key not in rows or rows[key][:2] < state[:2]:
                rows[key] = state
    keys = sorted(rows, key=lambda key: (key[1], key[0]))
    return _MARK_DELIVERED_ROWS, ([ven for ven, _ in keys], [event for _, event in keys], [rows[k][0] for k in keys],
                             [rows[k][2] for k in keys], [rows[k][1] for k in keys])


def _delivered_news(batch: list[tuple[str, dict]], moved: list[tuple]) -> list[set[str]]:
    """Per pair of ``batch``, the events of which its VEN now holds a new modification, from what
    _MARK_DELIVERED_ROWS returned; a (VEN, event) named twice is news to the first that named it."""
    news = {(ven_id, event_id) for ven_id, event_id, new_modification in moved if new_modification}
    results: list[set[str]] = []
    for ven_id, ahead in batch:
        mine = {event_id for event_id in ahead if (ven_id, event_id) in news}
        news -= {(ven_id, event_id) for event_id in mine}
        results.append(mine)
    return results


def _outbox_item(row: tuple) -> OutboxItem:
    item_id, ven_id, to, message_type, document, attempts, queued_at = row
    return OutboxItem(item_id, ven_id, to, message_type, bytes(document), attempts, queued_at)


def _record_answers(ven_id: str, opts: list[tuple[str, str, int]], journal: bytes, owner: str
                    ) -> tuple[str, tuple]:
    """_RECORD_ANSWERS and its arguments for :meth:`PostgreSQLStore.record_answers`."""
    chosen = _newest_answers(opts)
    event_ids = list(chosen)
    return _RECORD_ANSWERS, (event_ids, [chosen[e][0] for e in event_ids], [chosen[e][1] for e in event_ids],
                             ven_id, not opts, ven_id, ven_id, journal, owner)


def _answers_recorded(rows: list[tuple]) -> tuple[int | None, dict[str, tuple[str | None, int | None]]]:
    """What _RECORD_ANSWERS returned: the journal entry's id, and each named event's row before."""
    before = {event_id: (opt_type, modification) for _, event_id, opt_type, modification in rows
              if event_id is not None}
    return rows[0][0], before


def _newest_answers(opts: list[tuple[str, str, int]]) -> dict[str, tuple[str, int]]:
    """Per event the answer given for the newest modification, the last of equals: what applying
    ``opts`` one after another would leave (one statement updates a row once)."""
    chosen: dict[str, tuple[str, int]] = {}
    for event_id, opt_type, modification in opts:
        if event_id not in chosen or chosen[event_id][1] <= modification:
            chosen[event_id] = (opt_type, modification)
    return chosen


@functools.cache
def _sql(template: str) -> str:
    """A statement of :mod:`.sql` with this backend's placeholders."""
    return statement(template, "%s")


# Instances of one VTN share the database; notification channels are namespaced to us.
_CHANNEL_PREFIX = "xmpp_vtn_"

# Many leases in one statement, in the order of their names so that two instances' batches lock
# shared rows in the same order. Granted: the rows inserted, or updated because the owner is us or
# the lease expired; a row another owner holds is left alone and not returned.
_CLAIM_MANY = (
    "INSERT INTO leases (name, owner, expires) "
    "SELECT name, %s, clock_timestamp() + make_interval(secs => %s) FROM unnest(%s::text[]) AS name ORDER BY name "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires "
    "WHERE leases.owner = excluded.owner OR leases.expires < clock_timestamp() RETURNING name")
_RELEASE_MANY = "DELETE FROM leases WHERE owner = %s AND name = ANY(%s::text[])"
# One transaction: the listeners get them in this order (and identical ones once).
_PUBLISH_MANY = "SELECT pg_notify(%s, message) FROM unnest(%s::text[]) WITH ORDINALITY AS m(message, n) ORDER BY n"
# Two instances starting on an empty database must not both create the tables.
_MIGRATION_LOCK = 0x786D7070   # "xmpp"


# Liveness notes of one loop turn (see note_liveness): venIDs no longer registered are left out,
# so that a note written after its VEN's purge (by another instance, say) leaves nothing behind.
# FOR KEY SHARE waits for a purge under way (it deletes the vens row first, the liveness row after)
# and then sees the row gone; a purge that comes later waits for this statement, then deletes
# what it wrote. Either way each VEN's rows are taken vens first, as the purge takes them.
_NOTE_LIVENESS = """
    INSERT INTO liveness (ven_id, state, last_seen)
    SELECT n.ven_id, n.state, n.last_seen
    FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS n(ven_id, state, last_seen)
    WHERE EXISTS (SELECT 1 FROM vens WHERE vens.ven_id = n.ven_id FOR KEY SHARE)
    ON CONFLICT (ven_id) DO UPDATE SET state = excluded.state, last_seen = excluded.last_seen
"""


# The instances that heard VENs in one loop turn (see note_heard), guarded as _NOTE_LIVENESS is.
_NOTE_HEARD = """
    INSERT INTO ven_instances (ven_id, instance_id)
    SELECT n.ven_id, n.instance_id FROM unnest(%s::text[], %s::text[]) AS n(ven_id, instance_id)
    WHERE EXISTS (SELECT 1 FROM vens WHERE vens.ven_id = n.ven_id FOR KEY SHARE)
    ON CONFLICT (ven_id) DO UPDATE SET instance_id = excluded.instance_id
"""


def _liveness_written(written: "Future[list[tuple]]") -> None:
    """Log a failed write of liveness or instance notes (the next sign of life writes again)."""
    error = written.exception()
    if error is not None:
        log.warning("store: liveness or instance notes not written (%s)", error)


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
        # Registrations by (column, value); every event with its venIDs.
        self._ven_cache: dict[tuple[str, str], VenRecord] = {}
        self._all_vens: list[VenRecord] | None = None
        self._event_cache: dict[str, EventRecord] | None = None
        # Journal entries handed over in this loop turn: deleted together at its end.
        self._done_journal: list[int] = []
        self._db = self._connect()
        try:
            if read_only:
                self._check_version()
            else:
                self._migrate()
        except BaseException:
            self._db.close()
            raise
        # An operator's read-only look is short and reads each thing once: it caches nothing.
        self._changes = None if read_only else ChangeFeed(url, connect_timeout)
        # What every exchange of a fan-out asks (leases, deliveries' reads, acknowledgements, opt
        # answers) touches nothing the caches hold: it waits for the database off the loop, a
        # loop turn's worth at a time.
        self._off_loop = OffLoopConnection(self._connect)
        self._delivered: TurnBatch = TurnBatch(self._mark_delivered_batch)
        self._delivery_states: TurnBatch = TurnBatch(self._delivery_state_batch)
        self._answers: TurnBatch = TurnBatch(self._off_loop.fetch_each)
        self._liveness_notes: dict[str, tuple[str, datetime | None]] = {}    # not yet handed over
        self._heard_notes: dict[str, str] = {}                                # venID -> instance, the same
        self._liveness_scheduled: asyncio.AbstractEventLoop | None = None   # the loop to hand over on
        #: Statements that wrote liveness or instance notes (for tests and benchmarks).
        self.liveness_writes = 0
        self._liveness_in_flight: list[tuple[frozenset[str], Future]] = []  # handed over, maybe not written

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

    # -- caches --------------------------------------------------------------------------------------

    def _caching(self) -> bool:
        """Apply what other writers changed to the caches; whether they may serve reads now."""
        changed = self._changes.changed() if self._changes is not None else None
        if changed is None or changed is EVERYTHING:
            self._forget_vens()
            self._event_cache = None
            return changed is not None
        if "vens" in changed:
            self._forget_vens()
        else:
            for change in changed:
                if change.startswith(VEN_CHANGED):
                    self._forget_ven(change[len(VEN_CHANGED):])
        if "events" in changed:
            self._event_cache = None
        return True

    def _forget_vens(self) -> None:
        self._ven_cache.clear()
        self._all_vens = None

    def _forget_ven(self, ven_id: str) -> None:
        """Forget one registration (under all three of its keys) and the list of all of them."""
        self._all_vens = None
        cached = self._ven_cache.pop(("ven_id", ven_id), None)
        if cached is not None:
            for key in (("bare_jid", cached.bare_jid), ("registration_id", cached.registration_id)):
                if self._ven_cache.get(key) is cached:
                    del self._ven_cache[key]

    def refresh(self, *, registrations: bool = True, events: bool = True, account: str | None = None) -> None:
        if registrations and account is not None:
            # That account's registration, under all its keys (an absent one is never cached).
            cached = self._ven_cache.get(("bare_jid", account))
            self._all_vens = None
            if cached is not None:
                self._forget_ven(cached.ven_id)
        elif registrations:
            self._forget_vens()
        if events:
            self._event_cache = None

    @contextmanager
    def _changing_vens(self, *ven_ids: str) -> Iterator[set[str]]:
        """Around our own write of the registrations of ``ven_ids`` (and of any venID the write
        adds to the set it yields): those are forgotten at once, not when our own notification
        comes back, since a read right after the write must see it."""
        changed = set(ven_ids)
        try:
            yield changed
        finally:
            for ven_id in changed:
                self._forget_ven(ven_id)

    # -- registrations -------------------------------------------------------------------------------

    def put_ven(self, ven: VenRecord) -> None:
        with self._changing_vens(ven.ven_id) as changed, self._transaction() as db:
            # The account's earlier registration under another venID, if any, goes (and is forgotten).
            changed.update(row[0] for row in db.execute(
                "DELETE FROM vens WHERE bare_jid = %s AND ven_id <> %s RETURNING ven_id",
                (ven.bare_jid, ven.ven_id)).fetchall())
            db.execute(_sql(PUT_VEN),
                (ven.ven_id, ven.registration_id, ven.bare_jid, ven.transport_address, ven.ven_name,
                 ven.profile_name, ven.report_only, ven.xml_signature, ven.http_pull_model, ven.registered_at))

    def _vens(self, where: str = "TRUE", args: tuple = ()) -> list[VenRecord]:
        rows = self._execute(f"SELECT {VEN_COLUMNS} FROM vens WHERE {where} ORDER BY ven_id", args).fetchall()
        return [VenRecord(*row) for row in rows]

    def _one_ven(self, column: str, value: str) -> VenRecord | None:
        caching = self._caching()
        key = (column, value)
        if caching and key in self._ven_cache:
            return self._ven_cache[key]
        found = self._vens(f"{column} = %s", (value,))
        ven = found[0] if found else None
        # Only what exists is kept: "not registered" is asked of the database every time, so a VEN
        # that has just registered through another instance is never refused for a stale absence.
        if caching and ven is not None:
            if len(self._ven_cache) >= _CACHE_LIMIT:
                self._ven_cache.clear()
            # The one row holds all three keys (each is unique): found by one, known by all.
            self._ven_cache.update({("ven_id", ven.ven_id): ven, ("bare_jid", ven.bare_jid): ven,
                                    ("registration_id", ven.registration_id): ven})
        return ven

    def ven(self, ven_id: str) -> VenRecord | None:
        return self._one_ven("ven_id", ven_id)

    def ven_by_jid(self, bare_jid: str) -> VenRecord | None:
        return self._one_ven("bare_jid", bare_jid)

    def ven_by_registration(self, registration_id: str) -> VenRecord | None:
        return self._one_ven("registration_id", registration_id)

    def remove_ven(self, ven_id: str) -> bool:
        self._settle_liveness(ven_id)               # a note made before lands before, as in purge_ven
        with self._changing_vens(ven_id), self._transaction() as db:
            # The vens row first, as purge_ven and a liveness note take them (see _NOTE_LIVENESS).
            removed = db.execute("DELETE FROM vens WHERE ven_id = %s", (ven_id,)).rowcount > 0
            db.execute("DELETE FROM liveness WHERE ven_id = %s", (ven_id,))
            db.execute("DELETE FROM ven_instances WHERE ven_id = %s", (ven_id,))
            return removed

    def vens(self) -> list[VenRecord]:
        if not self._caching():
            return self._vens()
        if self._all_vens is None:
            self._all_vens = self._vens()
        return list(self._all_vens)

    # -- events ------------------------------------------------------------------------------------

    def put_event(self, record: EventRecord) -> None:
        document = encode_event(record.event)
        self._event_cache = None                     # forgotten at once, as for registrations
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

    def _all_events(self) -> dict[str, EventRecord] | None:
        """Every event, in creation order, from the cache (loaded when needed); None when the
        cache may not be used."""
        if not self._caching():
            return None
        if self._event_cache is None:
            self._event_cache = {record.event_id: record for record in self._events("TRUE", ())}
        return self._event_cache

    def _events(self, where: str, args: tuple) -> list[EventRecord]:
        rows = self._execute(
            "SELECT e.event_id, e.modification_number, e.cancelled, e.document, "
            "ARRAY(SELECT v.ven_id FROM event_vens v WHERE v.event_id = e.event_id ORDER BY v.ven_id) "
            f"FROM events e WHERE {where} ORDER BY e.position", args).fetchall()
        # decode_event is cached by the document's bytes: a newer modification is new bytes.
        return [EventRecord(event_id, modification, decode_event(bytes(document)), tuple(ven_ids), cancelled)
                for event_id, modification, cancelled, document, ven_ids in rows]

    def event(self, event_id: str) -> EventRecord | None:
        cached = self._all_events()
        if cached is not None:
            return cached.get(event_id)
        found = self._events("e.event_id = %s", (event_id,))
        return found[0] if found else None

    def events(self, ven_id: str | None = None) -> list[EventRecord]:
        cached = self._all_events()
        if cached is not None:
            return [record for record in cached.values() if ven_id is None or record.is_for(ven_id)]
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

    def mark_delivered(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> list[str]:
        ahead = _most_advanced(delivered)
        if not ahead:
            return []
        batch = [(ven_id, ahead)]
        news = _delivered_news(batch, self._execute(*_mark_delivered(batch)).fetchall())[0]
        return [event_id for event_id in ahead if event_id in news]

    async def delivery_state_async(self, ven_id: str) -> tuple[list[OutboxItem], list[Delivery]]:
        return await self._delivery_states.add(ven_id)

    async def _delivery_state_batch(self, ven_ids: list[str]) -> list[tuple[list[OutboxItem], list[Delivery]]]:
        wanted = sorted(set(ven_ids))
        results = await self._off_loop.fetch_each([
            (f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ven_id = ANY(%s::text[]) ORDER BY item_id", (wanted,)),
            (f"SELECT {DELIVERY_COLUMNS} FROM event_vens WHERE ven_id = ANY(%s::text[]) ORDER BY event_id, ven_id",
             (wanted,))])
        for result in results:
            if isinstance(result, Exception):
                raise result
        queued, held = results
        items: dict[str, list[OutboxItem]] = {}
        for row in queued:
            item = _outbox_item(row)
            items.setdefault(item.ven_id, []).append(item)
        rows: dict[str, list[Delivery]] = {}
        for row in held:
            delivery = Delivery(*row)
            rows.setdefault(delivery.ven_id, []).append(delivery)
        return [(items.get(ven_id, []), rows.get(ven_id, [])) for ven_id in ven_ids]

    async def mark_delivered_async(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> list[str]:
        # Gathered with the acknowledgements of this loop turn: one statement for all, off the loop.
        ahead = _most_advanced(delivered)
        if not ahead:
            return []
        news = await self._delivered.add((ven_id, ahead))
        return [event_id for event_id in ahead if event_id in news]

    async def _mark_delivered_batch(self, batch: list[tuple[str, dict[str, tuple[int, int, str]]]]
                                    ) -> list[set[str]]:
        return _delivered_news(batch, await self._off_loop.fetch(*_mark_delivered(batch)))

    def set_opt(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes | None = None,
                owner: str = "") -> int | None:
        chosen = _newest_answers(opts)
        event_ids = sorted(chosen)
        rows = (event_ids, [chosen[e][0] for e in event_ids], [chosen[e][1] for e in event_ids], ven_id)
        # One statement, atomic by itself: the answers and their journal entry, all or none.
        if journal is None:
            if event_ids:
                self._execute(_SET_OPT_MANY, rows)
            return None
        return self._execute(_SET_OPT_JOURNALED, (*rows, ven_id, journal, owner)).fetchone()[0]

    def record_answers(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes, owner: str = ""
                       ) -> tuple[int | None, dict[str, tuple[str | None, int | None]]]:
        return _answers_recorded(self._execute(*_record_answers(ven_id, opts, journal, owner)).fetchall())

    async def record_answers_async(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes,
                                   owner: str = "") -> tuple[int | None, dict[str, tuple[str | None, int | None]]]:
        # With the other answers of this loop turn, in one hand-over to the off-loop connection; each
        # is its own statement (its own transaction, its own journal entry), as record_answers.
        return _answers_recorded(await self._answers.add(_record_answers(ven_id, opts, journal, owner)))

    def restore_opt(self, ven_id: str, restored: list[tuple[str, str | None, int | None]],
                    written: list[tuple[str, str, int]]) -> None:
        written_by_event = {event_id: (opt_type, modification) for event_id, opt_type, modification in written}
        with self._transaction() as db, db.cursor() as cursor:
            cursor.executemany(_sql(RESTORE_OPT), [
                (opt_type, modification, event_id, ven_id, *written_by_event[event_id])
                for event_id, opt_type, modification in restored])

    def journal(self) -> list[tuple[int, str, bytes, str]]:
        done = set(self._done_journal)
        rows = self._execute(f"SELECT {JOURNAL_COLUMNS} FROM journal ORDER BY entry_id").fetchall()
        return [(entry_id, ven_id, bytes(document), owner) for entry_id, ven_id, document, owner in rows
                if entry_id not in done]

    def journal_done(self, entry_id: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._execute("DELETE FROM journal WHERE entry_id = %s", (entry_id,))
            return
        # Deleted with the others handed over in this loop turn. Dying before that replays the
        # answer, as dying just before the DELETE would: a done entry needs no durability promise.
        if not self._done_journal:
            loop.call_soon(self._delete_done_journal)
        self._done_journal.append(entry_id)

    def _delete_done_journal(self) -> None:
        done, self._done_journal = self._done_journal, []
        if not done:
            return
        try:
            self._execute("DELETE FROM journal WHERE entry_id = ANY(%s)", (done,))
        except psycopg.Error as error:
            # They stay in the journal: replayed (and reported) only if this instance dies.
            log.error("the store could not delete %d handed-over journal entries (%s)", len(done), error)

    # -- other documents -----------------------------------------------------------------------------

    def put_document(self, document: Document, encoded: bytes | None = None) -> None:
        data = encoded if encoded is not None else encode_document(document.kind, document.payload)
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

    def document_keys(self, kind: str, ven_id: str) -> list[str]:
        return [key for key, in self._execute("SELECT key FROM documents WHERE kind = %s AND ven_id = %s "
                                              "ORDER BY position", (kind, ven_id)).fetchall()]

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
        return [_outbox_item(row) for row in rows]

    def attempted(self, item_id: int) -> None:
        self._execute("UPDATE outbox SET attempts = attempts + 1 WHERE item_id = %s", (item_id,))

    def dequeue(self, item_id: int) -> None:
        self._execute("DELETE FROM outbox WHERE item_id = %s", (item_id,))

    def owed_ven_ids(self) -> set[str]:
        return {row[0] for row in self._execute(OWED_VEN_IDS).fetchall()}

    def queued_ven_ids(self) -> set[str]:
        return {row[0] for row in self._execute("SELECT DISTINCT ven_id FROM outbox").fetchall()}

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
        self._settle_liveness(ven_id)               # a note made before the purge lands before it
        with self._changing_vens(ven_id), self._transaction() as db:
            removed = {table: db.execute(f"DELETE FROM {table} WHERE ven_id = %s", (ven_id,)).rowcount
                       for table in _PURGED_HERE}
            removed["event_vens"] = db.execute(statement(PURGE_EVENT_STATE, "%s"), (ven_id,)).rowcount
        return removed

    # -- liveness ----------------------------------------------------------------------------------

    def set_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        self._settle_liveness(ven_id)               # not to be overwritten by an earlier note
        self._execute("INSERT INTO liveness VALUES (%s, %s, %s) ON CONFLICT (ven_id) DO UPDATE SET "
                      "state = excluded.state, last_seen = excluded.last_seen", (ven_id, state, last_seen))

    def note_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        # Off the loop, a loop turn's notes in one statement: after an instance starts, each VEN's
        # first sign of life is a note, which would otherwise be a round trip holding the loop, one
        # per VEN in the middle of the first fan-out (0.13 statements per exchange in a two-instance
        # fan-out, each instance meeting some VENs for the first time).
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:                        # not on a loop: nothing to gather with
            self.set_liveness(ven_id, state, last_seen)
            return
        self._liveness_notes[ven_id] = (state, last_seen)       # the last note of a venID wins
        self._hand_over_soon(loop)

    def note_heard(self, ven_id: str, instance_id: str) -> None:
        # With the loop turn's liveness notes (each VEN's first stanza to an instance makes both).
        self._heard_notes[ven_id] = instance_id
        try:
            self._hand_over_soon(asyncio.get_running_loop())
        except RuntimeError:                        # not on a loop: hand it over now
            self._hand_over_liveness()

    def heard_by(self) -> dict[str, str]:
        self._settle_liveness()                     # this instance's own notes included
        return dict(self._execute("SELECT ven_id, instance_id FROM ven_instances").fetchall())

    def _hand_over_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._liveness_scheduled is not loop:     # once per turn (and anew on another loop)
            self._liveness_scheduled = loop
            loop.call_soon(self._hand_over_liveness)

    def _hand_over_liveness(self) -> None:
        """Hand the notes gathered so far to the off-loop connection, one statement for each kind."""
        notes, self._liveness_notes, self._liveness_scheduled = self._liveness_notes, {}, None
        heard, self._heard_notes = self._heard_notes, {}
        self._liveness_in_flight = [(ids, write) for ids, write in self._liveness_in_flight if not write.done()]
        if notes:
            ven_ids = sorted(notes)                 # rows locked in one order, as everywhere here
            self._write_notes("liveness", _NOTE_LIVENESS, ven_ids,
                              (ven_ids, [notes[v][0] for v in ven_ids], [notes[v][1] for v in ven_ids]))
        if heard:
            ven_ids = sorted(heard)
            self._write_notes("instance", _NOTE_HEARD, ven_ids, (ven_ids, [heard[v] for v in ven_ids]))

    def _write_notes(self, kind: str, query: str, ven_ids: list[str], args: tuple) -> None:
        try:
            write = self._off_loop.submit(query, args)
        except RuntimeError:                        # closed: nothing takes writes any more
            log.warning("store: %d %s notes made after the store closed were not written", len(ven_ids), kind)
            return
        self.liveness_writes += 1
        write.add_done_callback(_liveness_written)
        self._liveness_in_flight.append((frozenset(ven_ids), write))

    def _settle_liveness(self, ven_id: str | None = None) -> None:
        """Every note made so far (of ``ven_id`` only, if given) has been written, for a read or a
        write that must come after. The thread writes in order, so waiting for the last write that
        holds one is waiting for all before it; a caller whose venID has no note waits for nothing
        (the off-loop connection may be busy with a fan-out's batches)."""
        if ven_id is None or ven_id in self._liveness_notes or ven_id in self._heard_notes:
            self._hand_over_liveness()
        writes = [write for ids, write in self._liveness_in_flight
                  if not write.done() and (ven_id is None or ven_id in ids)]
        if writes:
            writes[-1].exception()                  # waits; a failure was logged, the caller goes on

    def liveness(self) -> dict[str, tuple[str, datetime | None]]:
        self._settle_liveness()
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

    async def claim_batch(self, names: Sequence[str], owner: str, seconds: float) -> set[str]:
        if not names:
            return set()
        rows = await self._off_loop.fetch(_CLAIM_MANY, (owner, seconds, sorted(names)))
        return {name for name, in rows}

    async def release_batch(self, names: Sequence[str], owner: str) -> None:
        if names:
            await self._off_loop.fetch(_RELEASE_MANY, (owner, list(names)))

    async def publish_batch(self, channel: str, messages: Sequence[str]) -> None:
        if messages:
            await self._off_loop.fetch(_PUBLISH_MANY, (_CHANNEL_PREFIX + channel, list(messages)))

    async def listen(self, channel: str, receive: Callable[[str], None],
                     listening: Callable[[], None] | None = None) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                         connect_timeout=max(1, int(self.connect_timeout))) as db:
            await db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(_CHANNEL_PREFIX + channel)))
            if listening is not None:
                listening()
            async for notification in db.notifies():
                receive(notification.payload)

    def close(self) -> None:
        self._delete_done_journal()
        self._hand_over_liveness()                  # written before the off-loop connection closes
        self._off_loop.close()
        if self._changes is not None:
            self._changes.close()
        self._db.close()
