#!/usr/bin/env python
"""What a lost ASR worker costs the transcript: streams of real speech on two `hotline asr serve` workers, one
worker killed (kill -9) or frozen (SIGSTOP) mid-utterance, against the same streams with nothing lost.

    .venv/bin/python bench/asr_failover.py                   # 4 streams, kill and freeze (about 2 minutes)
    .venv/bin/python bench/asr_failover.py --streams 6 --replay-s 0

Per run it prints: how long after the kill the last moved stream was open again on the other worker (the
stream's `opened` answer, seen by the client), gaps, the CER of all finals against the references (the same
program each time, so the runs compare), and final latency (end of utterance to the final's arrival) of the
utterances that were under way at the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from asr.audio import ASR_RATE, float_to_pcm16  # noqa: E402
from asr.engine import Segment  # noqa: E402
from asr.remote.pool import RemoteEngine  # noqa: E402
from asr.remote.stream import RemoteStream  # noqa: E402
from asr.settings import ServiceSettings  # noqa: E402
from asr.telephone import telephone_path  # noqa: E402
from bench.asr_capacity import WorkerProcess  # noqa: E402
from tools.asr_eval.cer import corpus_cer  # noqa: E402
from tools.asr_eval.corpus import load_set  # noqa: E402

TOKEN = "failover-bench"
FRAME = 640


@dataclass
class Run:
    segments: list[list[tuple[float, Segment]]] = field(default_factory=list)
    moved_s: float | None = None
    t0: float = 0.0
    event_at_s: float = 0.0


async def one_run(
    urls: list[str], programs: list[bytes], fault: str, workers: list[WorkerProcess], at_s: float, replay_s: float
) -> Run:
    engine = RemoteEngine(ServiceSettings(workers=urls, token=TOKEN, retry_s=60, replay_s=replay_s))
    await engine.start()
    await asyncio.sleep(0.5)
    run = Run(segments=[[] for _ in programs])
    streams: list[RemoteStream] = [engine.open_stream(f"s{i}", "caller") for i in range(len(programs))]
    run.t0 = time.monotonic()

    async def collect(i: int) -> None:
        async for segment in streams[i].segments():
            run.segments[i].append((time.monotonic() - run.t0, segment))

    async def push(i: int) -> None:
        pcm = programs[i]
        for n, offset in enumerate(range(0, len(pcm), FRAME)):
            streams[i].push(pcm[offset : offset + FRAME])
            delay = run.t0 + (n + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await streams[i].finish()

    async def fault_at() -> None:
        if fault == "none":
            return
        await asyncio.sleep(at_s)
        by_url = {w.url: w for w in workers}
        counts = {url: sum(1 for s in streams if s.attachment and s.attachment.link.url == url) for url in urls}
        doomed = by_url[max(counts, key=lambda url: counts[url])]
        affected = [s for s in streams if s.attachment and s.attachment.link.url == doomed.url]
        run.event_at_s = time.monotonic() - run.t0
        doomed.proc.send_signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        while not all(s.moves and s.attachment and s.attachment.acked for s in affected):
            await asyncio.sleep(0.005)
        run.moved_s = time.monotonic() - run.t0 - run.event_at_s

    collectors = [asyncio.create_task(collect(i)) for i in range(len(programs))]
    await asyncio.gather(fault_at(), *(push(i) for i in range(len(programs))))
    await asyncio.gather(*collectors)
    await engine.aclose()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--at-s", type=float, default=9.0, help="when the worker is lost, in seconds")
    parser.add_argument("--replay-s", type=float, default=30.0, help="asr.service.replay_s")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    clips = [c for name in ("thchs30-d4", "wenet-test") for c in load_set(name)]
    programs, references = [], []
    for i in range(args.streams):
        order = clips[i % len(clips) :] + clips[: i % len(clips)]
        chosen = order[:3]
        pieces = [np.zeros(int(0.4 * ASR_RATE), np.float32)]
        for clip in chosen:
            pieces += [telephone_path(clip.audio()), np.zeros(int(1.5 * ASR_RATE), np.float32)]
        audio = np.concatenate(pieces)
        audio += np.random.default_rng(i).normal(0, 5e-4, len(audio)).astype(np.float32)
        programs.append(float_to_pcm16(audio))
        references.append("".join(c.reference for c in chosen))
    seconds = max(len(p) for p in programs) / 2 / ASR_RATE
    print(
        f"{args.streams} streams of {seconds:.0f} s on 2 workers; worker lost at {args.at_s:g} s; "
        f"replay_s {args.replay_s:g}"
    )
    print(
        f"{'fault':<8}{'moved after':>13}{'gaps':>6}{'finals':>8}{'CER':>7}{'lat. p50':>10}{'lat. max':>10}"
        "  (latency: utterances under way at the fault)"
    )
    for fault in ("none", "kill", "freeze"):
        workers = [WorkerProcess(args.port, TOKEN), WorkerProcess(args.port + 1, TOKEN)]
        try:
            run = asyncio.run(one_run([w.url for w in workers], programs, fault, workers, args.at_s, args.replay_s))
        finally:
            for worker in workers:
                worker.stop()
        finals = [[s for _, s in segs if s.kind == "final" and s.text] for segs in run.segments]
        gaps = sum(1 for segs in run.segments for _, s in segs if s.kind == "gap")
        cer = corpus_cer([(ref, "".join(s.text for s in f)) for ref, f in zip(references, finals, strict=True)]).cer
        at = args.at_s * 1000
        latencies = [
            t - s.end_ms / 1000
            for segs in run.segments
            for t, s in segs
            if s.kind == "final" and s.text and s.start_ms <= at <= s.end_ms + 500
        ]
        moved = f"{run.moved_s:.2f} s" if run.moved_s is not None else "-"
        p50 = f"{np.median(latencies):.2f} s" if latencies else "-"
        worst = f"{max(latencies):.2f} s" if latencies else "-"
        print(f"{fault:<8}{moved:>13}{gaps:>6}{sum(map(len, finals)):>8}{cer:>7.3f}{p50:>10}{worst:>10}", flush=True)


if __name__ == "__main__":
    main()
