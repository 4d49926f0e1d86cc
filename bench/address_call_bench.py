#!/usr/bin/env python
"""Addresses from the caller's voice through real calls, read where the operator reads them: the desk WebSocket.

    .venv/bin/python bench/address_call_bench.py                       # held-out and no-place lines (~25 min)
    .venv/bin/python bench/address_call_bench.py --sets dev --limit 40  # 40 dev lines
    .venv/bin/python bench/address_call_bench.py --no-second-pass       # without the guided second decode
    .venv/bin/python bench/address_call_bench.py --sets dev --ids town-086,full-148 -v   # these lines only

In this process: a private Asterisk and the gateway (live transcription, the map assistant, the desk), a registered
auto-answering operator phone op1002 and a desk login for op1002 following its event stream over the WebSocket
(as the page does). For each line of the address speech set (`hotline-tools address-speech audio`) a caller
softphone dials 12345, is routed to op1002, plays the clip (8 kHz, 0.3 s lead and 1.2 s tail silence) and hangs
up once its finals are in. What the bench reads is what the desk's WebSocket delivered for that call:

- the card: the top candidate of the last `address.candidates` message, scored as bench/address_audio_bench.py
  scores it (district / street / community right, false cards on no-place lines, cards at >= 80 % that are right);
- final latency: arrival of the call's last caller `transcript.final` on the WebSocket minus the end of the
  caller's speech (the caller's play_done minus the 1.2 s tail), p50 / p95;
- card latency: arrival of the first and of the last `address.candidates` minus the end of speech (the first may
  come from a partial line, before the caller has finished: negative);
- CPU: this process's CPU seconds (the gateway: taps, VAD, every decode, the assistants, the desk) per second of
  caller audio played, over all calls (Asterisk and the phones are other processes).

Compare settings in one sitting: --no-second-pass, --early-decode-ms 0 (the endpoint alone), --early-decode-long-ms
0 (long utterances as short ones), --no-rescore, --min-silence-ms, --vad-threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import websockets  # noqa: E402
from address_audio_bench import cpu_seconds  # noqa: E402  (bench/, the script's folder)
from asr_call_eval import TAIL_S, answered_call, next_event, pct, play_clip  # noqa: E402

from agent_desktop_api.auth import AuthService  # noqa: E402
from asr.faster_whisper_engine import SPOKEN_S  # noqa: E402
from events.address import AddressCandidate  # noqa: E402
from events.bus import Subscription  # noqa: E402
from hotline.logging_setup import configure_logging  # noqa: E402
from hotline.service import GatewayService  # noqa: E402
from hotline.settings import load_settings  # noqa: E402
from ivr_flows.port import RouteOutcome, RouteRequest  # noqa: E402
from tests.support.asterisk_fixture import free_ports, make_settings  # noqa: E402
from tests.voice.conftest import attach_settings, entry_uri, registered  # noqa: E402
from tests.voice.test_routing import routing_handler  # noqa: E402
from tests.voice.test_transcription import telephone_clip  # noqa: E402
from tools.address_speech.audio import DEFAULT_VOICE, VOICES, clip_name  # noqa: E402
from tools.address_speech.cases_file import read_cases  # noqa: E402
from tools.address_speech.cli import AUDIO_DIR, CASES_FILE  # noqa: E402
from tools.address_speech.score import CardOutcome, SetScore, table  # noqa: E402
from tools.address_speech.sentences import SpeechCase  # noqa: E402
from tools.softphone.driver import Softphone  # noqa: E402
from voice.asterisk.installer import install_asterisk  # noqa: E402
from voice.asterisk.instance import AsteriskInstance  # noqa: E402

OPERATOR, PASSWORD = "op1002", "bench-password-1002"
AFTER_SPEECH_S = 2.5  # read the desk until this long after the end of speech (longer while an utterance is open)


@dataclass
class Arrival:
    at: float  # wall clock when the desk's WebSocket delivered it
    message: dict[str, Any]


@dataclass
class CallResult:
    case: SpeechCase
    finals: list[str] = field(default_factory=list)
    card: AddressCandidate | None = None
    final_latency: float | None = None
    first_card_latency: float | None = None
    card_latency: float | None = None
    error: str = ""


class Desk:
    """op1002's event stream, as the page follows it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Arrival] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self, base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            login = await http.post("/api/auth/login", json={"username": OPERATOR, "password": PASSWORD})
            login.raise_for_status()
            token = login.json()["token"]
            me = (await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
        url = f"{base.replace('http', 'ws', 1)}/api/events?token={token}&after={me['last_seq']}&epoch={me['epoch']}"
        connected = asyncio.Event()

        async def read() -> None:
            async with websockets.connect(url) as ws:
                connected.set()
                async for raw in ws:
                    self.queue.put_nowait(Arrival(time.time(), json.loads(raw)))

        self._task = asyncio.create_task(read())
        await asyncio.wait_for(connected.wait(), 10)

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def next(self, deadline: float) -> Arrival | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), left)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


