"""faster-whisper streaming on real Mandarin speech through the telephone path (slow: real model, ~1 min)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import ASR_RATE, float_to_pcm16, read_wav_16k, resample
from asr.engine import Segment
from asr.faster_whisper_engine import FasterWhisperEngine
from asr.settings import AsrSettings
from asr.telephone import TELEPHONE_RATE, g711_roundtrip, telephone_path
from asr.whisper_decoder import Decoded
from tests.asr.support import StreamRun, pcm_of, run_stream, with_silence
from tools.asr_eval.cer import corpus_cer
from tools.asr_eval.corpus import load_set

pytestmark = pytest.mark.slow

# Two streams share the one decode worker; at 2.5x real time partials still get through on a loaded 2-core
# machine (at 4x with other work running, some runs got partials for only 2 of 6 utterances).
STREAM_SPEED = 2.5
# Measured (2 cores, Whisper base int8, beam 1, 20 ms frames, telephone path, 2026-11):
# thchs30-d4 0.22, wenet-test 0.41 (46 characters: one clip alone moves it by 0.05), both sets together 0.27.
# Bounds leave room for run-to-run differences in where partial decodes and endpoints fall.
CER_BOUND_THCHS30 = 0.30
CER_BOUND_WENET = 0.55


@pytest.fixture(scope="module")
def streamed(whisper_engine: FasterWhisperEngine, speech_root: Path) -> dict[str, tuple[StreamRun, str]]:
    """thchs30-d4 as the caller and wenet-test as the operator, streamed at the same time."""
    sets = {"caller": "thchs30-d4", "operator": "wenet-test"}

    async def go() -> dict[str, tuple[StreamRun, str]]:
        runs = {}
        for speaker, name in sets.items():
            clips = load_set(name, speech_root)
            audio = with_silence([telephone_path(clip.audio()) for clip in clips])
            stream = whisper_engine.open_stream(f"call-1/{speaker}", speaker)
            runs[speaker] = (
                asyncio.create_task(run_stream(stream, pcm_of(audio), speed=STREAM_SPEED)),
                "".join(c.reference for c in clips),
            )
        return {speaker: (await task, ref) for speaker, (task, ref) in runs.items()}

    return asyncio.run(go())


def test_finals_match_the_references(streamed: dict[str, tuple[StreamRun, str]]) -> None:
    caller, caller_ref = streamed["caller"]
    operator, operator_ref = streamed["operator"]
    assert len(caller.finals()) >= 5 and len(operator.finals()) >= 3
    caller_cer = corpus_cer([(caller_ref, caller.final_text())]).cer
    operator_cer = corpus_cer([(operator_ref, operator.final_text())]).cer
    assert caller_cer <= CER_BOUND_THCHS30, (caller_cer, caller.final_text())
    assert operator_cer <= CER_BOUND_WENET, (operator_cer, operator.final_text())


def test_partials_come_before_their_final(streamed: dict[str, tuple[StreamRun, str]]) -> None:
    run, _ = streamed["caller"]
    assert run.partials(), "no partial at all"
    finals_with_partials = 0
    for final in run.finals():
        order = [s for s in run.segments if s.segment_id == final.segment_id]
        assert order[-1] is final, "a partial came after its final"
        assert all(s.kind == "partial" for s in order[:-1])
        finals_with_partials += len(order) > 1
        for partial in order[:-1]:
            # never a partial of the silence after the speech (the early decode of the final runs then)
            assert partial.start_ms == final.start_ms and partial.end_ms <= final.end_ms
    assert finals_with_partials >= 3  # of 6 utterances of 3-12 s; 5-6 when the machine is quiet
    ids = [s.segment_id for s in run.finals()]
    assert len(ids) == len(set(ids)), "a final was repeated"
    starts = [s.start_ms for s in run.finals()]
    assert starts == sorted(starts)


def test_speaker_and_stream_labels_are_carried(streamed: dict[str, tuple[StreamRun, str]]) -> None:
    for speaker in ("caller", "operator"):
        run, _ = streamed[speaker]
        assert {s.speaker for s in run.segments} == {speaker}
        assert {s.stream_id for s in run.segments} == {f"call-1/{speaker}"}
        assert all(s.segment_id.startswith(f"call-1/{speaker}:") for s in run.segments)
        assert all(0.0 < s.confidence <= 1.0 for s in run.finals())


async def test_finish_mid_utterance_yields_a_final(whisper_engine: FasterWhisperEngine, speech_root: Path) -> None:
    clip = load_set("thchs30-d4", speech_root)[4]  # 13 s of continuous read speech
    audio = telephone_path(clip.audio())
    cut = int(5.0 * ASR_RATE)
    stream = whisper_engine.open_stream("call-2/caller", "caller")
    run = await run_stream(stream, pcm_of(np.concatenate([np.zeros(8000, np.float32), audio[:cut]])), speed=8.0)
    assert run.finals(), "finish() did not flush the open utterance"
    last = run.finals()[-1]
    assert len(last.text) >= 5
    assert 3500 <= last.end_ms <= 5600
    assert corpus_cer([("由太原市南郊区寇庄村农民投资数百万元", run.final_text())]).cer < 0.6


async def test_8khz_input_is_resampled(whisper_engine: FasterWhisperEngine, speech_root: Path) -> None:
    clip = load_set("thchs30-d4", speech_root)[1]
    narrow = g711_roundtrip(resample(clip.audio(), ASR_RATE, TELEPHONE_RATE))  # what a G.711 tap decodes to
    audio = np.concatenate([np.zeros(4000, np.float32), narrow, np.zeros(8000, np.float32)])
    stream = whisper_engine.open_stream("call-3/caller", "caller", sample_rate=TELEPHONE_RATE)
    run = await run_stream(stream, float_to_pcm16(audio), frame_bytes=320, speed=8.0)
    # Measured 0.39 on this sentence (names and rare words: 鱼猎 -> 云烈), as through the 16 kHz path.
    assert corpus_cer([(clip.reference, run.final_text())]).cer <= 0.5, run.final_text()
    assert 300 <= run.finals()[0].start_ms <= 1200


class FlakyDecoder:
    """Wraps the real decoder; its decode raises for the first `failures` calls."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.calls = 0

    def prompt_tokens(self, phrases: Any = ()) -> list[int]:
        return list(self.real.prompt_tokens(phrases))

    def decode(self, audio: Any, prompt: Any, min_input_s: float | None = None, encoded: Any = None) -> Decoded:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("simulated decoder crash")
        result: Decoded = self.real.decode(audio, prompt, min_input_s, encoded)
        return result

    def encode(self, audio: Any) -> Any:
        return self.real.encode(audio)


