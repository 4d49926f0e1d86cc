#!/usr/bin/env python
"""ASR evaluation: CER per speech set through the telephone path, streaming latency, streams per core.

    .venv/bin/python bench/asr_eval.py            # full run (about 8 minutes on 2 cores)
    .venv/bin/python bench/asr_eval.py --quick    # 2 sets, N = 1, 2 (about 1-2 minutes)

What it measures, per engine available (faster-whisper always; vosk when a Chinese vosk model is installed at
asr.vosk_model_dir, or for latency only with --vosk-model DIR):

1. CER per set of ../shared/speech-zh (HOTLINE_SPEECH_DIR overrides), each clip sent through the simulated
   telephone path (16 kHz -> 8 kHz -> G.711 mu-law -> 16 kHz) and through the streaming engine exactly as a call
   would feed it (20 ms frames, VAD endpointing, finals); pushed as fast as the engine takes it, since finals do
   not depend on timing. Normalised as the speech set's README says (tools/asr_eval/cer.py). With --whole-clip also the
   decode of each whole clip at once (no VAD), comparable to the README's figures.
2. Latency at real time (wall clock, not a virtual clock): N concurrent streams, each a program of real clips
   with pauses and a faint line-noise floor, pushed in 20 ms frames on schedule; streams start staggered.
   - final latency: wall time from the end of speech (the final's end_ms) to the final's arrival; includes the
     endpoint silence (asr.vad.min_silence_ms, 500 ms) and any queueing;
   - partial lag: wall time from the end of the audio a partial covers to its arrival.
   p50/p95 over all segments of all streams; partials per final shows how many partials survive under load.
3. Streams per core: latencies "hold" at N streams when the final-latency p95 is at most the single-stream p95
   plus --slack (1.0 s) and at most --final-p95 (3.0 s), with no gap. The largest such N divided by the cores
   the engine decodes with (workers x cpu_threads) is reported; levels stop at the first that does not hold.
   The machine is shared (2 cores, other work running): figures move by 10-20 % between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from asr.audio import ASR_RATE, FloatArray, float_to_pcm16  # noqa: E402
from asr.engine import AsrEngine, Segment  # noqa: E402
from asr.settings import AsrSettings  # noqa: E402
from asr.telephone import telephone_path  # noqa: E402
from tools.asr_eval.cer import corpus_cer  # noqa: E402
from tools.asr_eval.corpus import SETS, available_sets, load_set, speech_dir  # noqa: E402

FRAME = 640  # 20 ms at 16 kHz
LINE_NOISE = 5e-4  # about -66 dBFS: a phone line is never digital silence


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- CER -----------------------------------------------------------------------------------------------------
async def stream_segments(
    engine: AsrEngine, audio: FloatArray, stream_id: str, phrases: Sequence[str] = ()
) -> list[Segment]:
    """Every segment of one clip streamed as a call feeds it (20 ms frames, 0.25 s lead and 1 s tail silence),
    pushed as fast as the engine takes it; `phrases` bias the recogniser as the gateway's do."""
    stream = engine.open_stream(stream_id, "caller", phrases)
    padded = np.concatenate([np.zeros(ASR_RATE // 4, np.float32), audio, np.zeros(ASR_RATE, np.float32)])
    pcm = float_to_pcm16(padded)
    collector = asyncio.create_task(stream.transcribe_all())
    for offset in range(0, len(pcm), FRAME):
        stream.push(pcm[offset : offset + FRAME])
    await stream.finish()
    return await collector


async def stream_finals(engine: AsrEngine, audio: FloatArray, stream_id: str) -> str:
    return "".join(s.text for s in await stream_segments(engine, audio, stream_id) if s.kind == "final")


def whole_clip(engine: Any, audio: FloatArray) -> str:
    decoder = engine.decoder
    return str(decoder.decode(audio, decoder.prompt_tokens()).text)


async def cer_report(engine: AsrEngine, sets: list[str], with_whole: bool) -> None:
    print(f"\n== CER, telephone path (8 kHz G.711 mu-law), engine {engine.name} ==")
    header = f"{'set':<32}{'clips':>6}{'chars':>7}{'stream CER':>12}"
    print(header + (f"{'whole-clip CER':>16}" if with_whole else "") + f"{'decode s':>10}")
    total: list[tuple[str, str]] = []
    for name in sets:
        clips = load_set(name)
        pairs, whole_pairs = [], []
        started = time.monotonic()
        for clip in clips:
            audio = telephone_path(clip.audio())
            pairs.append((clip.reference, await stream_finals(engine, audio, f"cer/{name}/{clip.name}")))
            if with_whole:
                whole_pairs.append((clip.reference, await asyncio.to_thread(whole_clip, engine, audio)))
        elapsed = time.monotonic() - started
        result = corpus_cer(pairs)
        total += pairs
        line = f"{name:<32}{result.clips:>6}{result.ref_chars:>7}{result.cer:>12.3f}"
        if with_whole:
            line += f"{corpus_cer(whole_pairs).cer:>16.3f}"
        print(line + f"{elapsed:>10.1f}", flush=True)
    overall = corpus_cer(total)
    print(f"{'all (Mandarin + dialect)':<32}{overall.clips:>6}{overall.ref_chars:>7}{overall.cer:>12.3f}")


# --- latency ---------------------------------------------------------------------------------------------------
@dataclass
class StreamStats:
    final_latency: list[float] = field(default_factory=list)
    partial_lag: list[float] = field(default_factory=list)
    finals: int = 0
    partials: int = 0
    gaps: int = 0


def program(clips: list[FloatArray], rotate: int, gap_s: float = 1.5) -> FloatArray:
    order = clips[rotate % len(clips) :] + clips[: rotate % len(clips)]
    pieces: list[FloatArray] = [np.zeros(int(0.3 * ASR_RATE), np.float32)]
    for clip in order:
        pieces += [clip, np.zeros(int(gap_s * ASR_RATE), np.float32)]
    audio = np.concatenate(pieces)
    audio = audio + np.random.default_rng(rotate).normal(0, LINE_NOISE, len(audio)).astype(np.float32)
    return audio.astype(np.float32)


async def realtime_stream(engine: AsrEngine, audio: FloatArray, stream_id: str, delay_s: float) -> StreamStats:
    await asyncio.sleep(delay_s)
    stats = StreamStats()
    stream = engine.open_stream(stream_id, "caller")
    pcm = float_to_pcm16(audio)
    t0 = time.monotonic()

    def on(segment: Segment) -> None:
        now = time.monotonic() - t0
        if segment.kind == "final":
            stats.finals += 1
            stats.final_latency.append(now - segment.end_ms / 1000)
        elif segment.kind == "partial":
            stats.partials += 1
            stats.partial_lag.append(now - segment.end_ms / 1000)
        else:
            stats.gaps += 1

    async def collect() -> None:
        async for segment in stream.segments():
            on(segment)

    collector = asyncio.create_task(collect())
    for n, offset in enumerate(range(0, len(pcm), FRAME)):
        stream.push(pcm[offset : offset + FRAME])
        delay = t0 + (n + 1) * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await stream.finish()
    await collector
    return stats


@dataclass
class LevelResult:
    streams: int
    final_p50: float
    final_p95: float
    partial_p50: float
    partial_p95: float
    partials_per_final: float
    cpu_cores: float
    gaps: int


async def latency_level(engine: AsrEngine, clips: list[FloatArray], n: int) -> LevelResult:
    cpu0, wall0 = time.process_time(), time.monotonic()
    results = await asyncio.gather(
        *(realtime_stream(engine, program(clips, i), f"rt{n}/{i}", delay_s=(i * 0.73) % 3.0) for i in range(n))
    )
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    finals = [x for r in results for x in r.final_latency]
    partials = [x for r in results for x in r.partial_lag]
    n_finals = sum(r.finals for r in results)
    return LevelResult(
        streams=n,
        final_p50=pct(finals, 0.5),
        final_p95=pct(finals, 0.95),
        partial_p50=pct(partials, 0.5),
        partial_p95=pct(partials, 0.95),
        partials_per_final=sum(r.partials for r in results) / max(1, n_finals),
        cpu_cores=cpu,
        gaps=sum(r.gaps for r in results),
    )


async def latency_report(
    engine: AsrEngine, levels: list[int], seconds: float, cores: float, limit: float, slack: float
) -> None:
    clips: list[FloatArray] = [
        telephone_path(clip.audio()) for name in ("thchs30-d4", "wenet-test") for clip in load_set(name)
    ]
    chosen: list[FloatArray] = []
    total = 0.0
    for audio in sorted(clips, key=len):  # a mix of short and long sentences up to `seconds` of speech
        if total + len(audio) / ASR_RATE > seconds and chosen:
            continue
        chosen.append(audio)
        total += len(audio) / ASR_RATE
    audio_s = len(program(chosen, 0)) / ASR_RATE
    print(f"\n== Latency at real time (wall clock), engine {engine.name}, {audio_s:.0f} s of audio per stream ==")
    print(
        f"{'streams':>8}{'final p50':>11}{'final p95':>11}{'partial p50':>13}{'partial p95':>13}"
        f"{'partials/final':>16}{'CPU cores':>11}{'gaps':>6}"
    )
    best = 0
    base: float | None = None
    for n in levels:
        r = await latency_level(engine, chosen, n)
        if base is None:
            base = r.final_p95
        print(
            f"{r.streams:>8}{r.final_p50:>10.2f}s{r.final_p95:>10.2f}s{r.partial_p50:>12.2f}s{r.partial_p95:>12.2f}s"
            f"{r.partials_per_final:>16.1f}{r.cpu_cores:>11.2f}{r.gaps:>6}",
            flush=True,
        )
        bound = min(limit, base + slack)
        if r.final_p95 <= bound and r.gaps == 0:
            best = n
        else:
            print(f"{'':>8}latencies do not hold: final p95 {r.final_p95:.2f} s > {bound:.2f} s or gaps")
            break
    note = " (the largest level tried held: try more with --levels)" if best == levels[-1] else ""
    print(f"streams per core, latencies holding, {cores:g} core(s) decoding: {best / cores:g}{note}")


# --- main ------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 sets, N = 1, 2, 15 s streams")
    parser.add_argument("--sets", default=None, help="comma-separated set names (default: all available)")
    parser.add_argument("--levels", default=None, help="concurrent stream counts, e.g. 1,2,4,8")
    parser.add_argument("--seconds", type=float, default=None, help="speech per latency stream")
    parser.add_argument("--engines", default="faster-whisper,vosk")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="cpu_threads per decode")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--final-p95", type=float, default=3.0, help="absolute bound on final-latency p95 (s)")
    parser.add_argument("--slack", type=float, default=1.0, help="allowed p95 growth over one stream (s)")
    parser.add_argument("--whole-clip", action="store_true", help="also decode whole clips (on unless --quick)")
    parser.add_argument("--no-cer", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--vosk-model", type=Path, default=None, help="vosk model folder (latency only if not zh)")
    args = parser.parse_args()

    root = speech_dir()
    sets = args.sets.split(",") if args.sets else available_sets(root)
    if args.quick and not args.sets:
        sets = [s for s in ("thchs30-d4", "wenet-test") if s in sets]
    if not sets:
        sys.exit(f"no speech sets under {root} (set HOTLINE_SPEECH_DIR); known: {', '.join(SETS)}")
    default_levels = [1, 2] if args.quick else [1, 2, 4, 8, 12, 16]
    levels = [int(x) for x in args.levels.split(",")] if args.levels else default_levels
    args.whole_clip = args.whole_clip or not args.quick
    seconds = args.seconds or (15.0 if args.quick else 30.0)
    print(f"speech: {root}; sets: {', '.join(sets)}; cores on this machine: {os.cpu_count()}")
    asyncio.run(run(args, sets, levels, seconds))


async def run(args: argparse.Namespace, sets: list[str], levels: list[int], seconds: float) -> None:
    engines = args.engines.split(",")
    if "faster-whisper" in engines:
        from asr.faster_whisper_engine import FasterWhisperEngine

        settings = AsrSettings(workers=args.workers, cpu_threads=args.threads, device=args.device)
        started = time.monotonic()
        engine = FasterWhisperEngine(settings)
        print(
            f"\nfaster-whisper: Whisper base (packaged), {settings.resolved_compute_type()}, "
            f"beam {settings.beam_size}, "
            f"{settings.workers} worker(s) x {settings.cpu_threads} thread(s), partial every "
            f"{settings.partial_interval_ms} ms, endpoint {settings.vad.min_silence_ms} ms; "
            f"loaded in {time.monotonic() - started:.1f} s"
        )
        try:
            if not args.no_cer:
                cer_engine = FasterWhisperEngine(
                    settings.model_copy(update={"partial_interval_ms": 10000}), decoder=engine.decoder
                )
                try:
                    await cer_report(cer_engine, sets, args.whole_clip)
                finally:
                    cer_engine.close()
            if not args.no_latency:
                cores = args.workers * args.threads
                await latency_report(engine, levels, seconds, cores, args.final_p95, args.slack)
        finally:
            engine.close()
    if "vosk" in engines:
        await run_vosk(args, sets, levels, seconds)


async def run_vosk(args: argparse.Namespace, sets: list[str], levels: list[int], seconds: float) -> None:
    from asr.vosk_engine import VoskEngine, VoskModelMissing

    settings = AsrSettings(engine="vosk", workers=args.workers)
    model_dir = args.vosk_model or ROOT / settings.vosk_model_dir
    try:
        engine = VoskEngine(settings, model_dir=model_dir)
    except VoskModelMissing as exc:
        print(f"\nvosk: skipped ({exc})")
        return
    chinese = any(tag in model_dir.name for tag in ("cn", "zh"))
    print(f"\nvosk: model {model_dir}, {settings.workers} lane(s)")
    try:
        if not args.no_cer:
            if chinese:
                await cer_report(engine, sets, with_whole=False)
            else:
                print("vosk CER: skipped (not a Chinese model; its latency and throughput are still measured)")
        if not args.no_latency:
            await latency_report(engine, levels, seconds, float(args.workers), args.final_p95, args.slack)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