async def one_call(
    caller: Softphone, uri: str, events: Subscription, desk: Desk, case: SpeechCase, wav: Path, timeout: float
) -> CallResult:
    result = CallResult(case)
    desk.drain()
    call, answered = await answered_call(caller, uri, events)
    if answered is None:
        result.error = "no call.answered"
        return result
    call_id = answered.call_id
    speech_end = await play_clip(caller, call, wav)
    soft = time.monotonic() - TAIL_S + AFTER_SPEECH_S
    hard = time.monotonic() + timeout
    open_utterance = False
    last_final = first_card = last_card = None
    card_segment: str | None = None
    while True:
        arrival = await desk.next(hard if open_utterance or not result.finals else min(soft, hard))
        if arrival is None:
            break
        message = arrival.message
        if message.get("call_id") != call_id:
            continue
        kind = message.get("type")
        if kind == "transcript.partial" and message.get("speaker") == "caller":
            open_utterance = True
        elif kind == "transcript.final" and message.get("speaker") == "caller":
            open_utterance = False
            if message.get("text"):
                result.finals.append(message["text"])
                last_final = arrival.at
        elif kind == "address.candidates" and message.get("candidates"):
            result.card = AddressCandidate.model_validate(message["candidates"][0])
            card_segment = message.get("segment_id")
            first_card = first_card or arrival.at
            last_card = arrival.at
        elif kind == "address.candidates" and card_segment == message.get("segment_id"):
            result.card = None  # the line that showed it ended with no place: the page takes the card off
            card_segment = None
    await caller.hangup(call, timeout=10)
    await next_event(events, call_id, {"call.ended"}, time.monotonic() + 20)
    if last_final is not None:
        result.final_latency = last_final - speech_end
    if first_card is not None and last_card is not None:
        result.first_card_latency = first_card - speech_end
        result.card_latency = last_card - speech_end
    if not result.finals:
        result.error = "no final on the desk"
    return result


