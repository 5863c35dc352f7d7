"""The SQL both store backends share: column lists, the owed-VENs query, the forward-only writes.

Each backend keeps its own schema (types differ) and its own connection handling; what reads and
writes the same columns the same way lives here once. Statements are written with ``{p}`` where a
parameter goes and turned into a backend's own placeholder by :func:`statement`:

>>> statement("SELECT 1 WHERE x = {p}", "?")
'SELECT 1 WHERE x = ?'
"""
from __future__ import annotations

VEN_COLUMNS = ("ven_id, registration_id, bare_jid, transport_address, ven_name, profile_name, "
               "report_only, xml_signature, http_pull_model, registered_at")

# Upsert on the venID only: a clash on registration id or JID must raise, not silently replace
# another VEN's row.
PUT_VEN = (f"INSERT INTO vens ({VEN_COLUMNS}) VALUES ({{p}},{{p}},{{p}},{{p}},{{p}},{{p}},{{p}},{{p}},{{p}},{{p}}) "
           "ON CONFLICT (ven_id) DO UPDATE SET "
           "registration_id = excluded.registration_id, bare_jid = excluded.bare_jid, "
           "transport_address = excluded.transport_address, ven_name = excluded.ven_name, "
           "profile_name = excluded.profile_name, report_only = excluded.report_only, "
           "xml_signature = excluded.xml_signature, http_pull_model = excluded.http_pull_model, "
           "registered_at = excluded.registered_at")

DELIVERY_COLUMNS = "event_id, ven_id, delivered_modification, delivered_status, opt_type, opt_modification"
DOCUMENT_COLUMNS = "kind, key, ven_id, state, document"
OUTBOX_COLUMNS = "item_id, ven_id, destination, message_type, document, attempts, queued_at"
JOURNAL_COLUMNS = "entry_id, ven_id, document, owner"

#: Event statuses in the order a VEN can be told them within one modification (OpenADR 2.0b
#: 8.1: far -> near -> active -> completed; cancelled overrides). The store ranks what a VEN
#: acknowledged with it, so the recorded state never moves back.
DELIVERY_STATUSES = ("far", "near", "active", "completed", "cancelled")
_RANK = {status: rank for rank, status in enumerate(DELIVERY_STATUSES)}
RANK_SQL = "CASE delivered_status " + " ".join(
    f"WHEN '{status}' THEN {rank}" for status, rank in _RANK.items()) + " ELSE -1 END"

# One conditional UPDATE per acknowledged (event, modification, status): the row moves only to a
# newer modification, or to a later status of the same one. The condition is evaluated on the
# row as it is when the update takes it (PostgreSQL re-checks it after waiting for a concurrent
# writer's lock), so a late acknowledgement of an older push, by another instance or by a retry,
# can never overwrite a newer one: no read-then-write window.
MARK_DELIVERED = ("UPDATE event_vens SET delivered_modification = {p}, delivered_status = {p} "
                  "WHERE event_id = {p} AND ven_id = {p} AND (delivered_modification IS NULL "
                  "OR delivered_modification < {p} OR (delivered_modification = {p} AND "
                  + RANK_SQL + " < {p}))")

# A VEN's opt answer replaces the one it gave for the same or an older modification, never one it
# gave for a newer modification (an answer to an older push that lost a race).
SET_OPT = ("UPDATE event_vens SET opt_type = {p}, opt_modification = {p} WHERE event_id = {p} AND ven_id = {p} "
           "AND (opt_modification IS NULL OR opt_modification <= {p})")

# Undo of an opt write the application refused: put the old answer back only while the row still
# holds the one that was written (another instance may have recorded a newer answer since).
RESTORE_OPT = ("UPDATE event_vens SET opt_type = {p}, opt_modification = {p} WHERE event_id = {p} AND ven_id = {p} "
               "AND opt_type IS NOT DISTINCT FROM {p} AND opt_modification IS NOT DISTINCT FROM {p}")

# VENs possibly owed a push. "completed" and "cancelled" are the statuses an event never leaves
# unless modified (a new modification number).
OWED_VEN_IDS = """
    SELECT ven_id FROM outbox
    UNION
    SELECT v.ven_id FROM event_vens v JOIN events e ON e.event_id = v.event_id
    WHERE v.delivered_modification IS NULL OR v.delivered_modification <> e.modification_number
       OR v.delivered_status IS NULL OR v.delivered_status NOT IN ('completed', 'cancelled')
"""


def statement(template: str, placeholder: str) -> str:
    """``template`` with each ``{p}`` replaced by the backend's parameter ``placeholder``."""
    return template.replace("{p}", placeholder)


def status_rank(status: str) -> int:
    """Where ``status`` stands in :data:`DELIVERY_STATUSES`; ValueError for anything else."""
    try:
        return _RANK[status]
    except KeyError:
        raise ValueError(f"unknown event status {status!r}; expected one of {', '.join(DELIVERY_STATUSES)}") from None


def held_rank(status: str | None) -> int:
    """:func:`status_rank` of a recorded status, -1 for none (as the SQL ranks it)."""
    return _RANK.get(status, -1) if status is not None else -1


def delivered_rows(ven_id: str, delivered: list[tuple[str, int, str]]) -> list[tuple]:
    """The parameters of :data:`MARK_DELIVERED` for each (event_id, modification_number, status)."""
    return [(modification, status, event_id, ven_id, modification, modification, status_rank(status))
            for event_id, modification, status in delivered]


def opt_rows(ven_id: str, opts: list[tuple[str, str, int]]) -> list[tuple]:
    """The parameters of :data:`SET_OPT` for each (event_id, opt_type, modification_number)."""
    return [(opt_type, modification, event_id, ven_id, modification) for event_id, opt_type, modification in opts]


# Store.count_dropped: one row per venID and reason, however many pushes.
COUNT_DROPPED = ("INSERT INTO outbox_drops (ven_id, reason, dropped, last_at) VALUES ({p}, {p}, {p}, {p}) "
                 "ON CONFLICT (ven_id, reason) DO UPDATE SET dropped = outbox_drops.dropped + excluded.dropped, "
                 "last_at = excluded.last_at")
DROPPED_PUSHES = "SELECT ven_id, reason, dropped, last_at FROM outbox_drops ORDER BY ven_id, reason"

# What a venID owns, removed by Store.purge_ven.
PURGED_TABLES = ("vens", "outbox", "documents", "journal", "liveness", "outbox_drops")
# The events stay (they are the application's), but what the VEN held of them goes: the next
# holder of the venID is owed every event afresh, and no opt it did not give counts as its own.
PURGE_EVENT_STATE = ("UPDATE event_vens SET delivered_modification = NULL, delivered_status = NULL, "
                     "opt_type = NULL, opt_modification = NULL WHERE ven_id = {p}")