async def test_failed_decode_reports_a_gap_and_the_stream_goes_on(
    whisper_engine: FasterWhisperEngine, speech_root: Path
) -> None:
    clips = load_set("thchs30-d4", speech_root)
    flaky = FlakyDecoder(whisper_engine.decoder, failures=1)
    # finals only, decoded at the endpoint: the failure hits the first final's own decode
    settings = AsrSettings(partial_interval_ms=10000, early_decode_ms=0)
    engine = FasterWhisperEngine(settings, decoder=flaky)  # type: ignore[arg-type]
    try:
        audio = with_silence([telephone_path(clips[1].audio()), telephone_path(clips[3].audio())], gap_s=1.5)
        stream = engine.open_stream("call-4/caller", "caller")
        run = await run_stream(stream, pcm_of(audio), speed=8.0)
    finally:
        engine.close()
    gaps = run.gaps()
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.segment_id == "call-4/caller:0" and gap.text == "" and "simulated decoder crash" in (gap.error or "")
    assert 300 <= gap.start_ms <= 1500 and gap.end_ms >= 6000  # the span of the lost first sentence
    later = [s for s in run.finals() if s.start_ms > gap.end_ms]
    assert later, "no text after the failure"
    assert corpus_cer([(clips[3].reference, "".join(s.text for s in later))]).cer <= 0.35


