"""What every control route shares: the desk, the dashboards' feed, the readings, the metrics
and who may come in; kept on the aiohttp application under :data:`CONTROL`."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .auth import Sessions, Tokens
from .desk import OperatorDesk
from .live import LiveFeed
from .metrics import VTNMetrics
from .readings import Readings


@dataclass
class Control:
    """The control listener's view of one VTN."""

    desk: OperatorDesk
    feed: LiveFeed
    metrics: VTNMetrics
    tokens: Tokens
    sessions: Sessions
    #: Whether the listener speaks TLS (session cookies are then Secure).
    tls: bool = False

    @property
    def readings(self) -> Readings:
        return self.feed.readings

    def changed(self, *topics: str) -> None:
        """Something changed through this listener: tell the dashboards now."""
        self.feed.changed(*topics)


CONTROL: web.AppKey[Control] = web.AppKey("control", Control)

#: Who a request is from (a token's name, a certificate's subject), set by the authentication.
WHO = web.RequestKey("who", str) if hasattr(web, "RequestKey") else "who"     # RequestKey: aiohttp 3.12+
