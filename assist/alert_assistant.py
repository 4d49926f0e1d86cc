"""The alert assistant: flags a call whose caller says a word a supervisor must hear of at once (自杀, 爆炸,
燃气泄漏 …), publishing `call.alert` with the words and the line; the supervisors' wallboard shows the call. Only a bus
subscriber, like the map and ticket assistants. A word is matched once per call, so a caller repeating it does
not flood the wallboard.
"""

from __future__ import annotations

from collections import OrderedDict

from events.bus import BusReader, CallEvent, EventBus
from events.contract import CallAlert, CallEnded, TranscriptFinal

ALERT_SPEAKERS = frozenset({"caller", "interpreter"})
CALLS_KEPT = 5000  # calls whose words were already flagged (ended calls leave; this bounds a crash's leftovers)


class AlertAssistant:
    def __init__(self, bus: EventBus, words: list[str]) -> None:
        self.bus = bus
        self.words = tuple(dict.fromkeys(words))
        self.alerts = 0
        self._flagged: OrderedDict[str, set[str]] = OrderedDict()
        self._reader = BusReader(bus, self.take, "alert-assistant")

    def start(self) -> None:
        self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()

    def take(self, event: CallEvent) -> None:
        body = event.body
        if isinstance(body, CallEnded):
            self._flagged.pop(body.call_id, None)
            return
        if not isinstance(body, TranscriptFinal) or body.speaker not in ALERT_SPEAKERS:
            return
        text = body.text.replace(" ", "")
        seen = self._flagged.setdefault(body.call_id, set())
        found = [word for word in self.words if word in text and word not in seen]
        if not found:
            return
        seen.update(found)
        self._flagged.move_to_end(body.call_id)
        while len(self._flagged) > CALLS_KEPT:
            self._flagged.popitem(last=False)
        self.alerts += 1
        self.bus.send(
            CallAlert(
                call_id=body.call_id,
                caller_number=body.caller_number,
                language=body.language,
                segment_id=body.segment_id,
                words=found,
                text=body.text[:500],
            )
        )
