#!/usr/bin/env python
"""ASR evaluation through a real call: CER per speech set and final latency, clip by clip over SIP (issue 4, item 6).

    .venv/bin/python bench/asr_call_eval.py              # all six sets, 43 clips (about 6-8 minutes on 2 cores)
    .venv/bin/python bench/asr_call_eval.py --quick      # 2 clips per set
    .venv/bin/python bench/asr_call_eval.py --sets thchs30-d4,wenet-test --max-clips 3 --no-sim

In this process: a private Asterisk (embedded install, free ports, temporary folder) and the gateway
(`GatewayService`, live transcription on, the configured engine: faster-whisper by default), with a temporary
database and a call handler that routes every call to the zh queue, where one registered, auto-answering, silent
operator phone (op1002) takes it. A caller softphone (pjsua2) dials 12345 for each clip; when the gateway reports
the operator leg connected (`call.answered`) the caller plays the clip (8 kHz mono 16-bit, 0.3 s lead and 1.2 s
tail silence, as tests/voice/test_transcription.py plays it), and the bench collects that call's caller finals
(`transcript.final`, speaker "caller") until ~2 s after the end of speech (longer while an utterance is still
open, at most --timeout), then hangs up and waits for `call.ended`.

- hypothesis = the caller's finals joined; CER per set with tools.asr_eval.cer.corpus_cer (the set's normalisation);
- final latency = time of the call's last caller final (event time stamp) minus the end of the clip's speech
  (the caller's play_done minus the 1.2 s tail silence); includes the endpoint silence (asr.vad.min_silence_ms);
- for comparison, unless --no-sim: the same clips through the simulated telephone path of bench/asr_eval.py
  (16 kHz -> 8 kHz G.711 mu-law -> 16 kHz, pushed as fast as the engine takes it), same decoder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support / tests.voice helpers are not an installed package
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from asr_eval import pct, stream_finals  # noqa: E402  (bench/, the script's folder)

from asr.telephone import telephone_path  # noqa: E402
from events.bus import CallEvent, Subscription  # noqa: E402
from hotline.logging_setup import configure_logging  # noqa: E402
from hotline.service import GatewayService  # noqa: E402
from hotline.settings import load_settings  # noqa: E402
from ivr_flows.port import RouteOutcome, RouteRequest  # noqa: E402
from tests.support.asterisk_fixture import free_ports, make_settings  # noqa: E402
from tests.voice.conftest import attach_settings, entry_uri, registered  # noqa: E402
from tests.voice.test_routing import routing_handler  # noqa: E402
from tests.voice.test_transcription import telephone_clip  # noqa: E402
from tools.asr_eval.cer import corpus_cer  # noqa: E402
from tools.asr_eval.corpus import SETS, Clip, available_sets, load_set, speech_dir  # noqa: E402
from tools.softphone.driver import Softphone  # noqa: E402
from voice.asterisk.installer import install_asterisk  # noqa: E402
from voice.asterisk.instance import AsteriskInstance  # noqa: E402

TAIL_S = 1.2  # the tail silence telephone_clip() adds (sox pad 0.3 1.2)
AFTER_SPEECH_S = 2.0  # collect finals until this long after the end of speech


@dataclass
class ClipResult:
    clip: Clip
    hypothesis: str = ""
    final_latency: float | None = None
    error: str = ""


@dataclass
class SetResult:
    name: str
    clips: list[ClipResult] = field(default_factory=list)
    sim_cer: float | None = None


async def next_event(events: Subscription, call_id: str | None, types: set[str], deadline: float) -> CallEvent | None:
    """The next event of one of `types` (for `call_id` when given) before `deadline` (monotonic), else None."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = await asyncio.wait_for(events.get(), left)
        except TimeoutError:
            return None
        if event.type in types and (call_id is None or event.call_id == call_id):
            return event
    return None


async def answered_call(caller: Softphone, uri: str, events: Subscription) -> tuple[str, CallEvent | None]:
    """Dial once what the previous call left on the bus is dropped: the phone's call and the gateway's
    `call.answered` (None, and the call hung up, when no operator answered within 15 s)."""
    while events.pending():
        await events.get()
    call = await caller.call(uri)
    answered = await next_event(events, None, {"call.answered"}, time.monotonic() + 15)
    if answered is None:
        with contextlib.suppress(Exception):
            await caller.hangup(call, timeout=5)
    return call, answered


