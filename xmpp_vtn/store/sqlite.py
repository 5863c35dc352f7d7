"""The embedded default store: one SQLite file in WAL mode with a versioned schema."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from .base import Store, VenRecord

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
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

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
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put_ven(self, ven: VenRecord) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM vens WHERE bare_jid = ? AND ven_id <> ?", (ven.bare_jid, ven.ven_id))
            self._db.execute(
                f"INSERT OR REPLACE INTO vens ({_VEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (ven.ven_id, ven.registration_id, ven.bare_jid, ven.transport_address, ven.ven_name,
                 ven.profile_name, int(ven.report_only), int(ven.xml_signature),
                 None if ven.http_pull_model is None else int(ven.http_pull_model),
                 ven.registered_at.isoformat()))

    def _one(self, where: str, value: str) -> VenRecord | None:
        row = self._db.execute(f"SELECT {_VEN_COLUMNS} FROM vens WHERE {where} = ?", (value,)).fetchone()
        return _ven_from_row(row) if row else None

    def ven(self, ven_id: str) -> VenRecord | None:
        return self._one("ven_id", ven_id)

    def ven_by_jid(self, bare_jid: str) -> VenRecord | None:
        return self._one("bare_jid", bare_jid)

    def ven_by_registration(self, registration_id: str) -> VenRecord | None:
        return self._one("registration_id", registration_id)

    def remove_ven(self, ven_id: str) -> bool:
        with self._transaction():
            return self._db.execute("DELETE FROM vens WHERE ven_id = ?", (ven_id,)).rowcount > 0

    def vens(self) -> list[VenRecord]:
        rows = self._db.execute(f"SELECT {_VEN_COLUMNS} FROM vens ORDER BY ven_id").fetchall()
        return [_ven_from_row(row) for row in rows]

    def close(self) -> None:
        self._db.close()


def _ven_from_row(row: tuple) -> VenRecord:
    (ven_id, registration_id, bare_jid, transport_address, ven_name, profile_name,
     report_only, xml_signature, http_pull_model, registered_at) = row
    return VenRecord(ven_id=ven_id, registration_id=registration_id, bare_jid=bare_jid,
                     transport_address=transport_address, ven_name=ven_name, profile_name=profile_name,
                     report_only=bool(report_only), xml_signature=bool(xml_signature),
                     http_pull_model=None if http_pull_model is None else bool(http_pull_model),
                     registered_at=datetime.fromisoformat(registered_at))
