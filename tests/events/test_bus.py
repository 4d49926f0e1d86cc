"""The in-process event bus: every subscriber sees every event in order; a slow one loses the oldest."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from events.bus import EventBus
from events.contract import InvalidEvent, TranscriptFinal


async def test_each_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for n in range(3):
        bus.emit(
            "transcript.final", "call-1", text=f"line {n}", segment_id=f"s{n}", speaker="caller",
            start_ms=0, end_ms=900, confidence=0.9,
        )  # fmt: skip
    for sub in (first, second):
        got = [(await sub.get()).data["text"] for _ in range(3)]
        assert got == ["line 0", "line 1", "line 2"]


async def test_slow_subscriber_drops_oldest_and_counts() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=2)
    for n in range(5):
        bus.emit("call.offered", f"call-{n}", operator_id="op1001")
    assert slow.dropped == 3
    assert [(await slow.get()).call_id for _ in range(2)] == ["call-3", "call-4"]


async def test_closed_subscription_gets_nothing() -> None:
    bus = EventBus()
    with bus.subscribed() as sub:
        bus.emit("call.ended", "c")
    bus.emit("call.ended", "d")
    assert sub.pending() == 1
    message = (await sub.get()).as_message()
    assert message["type"] == "call.ended" and message["call_id"] == "c" and "ts" in message


def test_the_bus_refuses_what_is_not_in_the_contract() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for type_, data in [
        ("call.offerd", {"operator_id": "op1"}),  # a typo of a type
        ("call.offered", {}),  # a required field missing
        ("call.ended", {"reason": "completed", "secs": 3}),  # a field the contract does not have
        ("transcript.final", {"segment_id": "s1", "speaker": "robot", "start_ms": 0, "end_ms": 1, "text": "x",
                              "confidence": 1.0}),
    ]:  # fmt: skip
        with pytest.raises(InvalidEvent) as refused:
            bus.emit(type_, "c1", **data)
        assert type_ in str(refused.value)
    assert sub.pending() == 0 and bus.published == 0


def test_a_published_model_reaches_subscribers_with_the_fields_it_set() -> None:
    bus = EventBus()
    with bus.subscribed() as events:
        bus.send(
            TranscriptFinal(
                call_id="c1",
                caller_number="13800138000",
                language="zh",
                segment_id="s1",
                speaker="caller",
                start_ms=0,
                text="我家在海淀区",
                end_ms=800,
                confidence=0.9,
            )
        )
        got = events._queue.get_nowait()
    assert isinstance(got.body, TranscriptFinal) and got.body.text == "我家在海淀区"
    message = got.as_message()
    assert message["type"] == "transcript.final" and message["call_id"] == "c1"
    assert message["text"] == "我家在海淀区" and "seq" not in message and "operator_id" not in message


def test_a_publisher_cannot_build_an_event_outside_the_contract() -> None:
    with pytest.raises(ValidationError, match="speaker"):
        TranscriptFinal(call_id="c1", segment_id="s1", speaker="robot", start_ms=0, text="x", end_ms=1, confidence=1)  # type: ignore[arg-type]
