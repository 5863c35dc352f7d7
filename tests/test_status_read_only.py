"""``xmpp-vtn status`` changes nothing: every store is opened read-only and never migrated.

For SQLite: the file's bytes and modification time stay as they were, a missing file is reported
and not created, a file at another schema version is reported and left at it. For PostgreSQL
(the session's real server, an empty database per test): an empty database stays empty, a schema
at another version is reported and not upgraded, a current one keeps its tables and rows, and the
server itself refuses a write through a read-only store. An unreachable server is one line.
"""
from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from payloads import EVENT_MIN, T0
from xmpp_vtn.ops.status import StoreUnavailable, gather, open_for_reading
from xmpp_vtn.store import EventRecord, SQLiteStore, Store, VenRecord, open_store
from xmpp_vtn.store import postgresql as postgresql_backend
from xmpp_vtn.store import sqlite as sqlite_backend

REPO = Path(__file__).resolve().parent.parent


def status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xmpp_vtn", "status", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def fill(store: Store) -> Store:
    """One VEN, one event it acknowledged and answered."""
    store.put_ven(VenRecord("ven-1", "reg-ven-1", "ven-1@localhost", "ven-1@localhost/oadr", registered_at=T0))
    event = {**EVENT_MIN, "event_descriptor": {**EVENT_MIN["event_descriptor"], "event_id": "ev-1"},
             "active_period": {"dtstart": T0, "duration": timedelta(minutes=10)}}
    store.put_event(EventRecord("ev-1", 0, event, ("ven-1",)))
    store.mark_delivered("ven-1", [("ev-1", 0, "far")])
    store.set_opt("ven-1", [("ev-1", "optIn", 0)])
    return store


# -- SQLite ------------------------------------------------------------------------------------------

def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_status_of_a_sqlite_store_leaves_its_file_as_it_was(tmp_path):
    path = tmp_path / "vtn.sqlite3"
    fill(SQLiteStore(path)).close()
    before = fingerprint(path)
    result = status("--store", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert '"ven_id": "ven-1"' in result.stdout
    assert fingerprint(path) == before


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path):
    missing = tmp_path / "typo.sqlite3"
    result = status("--store", f"sqlite:///{missing}")
    assert (result.returncode, result.stderr.strip()) == (2, f"xmpp-vtn status: {missing}: no such store file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("version, says", [(3, "has store schema version 3; this xmpp-vtn reads version "),
                                           (99, "has store schema version 99; this xmpp-vtn knows ")])
def test_a_sqlite_store_at_another_schema_version_is_reported_not_changed(tmp_path, version, says):
    path = tmp_path / "vtn.sqlite3"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)                           # as an older (or newer) xmpp-vtn left it
    db.execute(f"PRAGMA user_version={version}")
    db.close()
    before = fingerprint(path)
    result = status("--store", str(path))
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert fingerprint(path) == before


def test_an_older_sqlite_store_is_not_upgraded_by_a_read_only_open(tmp_path, monkeypatch):
    path = tmp_path / "vtn.sqlite3"
    fill(SQLiteStore(path)).close()
    before = fingerprint(path)
    # This code one migration ahead of the file: a writer would upgrade it, a reader reports it.
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", [*sqlite_backend.MIGRATIONS, "CREATE TABLE later (x INTEGER)"])
    with pytest.raises(StoreUnavailable, match="start the VTN on it once to upgrade it"):
        open_for_reading(path)
    assert fingerprint(path) == before


def test_a_read_only_sqlite_store_refuses_writes(tmp_path):
    path = tmp_path / "vtn.sqlite3"
    fill(SQLiteStore(path)).close()
    store = open_store(path, read_only=True)
    try:
        assert store.read_only and [ven.ven_id for ven in store.vens()] == ["ven-1"]
        with pytest.raises(Exception, match="readonly"):
            store.mark_delivered("ven-1", [("ev-1", 0, "active")])
    finally:
        store.close()
    with pytest.raises(ValueError, match=":memory:"):
        open_store(":memory:", read_only=True)


# -- PostgreSQL -------------------------------------------------------------------------------------

def schema(url: str) -> dict:
    """What the database holds: every table with its columns, the schema version and row counts."""
    with psycopg.connect(url) as db:
        tables = [row[0] for row in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")]
        columns = db.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position").fetchall()
        counts = {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
        version = db.execute("SELECT version FROM xmpp_vtn_schema").fetchone()[0] \
            if "xmpp_vtn_schema" in tables else None
    return {"tables": tables, "columns": columns, "counts": counts, "version": version}


def test_status_of_an_empty_postgresql_database_creates_nothing(postgres_database):
    result = status("--store", postgres_database)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("holds no xmpp-vtn store"), result.stderr
    assert schema(postgres_database)["tables"] == []


def test_status_of_a_postgresql_store_leaves_its_schema_and_rows_as_they_were(postgres_database):
    fill(open_store(postgres_database)).close()
    before = schema(postgres_database)
    result = status("--store", postgres_database, "--json")
    assert result.returncode == 0, result.stderr
    assert '"delivered_status": "far"' in result.stdout
    assert schema(postgres_database) == before


def test_a_postgresql_store_at_another_schema_version_is_reported_not_changed(postgres_database, monkeypatch):
    open_store(postgres_database).close()
    with psycopg.connect(postgres_database) as db:
        db.execute("UPDATE xmpp_vtn_schema SET version = 7")              # a newer xmpp-vtn wrote it
    before = schema(postgres_database)
    result = status("--store", postgres_database)
    assert result.returncode == 2 and "has store schema version 7" in result.stderr and \
        "upgrade xmpp-vtn" in result.stderr, result.stderr
    assert schema(postgres_database) == before
    # Older: this code one migration ahead of the database. A writer would upgrade it; status reports it.
    with psycopg.connect(postgres_database) as db:
        db.execute("UPDATE xmpp_vtn_schema SET version = %s", (len(postgresql_backend.MIGRATIONS),))
    before = schema(postgres_database)
    monkeypatch.setattr(postgresql_backend, "MIGRATIONS", [*postgresql_backend.MIGRATIONS,
                                                           "CREATE TABLE later (x INTEGER)"])
    with pytest.raises(StoreUnavailable, match="start the VTN on it once to upgrade it"):
        open_for_reading(postgres_database)
    assert schema(postgres_database) == before and "later" not in before["tables"]


def test_a_read_only_postgresql_store_reads_and_the_server_refuses_its_writes(postgres_database):
    writer = fill(open_store(postgres_database))
    reader = open_store(postgres_database, read_only=True)
    try:
        facts = gather(reader)
        assert [ven["ven_id"] for ven in facts["vens"]] == ["ven-1"]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.mark_delivered("ven-1", [("ev-1", 0, "active")])
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.enqueue("ven-1", "ven-1@localhost/oadr", "oadrDistributeEvent", b"<x/>")
        writer.mark_delivered("ven-1", [("ev-1", 0, "active")])          # the VTN beside it writes on
        assert reader.deliveries("ev-1", "ven-1")[0].delivered_status == "active"
    finally:
        reader.close()
        writer.close()


def test_an_unreachable_postgresql_server_is_one_line_and_exit_code_2():
    # Port 1 on loopback: nothing listens there.
    result = status("--store", "postgresql://vtn:hunter2@127.0.0.1:1/vtn")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("xmpp-vtn status: ") and "127.0.0.1:1/vtn" in line and "hunter2" not in line, line