class InstantDecoder:
    """Answers every decode at once (so partials are due whenever the schedule allows)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def prompt_tokens(self, phrases: Any = ()) -> list[int]:
        return list(self.real.prompt_tokens(phrases))

    def encode(self, audio: Any) -> Any:
        return np.zeros((1, 500, 512), np.float32)

    def decode(self, audio: Any, prompt: Any, min_input_s: float | None = None, encoded: Any = None) -> Decoded:
        return Decoded(text="说话", confidence=0.9, no_speech_prob=0.0, tokens=2)


async def test_no_partial_is_decoded_once_the_speech_pauses(
    whisper_engine: FasterWhisperEngine, speech_root: Path
) -> None:
    clips = load_set("thchs30-d4", speech_root)
    settings = AsrSettings(partial_interval_ms=200)  # a partial due every 200 ms of the utterance
    engine = FasterWhisperEngine(settings, decoder=InstantDecoder(whisper_engine.decoder))  # type: ignore[arg-type]
    try:
        audio = with_silence([telephone_path(clips[1].audio()), telephone_path(clips[3].audio())], gap_s=1.5)
        run = await run_stream(engine.open_stream("call-6/caller", "caller"), pcm_of(audio), speed=8.0)
    finally:
        engine.close()
    finals = {s.segment_id: s for s in run.finals()}
    assert len(finals) >= 2 and run.partials()
    for partial in run.partials():  # each ends where speech was still going on, never in the silence after it
        assert partial.end_ms <= finals[partial.segment_id].end_ms, (partial, finals[partial.segment_id])


class BlankDecoder(InstantDecoder):
    """Reads every utterance as nothing (what the no-speech rule makes of speech it doubts)."""

    def decode(self, audio: Any, prompt: Any, min_input_s: float | None = None, encoded: Any = None) -> Decoded:
        return Decoded(text="", confidence=0.2, no_speech_prob=0.7, tokens=0)


async def test_speech_decoded_to_nothing_is_counted(whisper_engine: FasterWhisperEngine, speech_root: Path) -> None:
    clips = load_set("thchs30-d4", speech_root)
    engine = FasterWhisperEngine(AsrSettings(), decoder=BlankDecoder(whisper_engine.decoder))  # type: ignore[arg-type]
    try:
        audio = with_silence([telephone_path(clips[1].audio()), telephone_path(clips[3].audio())], gap_s=1.5)
        run = await run_stream(engine.open_stream("call-9/caller", "caller"), pcm_of(audio), speed=8.0)
    finally:
        engine.close()
    assert not [s for s in run.finals() if s.text]
    assert engine.silent_finals >= 2  # two sentences of several seconds each: words the desk never saw


async def test_repeated_failures_restart_the_decoder(speech_root: Path) -> None:
    clip = load_set("thchs30-d4", speech_root)[1]
    engine = FasterWhisperEngine(AsrSettings(partial_interval_ms=10000, early_decode_ms=0))
    flaky = FlakyDecoder(engine.decoder, failures=3)
    engine.decoder = flaky  # type: ignore[assignment]
    try:
        audio = with_silence([telephone_path(clip.audio()[: 2 * ASR_RATE])] * 3 + [telephone_path(clip.audio())])
        stream = engine.open_stream("call-5/caller", "caller")
        run = await run_stream(stream, pcm_of(audio), speed=8.0)
    finally:
        engine.close()
    assert len(run.gaps()) == 3
    assert engine.restarts == 1 and engine.decoder is not flaky  # a fresh model was loaded
    assert run.finals() and run.finals()[-1].start_ms > run.gaps()[-1].end_ms


async def test_no_threads_leak_over_20_streams(whisper_engine: FasterWhisperEngine, speech_root: Path) -> None:
    clip = load_set("wenet-test", speech_root)[0]
    pcm = pcm_of(with_silence([telephone_path(clip.audio())], lead_s=0.2, tail_s=0.3))
    await asyncio.sleep(0)
    before = {t.ident for t in threading.enumerate()}
    streams = [whisper_engine.open_stream(f"leak-{i}/caller", "caller") for i in range(20)]
    assert whisper_engine.active_streams == 20
    collectors = [asyncio.create_task(s.transcribe_all()) for s in streams]
    for offset in range(0, len(pcm), 640 * 10):
        for stream in streams:
            stream.push(pcm[offset : offset + 640 * 10])
        await asyncio.sleep(0.01)
    for i, stream in enumerate(streams):  # half hang up without flushing, half finish
        if i % 2:
            stream.close()
        else:
            await stream.finish()
    results = await asyncio.wait_for(asyncio.gather(*collectors), timeout=120)
    assert whisper_engine.active_streams == 0
    assert any(seg.kind == "final" for seg in results[0])
    assert {t.ident for t in threading.enumerate()} <= before  # streams own no threads
    assert all(r == [] or all(s.stream_id == f"leak-{i}/caller" for s in r) for i, r in enumerate(results))


async def test_engine_close_joins_its_threads(whisper_engine: FasterWhisperEngine) -> None:
    before = {t.ident for t in threading.enumerate()}
    engine = FasterWhisperEngine(AsrSettings(workers=2), decoder=whisper_engine.decoder)
    stream = engine.open_stream("x", "caller")
    stream.push(b"\x00\x00" * 3200)
    names = {t.name for t in threading.enumerate() if t.ident not in before}
    assert names == {"asr-whisper-0", "asr-whisper-1", "asr-ingest-0"}
    engine.close()
    assert {t.ident for t in threading.enumerate()} <= before
    assert await stream.transcribe_all() == []
    with pytest.raises(RuntimeError, match="closed"):
        engine.open_stream("y", "caller")


async def test_phrase_list_biases_towards_place_names(whisper_engine: FasterWhisperEngine, speech_root: Path) -> None:
    """Measured on this sentence: CER 0.16 without phrases (泰元市, 扣庄村, 平洋极贸市场), 0.05 with them."""
    clip = load_set("thchs30-d4", speech_root)[4]
    audio = with_silence([telephone_path(clip.audio())])
    places = ["太原市", "南郊区", "寇庄村", "平阳集贸市场"]
    plain = await run_stream(whisper_engine.open_stream("call-6/caller", "caller"), pcm_of(audio), speed=8.0)
    biased_stream = whisper_engine.open_stream("call-7/caller", "caller", phrases=places)
    biased = await run_stream(biased_stream, pcm_of(audio), speed=8.0)
    plain_cer = corpus_cer([(clip.reference, plain.final_text())]).cer
    biased_cer = corpus_cer([(clip.reference, biased.final_text())]).cer
    assert biased_cer < plain_cer, (plain.final_text(), biased.final_text())
    assert "寇庄村" in biased.final_text() and "太原" in biased.final_text()


def test_phrase_prompt_is_bounded(whisper_engine: FasterWhisperEngine) -> None:
    decoder = whisper_engine.decoder
    base = decoder.prompt_tokens()
    many = decoder.prompt_tokens([f"第{i}号地名" for i in range(500)])
    limit = whisper_engine.settings.max_prompt_tokens
    assert len(base) < len(many) <= limit + 6  # sot_prev + text + sot, language, task, no_timestamps
    assert decoder.prompt_tokens(["", "  "]) == base


# Address lines the project's TTS made (tools/address_speech, tests/assist/address/speech_cases.yaml) on which
# Whisper base, streamed, lost the line: greedy search looped on 《 (full-276) or ended after the first clause
# (community-062: 我要反应一下。; district_town-100: only 这的事儿,找谁啊?). Measured before the retries: finals
# '', '我要反应一下。', '这的事儿,找谁啊?'; after: CER 0.25, 0.25, 0.44 against the written line.
# district_town-012: Whisper skipped the first clause, the address (留下的拉级好几天没人新闻,你们能不能派人来看看?:
# 22 characters for 6 s, no early stop by the count); its words, aligned to the audio, leave 2.5 s uncovered.
LOST_LINES = {
    "address-full-276.wav": "怀柔区北房镇小周各庄村这边饭馆的油烟太大了，已经好几天了。",
    "address-community-062.wav": "我要反映一下，清苑路第四社区饭馆的油烟太大了，麻烦你们管一管。",
    "address-district_town-100.wav": "丰台区王佐镇这边有人占着消防通道停车，这个事儿找谁啊。",
    "address-district_town-012.wav": "我住在东城区东花市街道，楼下的垃圾好几天没人清了，你们能不能派人来看看。",
}


def _han(text: str) -> int:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")


async def test_lines_whisper_looped_on_or_cut_short_are_read_whole(whisper_engine: FasterWhisperEngine) -> None:
    for name, line in LOST_LINES.items():
        clip = read_wav_16k(Path(__file__).parent / "data" / name)
        audio = with_silence([telephone_path(clip)], lead_s=0.25)
        run = await run_stream(whisper_engine.open_stream(f"call-lost/{name}", "caller"), pcm_of(audio), speed=8.0)
        heard = run.final_text()
        assert "《" not in heard and corpus_cer([(line, heard)]).cer < 0.6, (name, heard)
        assert _han(heard) >= 0.8 * _han(line), (name, heard)  # no clause left out (CER alone lets one go)


class _DistrictHints:
    """Decode hints as the gazetteer gives them for a line naming 海淀区 (its streets), for every line."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def phrases_for(self, text: str) -> list[str]:
        self.asked.append(text)
        return ["海淀区", "中关村街道", "海淀街道"]

    def readings_for(self, text: str) -> list[str]:
        return []  # nothing to score: the guided decode


