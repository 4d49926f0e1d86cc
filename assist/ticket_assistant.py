"""The ticket assistant: keeps a ticket draft per call from the caller's final lines and the map card, and
publishes `ticket.draft` on the bus each time it changes. Like the map assistant, only a bus subscriber.

The place comes from the operator's confirmation when there is one, else from the map card's best candidate.
The summary writes a place name the recogniser misheard as the card's official name, as the desk's transcript
shows it (the card's sound-alike mentions of that line).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from assist.ticket.catalogue import Catalogue
from assist.ticket.draft import Line, PlaceFix, draft
from events.address import AddressCandidate, AddressCandidates
from events.bus import BusReader, CallEvent, EventBus
from events.contract import AddressCandidatesEvent, AddressConfirmed, CallEnded, TicketDraftEvent, TranscriptFinal
from events.ticket import TicketDraft

TICKET_SPEAKERS = frozenset({"caller", "interpreter"})


@dataclass
class _Call:
    caller_number: str | None = None
    language: str | None = None
    lines: list[Line] = field(default_factory=list)
    place: AddressCandidate | None = None
    confirmed: bool = False
    last: TicketDraft | None = None


class TicketAssistant:
    def __init__(self, bus: EventBus, catalogue: Catalogue) -> None:
        self.bus = bus
        self.catalogue = catalogue
        self.drafts = 0
        self._calls: dict[str, _Call] = {}
        self._reader = BusReader(bus, self.take, "ticket-assistant")

    def start(self) -> None:
        self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()

    def take(self, event: CallEvent) -> None:
        body = event.body
        if isinstance(body, CallEnded):
            self._calls.pop(body.call_id, None)
            return
        if isinstance(body, TranscriptFinal):
            if body.speaker not in TICKET_SPEAKERS or not body.text.strip():
                return
            call = self._call(event.call_id, body.caller_number, body.language)
            call.lines.append(Line(body.segment_id, body.text))
        elif isinstance(body, AddressCandidatesEvent):
            if not body.candidates:
                return
            call = self._call(event.call_id, body.caller_number, body.language)
            _correct_line(call.lines, body)
            if not call.confirmed:
                call.place = body.candidates[0]
        elif isinstance(body, AddressConfirmed):
            call = self._call(event.call_id, body.caller_number, body.language)
            call.confirmed = True
            call.place = AddressCandidate(
                district=body.district,
                town=body.town,
                community=body.community,
                adcode="",
                lng=body.lng,
                lat=body.lat,
                level="community" if body.community else "town" if body.town else "district",
                confidence=1.0,
                source="operator",
            )
        else:
            return
        self._publish(event.call_id, call)

    def _call(self, call_id: str, caller_number: str | None, language: str | None) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(caller_number, language)
        return call

    def _publish(self, call_id: str, call: _Call) -> None:
        ticket = draft(call.lines, call.place, self.catalogue)
        if ticket == call.last:
            return
        call.last = ticket
        self.drafts += 1
        self.bus.send(
            TicketDraftEvent(
                **ticket.model_dump(), call_id=call_id, caller_number=call.caller_number, language=call.language
            )
        )


def _correct_line(lines: list[Line], card: AddressCandidates) -> None:
    """Give the line the card was made from the card's misheard place names (the last card of a line wins)."""
    top = card.top
    if top is None:
        return
    fixes = tuple(
        PlaceFix(m.start, m.end, m.text, m.name)
        for m in top.mentions
        if m.source == "final" and m.kind == "phonetic" and m.name and "/" not in m.name and m.text != m.name
    )
    for i, line in enumerate(lines):
        if line.segment_id == card.segment_id:
            lines[i] = replace(line, fixes=fixes)
