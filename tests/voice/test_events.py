"""The in-process event bus: every subscriber sees every event in order; a slow one loses the oldest."""

from __future__ import annotations

from voice.events import EventBus


async def test_each_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for n in range(3):
        bus.emit("transcript.final", "call-1", text=f"line {n}")
    for sub in (first, second):
        got = [(await sub.get()).data["text"] for _ in range(3)]
        assert got == ["line 0", "line 1", "line 2"]


async def test_slow_subscriber_drops_oldest_and_counts() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=2)
    for n in range(5):
        bus.emit("call.offered", f"call-{n}")
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
