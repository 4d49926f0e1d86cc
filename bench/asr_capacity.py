#!/usr/bin/env python
"""Recognition capacity: how many live streams one machine transcribes before latency breaks, in the gateway's
process and on an ASR worker (`hotline asr serve`), with cross-stream batching off and on, and, as the peer, a
Wyoming server (wyoming-faster-whisper from PyPI, the same model and cores) behind `asr.engine: wyoming`.

    .venv/bin/python bench/asr_capacity.py                 # 4 set-ups, ramp 2, 4, 6, ... (about 10 minutes)
    .venv/bin/python bench/asr_capacity.py --setups worker-batch --levels 4,8
    .venv/bin/python bench/asr_capacity.py --setups worker,wyoming

Each level runs N concurrent streams of real Mandarin speech (../shared/speech-zh through the telephone path,
a program of sentences with pauses per stream, started staggered) pushed in 20 ms frames at real time. From
outside the engine, on the wall clock:
- final latency: from the end of the utterance (the final's end_ms: where the VAD heard the speech end; the audio
  decoded goes 200 ms further) to the final's arrival in the client; the 500 ms endpoint is its floor;
- partial lag: from the end of the audio a partial covers to its arrival; partials per final says how many
  partials survived (they are skipped, never queued, under load).
A level holds when final p95 <= --final-p95 (0.8 s), partial p95 <= --partial-p95 (1.0 s) and no stream had a
gap; the ramp stops at the first level that does not, and the last that held is the knee. CPU is the process
time of the bench and of the worker or server process (when there is one) over the level's wall time. Streams per core
divides the knee by the cores decoding: asr.workers x asr.cpu_threads, at most the machine's cores (3 decode threads
on 2 cores have 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from asr.audio import ASR_RATE, FloatArray  # noqa: E402
from asr.engine import AsrEngine  # noqa: E402
from asr.faster_whisper_engine import FasterWhisperEngine  # noqa: E402
from asr.settings import AsrSettings, ServiceSettings  # noqa: E402
from asr.telephone import telephone_path  # noqa: E402
from bench.asr_eval import LevelResult, latency_level, program  # noqa: E402
from tools.asr_eval.corpus import load_set  # noqa: E402
from tools.processes import start_until_ready  # noqa: E402

SETUPS = ("inprocess", "inprocess-batch", "worker", "worker-batch")
PEERS = ("wyoming", "wyoming-finals")  # the second without partials (one server decode per utterance)
TOKEN = "capacity-bench"


@dataclass
class Setup:
    name: str
    batch_size: int
    worker: bool

    @property
    def wyoming(self) -> bool:
        return self.name.startswith("wyoming")


def clip_program(seconds: float) -> list[FloatArray]:
    clips = [telephone_path(c.audio()) for name in ("thchs30-d4", "wenet-test") for c in load_set(name)]
    chosen: list[FloatArray] = []
    total = 0.0
    for audio in sorted(clips, key=len):
        if total + len(audio) / ASR_RATE > seconds and chosen:
            continue
        chosen.append(audio)
        total += len(audio) / ASR_RATE
    return chosen


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """`hotline asr serve` on loopback for a bench; `asr` are asr settings (second decodes off: no gazetteer)."""

    def __init__(self, port: int, token: str, **asr: object) -> None:
        env = {
            **os.environ,
            "HOTLINE_ASR__SERVICE__TOKEN": token,
            "HOTLINE_ASR__SECOND_PASS": "false",
            **{f"HOTLINE_ASR__{key.upper()}": str(value) for key, value in asr.items()},
        }
        command = [sys.executable, "-m", "hotline.cli", "asr", "serve", "--port", str(port), "--max-streams", "200"]
        self.proc, _ = start_until_ready(
            command, lambda line: line.startswith("listening on"), what="the worker", timeout_s=120, env=env, cwd=ROOT
        )
        self.url = f"ws://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # one a bench froze must be able to stop
            self.proc.terminate()
        self.proc.wait(30)


class WyomingProcess:
    """wyoming-faster-whisper on loopback: the packaged model written to a temporary folder, `threads` per decode
    (the server runs one decode at a time: it gets all the cores the others spread over their decode threads)."""

    def __init__(self, port: int, threads: int) -> None:
        from asr.settings import WyomingSettings
        from tools.wyoming_server import WyomingServer, write_packaged_model

        self._folder = tempfile.TemporaryDirectory(prefix="wyoming-bench-")
        model = write_packaged_model(Path(self._folder.name) / "model")
        self.server = WyomingServer(model, Path(self._folder.name) / "data", port, cpu_threads=threads).start()
        assert self.server.proc is not None
        self.proc = self.server.proc
        self.settings = WyomingSettings(uri=self.server.uri, max_requests=2)  # one decode runs, one waits

    def stop(self) -> None:
        self.server.stop()
        self._folder.cleanup()


def decoding_cores(workers: int, threads: int) -> int:
    """The cores the decodes can use: their threads, but no more than the machine has."""
    return min(workers * threads, os.cpu_count() or 1)


async def ramp(
    setup: Setup, settings: AsrSettings, levels: list[int], clips: list[FloatArray], args: argparse.Namespace
) -> int:
    worker: WorkerProcess | WyomingProcess | None = None
    engine: AsrEngine
    inprocess: FasterWhisperEngine | None = None
    if setup.wyoming:
        from asr.wyoming_engine import WyomingEngine

        worker = WyomingProcess(args.port, settings.workers * settings.cpu_threads)
        wyoming = worker.settings.model_copy(update={"partials": setup.name == "wyoming"})
        engine = WyomingEngine(settings.model_copy(update={"engine": "wyoming", "wyoming": wyoming}))
        await engine.start()
    elif setup.worker:
        from asr.remote.pool import RemoteEngine

        worker = WorkerProcess(
            args.port,
            TOKEN,
            workers=settings.workers,
            cpu_threads=settings.cpu_threads,
            batch_size=settings.batch_size,
        )
        engine = RemoteEngine(ServiceSettings(workers=[worker.url], token=TOKEN))
        await engine.start()
    else:
        engine = inprocess = FasterWhisperEngine(settings)
    cores = decoding_cores(settings.workers, settings.cpu_threads)
    print(f"\n== {setup.name}: batch {settings.batch_size}, {settings.workers} x {settings.cpu_threads} thread(s) ==")
    print(
        f"{'streams':>8}{'final p50':>11}{'final p95':>11}{'partial p50':>13}{'partial p95':>13}"
        f"{'partials/final':>16}{'CPU cores':>11}{'gaps':>6}"
    )
    knee = 0
    try:
        for n in levels:
            wall0, worker0 = time.monotonic(), cpu_seconds(worker.proc.pid) if worker else 0.0
            r: LevelResult = await latency_level(engine, clips, n)
            extra = (cpu_seconds(worker.proc.pid) - worker0) / (time.monotonic() - wall0) if worker else 0.0
            print(
                f"{r.streams:>8}{r.final_p50:>10.2f}s{r.final_p95:>10.2f}s{r.partial_p50:>12.2f}s"
                f"{r.partial_p95:>12.2f}s{r.partials_per_final:>16.1f}{r.cpu_cores + extra:>11.2f}{r.gaps:>6}",
                flush=True,
            )
            if r.final_p95 <= args.final_p95 and r.partial_p95 <= args.partial_p95 and r.gaps == 0:
                knee = n
            else:
                break
    finally:
        engine.close()
        if worker is not None:
            await asyncio.sleep(0.2)
            worker.stop()
    if inprocess is not None:  # what its decodes of utterances still being confirmed came to
        print(
            f"early decodes: {inprocess.early_decodes}, {inprocess.early_used} became the final, "
            f"{inprocess.early_stopped} stopped after the encoder (the speech went on)"
        )
    note = " (the largest level tried held)" if knee == levels[-1] else ""
    print(f"knee: {knee} streams = {knee / cores:g} per core decoding{note}")
    return knee


async def run(args: argparse.Namespace) -> None:
    clips = clip_program(args.seconds)
    audio_s = len(program(clips, 0)) / ASR_RATE
    levels = [int(x) for x in args.levels.split(",")]
    print(
        f"cores on this machine: {os.cpu_count()}; {audio_s:.0f} s of audio per stream; bounds: final p95 <= "
        f"{args.final_p95} s, partial p95 <= {args.partial_p95} s, no gap"
    )
    knees: dict[str, int] = {}
    workers = AsrSettings(workers=args.workers).workers  # 0: the cores + 1
    for name in args.setups.split(","):
        if name not in SETUPS + PEERS:
            raise SystemExit(f"unknown set-up {name!r}: {', '.join(SETUPS + PEERS)}")
        setup = Setup(name, args.batch if name.endswith("batch") else 1, name.startswith("worker"))
        settings = AsrSettings(
            workers=workers,
            cpu_threads=args.threads,
            batch_size=setup.batch_size,
            early_decode_long_ms=args.early_decode_long_ms,
        )
        knees[name] = await ramp(setup, settings, levels, clips, args)
    print("\n== knees (streams per core decoding) ==")
    cores = decoding_cores(workers, args.threads)
    for name, knee in knees.items():
        print(f"{name:<18}{knee:>4} streams  {knee / cores:>5.1f} per core")
    if knees.get("inprocess"):
        for name, knee in knees.items():
            print(f"{name:<18}{knee / knees['inprocess']:>5.2f} x in-process without batching")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--levels", default="2,4,6,8,10,12,16,20,24")
    parser.add_argument("--seconds", type=float, default=20.0, help="speech per stream")
    parser.add_argument("--workers", type=int, default=0, help="asr.workers (0, the default: the cores + 1)")
    parser.add_argument("--threads", type=int, default=1, help="asr.cpu_threads")
    parser.add_argument("--batch", type=int, default=8, help="asr.batch_size of the batching set-ups")
    parser.add_argument(
        "--early-decode-long-ms",
        type=int,
        default=AsrSettings().early_decode_long_ms,
        help="asr.early_decode_long_ms (0: long utterances decoded as early as short ones)",
    )
    parser.add_argument("--final-p95", type=float, default=0.8)
    parser.add_argument("--partial-p95", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=8790, help="the worker's port (loopback)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
