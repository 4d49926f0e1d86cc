"""Stopping a reader whose wait gets its value just as the cancel arrives (Python 3.11's wait_for loses that
cancel: a stopped desk instance read the bus's stream on, and its shutdown waited for ever)."""

from __future__ import annotations

import asyncio

import pytest

from events.tasks import cancel_and_wait


async def read_for_ever(queue: asyncio.Queue[int], read: list[int]) -> None:
    while True:
        read.append(await asyncio.wait_for(queue.get(), 5.0))


@pytest.mark.parametrize("turns", range(6))  # where in the delivery of the value the cancel lands
async def test_a_reader_is_stopped_even_when_its_value_arrives_with_the_cancel(turns: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    read: list[int] = []
    reader = asyncio.create_task(read_for_ever(queue, read))
    await asyncio.sleep(0)
    queue.put_nowait(1)
    for _ in range(turns):
        await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(reader))
    await asyncio.wait({stopping}, timeout=2.0)  # not a cancel of our own: that would reach the reader too
    assert stopping.done() and reader.done()
    assert read in ([], [1])


async def test_what_a_task_raised_is_raised_to_whoever_stops_it() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="broken"):
        await cancel_and_wait(task)