async def play_clip(caller: Softphone, call: str, wav: Path) -> float:
    """Play a clip of telephone_clip() into an answered call; the wall-clock end of its speech (comparable with
    CallEvent.ts and with when a desk received a message)."""
    await asyncio.sleep(0.5)  # the taps are set up just after the bridge (as the tests wait)
    since = caller.mark()
    await caller.play(call, wav)
    await caller.wait_event("play_done", timeout=60, since=since, call=call)
    return time.time() - TAIL_S


async def one_call(
    caller: Softphone, uri: str, events: Subscription, clip: Clip, wav: Path, timeout: float
) -> ClipResult:
    result = ClipResult(clip)
    call, answered = await answered_call(caller, uri, events)
    if answered is None:
        result.error = "no call.answered"
        return result
    call_id = answered.call_id
    if answered.data.get("operator_id") != "op1002":
        result.error = f"answered by {answered.data.get('operator_id')}"
    speech_end = await play_clip(caller, call, wav)
    texts: list[str] = []
    last_final: float | None = None
    open_utterance = False  # a partial came after the last final
    hard_deadline = time.monotonic() + timeout
    soft_deadline = time.monotonic() - TAIL_S + AFTER_SPEECH_S
    while True:
        deadline = hard_deadline if (open_utterance or not texts) else soft_deadline
        event = await next_event(
            events, call_id, {"transcript.final", "transcript.partial", "call.ended"}, min(deadline, hard_deadline)
        )
        if event is None or event.type == "call.ended":
            break
        if event.data.get("speaker") != "caller":
            continue
        if event.type == "transcript.partial":
            open_utterance = True
        else:
            open_utterance = False
            if event.data.get("text"):
                texts.append(event.data["text"])
                last_final = event.ts.timestamp()
        if not open_utterance and texts and time.monotonic() > soft_deadline:
            break
    await caller.hangup(call, timeout=10)
    await next_event(events, call_id, {"call.ended"}, time.monotonic() + 20)
    result.hypothesis = "".join(texts)
    if last_final is not None:
        result.final_latency = last_final - speech_end
    elif not texts:
        result.error = "no final"
    return result


async def simulated_cer(service: GatewayService, clips: list[Clip]) -> float:
    """CER of the same clips through bench/asr_eval.py's simulated telephone path, with the gateway's decoder."""
    from asr.faster_whisper_engine import FasterWhisperEngine

    engine = service.asr_engine
    assert engine is not None
    settings = service.settings.asr.model_copy(update={"partial_interval_ms": 10000})
    sim = FasterWhisperEngine(settings, decoder=engine.decoder)  # type: ignore[attr-defined]
    try:
        pairs = [
            (clip.reference, await stream_finals(sim, telephone_path(clip.audio()), f"sim/{clip.set_name}/{clip.name}"))
            for clip in clips
        ]
    finally:
        sim.close()
    return corpus_cer(pairs).cer


async def run(args: argparse.Namespace, sets: list[str], workdir: Path) -> int:
    base = load_settings()
    ast = base.asterisk
    await asyncio.to_thread(install_asterisk, base.resolve(ast.prefix), base.resolve(ast.cache_dir), ast.sid_mirror)
    ast_settings = make_settings()
    asterisk = AsteriskInstance(ast_settings, runtime_dir=workdir / "asterisk", ports=free_ports(ast_settings))
    await asterisk.start()
    service: GatewayService | None = None
    results: list[SetResult] = []
    started = time.monotonic()
    try:
        outcomes: list[RouteOutcome] = []
        request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
        settings = attach_settings(
            asterisk,
            routing={"wrap_up_s": 0},
            database={"url": f"sqlite:///{workdir / 'hotline.db'}"},
            asr={"enabled": True},
        )
        service = GatewayService(settings, routing_handler(request, outcomes))
        await service.start()
        assert service.gateway is not None
        await service.gateway.wait_ready(15)
        engine = service.asr_engine
        print(f"gateway up in {time.monotonic() - started:.1f} s; engine {engine.name if engine else None}", flush=True)
        events = service.gateway.bus.subscribe()
        uri = entry_uri(asterisk)
        async with (
            registered(asterisk, workdir, "op1002"),
            Softphone.open(log_path=workdir / "caller.log", user="13800138000") as caller,
        ):
            for name in sets:
                clips = load_set(name)[: args.max_clips]
                set_result = SetResult(name)
                results.append(set_result)
                for n, clip in enumerate(clips):
                    wav = telephone_clip(clip.path, workdir / f"{name}-{n}.wav")
                    r = await one_call(caller, uri, events, clip, wav, args.timeout)
                    set_result.clips.append(r)
                    if args.verbose:
                        lat = f"{r.final_latency:.2f} s" if r.final_latency is not None else "-"
                        print(f"  {name}/{clip.name}: {r.hypothesis} (final {lat}) {r.error}", flush=True)
                print(f"{name}: {len(clips)} calls done, {time.monotonic() - started:.0f} s", flush=True)
        calls_s = time.monotonic() - started
        if not args.no_sim:
            for set_result in results:
                set_result.sim_cer = await simulated_cer(service, [r.clip for r in set_result.clips])
        report(results, calls_s)
    finally:
        if service is not None:
            await service.stop()
        await asterisk.stop()
    return 0 if all(not r.error for s in results for r in s.clips) else 1


