"""Cross-stream batching: how the batcher forms batches (quick), and real Whisper decodes in batches (slow)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from asr.audio import FloatArray
from asr.batching import Batcher
from asr.faster_whisper_engine import FasterWhisperEngine
from asr.settings import AsrSettings
from asr.telephone import telephone_path
from asr.whisper_decoder import Decoded, Encoded
from tests.asr.support import pcm_of, run_stream, with_silence
from tools.asr_eval.cer import corpus_cer
from tools.asr_eval.corpus import load_set


class Recorder:
    """A batch function that records what it was given, holds the first batch until released, and fails on
    request."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []  # the first sample of each audio in each batch
        self.encoded: list[int] = []  # how many of each batch came already encoded
        self.release = threading.Event()
        self.fail = False

    def __call__(
        self,
        items: Sequence[tuple[FloatArray, Sequence[int]]],
        min_input_s: float | None,
        encoded: Sequence[Encoded] | None,
    ) -> list[Decoded]:
        self.batches.append([int(audio[0]) for audio, _ in items])
        self.encoded.append(len(encoded or ()))
        if len(self.batches) == 1:
            self.release.wait(5)
        if self.fail:
            raise RuntimeError("decode failed")
        return [Decoded(str(int(audio[0])), 1.0, 0.0, 1) for audio, _ in items]


def ask(
    batcher: Batcher,
    n: int,
    prompt_length: int,
    out: dict[int, str | Exception],
    priority: int = 0,
    encoded: Encoded | None = None,
) -> threading.Thread:
    def run() -> None:
        try:
            out[n] = batcher.decode(np.full(10, n, np.float32), [0] * prompt_length, priority, None, encoded).text
        except Exception as exc:
            out[n] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_what_queues_up_during_a_batch_runs_as_the_next_batch_by_prompt_length() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch=3)
    out: dict[int, str | Exception] = {}
    threads = [ask(batcher, 0, 5, out)]
    time.sleep(0.1)  # the first runs alone and holds the batcher
    threads += [ask(batcher, n, 7 if n == 2 else 5, out) for n in range(1, 6)]
    time.sleep(0.2)
    recorder.release.set()
    for thread in threads:
        thread.join(5)
    batcher.close()
    assert out == {n: str(n) for n in range(6)}  # each caller got its own result
    assert recorder.batches[0] == [0]
    assert recorder.batches[1] == [1, 3, 4]  # at most three, all with the first's prompt length, oldest first
    assert sorted(n for batch in recorder.batches[2:] for n in batch) == [2, 5]
    assert all(2 not in batch or batch == [2] for batch in recorder.batches)  # never with another prompt length
    assert batcher.decodes == 6 and batcher.batches == len(recorder.batches)


def test_finals_go_ahead_of_partials_that_waited_longer() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch=2)
    out: dict[int, str | Exception] = {}
    threads = [ask(batcher, 0, 5, out)]
    time.sleep(0.1)
    for n in (1, 2, 3):  # partials first
        threads.append(ask(batcher, n, 5, out, priority=1))
        time.sleep(0.02)
    threads.append(ask(batcher, 4, 5, out, priority=0))  # then a final
    time.sleep(0.1)
    assert batcher.backlog == 4
    recorder.release.set()
    for thread in threads:
        thread.join(5)
    batcher.close()
    assert recorder.batches[1] == [4, 1]  # the final, then the oldest partial
    assert recorder.batches[2] == [2, 3]


def test_decodes_that_come_encoded_batch_only_with_their_like() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch=4)
    out: dict[int, str | Exception] = {}
    threads = [ask(batcher, 0, 5, out)]
    time.sleep(0.1)
    short, long = np.zeros((1, 200, 8), np.float32), np.zeros((1, 500, 8), np.float32)
    for n, encoded in ((1, short), (2, None), (3, long), (4, short)):
        threads.append(ask(batcher, n, 5, out, encoded=encoded))
        time.sleep(0.02)
    recorder.release.set()
    for thread in threads:
        thread.join(5)
    batcher.close()
    assert out == {n: str(n) for n in range(5)}
    assert list(zip(recorder.batches, recorder.encoded, strict=True))[1:] == [([1, 4], 2), ([2], 0), ([3], 1)]


def test_a_failed_batch_fails_its_decodes_and_the_batcher_goes_on() -> None:
    recorder = Recorder()
    recorder.release.set()
    recorder.fail = True
    batcher = Batcher(recorder, max_batch=4)
    out: dict[int, str | Exception] = {}
    ask(batcher, 1, 5, out).join(5)
    recorder.fail = False
    ask(batcher, 2, 5, out).join(5)
    batcher.close()
    assert isinstance(out[1], RuntimeError) and out[2] == "2"


@pytest.mark.slow
def test_real_decodes_in_one_batch_read_like_decodes_alone(
    whisper_engine: FasterWhisperEngine, speech_root: Path
) -> None:
    clips = load_set("thchs30-d4", speech_root)[:4]
    audios = [telephone_path(c.audio()) for c in clips]
    decoder = whisper_engine.decoder
    prompt = decoder.prompt_tokens()
    alone = [decoder.decode(audio, prompt).text for audio in audios]
    together = [d.text for d in decoder.decode_batch([(audio, prompt) for audio in audios])]
    refs = [c.reference for c in clips]
    cer_alone = corpus_cer(list(zip(refs, alone, strict=True))).cer
    cer_together = corpus_cer(list(zip(refs, together, strict=True))).cer
    assert cer_together <= cer_alone + 0.05, (alone, together)
    with pytest.raises(ValueError, match="one length"):
        decoder.decode_batch([(audios[0], prompt), (audios[1], decoder.prompt_tokens(["朝阳区", "海淀区"]))])


@pytest.mark.slow
def test_streams_of_a_batching_engine_share_decodes(speech_root: Path) -> None:
    engine = FasterWhisperEngine(AsrSettings(cpu_threads=1, workers=1, batch_size=4))
    clips = load_set("thchs30-d4", speech_root)[:4]
    try:

        async def go() -> list[str]:
            runs = [
                run_stream(engine.open_stream(f"b{i}", "caller"), pcm_of(with_silence([telephone_path(c.audio())])))
                for i, c in enumerate(clips)
            ]
            return [run.final_text() for run in await asyncio.gather(*runs)]

        texts = asyncio.run(go())
        assert engine.batcher is not None
        batches, decodes = engine.batcher.batches, engine.batcher.decodes
    finally:
        engine.close()
    cer = corpus_cer([(c.reference, t) for c, t in zip(clips, texts, strict=True)]).cer
    assert cer < 0.35, texts
    assert decodes > batches, (decodes, batches)  # several streams' decodes ran together
