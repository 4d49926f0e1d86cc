"""Ordering of segments between worker threads and the event loop (fast, no model)."""

from __future__ import annotations

import asyncio
import threading

from asr.engine import Segment
from asr.streaming import SegmentSink, Sequencer


def _sequencer() -> tuple[Sequencer, SegmentSink]:
    loop = asyncio.get_running_loop()
    sink = SegmentSink(loop)
    return Sequencer("call/caller", "caller", sink, loop), sink


async def _drain(sink: SegmentSink) -> list[Segment]:
    return [s async for s in sink]


async def test_finals_are_released_in_order_and_finish_waits_for_them() -> None:
    seq, sink = _sequencer()
    first, second = seq.close_utterance(), seq.close_utterance()
    finished = seq.start_finish()

    def worker() -> None:  # the second decode completes first, on another thread
        seq.deliver(second, seq.make("final", second, "二", 3000, 4000, 0.9))
        seq.deliver(first, seq.make("final", first, "一", 0, 1000, 0.9))
        seq.flushed()

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.wait_for(finished, 5)
    thread.join()
    out = await _drain(sink)
    assert [(s.segment_id, s.text) for s in out] == [("call/caller:0", "一"), ("call/caller:1", "二")]


async def test_partials_never_follow_their_final_and_stale_ones_are_dropped() -> None:
    seq, sink = _sequencer()
    index = seq.open_index
    assert seq.partial(index, 2, seq.make("partial", index, "你好", 0, 1000, 0.5))
    assert not seq.partial(index, 1, seq.make("partial", index, "你", 0, 500, 0.5))  # older snapshot
    closed = seq.close_utterance()
    assert not seq.partial(index, 3, seq.make("partial", index, "你好吗", 0, 1500, 0.5))  # already closed
    seq.deliver(closed, seq.make("final", closed, "你好吗", 0, 1500, 0.9))
    seq.flushed()
    out = await _drain(sink)
    assert [(s.kind, s.text) for s in out] == [("partial", "你好"), ("final", "你好吗")]


async def test_an_empty_result_withdraws_the_partials_shown() -> None:
    seq, sink = _sequencer()
    seq.partial(0, 1, seq.make("partial", 0, "嗯", 100, 900, 0.2))
    seq.deliver(seq.close_utterance(), None)  # the final decode found nothing: noise
    seq.deliver(seq.close_utterance(), None)  # nothing shown, nothing said: no segment
    seq.flushed()
    out = await _drain(sink)
    assert [(s.kind, s.segment_id, s.text, s.start_ms, s.end_ms) for s in out] == [
        ("partial", "call/caller:0", "嗯", 100, 900),
        ("final", "call/caller:0", "", 100, 900),
    ]


async def test_close_ends_the_stream_at_once() -> None:
    seq, sink = _sequencer()
    index = seq.close_utterance()
    finished = seq.start_finish()
    seq.close()
    await asyncio.wait_for(finished, 5)
    seq.deliver(index, seq.make("final", index, "太晚了", 0, 1, 1.0))  # a decode that completes after hang-up
    assert await _drain(sink) == []


async def test_an_alternative_follows_its_final_and_finish_waits_for_it() -> None:
    seq, sink = _sequencer()
    first, second = seq.close_utterance(), seq.close_utterance()
    finished = seq.start_finish()
    go_on = threading.Event()

    def worker() -> None:
        seq.deliver(second, seq.make("final", second, "二", 3000, 4000, 0.9))  # waits for the first
        seq.follow_up(second, seq.make("alternative", second, "二'", 3000, 4000, 0.9))  # held until its final
        seq.deliver(first, seq.make("final", first, "一", 0, 1000, 0.9), follow_up=True)
        seq.flushed()
        go_on.wait(5)
        seq.follow_up(first, seq.make("alternative", first, "一'", 0, 1000, 0.9))

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.sleep(0.2)
    assert not finished.done()  # the first utterance's second reading is still being decoded
    go_on.set()
    await asyncio.wait_for(finished, 5)
    thread.join()
    out = [(s.kind, s.text) for s in await _drain(sink)]
    assert out == [("final", "一"), ("final", "二"), ("alternative", "二'"), ("alternative", "一'")]


async def test_no_alternative_after_all_still_lets_finish_end() -> None:
    seq, sink = _sequencer()
    index = seq.close_utterance()
    finished = seq.start_finish()
    seq.deliver(index, seq.make("final", index, "一", 0, 1000, 0.9), follow_up=True)
    seq.flushed()
    await asyncio.sleep(0.05)
    assert not finished.done()
    seq.follow_up(index, None)
    await asyncio.wait_for(finished, 5)
    assert [s.kind for s in await _drain(sink)] == ["final"]


async def test_two_second_readings_follow_their_final_in_order() -> None:
    seq, sink = _sequencer()
    first, second = seq.close_utterance(), seq.close_utterance()
    finished = seq.start_finish()
    seq.deliver(second, seq.make("final", second, "二", 1000, 2000, 0.9), follow_up=True)
    guided, scored = (seq.make("alternative", second, text, 1000, 2000, 0.9) for text in ("二'", "二''"))
    seq.follow_up(second, guided, None, scored)  # held until its final is out, which waits for the first
    seq.deliver(first, seq.make("final", first, "一", 0, 1000, 0.9))
    seq.flushed()
    await asyncio.wait_for(finished, 5)
    out = [(s.kind, s.text) for s in await _drain(sink)]
    assert out == [("final", "一"), ("final", "二"), ("alternative", "二'"), ("alternative", "二''")]
