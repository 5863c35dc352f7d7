"""The latest report readings per VEN, kept in memory for the operator's view.

Readings reach the application through its callbacks; the VTN itself stores none (a store write
per reading would cost every report). This keeps the last :data:`KEEP` numeric readings of each
(venID, rID), bounded in VENs and rIDs too, fed by the exchange observer from the
oadrUpdateReport payloads this instance accepted. With several instances each shows what it
received.
"""
from __future__ import annotations

import math
from collections import OrderedDict, deque
from datetime import datetime
from typing import Any

from ..codec.values import format_datetime
from ..services.reports import readings_of

#: Readings kept per (venID, rID), rIDs per VEN, and VENs.
KEEP = 120
MAX_R_IDS = 16
MAX_VENS = 10_000


class Readings:
    """venID -> rID -> the newest (time, value) pairs, oldest first."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._vens: OrderedDict[str, dict[str, deque]] = OrderedDict()

    def add(self, ven_id: str, payload: dict) -> None:
        """Keep the numeric readings of an accepted oadrUpdateReport from ``ven_id``."""
        for report in payload.get("reports") or []:
            for r_id, data in readings_of(report).items():
                for at, value in data:
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                        continue                 # a status payload, or nothing to draw
                    self._series(ven_id, r_id).append((at, float(value)))

    def _series(self, ven_id: str, r_id: str) -> deque:
        per_ven = self._vens.get(ven_id)
        if per_ven is None:
            if len(self._vens) >= MAX_VENS:
                self._vens.popitem(last=False)
            per_ven = self._vens[ven_id] = {}
        else:
            self._vens.move_to_end(ven_id)
        series = per_ven.get(r_id)
        if series is None:
            if len(per_ven) >= MAX_R_IDS:
                per_ven.pop(next(iter(per_ven)))
            series = per_ven[r_id] = deque(maxlen=self.keep)
        return series

    def forget(self, ven_id: str) -> None:
        self._vens.pop(ven_id, None)

    def view(self, ven_id: str | None = None) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """venID -> rID -> [{"at": ISO time, "value": number}], for the API and the chart."""
        chosen = self._vens.items() if ven_id is None else [(ven_id, self._vens.get(ven_id, {}))]
        return {ven: {r_id: [{"at": _when(at), "value": value} for at, value in series]
                      for r_id, series in per_ven.items()} for ven, per_ven in chosen}


def _when(at: datetime | None) -> str | None:
    return format_datetime(at) if isinstance(at, datetime) else None
