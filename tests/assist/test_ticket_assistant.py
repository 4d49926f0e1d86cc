"""The ticket assistant on a real bus: caller finals and the map card in, `ticket.draft` out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from assist.address.extract import AddressExtractor
from assist.ticket.catalogue import load_catalogue
from assist.ticket_assistant import TicketAssistant
from events.address import AddressCandidate
from events.bus import CallEvent, EventBus, Subscription
from events.contract import AddressCandidatesEvent, TicketDraftEvent, TranscriptFinal

ABOUT = {"call_id": "c1", "caller_number": "13800138000", "language": "zh"}


def final(segment_id: str, text: str, speaker: str = "caller") -> TranscriptFinal:
    return TranscriptFinal.model_validate(
        {
            **ABOUT,
            "segment_id": segment_id,
            "speaker": speaker,
            "start_ms": 0,
            "text": text,
            "end_ms": 1,
            "confidence": 1,
        }
    )


async def next_draft(events: Subscription, timeout: float = 2.0) -> TicketDraftEvent:
    async with asyncio.timeout(timeout):
        while True:
            event = await events.get()
            if isinstance(event.body, TicketDraftEvent):
                return event.body


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    bus = EventBus()
    assistant = TicketAssistant(bus, load_catalogue())
    assistant.start()
    yield bus
    await assistant.stop()


async def test_the_draft_follows_the_callers_words_and_the_map_card(bus: EventBus) -> None:
    with bus.subscribed() as events:
        bus.send(final("s1", "我们楼的电梯坏了三天了"))
        first = await next_draft(events)
        assert first.category_code == "01.02.03" and first.district is None and first.caller_number == "13800138000"
        place = AddressCandidate(
            district="海淀区",
            town="中关村街道",
            community=None,
            adcode="110108012",
            town_code="110108012",
            level="town",
            confidence=0.9,
            source="gazetteer",
        )
        bus.send(AddressCandidatesEvent(**ABOUT, segment_id="s2", text="海淀区中关村街道", candidates=[place]))
        second = await next_draft(events)
        assert (second.district, second.town) == ("海淀区", "中关村街道")
        bus.send(final("s3", "好的好的", speaker="operator"))  # the operator's words are not the caller's matter
        bus.send(final("s4", "有人困在电梯里出不来了"))
        third = await next_draft(events)
    assert third.category_code == "01.02.04" and third.response == "2h" and "困在电梯" in third.urgent_words
    assert third.segments == 2


async def test_a_line_that_changes_nothing_publishes_nothing_and_the_call_end_forgets_it(bus: EventBus) -> None:
    with bus.subscribed() as events:
        bus.send(final("s1", "路灯坏了"))
        await next_draft(events)
        bus.emit(
            "transcript.final", "c2", segment_id="x", speaker="caller", start_ms=0, text="", end_ms=0, confidence=0
        )
        await asyncio.sleep(0.1)
        assert not [e for e in drain(events) if e.type == "ticket.draft"]
        bus.emit("call.ended", "c1", reason="caller_hangup")
        bus.send(final("s2", "路灯坏了"))
        fresh = await next_draft(events)
    assert fresh.segments == 1  # a new call with the same id starts from nothing


async def test_the_summary_writes_misheard_place_names_as_the_card_resolved_them(
    bus: EventBus, extractor: AddressExtractor
) -> None:
    heard = "您好,我家就在海电器中官村接等。楼下的路都坏了三天了"  # Whisper base on 海淀区中关村街道, through a call
    card = extractor.extract(heard, "s1")
    assert card.top is not None and card.top.town == "中关村街道"
    with bus.subscribed() as events:
        bus.send(final("s1", heard))
        assert "海电器中官村接等" in (await next_draft(events)).summary
        bus.send(AddressCandidatesEvent(**ABOUT, **card.model_dump()))
        fixed = await next_draft(events)
    assert fixed.summary is not None and "海淀区中关村街道" in fixed.summary and "海电" not in fixed.summary
    assert fixed.summary.endswith("楼下的路都坏了三天了")


def drain(events: Subscription) -> list[CallEvent]:
    out = []
    while events.pending():
        out.append(events._queue.get_nowait())
    return out
