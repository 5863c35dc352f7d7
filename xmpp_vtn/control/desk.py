"""The narrow interface operator surfaces use: what an operator may see and do, nothing more.

:class:`~xmpp_vtn.VTNComponent` provides it; operator tools are typed against this protocol so
they never reach into the facade's internals (its store, scheduler or handler table). What an
operator reads comes from the store, so that with several instances sharing one store, each of
them shows the same VTN.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Collection, Protocol

from ..store import Delivery, Document, VenRecord


class OperatorDesk(Protocol):
    """What the XEP-0050 commands, the control API and the dashboard need of a running VTN."""

    vtn_id: str

    def vens(self) -> list[VenRecord]:
        """The registered VENs."""

    def is_online(self, ven_id: str) -> bool | None:
        """Whether ``ven_id`` is online (None: not heard of since start)."""

    def add_event(self, ven_id: Any, signal_name: str, signal_type: str, intervals: list, **arguments: Any) -> str:
        """``VTNComponent.add_event``: create and push an event; its event_id."""

    def modify_event(self, event_id: str, intervals: list | None = None, *, reason: str | None = None,
                     **changes: Any) -> int:
        """``VTNComponent.modify_event``: change an event and push it; its new modification number."""

    def cancel_event(self, event_id: str) -> None:
        """Cancel an event and tell its VENs."""

    def events(self, ven_id: str | None = None) -> list:
        """The events with their status now (``EventState`` values)."""

    def event(self, event_id: str) -> Any:
        """One event's ``EventState`` (None for an unknown event)."""

    def event_ven_ids(self, event_id: str) -> list[str]:
        """The venIDs an event is for (empty for an unknown event)."""

    def is_registered(self, ven_id: str) -> bool:
        """Whether ``ven_id`` is registered with this VTN."""

    def now(self) -> datetime:
        """The VTN's clock."""

    @property
    def resolves_targets(self) -> bool:
        """Whether events may be addressed by targets (an ``on_targets`` handler is installed)."""

    # -- what the control API and the dashboard read (from the store) ----------------------------

    def recorded_liveness(self) -> dict[str, tuple[str, datetime | None]]:
        """venID -> (state, last seen) as the instances recorded it."""

    def owed_pushes(self) -> dict[str, int]:
        """venID -> how many queued pushes it is owed (VENs owed nothing are absent)."""

    def deliveries_of(self, ven_ids: Collection[str]) -> dict[str, list[Delivery]]:
        """venID -> what it holds of each of its events and its opt answers, for each of ``ven_ids``
        (what the dashboard reads for the VENs that changed, instead of every event's every VEN)."""

    def report_requests(self, ven_id: str | None = None) -> list[Document]:
        """The VTN's report requests to VENs."""

    def report_offers(self, ven_id: str | None = None) -> list[Document]:
        """The reports VENs offered."""

    def served_report_requests(self, ven_id: str | None = None) -> list[Document]:
        """The VENs' requests for the VTN's own reports."""

    def opts(self, ven_id: str | None = None) -> list[dict]:
        """The opt schedules in force."""

    # -- health ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the XMPP component has a session with its server now."""

    def quota_refusals(self) -> dict[str, int]:
        """Limit name -> how many requests or stanzas this process refused for it since start."""

    def store_reachable(self) -> bool:
        """Whether the store answers a read now."""
