"""The gateway's recogniser on a pool of real worker processes: placement, failover, waiting, flush at hang-up
(real `hotline asr serve` processes on loopback, the packaged Whisper model, real Mandarin speech)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asr.audio import ASR_RATE, float_to_pcm16
from asr.engine import Segment
from asr.remote.pool import RemoteEngine
from asr.remote.stream import RemoteStream
from asr.telephone import telephone_path
from tests.asr.remote.support import WorkerProcess, pool_settings, workers
from tools.asr_eval.cer import corpus_cer
from tools.asr_eval.corpus import Clip, load_set

pytestmark = pytest.mark.slow

FRAME = 640  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def clips(speech_root: Path) -> list[Clip]:
    return load_set("thchs30-d4", speech_root)


def pcm(clip: Clip) -> bytes:
    return float_to_pcm16(telephone_path(clip.audio()))


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * ASR_RATE) * 2)


class Caller:
    """Pushes audio into a stream at `speed` x real time and records every segment with when it came."""

    def __init__(self, stream: RemoteStream, speed: float = 2.0) -> None:
        self.stream = stream
        self.speed = speed
        self.segments: list[tuple[float, Segment]] = []
        self.pushed_s = 0.0
        self._collector = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for segment in self.stream.segments():
            self.segments.append((time.monotonic(), segment))

    async def say(self, audio: bytes, at_s: Callable[[float], None] | None = None, when_s: float = -1) -> None:
        """Push `audio`; once `when_s` seconds of it are in, call `at_s` (a kill, a stop ...)."""
        began, done = time.monotonic(), 0
        for offset in range(0, len(audio), FRAME):
            self.stream.push(audio[offset : offset + FRAME])
            done += FRAME
            self.pushed_s += FRAME / 2 / ASR_RATE
            if at_s is not None and done / 2 / ASR_RATE >= when_s:
                at_s(time.monotonic())
                at_s = None
            delay = began + done / 2 / ASR_RATE / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def hang_up(self) -> None:
        await asyncio.wait_for(self.stream.finish(), 120)
        await asyncio.wait_for(self._collector, 10)

    def of_kind(self, kind: str) -> list[Segment]:
        return [s for _, s in self.segments if s.kind == kind]

    def finals(self) -> list[Segment]:
        return [s for s in self.of_kind("final") if s.text]


def numbered_in_order(caller: Caller) -> bool:
    """Finals and gaps came in the order of their numbers, each number once."""
    numbers = [int(s.segment_id.rsplit(":", 1)[1]) for _, s in caller.segments if s.kind in ("final", "gap")]
    return numbers == sorted(set(numbers))


def test_new_streams_go_to_the_least_loaded_worker() -> None:
    with workers("p1", "p2") as (one, two):

        async def go() -> list[str]:
            engine = RemoteEngine(pool_settings([one.url, two.url]))
            await engine.start()
            await asyncio.sleep(0.5)  # both have told their load
            streams = [engine.open_stream(f"s{i}", "caller") for i in range(6)]
            placed = [s.attachment.link.url for s in streams if s.attachment is not None]
            await engine.aclose()
            return placed

        placed = asyncio.run(go())
    assert len(placed) == 6 and placed.count(one.url) == 3 and placed.count(two.url) == 3


def test_a_worker_killed_mid_utterance_loses_nothing(clips: list[Clip]) -> None:
    """kill -9 the worker while the caller is in the middle of a sentence: the stream moves to the other worker
    within a second, the kept audio is replayed there, and the sentence still arrives as a final."""
    first, second = pcm(clips[1]), pcm(clips[4])
    with workers("k1", "k2") as (one, two):
        by_url = {one.url: one, two.url: two}

        async def go() -> tuple[Caller, float, float]:
            engine = RemoteEngine(pool_settings([one.url, two.url]))
            await engine.start()
            stream = engine.open_stream("call-k:caller:1", "caller")
            caller = Caller(stream)
            await caller.say(silence(0.5) + first + silence(1.5))
            assert stream.attachment is not None
            doomed = by_url[stream.attachment.link.url]
            killed_at: list[float] = []

            def kill(now: float) -> None:
                killed_at.append(now)
                doomed.kill()

            moved_at: list[float] = []

            async def watch() -> None:
                while not (stream.attachment and stream.attachment.acked and stream.moves):
                    await asyncio.sleep(0.01)
                moved_at.append(time.monotonic())

            watcher = asyncio.create_task(watch())
            await caller.say(second + silence(1.5), kill, when_s=len(second) / 2 / ASR_RATE / 2)
            await asyncio.wait_for(watcher, 10)
            await caller.hang_up()
            await engine.aclose()
            return caller, killed_at[0], moved_at[0]

        caller, killed, moved = asyncio.run(go())
    assert caller.stream.moves == 1
    assert moved - killed < 1.0, f"took {moved - killed:.2f} s to move"
    finals = caller.finals()
    said = clips[1].reference + clips[4].reference
    heard = "".join(s.text for s in finals)
    assert corpus_cer([(said, heard)]).cer < 0.45, heard
    second_heard = "".join(s.text for s in finals if s.start_ms > 2000 + len(first) // 32)
    assert corpus_cer([(clips[4].reference, second_heard)]).cer < 0.5, second_heard  # the interrupted sentence
    assert not caller.of_kind("gap") and numbered_in_order(caller)
    assert [s.start_ms for s in finals] == sorted(s.start_ms for s in finals)
    assert len({s.segment_id for s in finals}) == len(finals), "a final was repeated"


def test_without_replay_the_lost_span_is_a_gap(clips: list[Clip]) -> None:
    """With nothing kept to replay, the sentence the killed worker had is reported as a gap, then finals go on."""
    with workers("g1", "g2") as (one, two):
        by_url = {one.url: one, two.url: two}

        async def go() -> Caller:
            engine = RemoteEngine(pool_settings([one.url, two.url], replay_s=0))
            await engine.start()
            caller = Caller(engine.open_stream("call-g:caller:1", "caller"))
            await caller.say(silence(0.5))
            assert caller.stream.attachment is not None
            doomed = by_url[caller.stream.attachment.link.url]
            await caller.say(pcm(clips[4]), lambda _: doomed.kill(), when_s=4.0)
            await caller.say(silence(1.0) + pcm(clips[1]) + silence(1.5))
            await caller.hang_up()
            await engine.aclose()
            return caller

        caller = asyncio.run(go())
    gaps = caller.of_kind("gap")
    assert len(gaps) == 1 and gaps[0].error and "lost" in gaps[0].error
    assert gaps[0].start_ms <= 1000 and gaps[0].end_ms >= 4000  # from the last settled audio to the move
    after = [s for s in caller.finals() if s.start_ms >= gaps[0].end_ms]
    # Then finals go on: at least the next sentence. Whether what was left of the interrupted one makes a final of
    # its own depends on where in it the kill lands (a short remainder is only a retracted partial).
    assert after, [(s.kind, s.segment_id, s.start_ms, s.end_ms, s.text) for _, s in caller.segments]
    assert not [s for s in caller.finals() if gaps[0].start_ms < s.end_ms and s.start_ms < gaps[0].end_ms]
    assert corpus_cer([(clips[1].reference, after[-1].text)]).cer < 0.5, after[-1].text
    assert numbered_in_order(caller)


def test_with_every_worker_down_the_stream_waits_and_resumes(clips: list[Clip]) -> None:
    """No worker at all: the stream says transcription is unavailable, keeps what it may, and when a worker comes
    back it says so, reports what it had to drop as a gap and transcribes again."""
    with workers("d1") as (one,):

        async def go() -> Caller:
            engine = RemoteEngine(pool_settings([one.url], replay_s=3))
            await engine.start()
            caller = Caller(engine.open_stream("call-d:caller:1", "caller"), speed=4.0)
            await caller.say(silence(0.3) + pcm(clips[1]) + silence(1.2))
            while not caller.finals():  # its first sentence is decoded before the worker dies
                await caller.say(silence(0.1))
            one.kill()
            await caller.say(silence(6.0))  # more than replay_s: the oldest goes
            restarted = WorkerProcess("d1", port=one.port).start()
            one.proc = restarted.proc
            await caller.say(silence(0.5) + pcm(clips[2]) + silence(1.5))
            await caller.hang_up()
            await engine.aclose()
            return caller

        caller = asyncio.run(go())
    statuses = [s.status for s in caller.of_kind("status")]
    assert statuses == ["unavailable", "resumed"]
    unavailable = caller.of_kind("status")[0]
    assert unavailable.error and "no ASR worker" in unavailable.error
    gaps = caller.of_kind("gap")
    assert len(gaps) == 1 and gaps[0].end_ms - gaps[0].start_ms >= 2000
    texts = [s.text for s in caller.finals()]
    assert len(texts) >= 2, texts
    assert corpus_cer([(clips[2].reference, texts[-1])]).cer < 0.5, texts  # after the worker came back
    assert numbered_in_order(caller)


def test_hang_up_mid_sentence_still_gives_its_final(clips: list[Clip]) -> None:
    with workers("h1") as (one,):

        async def go() -> Caller:
            engine = RemoteEngine(pool_settings([one.url]))
            await engine.start()
            caller = Caller(engine.open_stream("call-h:caller:1", "caller"), speed=4.0)
            await caller.say(silence(0.3) + pcm(clips[1]))  # no silence after: the endpoint never came
            await caller.hang_up()
            await engine.aclose()
            return caller

        caller = asyncio.run(go())
    assert len(caller.finals()) == 1
    assert corpus_cer([(clips[1].reference, caller.finals()[0].text)]).cer < 0.4


def test_a_stalled_worker_is_left_within_a_second(clips: list[Clip]) -> None:
    """A worker that stops answering (SIGSTOP: the socket stays open) is taken for lost after stall_ms."""
    with workers("s1", "s2") as (one, two):
        by_url = {one.url: one, two.url: two}
        frozen: list[WorkerProcess] = []

        async def go() -> tuple[Caller, float]:
            engine = RemoteEngine(pool_settings([one.url, two.url]))
            await engine.start()
            stream = engine.open_stream("call-s:caller:1", "caller")
            caller = Caller(stream, speed=1.0)
            await caller.say(silence(0.3))
            assert stream.attachment is not None
            doomed = by_url[stream.attachment.link.url]
            frozen.append(doomed)
            stopped: list[float] = []

            def stop(now: float) -> None:
                stopped.append(now)
                doomed.signal(signal.SIGSTOP)

            await caller.say(pcm(clips[1])[: 2 * ASR_RATE * 2], stop, when_s=1.0)
            while not (stream.attachment and stream.attachment.acked and stream.moves):
                await asyncio.sleep(0.01)
            moved = time.monotonic() - stopped[0]
            await caller.say(pcm(clips[1])[2 * ASR_RATE * 2 :] + silence(1.5))
            await caller.hang_up()
            await engine.aclose()
            return caller, moved

        try:
            caller, moved = asyncio.run(go())
        finally:
            for process in frozen:
                process.signal(signal.SIGCONT)
    assert moved < 1.2, f"took {moved:.2f} s"  # stall_ms 800 + the move
    assert corpus_cer([(clips[1].reference, "".join(s.text for s in caller.finals()))]).cer < 0.45


def test_a_pause_of_the_gateway_is_not_taken_for_a_lost_worker(clips: list[Clip]) -> None:
    """The gateway's own loop held up longer than stall_ms (a garbage-collector pass over a big heap does that)
    while the worker goes on answering: the stream stays where it is and its sentence arrives whole."""
    audio = pcm(clips[1])
    with workers("h1") as (one,):

        async def go() -> Caller:
            engine = RemoteEngine(pool_settings([one.url]))
            await engine.start()
            caller = Caller(engine.open_stream("call-h:caller:1", "caller"))
            await caller.say(silence(0.5) + audio[: len(audio) // 2])
            assert caller.stream.attachment is not None and caller.stream.attachment.acked
            time.sleep(1.5)  # blocks the loop: the worker's heartbeats wait in the socket meanwhile
            await caller.say(audio[len(audio) // 2 :] + silence(1.5))
            await caller.hang_up()
            await engine.aclose()
            return caller

        caller = asyncio.run(go())
    assert caller.stream.moves == 0
    assert not caller.of_kind("gap") and not caller.of_kind("status")
    assert corpus_cer([(clips[1].reference, "".join(s.text for s in caller.finals()))]).cer < 0.45


def test_when_every_worker_is_full_a_stream_queues_and_gets_the_next_free_place(clips: list[Clip]) -> None:
    """Back-pressure: a worker with room for one stream; the second stream says it is queued (never silent) and
    is transcribed once the first one ends."""
    one = WorkerProcess("f1", max_streams=1).start()
    try:

        async def go() -> tuple[Caller, Caller]:
            engine = RemoteEngine(pool_settings([one.url]))
            await engine.start()
            first = Caller(engine.open_stream("call-f1:caller:1", "caller"), speed=4.0)
            await asyncio.sleep(0.5)  # the worker's load says it is full
            second = Caller(engine.open_stream("call-f2:caller:1", "caller"), speed=4.0)
            await asyncio.gather(
                first.say(silence(0.3) + pcm(clips[1]) + silence(1.2)),
                second.say(silence(0.3) + pcm(clips[2]) + silence(1.2)),
            )
            await first.hang_up()  # its place frees up
            await second.hang_up()
            await engine.aclose()
            return first, second

        first, second = asyncio.run(go())
    finally:
        one.stop()
    assert not first.of_kind("status")
    statuses = second.of_kind("status")
    assert [s.status for s in statuses] == ["queued", "resumed"]
    assert statuses[0].error == "every ASR worker is full"
    assert corpus_cer([(clips[2].reference, "".join(s.text for s in second.finals()))]).cer < 0.5
