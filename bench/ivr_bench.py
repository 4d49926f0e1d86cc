"""IVR benchmark (issue 3, "Measure"): the shipped 12345 flow, a private Asterisk, the gateway in this process, sipp.

    .venv/bin/python bench/ivr_bench.py [--calls 20,50,100] [--quick] [--ring-calls 20] [--keep]

Same set-up as bench/telephony_bench.py (whose helpers it imports), but the gateway runs the REAL IVR
(`call.script = "flow"`, no handler: ivr_flows/flows/12345.yaml). Each sipp caller (bench/sipp/uac_ivr_queue.xml)
presses 1 (Mandarin, during the welcome) and 1 a second later (citizens), hears please_hold and waits in the
citizens queue until it hangs up itself.

  1. ring     one operator phone (op1002, a softphone that auto-answers), --ring-calls sequential callers:
              language digit received -> `call.offered` (the operator's phone rings), also from the service digit
              and from the end of please_hold; DTMF -> next prompt (language digit -> service menu starts).
  2. queue N  every operator away; N callers at once, ~8 s in the queue each: sipp ok/failed, calls that
              reached the queue, max waiting, gateway outcomes, max active calls; DTMF -> next prompt under load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from telephony_bench import (  # bench/, the script's folder; it puts the project root on sys.path
    Bench,
    LogCounter,
    PhaseResult,
    Recorder,
    build_caller_pcap,
    ms,
)

from events.bus import CallEvent
from hotline.logging_setup import configure_logging
from hotline.service import GatewayService
from hotline.settings import Settings
from tools.softphone.driver import Softphone
from voice.ari import AriEvent, ChannelDtmfReceived, PlaybackFinished, PlaybackStarted
from voice.operators import Presence

SCENARIO = "uac_ivr_queue.xml"
KEYS = [(1.0, "1"), (2.0, "1")]  # after the ACK: Mandarin during the welcome, then citizens on the service menu
QUEUE = "citizens"
OPERATOR = "op1002"
QUEUE_CALL_S = 14.0  # uac_ivr_queue.xml: BYE 13.5 s after the ACK
RING_HANGUP_MS = 7000  # sequential phase: BYE 7 s after the ACK (please_hold ends ~5.4 s, then ring + answer)
PROMPT_S = {"please_hold": 3.31, "service_menu": 5.67}  # ivr_flows/prompts/zh/*.wav


@dataclass
class IvrTrace:
    digits: list[float] = field(default_factory=list)  # ChannelDtmfReceived times
    service_menu: float | None = None  # PlaybackStarted of the service menu
    hold_start: float | None = None
    hold_end: float | None = None
    hold_id: str = ""
    offered: float | None = None


class IvrRecorder(Recorder):
    """telephony_bench's recorder plus, per call: the keys, the service menu's start, please_hold, call.offered."""

    def __init__(self, service: GatewayService) -> None:
        assert service.gateway is not None and service.gateway.routing is not None
        super().__init__(service.gateway)
        self.ivr: dict[str, IvrTrace] = {}
        self.max_waiting = 0
        self.queued: set[str] = set()
        router = service.gateway.routing.router
        self.router = router
        enqueue = router.enqueue

        def enqueue_and_count(call_id: str, queue: str, skills: Any) -> Any:
            if queue == QUEUE:
                self.queued.add(call_id)
            return enqueue(call_id, queue, skills)

        router.enqueue = enqueue_and_count  # type: ignore[method-assign]
        bus = service.gateway.bus
        publish = bus.publish

        def publish_and_stamp(event: CallEvent) -> None:
            if event.type == "call.offered":
                trace = self.ivr.get(event.call_id)
                if trace is not None and trace.offered is None:
                    trace.offered = time.monotonic()
            publish(event)

        bus.publish = publish_and_stamp  # type: ignore[method-assign]

    def reset(self) -> None:
        super().reset()
        self.ivr.clear()
        self.queued.clear()
        self.max_waiting = 0

    def dispatch(self, event: AriEvent) -> None:
        now = time.monotonic()
        if isinstance(event, ChannelDtmfReceived):
            self.ivr.setdefault(event.channel.id, IvrTrace()).digits.append(now)
        elif isinstance(event, PlaybackStarted | PlaybackFinished):
            trace = self.ivr.get(event.playback.channel_id or "")
            uri = event.playback.media_uri
            if trace is not None and isinstance(event, PlaybackStarted):
                if "service_menu" in uri and trace.service_menu is None and trace.digits:
                    trace.service_menu = now
                elif "please_hold" in uri and trace.hold_start is None:
                    trace.hold_start, trace.hold_id = now, event.playback.id
            elif trace is not None and event.playback.id == trace.hold_id and trace.hold_end is None:
                trace.hold_end = now
        super().dispatch(event)

    async def poll_active(self, interval: float = 0.02) -> None:
        async def poll_waiting() -> None:
            while True:
                await asyncio.sleep(interval)
                self.max_waiting = max(self.max_waiting, self.router.waiting(QUEUE))

        waiting = asyncio.create_task(poll_waiting())
        try:
            await super().poll_active(interval)
        finally:
            waiting.cancel()

    # ---- figures ----

    def dtmf_to_menu(self) -> list[float]:
        return [t.service_menu - t.digits[0] for t in self.ivr.values() if t.digits and t.service_menu is not None]

    def ring(self) -> dict[str, list[float]]:
        done = [t for t in self.ivr.values() if len(t.digits) >= 2 and t.offered is not None]
        return {
            "lang": [t.offered - t.digits[0] for t in done],  # type: ignore[operator]
            "service": [t.offered - t.digits[1] for t in done],  # type: ignore[operator]
            "after_hold": [t.offered - t.hold_end for t in done if t.hold_end is not None],  # type: ignore[operator]
            "hold": [t.hold_end - t.hold_start for t in done if t.hold_end and t.hold_start],
        }


def write_ring_scenario(path: Path) -> None:
    """uac_ivr_queue.xml with the caller hanging up RING_HANGUP_MS after the ACK (once talking to the operator)."""
    text = (Path(__file__).resolve().parent / "sipp" / SCENARIO).read_text()
    path.write_text(text.replace('<pause milliseconds="13500"/>', f'<pause milliseconds="{RING_HANGUP_MS}"/>'))


class IvrBench(Bench):
    """telephony_bench's Bench (its phase(), clean-up and reports), started with the real IVR instead."""

    def gateway_sections(self) -> dict[str, dict[str, Any]]:
        return {
            "call": {"script": "flow"},  # the published flow (ivr_flows/flows/12345.yaml, version 1)
            "routing": {"wrap_up_s": 0},  # sequential calls to one operator: no wrap-up pause between them
        }

    def make_service(self, settings: Settings) -> GatewayService:
        return GatewayService(settings)  # no handler: the flow runs

    def make_recorder(self, service: GatewayService) -> Recorder:
        return IvrRecorder(service)

    async def start(self, capacity: int) -> None:
        await super().start(capacity)
        # the callers' stream for this flow: 1 (Mandarin) and 1 (citizens), replacing telephony_bench's 1 2 3 #
        build_caller_pcap(Path(self.args.pcap_dir) / "g711a.pcap", self.workdir / "sipp" / "pcap" / "caller.pcap", KEYS)
        # the sequential phase's scenario: the caller hangs up once connected to the operator
        self.ring_scenario = self.workdir / "uac_ivr_ring.xml"
        write_ring_scenario(self.ring_scenario)

    async def presence(self, available: set[str]) -> None:
        assert self.service is not None and self.service.gateway is not None
        assert self.service.gateway.routing is not None
        pool = self.service.gateway.routing.router.pool
        for op in list(pool):
            await pool.set_presence(op.id, Presence.AVAILABLE if op.id in available else Presence.AWAY)


