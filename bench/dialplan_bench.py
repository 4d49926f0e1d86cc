"""Capacity per node, side by side: the same call work done by Asterisk's own dialplan and by Asterisk under the
gateway (ARI), in one run, on one private Asterisk.

    .venv/bin/python bench/dialplan_bench.py [--calls 100] [--rounds 3] [--profile FILE]

The call work is the basic script's: answer, greeting (hello-world), the digits prompt, three RFC 2833 digits and
'#', the read-back, hang-up by the callee. sipp plays the callers (bench/sipp/uac_ivr.xml, the caller's RTP from
bench/caller_pcap.py). The dialplan does it with Answer/Playback/Read/SayDigits on extension 12399, added to the
rendered dialplan of the bench's Asterisk; the gateway does it on 12345 through Stasis. The rounds alternate
(gateway, dialplan, gateway, ...), N callers at once each.

Figures: CPU seconds of Asterisk (/proc/PID/stat) and of the gateway (this process), per round; the ratio of
gateway + Asterisk-under-ARI to Asterisk's dialplan for the same calls (the issue's target: <= 1.5); set-up
INVITE -> 200 OK p50 / p95 (sipp's message trace).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from telephony_bench import (  # bench/, the script's folder
    DEFAULT_PCAP_DIR,
    IVR_CALL_S,
    Bench,
    LogCounter,
    PhaseResult,
    configure_logging,
    quantile,
)

DIALPLAN_NUMBER = "12399"
DIALPLAN = f"""
; added by bench/dialplan_bench.py: the basic script's work in the dialplan, for the side-by-side figures
exten => {DIALPLAN_NUMBER},1,Answer()
 same => n,Playback(hello-world)
 same => n,Read(digits,vm-enter-num-to-call,4,,1,8)
 same => n,GotoIf($["${{digits}}" = ""]?none)
 same => n,Playback(you-entered)
 same => n,SayDigits(${{digits}})
 same => n,Hangup()
 same => n(none),Playback(vm-goodbye)
 same => n,Hangup()
"""


async def add_dialplan(bench: Bench) -> None:
    """Put the dialplan extension into the running Asterisk's from-callers context."""
    assert bench.asterisk is not None
    path = bench.asterisk.dirs.etc / "extensions.conf"
    text = path.read_text()
    path.write_text(text.replace("[from-callers]\n", "[from-callers]\n" + DIALPLAN, 1))
    for module in ("app_read.so", "app_playback.so"):  # the gateway's Asterisk loads only what ARI needs
        await bench.asterisk.rx(f"module load {module}")
    await bench.asterisk.rx("dialplan reload")
    shown = await bench.asterisk.rx(f"dialplan show {DIALPLAN_NUMBER}@from-callers")
    if "SayDigits" not in shown:
        raise SystemExit(f"the bench's dialplan did not load: {shown}")
    for app in ("Read", "Playback", "SayDigits"):
        if "not registered" in (await bench.asterisk.rx(f"core show application {app}")).lower():
            raise SystemExit(f"Asterisk has no {app}() application")


def row(name: str, result: PhaseResult) -> str:
    setup = result.sipp.setup_ms
    p50, p95 = quantile(setup, 0.5), quantile(setup, 0.95)
    total = result.ast_cpu_s + result.gw_cpu_s
    return (
        f"| {name} | {result.sipp.successful} / {result.sipp.failed} | {result.ast_cpu_s:.2f} | "
        f"{result.gw_cpu_s:.2f} | {total:.2f} | {p50:.1f} / {p95:.1f} |"
    )


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-dialplan-bench-"))
    bench = Bench(args, workdir)
    try:
        print(f"starting Asterisk and the gateway (work dir {workdir}) ...", flush=True)
        await bench.start(args.calls + 20)
        await add_dialplan(bench)
        gateway: list[PhaseResult] = []
        dialplan: list[PhaseResult] = []
        for round_ in range(1, args.rounds + 1):
            for name, number, results in (("gateway", "12345", gateway), ("dialplan", DIALPLAN_NUMBER, dialplan)):
                print(f"round {round_}: {args.calls} callers through the {name} ...", flush=True)
                results.append(
                    await bench.phase(
                        name, "uac_ivr.xml", calls=args.calls, limit=args.calls, per_call_s=IVR_CALL_S, service=number
                    )
                )
        print()
        print(f"{args.calls} callers at once, {args.rounds} rounds each, alternating (CPU seconds per round)")
        print()
        print("| path | sipp ok / failed | Asterisk CPU | gateway CPU | total | set-up p50 / p95 ms |")
        print("|---|---|---|---|---|---|")
        for i, (g, d) in enumerate(zip(gateway, dialplan, strict=True), 1):
            print(row(f"gateway {i}", g))
            print(row(f"dialplan {i}", d))
        ratios = [
            (g.ast_cpu_s + g.gw_cpu_s) / d.ast_cpu_s for g, d in zip(gateway, dialplan, strict=True) if d.ast_cpu_s
        ]
        ast_only = [g.ast_cpu_s / d.ast_cpu_s for g, d in zip(gateway, dialplan, strict=True) if d.ast_cpu_s]
        print()
        if ratios:
            print(
                f"(gateway + Asterisk under ARI) / Asterisk's dialplan: median {statistics.median(ratios):.2f} "
                f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}); target <= 1.5"
            )
            pooled = sum(g.ast_cpu_s + g.gw_cpu_s for g in gateway) / sum(d.ast_cpu_s for d in dialplan)
            print(f"pooled over the rounds (sums of CPU, less swayed by one noisy round): {pooled:.2f}")
            print(f"Asterisk under ARI alone / its dialplan: median {statistics.median(ast_only):.2f}")
            per_call = statistics.median(g.gw_cpu_s for g in gateway) / args.calls * 1000
            print(f"the gateway's own CPU per call: median {per_call:.1f} ms (bench's poller included)")
        gw_setup = [ms for g in gateway for ms in g.sipp.setup_ms]
        dp_setup = [ms for d in dialplan for ms in d.sipp.setup_ms]
        print(
            f"set-up p95: gateway {quantile(gw_setup, 0.95):.1f} ms, dialplan {quantile(dp_setup, 0.95):.1f} ms "
            "(target <= 20 ms at 100 callers)"
        )
        failed = sum(r.sipp.failed for r in [*gateway, *dialplan])
        print(f"failed calls: {failed}")
        if args.profile:
            bench.profiler.dump_stats(args.profile)
            print(f"gateway profile written to {args.profile}")
        ok = failed == 0 and all(not math.isnan(r) for r in ratios)
        return 0 if ok else 1
    finally:
        await bench.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="callers at once per round (100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each path (3)")
    parser.add_argument("--pcap-dir", default=str(DEFAULT_PCAP_DIR), help="where sipp's g711a.pcap is")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the gateway's rounds into FILE (pstats)")
    args = parser.parse_args()
    args.log_counter = LogCounter()
    configure_logging(args.log_level)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
