"""The alerts the desk keeps for the supervisors' wallboard: `call.alert` of calls in progress, and of the last
hour's ended ones (a supervisor who looked away still sees it)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from events.bus import BusReader, CallEvent, EventBus
from events.contract import CallAlert, CallEnded

ENDED_ALERT_KEPT = timedelta(hours=1)
ALERTS_KEPT = 500


class AlertBoard:
    """The alerts of calls in progress (and of the last hour's ended ones), read off the bus."""

    def __init__(self) -> None:
        self._alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._reader: BusReader | None = None

    def start(self, bus: EventBus) -> None:
        if self._reader is None:
            self._reader = BusReader(bus, self.take, "alert-board")
            self._reader.start()

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    def take(self, event: CallEvent) -> None:
        body = event.body
        if isinstance(body, CallAlert):
            alert = self._alerts.setdefault(
                body.call_id,
                {"call_id": body.call_id, "caller_number": body.caller_number, "words": [], "at": event.ts},
            )
            alert["words"] = list(dict.fromkeys([*alert["words"], *body.words]))
            alert["text"], alert["at"], alert["ended_at"] = body.text, event.ts, None
            self._alerts.move_to_end(body.call_id)
            while len(self._alerts) > ALERTS_KEPT:
                self._alerts.popitem(last=False)
        elif isinstance(body, CallEnded) and body.call_id in self._alerts:
            self._alerts[body.call_id]["ended_at"] = event.ts

    def current(self, now: datetime) -> list[dict[str, Any]]:
        """Newest first; ended calls' alerts for an hour after their end."""
        kept = [a for a in self._alerts.values() if a["ended_at"] is None or now - a["ended_at"] < ENDED_ALERT_KEPT]
        return sorted(kept, key=lambda alert: alert["at"], reverse=True)