def q(values: list[float], p: float) -> str:
    return ms(values, p, 1000, 1)


async def main_async(args: argparse.Namespace) -> int:
    loads_n = [int(n) for n in args.calls.split(",") if n.strip()]
    if args.quick:
        loads_n = loads_n[:1] if args.calls_given else [20]
    ring_calls = args.ring_calls or (3 if args.quick else 20)
    workdir = Path(tempfile.mkdtemp(prefix="hotline-ivr-bench-"))
    bench = IvrBench(args, workdir)
    logging.getLogger().addHandler(args.log_counter)
    phone: Softphone | None = None
    try:
        print(f"starting Asterisk and the gateway with the 12345 flow (work dir {workdir}) ...", flush=True)
        await bench.start(max(loads_n) + 20)
        assert bench.asterisk is not None and isinstance(bench.recorder, IvrRecorder)
        rec = bench.recorder
        print(f"phase ring: operator {OPERATOR} registered, {ring_calls} sequential callers ...", flush=True)
        phone = await Softphone.start(log_path=workdir / f"{OPERATOR}.log", user=OPERATOR)
        await phone.account(
            user=OPERATOR,
            password=bench.asterisk.secrets.operator_password(OPERATOR),
            registrar=f"sip:127.0.0.1:{bench.asterisk.sip_port}",
        )
        await phone.auto_answer(True)
        await bench.presence({OPERATOR})
        ring = await bench.phase(
            "ring", str(bench.ring_scenario), calls=ring_calls, limit=1, per_call_s=RING_HANGUP_MS / 1000 + 0.5
        )
        ring_fig, ring_menu = rec.ring(), rec.dtmf_to_menu()
        ring_traced = len(rec.ivr)
        await bench.presence(set())  # everyone away: callers wait in the queue
        loads: list[tuple[PhaseResult, int, int, list[float]]] = []
        for n in loads_n:
            print(f"phase queue: {n} concurrent callers, operators away ...", flush=True)
            r = await bench.phase(f"queue N={n}", SCENARIO, calls=n, limit=n, per_call_s=QUEUE_CALL_S)
            loads.append((r, len(rec.queued), rec.max_waiting, rec.dtmf_to_menu()))
    finally:
        if phone is not None:
            with contextlib.suppress(Exception):
                await phone.close(check=False)
        await bench.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    out = print
    hold = PROMPT_S["please_hold"]
    out()
    out(f"IVR benchmark, 12345 flow — {os.cpu_count()} CPU cores, sipp callers, gateway + Asterisk 22 on 127.0.0.1")
    out(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    out(f"load average (1 min) before {args.loadavg_start:.2f}, after {os.getloadavg()[0]:.2f}")
    out()
    s = ring.sipp
    out(
        f"1. Language choice -> operator ringing ({ring_calls} sequential callers, one operator; sipp ok {s.successful}"
        f" / failed {s.failed}; {len(ring_fig['lang'])} of {ring_traced} calls offered; gw {ring.outcomes})"
    )
    rows = [
        ("language digit -> call.offered", ring_fig["lang"]),
        ("service digit -> call.offered", ring_fig["service"]),
        (f"  minus please_hold ({hold} s)", [v - hold for v in ring_fig["service"]]),
        ("please_hold finished -> call.offered", ring_fig["after_hold"]),
        ("please_hold played (Started -> Finished)", ring_fig["hold"]),
        ("DTMF -> next prompt (language digit -> service menu starts)", ring_menu),
    ]
    out(f"   {'figure':<62} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'n':>4}")
    for name, values in rows:
        if values:
            out(f"   {name:<62} {q(values, 0.5):>9} {q(values, 0.95):>9} {q(values, 1.0):>9} {len(values):>4}")
    out("   (the caller presses the service digit 1 s after the language digit, so language -> ringing = 1 s +")
    out("    service digit -> ringing; the latter is please_hold's 3.31 s plus the gateway's own work)")
    out()
    out("2. N callers at once through welcome -> 1 -> service menu -> 1 -> please_hold -> citizens queue")
    out("   (all operators away), ~8 s in the queue, then the caller hangs up")
    head = ["N", "sipp ok", "sipp fail", "reached queue", "max waiting", "gw outcomes", "max active", "sipp wall s",
            "dtmf>prompt p50 ms", "p95 ms", "gw CPU s", "ast CPU s", "leftovers"]  # fmt: skip
    table = []
    for r, queued, max_wait, menu in loads:
        table.append([
            str(r.calls), str(r.sipp.successful), str(r.sipp.failed), str(queued), str(max_wait),
            ", ".join(f"{k}={v}" for k, v in r.outcomes.items()) or "-", str(r.max_active), f"{r.sipp.wall_s:.1f}",
            q(menu, 0.5), q(menu, 0.95), f"{r.gw_cpu_s:.2f}", f"{r.ast_cpu_s:.2f}", r.leftovers,
        ])  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(head)]
    out("   " + "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in table:
        out("   " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    problems = []
    for r in [ring, *(x[0] for x in loads)]:
        if r.sipp.failed or r.sipp.successful < r.calls:
            problems.append(f"{r.name}: sipp ok {r.sipp.successful}/{r.calls}, failed {r.sipp.failed}")
        problems += [f"{r.name}: sipp: {e}" for e in r.sipp.errors[:3]]
        problems += [f"{r.name}: asterisk: {line}" for line in r.ast_log[:3]]
    for r, queued, _max_wait, _menu in loads:
        if queued < r.calls:
            problems.append(f"{r.name}: only {queued} of {r.calls} reached the queue")
    problems += [f"gateway log: {n} x {name}" for name, n in args.log_counter.counts.most_common(8)]
    out()
    out("Problems seen: " + ("none" if not problems else ""))
    for line in problems:
        out(f"  - {line}")
    ok = (
        not any(r.sipp.failed or r.sipp.successful < r.calls or queued < r.calls for r, queued, _m, _d in loads)
        and ring.sipp.successful == ring.calls
        and len(ring_fig["lang"]) == ring.calls
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="20,50,100", help="N for the concurrent queue phases (default 20,50,100)")
    parser.add_argument("--quick", action="store_true", help="short run: 3 sequential callers, N=20")
    parser.add_argument("--ring-calls", type=int, default=0, help="sequential callers to the operator (20)")
    parser.add_argument("--pcap-dir", default="/usr/share/sip-tester", help="where sipp's g711a.pcap is")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (sipp traces, Asterisk logs)")
    parser.add_argument("--log-level", default="WARNING", help="gateway log level on stderr (WARNING)")
    args = parser.parse_args()
    args.calls_given = "--calls" in sys.argv or any(a.startswith("--calls=") for a in sys.argv)
    args.profile = None
    args.log_counter = LogCounter()
    args.loadavg_start = os.getloadavg()[0]
    configure_logging(args.log_level)

    async def runner() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main_async(args)

    with asyncio.Runner() as loop_runner:
        try:
            return loop_runner.run(runner())
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