def report(results: list[SetResult], calls_s: float) -> None:
    print("\n== CER through a real call (pjsua2 caller, 8 kHz PCMU -> Asterisk -> slin16 tap -> engine) ==")
    print(
        f"{'set':<32}{'clips':>6}{'chars':>7}{'call CER':>10}{'sim CER':>9}"
        f"{'final p50':>11}{'final p95':>11}{'errors':>8}"
    )
    every: list[ClipResult] = []
    sim_weighted: list[tuple[float, int]] = []
    for s in results:
        every += s.clips
        result = corpus_cer([(r.clip.reference, r.hypothesis) for r in s.clips])
        lat = [r.final_latency for r in s.clips if r.final_latency is not None]
        sim = f"{s.sim_cer:>9.3f}" if s.sim_cer is not None else f"{'-':>9}"
        if s.sim_cer is not None:
            sim_weighted.append((s.sim_cer, result.ref_chars))
        errors = sum(1 for r in s.clips if r.error)
        print(
            f"{s.name:<32}{result.clips:>6}{result.ref_chars:>7}{result.cer:>10.3f}{sim}"
            f"{pct(lat, 0.5):>10.2f}s{pct(lat, 0.95):>10.2f}s{errors:>8}"
        )
    overall = corpus_cer([(r.clip.reference, r.hypothesis) for r in every])
    lat = [r.final_latency for r in every if r.final_latency is not None]
    sim_all = (
        f"{sum(c * n for c, n in sim_weighted) / max(1, sum(n for _, n in sim_weighted)):>9.3f}"
        if sim_weighted and len(sim_weighted) == len(results)
        else f"{'-':>9}"
    )
    print(
        f"{'all':<32}{overall.clips:>6}{overall.ref_chars:>7}{overall.cer:>10.3f}{sim_all}"
        f"{pct(lat, 0.5):>10.2f}s{pct(lat, 0.95):>10.2f}s{sum(1 for r in every if r.error):>8}"
    )
    answered = sum(1 for r in every if not r.error.startswith(("no call.answered", "answered by")))
    print(
        f"calls: {len(every)} ({answered} answered by op1002), {calls_s:.0f} s of calls; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    for r in every:
        if r.error:
            print(f"  {r.clip.set_name}/{r.clip.name}: {r.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=None, help="comma-separated set names (default: all available)")
    parser.add_argument("--max-clips", type=int, default=None, help="clips per set (default: all)")
    parser.add_argument("--quick", action="store_true", help="2 clips per set")
    parser.add_argument("--timeout", type=float, default=15.0, help="longest wait for finals after the clip (s)")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulated-path CER for comparison")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (phone and Asterisk logs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each clip's hypothesis and latency")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    if args.quick and args.max_clips is None:
        args.max_clips = 2
    configure_logging(args.log_level)
    root = speech_dir()
    sets = args.sets.split(",") if args.sets else available_sets(root)
    if not sets:
        sys.exit(f"no speech sets under {root} (set HOTLINE_SPEECH_DIR); known: {', '.join(SETS)}")
    print(f"speech: {root}; sets: {', '.join(sets)}; cores: {os.cpu_count()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="asr-call-eval-"))
    try:
        return asyncio.run(run(args, sets, workdir))
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