async def run(args: argparse.Namespace, groups: dict[str, list[SpeechCase]], workdir: Path) -> int:
    base = load_settings()
    ast = base.asterisk
    await asyncio.to_thread(install_asterisk, base.resolve(ast.prefix), base.resolve(ast.cache_dir), ast.sid_mirror)
    ast_settings = make_settings()
    asterisk = AsteriskInstance(ast_settings, runtime_dir=workdir / "asterisk", ports=free_ports(ast_settings))
    await asterisk.start()
    service: GatewayService | None = None
    desk = Desk()
    results: dict[str, list[CallResult]] = {}
    started = time.monotonic()
    try:
        request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
        outcomes: list[RouteOutcome] = []
        settings = attach_settings(
            asterisk,
            routing={"wrap_up_s": 0},
            database={"url": f"sqlite:///{workdir / 'hotline.db'}"},
            asr=asr_overrides(args),
        )
        service = GatewayService(settings, routing_handler(request, outcomes))
        await service.start()
        assert service.gateway is not None
        await service.gateway.wait_ready(15)
        await asyncio.to_thread(AuthService(service.engine).add_user, OPERATOR, "operator", PASSWORD)
        await desk.start(f"http://{settings.http.host}:{settings.http.port}")
        events = service.gateway.bus.subscribe()
        uri = entry_uri(asterisk)
        a = settings.asr
        print(
            f"gateway and desk up in {time.monotonic() - started:.0f} s; second pass {a.second_pass}, rescoring "
            f"{a.rescore_readings}, early decode {a.early_decode_ms} ms ({a.early_decode_long_ms or a.early_decode_ms} "
            f"ms from {a.early_decode_long_s:g} s of speech), endpoint {a.vad.min_silence_ms} ms, VAD threshold "
            f"{a.vad.threshold:g} (silence below {a.vad.neg_threshold:g})",
            flush=True,
        )
        cpu_start, audio_s = cpu_seconds(), 0.0
        async with (
            registered(asterisk, workdir, OPERATOR),
            Softphone.open(log_path=workdir / "caller.log", user="13800138000") as caller,
        ):
            for name, cases in groups.items():
                results[name] = []
                for n, case in enumerate(cases, 1):
                    wav = telephone_clip(args.audio / clip_name(case, args.voice), workdir / "clip.wav")
                    audio_s += _seconds(wav)
                    r = await one_call(caller, uri, events, desk, case, wav, args.timeout)
                    results[name].append(r)
                    if args.dump is not None:
                        with args.dump.open("a", encoding="utf-8") as out:
                            out.write(json.dumps(_dumped(name, r), ensure_ascii=False) + "\n")
                    if args.verbose:
                        card = f"{r.card.district}/{r.card.town}/{r.card.community}" if r.card else "-"
                        print(f"  {case.id}: {' | '.join(r.finals)} → {card} {r.error}", flush=True)
                    if n % 20 == 0:
                        print(f"  {name}: {n}/{len(cases)} calls, {time.monotonic() - started:.0f} s", flush=True)
        report(results, time.monotonic() - started, service)
        cpu = (cpu_seconds() - cpu_start) / audio_s
        print(f"CPU: {cpu:.3f} s of this process per second of caller audio ({audio_s:.0f} s of audio)")
    finally:
        await desk.stop()
        if service is not None:
            await service.stop()
        await asterisk.stop()
    return 0


def _dumped(set_name: str, r: CallResult) -> dict[str, Any]:
    """One call as the calibration and the failure lists want it: what was heard, the card and whether it was right
    (every level it shows, as tools.address_speech.score judges a card shown as sure)."""
    outcome = CardOutcome(r.case, r.finals, r.card, [])
    return {
        "id": r.case.id,
        "set": set_name,
        "text": r.case.text,
        "finals": r.finals,
        "card": r.card.model_dump(include={"district", "town", "community", "level", "confidence"}) if r.card else None,
        "right": outcome.right,
        "shown_right": outcome.shown_right,
        "final_latency": r.final_latency,
        "error": r.error,
    }


def asr_overrides(args: argparse.Namespace) -> dict[str, Any]:
    asr: dict[str, Any] = {"enabled": True, "second_pass": not args.no_second_pass}
    if args.early_decode_ms is not None:
        asr["early_decode_ms"] = args.early_decode_ms
    if args.early_decode_long_ms is not None:
        asr["early_decode_long_ms"] = args.early_decode_long_ms
    if args.no_rescore:
        asr["rescore_readings"] = False
    vad: dict[str, Any] = {}
    if args.min_silence_ms is not None:
        vad["min_silence_ms"] = args.min_silence_ms
    if args.vad_threshold is not None:
        vad["threshold"] = args.vad_threshold
    if vad:
        asr["vad"] = vad
    return asr


def _seconds(wav: Path) -> float:
    import wave

    with wave.open(str(wav)) as w:
        return w.getnframes() / w.getframerate()