def test_a_final_the_hints_know_is_decoded_again_and_the_second_reading_follows_it(
    whisper_engine: FasterWhisperEngine,
) -> None:
    clip = Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"  # …我家住在海淀区中关村街道…
    from asr.whisper_decoder import WhisperDecoder

    hints = _DistrictHints()
    settings = AsrSettings(cpu_threads=1, workers=1, partial_interval_ms=10000, early_decode_ms=0)  # finals only
    decoder = WhisperDecoder(whisper_engine.decoder.model, settings)
    encoder_runs: list[int] = []
    encode = decoder._encode

    def counted(items: Any, min_input_s: float | None) -> Any:
        encoder_runs.append(len(items))
        return encode(items, min_input_s)

    decoder._encode = counted  # type: ignore[method-assign]
    engine = FasterWhisperEngine(settings, decoder=decoder, hints=hints)
    try:
        audio = with_silence([telephone_path(read_wav_16k(clip))])

        async def stream_it() -> StreamRun:
            return await run_stream(engine.open_stream("call-9/caller", "caller"), pcm_of(audio), speed=8.0)

        run = asyncio.run(stream_it())
    finally:
        engine.close()
    finals = run.finals()
    assert finals, run.segments
    assert hints.asked == [s.text for s in finals]  # asked once per final, with its text
    assert engine.second_decodes == len(finals)
    # The second reading starts from the first's encoder output: the encoder ran once per final.
    assert sum(encoder_runs) == len(finals), encoder_runs
    kinds = [(s.kind, s.segment_id) for s in run.segments if s.kind in ("final", "alternative")]
    for n, (kind, segment_id) in enumerate(kinds):
        if kind == "alternative":  # right after its own final, never in place of it
            assert ("final", segment_id) in kinds[:n]
    assert all(s.text for s in run.segments if s.kind == "alternative")


