"""The store interface the services use, and the records it holds.

Services never see SQL: they read and write records through these methods, so a second backend
(PostgreSQL for several VTN processes sharing one identity) can be added without touching them.
"""
from __future__ import annotations

import abc
import asyncio
import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence


class StoreSchemaError(RuntimeError):
    """A store whose schema version is not the one this xmpp-vtn writes: ``version`` (0: it
    holds no xmpp-vtn store at all) against ``expected``. A store opened to be used is upgraded
    when older; one opened read-only is only reported."""

    def __init__(self, where: str, version: int, expected: int):
        self.where, self.version, self.expected = where, version, expected
        if version == 0:
            what = "holds no xmpp-vtn store"
        elif version > expected:
            what = f"has store schema version {version}; this xmpp-vtn knows {expected}: upgrade xmpp-vtn"
        else:
            what = (f"has store schema version {version}; this xmpp-vtn reads version {expected}: "
                    "start the VTN on it once to upgrade it")
        super().__init__(f"{where} {what}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


#: Sender identities of simpleHTTP VENs begin with one of these. A JID never does: its domain part
#: is a host name, which has no colon. ``x509:`` + the TLS client certificate's fingerprint, or, only
#: when the operator allows HTTP without client certificates, ``http-claim:`` + the claimed venID.
CERTIFICATE_IDENTITY = "x509:"
CLAIMED_IDENTITY = "http-claim:"
HTTP_IDENTITIES = (CERTIFICATE_IDENTITY, CLAIMED_IDENTITY)

XMPP, SIMPLE_HTTP = "xmpp", "simpleHttp"


def transport_of(identity: str) -> str:
    """The OpenADR transport name a sender identity speaks: ``"simpleHttp"`` or ``"xmpp"``."""
    return SIMPLE_HTTP if identity.startswith(HTTP_IDENTITIES) else XMPP


@dataclass(frozen=True)
class VenRecord:
    """A registered VEN: its venID bound to the bare JID that registered it.

    ``transport_address`` is the full JID pushes go to (the VEN's ``oadrTransportAddress``, or the
    sender's full JID when the VEN gave none). For a simpleHTTP VEN ``bare_jid`` holds its sender
    identity (see :data:`HTTP_IDENTITIES`) and ``transport_address`` the URL pushes are POSTed to,
    or, for a VEN that pulls, its identity again.
    """

    ven_id: str
    registration_id: str
    bare_jid: str
    transport_address: str
    ven_name: str | None = None
    profile_name: str = "2.0b"
    report_only: bool = False
    xml_signature: bool = False
    http_pull_model: bool | None = None
    registered_at: datetime = field(default_factory=_now)

    @property
    def transport_name(self) -> str:
        """``"xmpp"`` or ``"simpleHttp"``: how this VEN speaks to the VTN."""
        return transport_of(self.bare_jid)

    @property
    def pulls(self) -> bool:
        """Whether the VEN fetches what it is owed with oadrPoll instead of being pushed to
        (simpleHTTP with ``oadrHttpPullModel`` true or absent)."""
        return self.transport_name == SIMPLE_HTTP and self.http_pull_model is not False


@dataclass(frozen=True)
class EventRecord:
    """An event as the VTN holds it: the OpenADR event dict (without its status, which follows
    from the clock) and the venIDs it is delivered to."""

    event_id: str
    modification_number: int
    event: dict
    ven_ids: tuple[str, ...]
    cancelled: bool = False

    def is_for(self, ven_id: str) -> bool:
        """Whether the event is delivered to ``ven_id``: a set lookup, since an event may target
        thousands of venIDs and every answer asks (``ven_id in ven_ids`` was a scan each time)."""
        return ven_id in self._targets

    @functools.cached_property
    def _targets(self) -> frozenset[str]:
        return frozenset(self.ven_ids)


@dataclass(frozen=True)
class Delivery:
    """What one VEN has of one event: the modification and status it acknowledged, and its opt."""

    event_id: str
    ven_id: str
    delivered_modification: int | None = None
    delivered_status: str | None = None
    opt_type: str | None = None
    opt_modification: int | None = None


@dataclass(frozen=True)
class Document:
    """A stored OpenADR object that is not an event: a VEN's report offer, a report subscription
    (in either direction), an opt schedule. ``kind`` says which; ``payload`` is the object's dict
    in the codec's representation; ``state`` is the service's own word for where it stands."""

    kind: str
    key: str
    ven_id: str
    payload: dict
    state: str = ""


@dataclass(frozen=True)
class OutboxItem:
    """A push the VTN owes: the exact document to send, to whom, queued before the first attempt."""

    item_id: int
    ven_id: str
    to: str
    message_type: str
    document: bytes
    attempts: int = 0
    #: When it was queued (seconds since the epoch, the store's wall clock); None for an item
    #: queued by an xmpp-vtn that did not record it. Not part of equality: it is bookkeeping.
    queued_at: float | None = field(default=None, compare=False)


#: Why a push the VTN meant to send was let go unsent: the bounded-outbox policy's actions,
#: counted per VEN (:meth:`Store.count_dropped`, :meth:`Store.dropped_pushes`).
DROP_REASONS: dict[str, str] = {
    "superseded": "replaced by a newer report update for the same subscription",
    "expired": "a report update that went stale unsent",
    "outbox_full": "not queued: the VEN's outbox was full",
    "given_up": "the venID was no longer registered and did not take it",
    "refused": "the VEN refused it for good",
}

#: The one venID under which drops for venIDs no longer registered are counted, so that a
#: stream of short-lived registrations cannot grow the counters without bound.
UNREGISTERED_VENS = ""


@dataclass(frozen=True)
class DroppedPushes:
    """How many of ``ven_id``'s pushes were let go for ``reason`` (a key of
    :data:`DROP_REASONS`), and when the last one was (seconds since the epoch)."""

    ven_id: str
    reason: str
    count: int
    last_at: float


class Store(abc.ABC):
    """Persistence for the VTN. Methods are synchronous: the embedded backend answers in microseconds.

    A store opened with ``read_only=True`` (see :func:`~xmpp_vtn.store.open_store`) answers every
    read; the database itself refuses every write.
    """

    #: Opened to read only: nothing was created or migrated, and writes fail.
    read_only: bool = False

    @abc.abstractmethod
    def put_ven(self, ven: VenRecord) -> None:
        """Insert or replace the registration of ``ven.ven_id``.

        Any other registration held by the same bare JID is replaced: one account, one VEN.
        """

    @abc.abstractmethod
    def ven(self, ven_id: str) -> VenRecord | None:
        """The registration of ``ven_id``, or None."""

    @abc.abstractmethod
    def ven_by_jid(self, bare_jid: str) -> VenRecord | None:
        """The registration held by the account ``bare_jid``, or None."""

    @abc.abstractmethod
    def ven_by_registration(self, registration_id: str) -> VenRecord | None:
        """The VEN holding ``registration_id``, or None."""

    @abc.abstractmethod
    def remove_ven(self, ven_id: str) -> bool:
        """Forget the registration of ``ven_id``; False if there was none."""

    @abc.abstractmethod
    def vens(self) -> list[VenRecord]:
        """Every registration, ordered by venID."""

    # -- events ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def put_event(self, record: EventRecord) -> None:
        """Insert or replace an event; a delivery row is kept (or created) for each of its venIDs."""

    @abc.abstractmethod
    def event(self, event_id: str) -> EventRecord | None:
        """The event ``event_id``, or None."""

    @abc.abstractmethod
    def events(self, ven_id: str | None = None) -> list[EventRecord]:
        """Every event (for ``ven_id`` only, when given), in the order they were created."""

    @abc.abstractmethod
    def deliveries(self, event_id: str | None = None, ven_id: str | None = None) -> list[Delivery]:
        """Delivery rows for an event, a VEN, or both."""

    @abc.abstractmethod
    def mark_delivered(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> list[str]:
        """Record that ``ven_id`` acknowledged these (event_id, modification_number, status);
        returns the events of which it now holds a modification it did not hold before, in the
        order given, each once.

        The recorded state only moves forward, atomically: to a newer modification, or to a later
        status (far < near < active < completed < cancelled) of the same one. An acknowledgement
        of an older push that arrives late (a retry's, another instance's) changes nothing and is
        not returned: of two writers recording the same new modification, only one is told it is
        new. An event named twice counts as its most advanced (modification, status). Events the
        VEN holds no delivery row of are ignored. Raises ValueError for a status that is none of
        those, before anything changes.
        """

    async def delivery_state_async(self, ven_id: str) -> tuple[list[OutboxItem], list[Delivery]]:
        """What a delivery to ``ven_id`` starts from: its :meth:`outbox` and its :meth:`deliveries`,
        read together. A shared store reads those of every delivery starting in this loop turn in
        one statement each, off the loop."""
        return self.outbox(ven_id), self.deliveries(ven_id=ven_id)

    async def mark_delivered_async(self, ven_id: str, delivered: list[tuple[str, int, str]]) -> list[str]:
        """:meth:`mark_delivered`, for the event loop: a shared store gathers the acknowledgements
        of one loop turn into one statement and waits for its database off the loop. Recorded
        (durable, for a store that commits each change at once) when it returns."""
        return self.mark_delivered(ven_id, delivered)

    @abc.abstractmethod
    def set_opt(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes | None = None,
                owner: str = "") -> int | None:
        """Record ``ven_id``'s (event_id, opt_type, modification_number) answers, all or none.

        An answer replaces one given for the same or an older modification, never one given for a
        newer modification (checked atomically, like :meth:`mark_delivered`).
        With ``journal`` (the answer as received), also note in the same transaction that the
        application's handlers still have to see it; returns that note's id (see :meth:`journal`).
        ``owner`` names the instance that will hand it over, so that only a dead one's notes are replayed.
        """

    def record_answers(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes, owner: str = ""
                       ) -> tuple[int | None, dict[str, tuple[str | None, int | None]]]:
        """:meth:`set_opt` with its journal entry for answers a VEN sent, unless they are a resend.

        Returns (the journal entry's id, what each named event's row held before: its
        (opt_type, opt_modification)). When ``opts`` is not empty and every answer is already
        recorded as given (the VEN sent them again, to this or another instance), nothing is
        written or journaled and the id is None: of two instances recording the same answers,
        the one that finds them recorded is told so. A shared store decides this as it writes.
        """
        held = {d.event_id: (d.opt_type, d.opt_modification) for d in self.deliveries(ven_id=ven_id)}
        before = {event_id: held[event_id] for event_id, _, _ in opts if event_id in held}
        if opts and all(before.get(event_id) == (opt_type, modification) for event_id, opt_type, modification in opts):
            return None, before
        return self.set_opt(ven_id, opts, journal=journal, owner=owner), before

    async def record_answers_async(self, ven_id: str, opts: list[tuple[str, str, int]], journal: bytes,
                                   owner: str = "") -> tuple[int | None, dict[str, tuple[str | None, int | None]]]:
        """:meth:`record_answers`, for the event loop: a shared store hands the answers of one loop
        turn to its database together and waits off the loop; each is recorded (durable, for a
        store that commits each change at once) on its own when it returns."""
        return self.record_answers(ven_id, opts, journal, owner)

    @abc.abstractmethod
    def restore_opt(self, ven_id: str, restored: list[tuple[str, str | None, int | None]],
                    written: list[tuple[str, str, int]]) -> None:
        """Undo :meth:`set_opt`'s ``written`` answers, putting back the ``restored``
        (event_id, opt_type, modification_number) (None, None: no answer), each only while the row
        still holds what was written: a newer answer recorded meanwhile stays."""

    @abc.abstractmethod
    def journal(self) -> list[tuple[int, str, bytes, str]]:
        """Answers whose handlers have not run yet, oldest first: (id, ven_id, document, owner)."""

    @abc.abstractmethod
    def journal_done(self, entry_id: int) -> None:
        """The handlers have seen that answer."""

    # -- other documents (reports, opts) -----------------------------------------------------------

    @abc.abstractmethod
    def put_document(self, document: Document, encoded: bytes | None = None) -> None:
        """Insert or replace the document (``kind``, ``key``). ``encoded``: its payload as
        :func:`~xmpp_vtn.store.documents.encode_document` would write it, when the caller has it
        already (cut from the bytes a VEN sent: see :func:`~xmpp_vtn.store.documents.received_offers`);
        otherwise the payload is encoded here."""

    @abc.abstractmethod
    def document(self, kind: str, key: str) -> Document | None:
        """The document (``kind``, ``key``), or None."""

    @abc.abstractmethod
    def documents(self, kind: str, ven_id: str | None = None) -> list[Document]:
        """Documents of ``kind`` (``ven_id``'s only, when given), oldest first."""

    def document_keys(self, kind: str, ven_id: str) -> list[str]:
        """The keys of ``ven_id``'s documents of ``kind``, oldest first, without reading the
        documents themselves (a backend should override this with a query of the keys alone)."""
        return [document.key for document in self.documents(kind, ven_id)]

    @abc.abstractmethod
    def remove_document(self, kind: str, key: str) -> bool:
        """Delete the document; False if there was none."""

    # -- outbox ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, ven_id: str, to: str, message_type: str, document: bytes) -> int:
        """Queue a push for ``ven_id`` (sent to the full JID ``to``); returns its id. Order is kept."""

    @abc.abstractmethod
    def outbox(self, ven_id: str | None = None) -> list[OutboxItem]:
        """Owed pushes (``ven_id``'s only, when given), oldest first."""

    @abc.abstractmethod
    def attempted(self, item_id: int) -> None:
        """Count one failed attempt of an owed push."""

    @abc.abstractmethod
    def dequeue(self, item_id: int) -> None:
        """Forget an owed push: it was acknowledged."""

    @abc.abstractmethod
    def owed_ven_ids(self) -> set[str]:
        """VENs that may be owed a push: queued outbox items, or an event they hold at an older
        modification or a status that can still change. A superset; the courier decides."""

    def queued_ven_ids(self) -> set[str]:
        """VENs with at least one push in the outbox."""
        return {item.ven_id for item in self.outbox()}

    # -- what one VEN may make the VTN hold: bounded pushes, and one purge ---------------------------

    @abc.abstractmethod
    def enqueue_bounded(self, ven_id: str, to: str, message_type: str, document: bytes, *,
                        topic: str | None = None, limit: int | None = None,
                        expires_at: float | None = None) -> int | None:
        """Queue a push like :meth:`enqueue`, in one transaction with its bounds; returns its id.

        ``topic`` names what the push is about (a report subscription): queued items of
        ``ven_id`` with the same topic are superseded and removed first. With ``limit``, None is
        returned (nothing queued) when ``ven_id`` already has that many items. ``expires_at``
        (seconds since the epoch) is when the item stops being worth sending (:meth:`expire_outbox`).
        """

    @abc.abstractmethod
    def expire_outbox(self, now: float) -> int:
        """Remove queued pushes whose ``expires_at`` has passed; returns how many."""

    @abc.abstractmethod
    def dequeue_topic(self, ven_id: str, topic: str) -> int:
        """Remove ``ven_id``'s queued pushes about ``topic``; returns how many."""

    @abc.abstractmethod
    def outbox_depth(self, ven_id: str) -> int:
        """How many pushes are queued for ``ven_id``."""

    @abc.abstractmethod
    def count_dropped(self, ven_id: str, reason: str, count: int = 1) -> None:
        """Count ``count`` pushes of ``ven_id`` let go unsent for ``reason`` (a key of
        :data:`DROP_REASONS`). :meth:`enqueue_bounded` and :meth:`expire_outbox` count their own."""

    @abc.abstractmethod
    def dropped_pushes(self) -> list[DroppedPushes]:
        """The counts of :meth:`count_dropped`, by venID and reason (sorted); purged with the venID."""

    @abc.abstractmethod
    def purge_ven(self, ven_id: str) -> dict[str, int]:
        """Remove everything ``ven_id`` owned, in one transaction: its registration, queued pushes,
        documents (report offers, subscriptions both ways, opts), answers still in the journal,
        liveness, and what it held of each event (delivered modification, opt), so that whoever
        holds the venID next starts clean. Returns the number of rows removed per table."""

    # -- liveness, as the last instance to know wrote it (for operators) ---------------------------

    @abc.abstractmethod
    def set_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        """Record that ``ven_id`` is ``state`` ("online"/"offline"), last heard from at ``last_seen``."""

    @abc.abstractmethod
    def liveness(self) -> dict[str, tuple[str, datetime | None]]:
        """venID -> (state, last seen) for every VEN whose liveness was recorded."""

    def note_liveness(self, ven_id: str, state: str, last_seen: datetime | None) -> None:
        """:meth:`set_liveness`, for a caller on the event loop that need not wait for the write:
        a backend may gather the notes of a loop turn into one write off the loop, the last note
        of each venID winning. Every read of :meth:`liveness`, :meth:`set_liveness` and
        :meth:`purge_ven` comes after the notes made before it. Notes are for registered venIDs:
        one written only after its venID's registration is gone (another instance purged it
        meanwhile, say) is dropped. By default: :meth:`set_liveness` at once."""
        self.set_liveness(ven_id, state, last_seen)

    def note_heard(self, ven_id: str, instance_id: str) -> None:
        """Record that the XMPP server handed ``ven_id``'s stanzas to the instance ``instance_id``
        (with a balancing that keeps each VEN to one instance; see
        :attr:`~xmpp_vtn.runtime.cluster.Cluster.balancing`). Gathered and written like
        :meth:`note_liveness`, dropped for a venID no longer registered, removed by
        :meth:`purge_ven`. An unshared store has one instance, which hears every VEN: by default
        nothing is written."""

    def heard_by(self) -> dict[str, str]:
        """venID -> the instance that last :meth:`note_heard` it, this process's notes included.
        Empty for an unshared store."""
        return {}

    # -- coordination between instances sharing one store ------------------------------------------

    #: Whether what is written outlives this process (False for a SQLite ``:memory:`` store).
    durable: bool = True

    #: Whether other processes may write this store while we do (one PostgreSQL database behind
    #: several instances). An unshared store grants every lease: its one process does all the work.
    shared: bool = False

    def claim(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner`` for ``seconds``; False while another
        owner holds it. Work that must run once across instances runs under its lease."""
        return True

    def release(self, name: str, owner: str) -> None:
        """Give up the lease ``name``, if ``owner`` holds it."""

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now (None: nobody, or it expired)."""
        return None

    def forget_expired_leases(self, older_than: float = 3600.0) -> int:
        """Drop leases expired more than ``older_than`` seconds ago; returns how many."""
        return 0

    def lease_holders(self, prefix: str) -> list[str]:
        """Who holds the unexpired leases whose names start with ``prefix``, sorted (unshared: none)."""
        return []

    #: The most bytes (UTF-8) one published message may hold: PostgreSQL's NOTIFY payload limit.
    message_limit: int = 7_999

    def publish(self, channel: str, message: str) -> None:
        """Tell every instance listening on ``channel`` (ourselves included). Unshared: nobody to tell."""

    # The batches below carry the coordination writes of one event-loop turn (the leases of a
    # fan-out's deliveries, the answers passed on to other instances) in one statement each. They
    # are coroutines so that a shared store can wait for its database off the event loop; these
    # defaults, for a store with no database round trip to hide, call the one-at-a-time methods.

    async def claim_batch(self, names: Sequence[str], owner: str, seconds: float) -> set[str]:
        """:meth:`claim` each of ``names`` (distinct) for ``owner``; returns the names granted."""
        return {name for name in names if self.claim(name, owner, seconds)}

    async def release_batch(self, names: Sequence[str], owner: str) -> None:
        """:meth:`release` each of ``names`` that ``owner`` holds."""
        for name in names:
            self.release(name, owner)

    async def publish_batch(self, channel: str, messages: Sequence[str]) -> None:
        """:meth:`publish` each of ``messages`` on ``channel``, in order."""
        for message in messages:
            self.publish(channel, message)

    async def listen(self, channel: str, receive: Callable[[str], None],
                     listening: Callable[[], None] | None = None) -> None:
        """Call ``receive(message)`` for each message published on ``channel`` until cancelled, and
        ``listening()`` once nothing published from then on can be missed.

        Returns only by cancellation; an unshared store has nothing to deliver and just waits.
        """
        if listening is not None:
            listening()
        await asyncio.get_running_loop().create_future()

    def refresh(self, *, registrations: bool = True, events: bool = True, account: str | None = None) -> None:
        """Read registrations and events (or only the ones asked for; with ``account``, a bare JID,
        only that account's registration) from the backend itself on the next calls.

        A shared store may serve them from memory, learning of other instances' changes a moment
        after they commit (see :mod:`xmpp_vtn.store.changes`). A service about to refuse a VEN
        because of what it read (an unknown venID, an event modification it does not know) calls
        this and reads again first: the VEN may act on a change another instance made just now.
        Ask only for what is in doubt: in a cluster, forgetting every registration because an
        event changed, or because one account registers, sends the next lookup of every VEN to the
        database. An absent registration is never answered from memory, so "not registered" needs
        no refresh. A store that is the only writer of its data has nothing to refresh.
        """

    async def committed(self) -> None:
        """Return once every change made so far is durable.

        A store may group the writes of one event-loop turn into one transaction (the SQLite store
        does); the VTN awaits this before it answers a VEN or counts a push as delivered, so nothing
        is promised before it is kept. A store that commits each change at once returns at once.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's resources. The store is unusable afterwards."""