def report(results: dict[str, list[CallResult]], seconds: float, service: GatewayService) -> None:
    print("\n== address card on the desk, through real calls ==")
    scores = []
    for name, calls in results.items():
        score = SetScore(name)
        score.outcomes = [CardOutcome(r.case, r.finals, r.card, []) for r in calls]
        scores.append(score)
    print(table(scores, timing=False))
    print(
        f"\n{'set':<10}{'final p50':>10}{'final p95':>10}{'1st card p50':>13}"
        f"{'card p50':>10}{'card p95':>10}{'errors':>8}"
    )
    for name, calls in results.items():
        finals = [r.final_latency for r in calls if r.final_latency is not None]
        cards = [r.card_latency for r in calls if r.card_latency is not None]
        firsts = [r.first_card_latency for r in calls if r.first_card_latency is not None]
        errors = sum(1 for r in calls if r.error)
        print(
            f"{name:<10}{pct(finals, 0.5):>9.2f}s{pct(finals, 0.95):>9.2f}s{pct(firsts, 0.5):>12.2f}s"
            f"{pct(cards, 0.5):>9.2f}s{pct(cards, 0.95):>9.2f}s{errors:>8}"
        )
    engine = service.asr_engine
    second, rescored = getattr(engine, "second_decodes", 0), getattr(engine, "rescored", 0)
    silent = getattr(engine, "silent_finals", 0)
    decoder = getattr(engine, "decoder", None)
    aligned, uncovered = getattr(decoder, "coverage_checks", 0), getattr(decoder, "uncovered_retries", 0)
    calls = sum(len(c) for c in results.values())
    print(
        f"calls: {calls} in {seconds:.0f} s; second readings: {rescored} suggested lines borne out, {second} guided "
        f"decodes; {silent} utterances of {SPOKEN_S:g} s or more decoded to no text; {aligned} finals aligned to their "
        f"audio, {uncovered} read again because their words left speech uncovered; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="holdout,none", help="dev, holdout, none (comma-separated)")
    parser.add_argument("--limit", type=int, default=0, help="lines per set (0: all)")
    parser.add_argument("--ids", default="", help="only these lines (comma-separated ids)")
    parser.add_argument("--cases", type=Path, default=CASES_FILE)
    parser.add_argument("--audio", type=Path, default=AUDIO_DIR)
    parser.add_argument(
        "--voice", choices=VOICES, default=DEFAULT_VOICE, help="who says the lines (see address-speech audio)"
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="longest wait for finals after the clip (s)")
    parser.add_argument("--no-second-pass", action="store_true")
    parser.add_argument("--early-decode-ms", type=int, default=None, help="0: decode only at the endpoint")
    parser.add_argument("--early-decode-long-ms", type=int, default=None, help="0: long utterances as short ones")
    parser.add_argument("--no-rescore", action="store_true", help="no suggested lines scored against the audio")
    parser.add_argument("--min-silence-ms", type=int, default=None, help="the endpoint (asr.vad.min_silence_ms)")
    parser.add_argument("--vad-threshold", type=float, default=None, help="speech starts here (asr.vad.threshold)")
    parser.add_argument("--dump", type=Path, default=None, help="append each call's outcome here (JSON lines)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    configure_logging(args.log_level)
    cases = read_cases(args.cases)
    groups: dict[str, list[SpeechCase]] = {}
    for name in args.sets.split(","):
        members = [c for c in cases if (c.district is None) == (name == "none") and (name == "none" or c.set == name)]
        if args.ids:
            members = [c for c in members if c.id in args.ids.split(",")]
        groups[name] = members[: args.limit or None]
    missing = [c.id for g in groups.values() for c in g if not (args.audio / clip_name(c, args.voice)).exists()]
    if missing:
        sys.exit(
            f"{len(missing)} clips missing under {args.audio}: run "
            f"`hotline-tools address-speech audio --cases {args.cases} --voice {args.voice}`"
        )
    workdir = Path(tempfile.mkdtemp(prefix="address-call-bench-"))
    try:
        return asyncio.run(run(args, groups, workdir))
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