def test_an_utterance_decoded_while_its_end_is_confirmed_gives_the_same_final(
    whisper_engine: FasterWhisperEngine,
) -> None:
    clip = Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"
    audio = with_silence([telephone_path(read_wav_16k(clip))])
    texts = {}
    for early_ms in (0, 200):
        engine = FasterWhisperEngine(
            AsrSettings(cpu_threads=1, workers=1, early_decode_ms=early_ms), decoder=whisper_engine.decoder
        )
        try:

            async def stream_it(engine: FasterWhisperEngine = engine) -> StreamRun:
                return await run_stream(engine.open_stream("call-8/caller", "caller"), pcm_of(audio), speed=2.0)

            texts[early_ms] = [s.text for s in asyncio.run(stream_it()).finals()]
            if early_ms:
                assert engine.early_decodes >= 1 and engine.early_used >= 1, (engine.early_decodes, engine.early_used)
            else:
                assert engine.early_decodes == 0
        finally:
            engine.close()
    assert texts[200] == texts[0] and texts[0]


class SlowEncoder:
    """The real decoder with an encoder that takes 0.3 s longer (a busy machine), counting the decoder's runs."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.decoder_runs = 0

    def prompt_tokens(self, phrases: Any = ()) -> list[int]:
        return list(self.real.prompt_tokens(phrases))

    def encode(self, audio: Any) -> Any:
        time.sleep(0.3)
        return self.real.encode(audio)

    def decode(self, audio: Any, prompt: Any, min_input_s: float | None = None, encoded: Any = None) -> Decoded:
        self.decoder_runs += 1
        result: Decoded = self.real.decode(audio, prompt, min_input_s, encoded)
        return result


def test_an_early_decode_the_caller_spoke_past_stops_after_the_encoder(whisper_engine: FasterWhisperEngine) -> None:
    # The clip pauses 0.22 and 0.29 s inside its sentence: each pause starts an early decode at 0.2 s, and the
    # speech comes back while its encoder runs.
    clip = Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"
    audio = with_silence([telephone_path(read_wav_16k(clip))])
    texts = {}
    for early_ms in (0, 200):
        slow = SlowEncoder(whisper_engine.decoder)
        settings = AsrSettings(cpu_threads=1, workers=2, partial_interval_ms=10000, early_decode_ms=early_ms)
        engine = FasterWhisperEngine(settings, decoder=slow)  # type: ignore[arg-type]
        finals = stream_and_close(engine, "call-10/caller", audio)
        texts[early_ms] = [s.text for s in finals]
    assert engine.early_stopped >= 1, (engine.early_decodes, engine.early_stopped)
    # the decoder ran for the early decodes still wanted and the finals that had none
    assert slow.decoder_runs <= engine.early_decodes - engine.early_stopped + len(finals) - engine.early_used
    assert texts[200] == texts[0] and texts[0]


def stream_and_close(engine: FasterWhisperEngine, stream_id: str, audio: Any) -> list[Segment]:
    """The finals of `audio` streamed through `engine` at twice real time; the engine is closed after."""
    try:

        async def stream_it() -> StreamRun:
            return await run_stream(engine.open_stream(stream_id, "caller"), pcm_of(audio), speed=2.0)

        return asyncio.run(stream_it()).finals()
    finally:
        engine.close()


class RecordingEncoder(SlowEncoder):
    """The real decoder, recording the length of each early decode's audio (early decodes encode first)."""

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.encoded: list[int] = []

    def encode(self, audio: Any) -> Any:
        self.encoded.append(len(audio))
        return self.real.encode(audio)


