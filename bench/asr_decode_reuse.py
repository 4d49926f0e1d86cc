#!/usr/bin/env python
"""What the recogniser's CPU saves by running Whisper's encoder once per utterance and by stopping an early decode
after its encoder when the caller speaks again, measured in pairs against an engine without either.

    .venv/bin/python bench/asr_decode_reuse.py                      # 180 address lines pushed as fast as taken
    .venv/bin/python bench/asr_decode_reuse.py --lines 40 --realtime  # at real time, partials on (about 10 min)

This machine's CPU time per audio second moves by about 10 % from one run to the next, so the two engines are not
compared in separate runs: each address line (tests/assist/address/speech_cases.yaml as `hotline-tools
address-speech audio` made them) goes through the engine as it is and through the baseline in turn, in one
process, on one shared model, alternating which goes first. The baseline decodes every reading from the audio
(its encoder again for the second reading and the retries) and lets an early decode run to its end. CPU is this
process's time per second of audio; with --realtime the lines are fed at the pace of speech (as a call feeds them),
which is when the early stop matters, and the final latency from the end of each utterance is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from asr.audio import ASR_RATE, FloatArray, float_to_pcm16, resample  # noqa: E402
from asr.faster_whisper_engine import FasterWhisperEngine  # noqa: E402
from asr.telephone import telephone_path  # noqa: E402
from asr.whisper_decoder import Decoded, Encoded  # noqa: E402
from asr.workers import PRIORITY_FINAL  # noqa: E402
from assist.address.extract import AddressExtractor  # noqa: E402
from assist.address.gazetteer import Gazetteer  # noqa: E402
from assist.address.hints import PlaceHints  # noqa: E402
from hotline.settings import load_settings  # noqa: E402
from tools.address_speech.audio import clip_name, read_wav  # noqa: E402
from tools.address_speech.cases_file import read_cases  # noqa: E402
from tools.address_speech.cli import AUDIO_DIR, CASES_FILE  # noqa: E402

FRAME_S = 0.02


class BaselineEngine(FasterWhisperEngine):
    """The engine as it was: every decode from the audio, and an early decode always decoded to its end."""

    def decode(
        self,
        audio: FloatArray,
        prompt: Sequence[int],
        priority: int = PRIORITY_FINAL,
        min_input_s: float | None = None,
        encoded: Encoded | None = None,
    ) -> Decoded:
        return super().decode(audio, prompt, priority, min_input_s, None)

    def decode_if_wanted(self, audio: FloatArray, prompt: Sequence[int], wanted: Callable[[], bool]) -> Decoded | None:
        return self.decode(audio, prompt)


async def one_line(engine: FasterWhisperEngine, audio: FloatArray, stream_id: str, realtime: bool) -> list[float]:
    """Stream one line (0.25 s lead, 1 s tail of silence) in 20 ms frames; the latency of each final."""
    stream = engine.open_stream(stream_id, "caller")
    padded = np.concatenate([np.zeros(ASR_RATE // 4, np.float32), audio, np.zeros(ASR_RATE, np.float32)])
    pcm = float_to_pcm16(padded)
    frame = int(FRAME_S * ASR_RATE) * 2
    started = time.monotonic()
    latencies: list[float] = []

    async def collect() -> None:
        async for segment in stream.segments():
            if segment.kind == "final":
                latencies.append(time.monotonic() - (started + segment.end_ms / 1000))

    collector = asyncio.create_task(collect())
    for n, offset in enumerate(range(0, len(pcm), frame)):
        stream.push(pcm[offset : offset + frame])
        if realtime:
            await asyncio.sleep(max(0.0, started + (n + 1) * FRAME_S - time.monotonic()))
    await stream.finish()
    await collector
    return latencies


async def run(args: argparse.Namespace) -> None:
    settings = load_settings()
    asr = settings.asr.model_copy(update={"cpu_threads": 1})
    if not args.realtime:
        asr = asr.model_copy(update={"partial_interval_ms": 10000})  # as the address bench: finals only
    gazetteer = Gazetteer.load(settings.address.resolve(settings.address.gazetteer_file))
    hints = PlaceHints(AddressExtractor(gazetteer, settings.address))
    lines = [c for c in read_cases(CASES_FILE) if c.district is not None][:: args.every][: args.lines]
    now = FasterWhisperEngine(asr, hints=hints)
    engines: dict[str, FasterWhisperEngine] = {
        "now": now,
        "baseline": BaselineEngine(asr, decoder=now.decoder, hints=hints),
    }
    cpu = dict.fromkeys(engines, 0.0)
    latencies: dict[str, list[float]] = {name: [] for name in engines}
    audio_s = 0.0
    print(f"{len(lines)} lines, {'real time' if args.realtime else 'pushed as fast as taken'}", flush=True)
    try:
        for i, line in enumerate(lines):
            audio = telephone_path(resample(read_wav(AUDIO_DIR / clip_name(line)), 8000, ASR_RATE))
            order = list(engines) if i % 2 == 0 else list(reversed(engines))
            for name in order:
                began = time.process_time()
                latencies[name] += await one_line(engines[name], audio, f"{name}-{i}", args.realtime)
                await asyncio.sleep(0.3)  # its last second reading
                cpu[name] += time.process_time() - began
            audio_s += len(audio) / ASR_RATE
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{len(lines)} lines", flush=True)
    finally:
        for engine in engines.values():
            engine.close()
    print(f"\n{'engine':<10}{'CPU s/audio s':>15}{'second':>8}{'early':>7}{'stopped':>9}{'final p50':>11}{'p95':>8}")
    for name, engine in engines.items():
        latency = "         -       -"  # fed faster than speech: the wall clock says nothing of latency
        if args.realtime and latencies[name]:
            p50, p95 = np.percentile(latencies[name], [50, 95])
            latency = f"{p50:>10.2f}s{p95:>7.2f}s"
        print(
            f"{name:<10}{cpu[name] / audio_s:>15.3f}{engine.second_decodes:>8}{engine.early_decodes:>7}"
            f"{engine.early_stopped:>9}{latency}"
        )
    print(f"CPU now / baseline: {cpu['now'] / cpu['baseline']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=180, help="address lines (each through both engines)")
    parser.add_argument("--every", type=int, default=2, help="take every n-th line naming a place")
    parser.add_argument("--realtime", action="store_true", help="feed at the pace of speech, partials on")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