def test_a_long_utterance_is_decoded_sooner_in_its_final_pause_with_the_same_final(
    whisper_engine: FasterWhisperEngine,
) -> None:
    # The clip's last utterance holds about 6 s of speech: past early_decode_long_s (4 s) its decode starts once
    # the pause reaches 100 ms (4 VAD chunks, 128 ms), not 200 ms; it keeps less of the pause and reads the same.
    clip = Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"
    audio = with_silence([telephone_path(read_wav_16k(clip))])
    runs: dict[float, tuple[list[str], list[int], int]] = {}
    for long_s in (30.0, 4.0):
        recorder = RecordingEncoder(whisper_engine.decoder)
        settings = AsrSettings(cpu_threads=1, workers=2, partial_interval_ms=10000, early_decode_long_s=long_s)
        engine = FasterWhisperEngine(settings, decoder=recorder)  # type: ignore[arg-type]
        texts = [s.text for s in stream_and_close(engine, "call-11/caller", audio)]
        runs[long_s] = (texts, recorder.encoded, engine.early_used)
    (texts_200, encoded_200, used_200), (texts_100, encoded_100, used_100) = runs[30.0], runs[4.0]
    assert texts_100 == texts_200 and texts_200
    assert used_100 == used_200 >= 1  # the final took the early decode's result both times
    # the early decode the final took: 200 ms of the pause kept before, 128 ms now
    assert encoded_200[-1] - encoded_100[-1] == (200 - 128) * ASR_RATE // 1000


def test_a_wider_beam_reads_whole_utterances_and_partials_stay_greedy(whisper_engine: FasterWhisperEngine) -> None:
    from asr.whisper_decoder import WhisperDecoder

    decoder = WhisperDecoder(whisper_engine.decoder.model, AsrSettings(cpu_threads=1, beam_size=4))
    beams: list[int] = []
    generate = decoder._generate

    def recorded(features: Any, prompts: Any, max_length: int, beam: int) -> list[object]:
        beams.append(beam)
        return generate(features, prompts, max_length, beam)

    decoder._generate = recorded  # type: ignore[method-assign,assignment]
    clip = telephone_path(read_wav_16k(Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"))
    prompt = decoder.prompt_tokens()
    assert decoder.decode(clip[: 4 * ASR_RATE], prompt).text
    assert beams[0] == 4  # a whole utterance (any retry after it has its own width)
    beams.clear()
    assert decoder.decode(clip[: 3 * ASR_RATE], prompt, min_input_s=4.0).text
    assert beams[0] == 1  # a partial


def test_a_decode_from_the_encoder_output_of_an_earlier_one_reads_as_a_decode_from_the_audio(
    whisper_engine: FasterWhisperEngine,
) -> None:
    decoder = whisper_engine.decoder
    clip = telephone_path(read_wav_16k(Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"))
    first = decoder.decode(clip, decoder.prompt_tokens())
    assert first.encoded is not None and first.text
    hinted = decoder.prompt_tokens(["海淀区", "中关村街道"], whisper_engine.settings.hint_prompt_tokens)
    again = decoder.decode(clip, hinted, encoded=first.encoded)
    assert again.text and again == decoder.decode(clip, hinted)


def test_a_line_is_scored_by_how_well_it_reads_the_audio(whisper_engine: FasterWhisperEngine) -> None:
    # Whisper base hears this clip's 海淀区中关村街道 as 海电器中官村街等. The heard line with one span put right
    # reads the audio nearly as well as the heard line itself; with another place there, far worse.
    decoder = whisper_engine.decoder
    clip = telephone_path(read_wav_16k(Path(__file__).parents[1] / "voice" / "data" / "caller-address-zh.wav"))
    prompt = decoder.prompt_tokens()
    first = decoder.decode(clip, prompt)
    heard = first.text
    assert first.encoded is not None and "海电器" in heard and "中官村" in heard, heard
    lines = [heard] + [
        heard.replace(span, name)
        for span, name in [("海电器", "海淀区"), ("海电器", "朝阳区"), ("中官村", "中关村"), ("中官村", "回龙观")]
    ]
    base, district, other_district, town, other_town = decoder.score(first.encoded, prompt, lines)
    least = base - whisper_engine.settings.rescore_slack
    assert district >= least > other_district, (base, district, other_district)
    assert town >= least > other_town, (base, town, other_town)
    assert decoder.score(first.encoded, prompt, [lines[3]])[0] == pytest.approx(town, abs=0.05)  # alone or batched


def test_a_long_utterance_whisper_doubts_is_kept_and_a_short_one_dropped(whisper_engine: FasterWhisperEngine) -> None:
    from types import SimpleNamespace

    decoder = whisper_engine.decoder
    text = "门头沟区军庄镇"
    doubted = SimpleNamespace(
        sequences_ids=[decoder.tokenizer.encode(text)], scores=[-1.9], no_speech_prob=0.65
    )  # what Whisper gave 7.5 s of a caller's address through a call: its partials had the place right
    kept = decoder._read(doubted, 100, 7.5)
    assert kept.text == text and kept.confidence < 0.2  # shown, with the little confidence it has
    assert decoder._read(doubted, 100, 1.2).text == ""  # a blip the VAD let through: read in noise
