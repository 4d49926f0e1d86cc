"""Telephony benchmark of the gateway (issue 2, "Measure"): a private Asterisk, the gateway in this process, sipp.

    .venv/bin/python bench/telephony_bench.py [--calls 20,50,100] [--quick] [--keep] [--profile FILE]

Phases (bench/README.md says what each figure means):
  1. set-up     INVITE sent -> 200 OK received, sequential calls (sipp bench/sipp/uac_setup.xml; per call, from
                sipp's -trace_msg timestamps, which have microseconds; sipp's own rtd measure is whole ms).
  2. dtmf       sequential callers through the basic flow (bench/sipp/uac_ivr.xml); DTMF received -> next prompt
                started, timed in this process on the ARI events (a wrapper around Gateway.dispatch), exact
                quantiles.
  3. load N     N callers at once (sipp -l N -m N -r N, uac_ivr.xml) through answer -> greeting -> prompt ->
                RFC 2833 DTMF -> read-back -> the gateway's hang-up: calls completed/failed, the gateway's
                outcomes, max active calls, CPU and memory of the gateway (this process) and of Asterisk
                (/proc/PID/stat).

The callers' RTP (A-law speech with the key presses in one stream) is written by bench/caller_pcap.py.
Everything runs on 127.0.0.1 on free ports; sipp (its own session, killed as a group) and Asterisk are stopped
on every exit path, and every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import csv
import ctypes
import datetime
import logging
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support (settings helpers) is not an installed package

from caller_pcap import build_caller_pcap  # noqa: E402  (bench/, the script's folder)

from hotline.logging_setup import configure_logging  # noqa: E402
from hotline.service import GatewayService  # noqa: E402
from hotline.settings import Settings, load_settings  # noqa: E402
from tests.support.asterisk_fixture import free_ports, make_settings  # noqa: E402
from voice.ari import (  # noqa: E402
    AriEvent,
    ChannelDtmfReceived,
    PlaybackFinished,
    PlaybackStarted,
    StasisStart,
)
from voice.asterisk.installer import install_asterisk  # noqa: E402
from voice.asterisk.instance import AsteriskInstance  # noqa: E402
from voice.basic_flow import make_basic_flow  # noqa: E402
from voice.gateway import Gateway  # noqa: E402
from voice.metrics import CALL_OUTCOMES  # noqa: E402

SCENARIO_DIR = Path(__file__).resolve().parent / "sipp"
DEFAULT_PCAP_DIR = Path("/usr/share/sip-tester")
EXPECTED_DIGITS = "123#"  # what the caller presses (caller.pcap, played by uac_ivr.xml)
KEY_TIMES_S = (2.5, 2.8, 3.1, 3.4)  # after the ACK: 1 s into the digits prompt, which follows the 1.4 s greeting
CLK_TCK = os.sysconf("SC_CLK_TCK")
IVR_CALL_S = 8.0  # one uac_ivr.xml call lasts about 7 s unloaded
SETUP_CALL_S = 0.4
# "[2026-11-22 03:39:11.803] WARNING[123][C-00000001] res_stasis_playback.c: message"
_AST_LOG_LINE = re.compile(
    r"^\[[^\]]*\]\s+(?P<level>WARNING|ERROR)\[\d+\](?:\[[^\]]*\])?\s+(?P<src>[^:]+):\s*(?P<msg>.*)$"
)
_AST_LOG_NUMBERS = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(?:\.\d+)*")


# ---------------------------------------------------------------------------------------------- measurements


def quantile(values: list[float], q: float) -> float:
    """Exact quantile, linear interpolation between order statistics (numpy's default method)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class CallTrace:
    started: float
    digits: str = ""
    last_dtmf: float | None = None
    dtmf_while_playing: bool = False  # the last key came while a prompt was still playing
    playing: set[str] = field(default_factory=set)


@dataclass
class DtmfSample:
    seconds: float
    clean: bool  # False: the key arrived while a non-interruptible prompt played, so the wait includes it


class Recorder:
    """Timestamps ARI events as the gateway receives them (wraps Gateway.dispatch; `t` is time.monotonic()).

    DTMF -> prompt: per channel, the last ChannelDtmfReceived before the channel's next PlaybackStarted.
    Also follows the gateway's active calls (max and call-seconds) from a polling task.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._dispatch = gateway.dispatch
        gateway.dispatch = self.dispatch  # type: ignore[method-assign]
        self.calls: dict[str, CallTrace] = {}
        self.dtmf: list[DtmfSample] = []
        self.metric_samples: list[float] = []  # the gateway's own dtmf_to_prompt_seconds observations
        hist = gateway.metrics.dtmf_to_prompt_seconds
        observe = hist.observe

        def observe_and_keep(amount: float, exemplar: Any = None) -> None:
            self.metric_samples.append(amount)
            observe(amount, exemplar)

        hist.observe = observe_and_keep  # type: ignore[method-assign]
        self.answer_samples: list[float] = []  # the gateway's answer_seconds: StasisStart -> answer request done
        answer_hist = gateway.metrics.answer_seconds
        observe_answer = answer_hist.observe

        def observe_answer_and_keep(amount: float, exemplar: Any = None) -> None:
            self.answer_samples.append(amount)
            observe_answer(amount, exemplar)

        answer_hist.observe = observe_answer_and_keep  # type: ignore[method-assign]
        self.max_active = 0
        self.call_seconds = 0.0

    def reset(self) -> None:
        self.calls.clear()
        self.dtmf.clear()
        self.metric_samples.clear()
        self.answer_samples.clear()
        self.max_active = 0
        self.call_seconds = 0.0

    def dispatch(self, event: AriEvent) -> None:
        now = time.monotonic()
        if isinstance(event, StasisStart):
            self.calls.setdefault(event.channel.id, CallTrace(started=now))
        elif isinstance(event, ChannelDtmfReceived):
            trace = self.calls.get(event.channel.id)
            if trace is not None:
                trace.digits += event.digit
                trace.last_dtmf = now
                trace.dtmf_while_playing = bool(trace.playing)
        elif isinstance(event, PlaybackStarted | PlaybackFinished):
            channel_id = event.playback.channel_id
            trace = self.calls.get(channel_id) if channel_id else None
            if trace is not None:
                if isinstance(event, PlaybackStarted):
                    if trace.last_dtmf is not None:
                        self.dtmf.append(DtmfSample(now - trace.last_dtmf, clean=not trace.dtmf_while_playing))
                        trace.last_dtmf = None
                    trace.playing.add(event.playback.id)
                else:
                    trace.playing.discard(event.playback.id)
        self._dispatch(event)

    async def poll_active(self, interval: float = 0.02) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            active = self.gateway.active_calls
            self.max_active = max(self.max_active, active)
            self.call_seconds += active * (now - last)
            last = now


@dataclass
class ProcSample:
    cpu_s: float
    rss_mb: float


def proc_sample(pid: int) -> ProcSample:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads
    rss = 0.0
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return ProcSample(cpu, rss)


class LogCounter(logging.Handler):
    """Counts the gateway's warnings and errors by event name (structlog puts the event dict in record.msg)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        name = str(msg.get("event", "?")) if isinstance(msg, dict) else str(msg)[:80]
        self.counts[f"{record.levelname.lower()} {name}"] += 1


# ---------------------------------------------------------------------------------------------- sipp


@dataclass
class SippResult:
    rc: int | None
    successful: int
    failed: int
    setup_ms: list[float]  # from the message trace (microseconds)
    rtd_ms: list[float]  # sipp's own response-time measure (-trace_rtt, whole ms)
    wall_s: float
    timed_out: bool
    errors: list[str]


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_media_base(calls: int, avoid: tuple[int, int]) -> int:
    """A base for sipp's [auto_media_port] (it takes 4 ports per call from -mp) clear of Asterisk's RTP range."""
    span = 4 * calls + 8
    for _ in range(50):
        base = random.randrange(40000, 60000 - span, 4)
        clear = base + span < avoid[0] or base > avoid[1]
        if clear and all(_udp_port_free(port) for port in range(base, base + span, 2)):
            return base
    raise RuntimeError("no free UDP range for sipp's media ports")


class Sipp:
    """Runs sipp scenarios against one Asterisk; every process it starts is killed on close()."""

    def __init__(self, binary: str, workdir: Path, pcap_dir: Path, target: str, rtp_range: tuple[int, int]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.target = target
        self.rtp_range = rtp_range
        self._procs: set[asyncio.subprocess.Process] = set()
        self._runs = 0
        (workdir / "pcap").mkdir(parents=True, exist_ok=True)
        audio = pcap_dir / "g711a.pcap"
        if not audio.is_file():
            raise SystemExit(f"missing {audio}: install sip-tester (apt-get install sip-tester)")
        build_caller_pcap(audio, workdir / "pcap" / "caller.pcap", list(zip(KEY_TIMES_S, EXPECTED_DIGITS, strict=True)))

    async def run(
        self, scenario: str, *, calls: int, limit: int, rate: int, timeout_s: float, service: str = "12345"
    ) -> SippResult:
        self._runs += 1
        run_dir = self.workdir / f"run{self._runs}-{Path(scenario).stem}"
        run_dir.mkdir()
        (run_dir / "pcap").symlink_to(self.workdir / "pcap")
        local = run_dir / Path(scenario).name
        shutil.copy(SCENARIO_DIR / scenario, local)
        stat_file = run_dir / "stat.csv"
        args = [
            self.binary, self.target,
            "-sf", local.name, "-s", service,
            "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mi", "127.0.0.1", "-mp", str(free_media_base(limit, self.rtp_range)),
            "-m", str(calls), "-l", str(limit), "-r", str(rate), "-rp", "1000",
            "-trace_rtt", "-rtt_freq", "1",
            "-trace_stat", "-stf", stat_file.name, "-fd", "1",
            "-trace_err", "-trace_msg",
            "-aa", "-nostdin",
            "-timeout", f"{int(timeout_s)}s", "-timeout_error",
            "-max_recv_loops", "10000",
        ]  # fmt: skip
        started = time.monotonic()
        with (run_dir / "sipp.out").open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._procs.add(proc)
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout_s + 15)
        except TimeoutError:
            timed_out = True
            self._kill(proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        finally:
            if proc.returncode is None:
                self._kill(proc)
            self._procs.discard(proc)
        wall = time.monotonic() - started
        successful, failed = _parse_stat(stat_file)
        errors = []
        for err in sorted(run_dir.glob("*_errors.log")):
            errors += [line for line in err.read_text(errors="replace").splitlines() if line.strip()][:20]
        if proc.returncode not in (0, 1):
            tail = (run_dir / "sipp.out").read_text(errors="replace").splitlines()[-15:]
            errors.append(f"sipp exited with {proc.returncode}: " + " | ".join(tail))
        return SippResult(
            proc.returncode, successful, failed, _parse_msg_trace(run_dir), _parse_rtt(run_dir), wall, timed_out, errors
        )

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: sipp and its pcap threads, nothing else

    async def close(self) -> None:
        for proc in list(self._procs):
            self._kill(proc)
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(proc.wait(), 5)
        self._procs.clear()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL sipp if the bench dies without cleaning up (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _parse_stat(path: Path) -> tuple[int, int]:
    """(successful, failed) calls from the last row of sipp's -trace_stat file."""
    try:
        rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    except OSError:
        return 0, 0
    if len(rows) < 2:
        return 0, 0
    header, last = rows[0], rows[-1]
    values = dict(zip(header, last, strict=False))
    return int(values.get("SuccessfulCall(C)", 0) or 0), int(values.get("FailedCall(C)", 0) or 0)


_TRACE_HEAD = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d{6})\s*$", re.M)


def _parse_msg_trace(run_dir: Path) -> list[float]:
    """INVITE sent -> 200 OK (to the INVITE) received, per Call-ID, in ms, from sipp's -trace_msg log.

    Its timestamps have microseconds, where the -trace_rtt figures are whole milliseconds of sipp's clock tick.
    The first transmission of the INVITE counts (a retransmission would not restart the clock).
    """
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    for path in run_dir.glob("*_messages.log"):
        text = path.read_text(errors="replace")
        heads = list(_TRACE_HEAD.finditer(text))
        for i, head in enumerate(heads):
            body = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            stamp = datetime.datetime.fromisoformat(f"{head.group(1)} {head.group(2)}").timestamp()
            lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
            if len(lines) < 2:
                continue
            start = lines[1]  # lines[0]: "UDP message sent (N bytes):" / "UDP message received [N] bytes :"
            call_id = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("call-id:")), "")
            cseq = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")), "")
            if lines[0].startswith("UDP message sent") and start.startswith("INVITE "):
                sent.setdefault(call_id, stamp)
            elif (
                lines[0].startswith("UDP message received")
                and start.startswith("SIP/2.0 200")
                and cseq.endswith("INVITE")
            ):
                answered.setdefault(call_id, stamp)
    return [1000 * (answered[c] - sent[c]) for c in answered if c in sent]


def _parse_rtt(run_dir: Path) -> list[float]:
    """Response times (ms) of measure 1 from sipp's -trace_rtt files: `date_ms;response_time_ms;rtd_no`."""
    values: list[float] = []
    for path in run_dir.glob("*_rtt.csv"):
        for row in csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"):
            if len(row) >= 3 and row[2].strip() in ("1", "rtd1"):
                with contextlib.suppress(ValueError):
                    values.append(float(row[1]))
    return values


# ---------------------------------------------------------------------------------------------- the bench


def _known_settings(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only the sections and keys this version of the settings has (the bench runs against a moving tree)."""
    fields = Settings.model_fields
    known: dict[str, dict[str, Any]] = {}
    for name, values in sections.items():
        annotation = fields[name].annotation if name in fields else None
        section_fields = getattr(annotation, "model_fields", None)
        if section_fields is not None:
            known[name] = {key: value for key, value in values.items() if key in section_fields}
    return known


@dataclass
class PhaseResult:
    name: str
    calls: int
    sipp: SippResult
    outcomes: dict[str, int]
    max_active: int
    call_seconds: float
    dtmf: list[DtmfSample]
    metric_samples: list[float]
    answer_samples: list[float]
    digits_ok: int
    traced_calls: int
    gw_cpu_s: float
    ast_cpu_s: float
    sipp_cpu_s: float
    gw_rss_mb: float
    ast_rss_mb: float
    window_s: float
    ast_log: list[str]
    leftovers: str  # channels/bridges Asterisk still holds once the phase is over ("0/0" expected)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.asterisk: AsteriskInstance | None = None
        self.service: GatewayService | None = None
        self.recorder: Recorder | None = None
        self.sipp: Sipp | None = None
        self.log_counter = LogCounter()
        self._poller: asyncio.Task[None] | None = None
        self.profiler = cProfile.Profile()
        self.idle: tuple[float, float] = (math.nan, math.nan)  # % of a core with no calls: gateway, Asterisk

    async def start(self, capacity: int) -> None:
        settings = load_settings()
        ast = settings.asterisk
        await asyncio.to_thread(
            install_asterisk, settings.resolve(ast.prefix), settings.resolve(ast.cache_dir), ast.sid_mirror
        )
        telephony = {"max_concurrent_calls": capacity}
        ast_settings = make_settings(telephony=telephony)
        self.asterisk = AsteriskInstance(
            ast_settings, runtime_dir=self.workdir / "asterisk", ports=free_ports(ast_settings)
        )
        await self.asterisk.start()
        sections: dict[str, dict[str, Any]] = {
            "asterisk": {
                "mode": "external",
                "ari_url": self.asterisk.ari_url,
                "ari_username": self.asterisk.ari_username,
                "ari_password": self.asterisk.ari_password,
            },
            "http": {"port": free_tcp_port()},
            "telephony": telephony,
            # Any database the service opens goes to the work dir, never to the project's var/. No live
            # transcription (it would load the ASR model into this process).
            "asr": {"enabled": False},
            "database": {"url": f"sqlite:///{self.workdir / 'hotline.db'}"},
            **self.gateway_sections(),
        }
        gw_settings = make_settings(**_known_settings(sections))
        self.service = self.make_service(gw_settings)
        await self.service.start()
        assert self.service.gateway is not None
        self.recorder = self.make_recorder(self.service)
        await self.service.gateway.wait_ready(15)
        self._poller = asyncio.create_task(self.recorder.poll_active(), name="bench-poll-active")
        sipp = shutil.which("sipp")
        if sipp is None:
            raise SystemExit("sipp not found: apt-get install sip-tester")
        if os.geteuid() != 0:
            print(
                "warning: sipp plays the callers' RTP through a raw socket (play_pcap_audio): run as root or give "
                "it CAP_NET_RAW (setcap cap_net_raw+ep /usr/bin/sipp), else no audio and no DTMF reach Asterisk",
                file=sys.stderr,
            )
        rtp_start = self.asterisk.ports.rtp_start
        rtp_end = rtp_start + capacity * ast_settings.asterisk.rtp_ports_per_call
        self.sipp = Sipp(
            sipp,
            self.workdir / "sipp",
            Path(self.args.pcap_dir),
            f"127.0.0.1:{self.asterisk.sip_port}",
            (rtp_start, rtp_end),
        )

    # ---- what a derived bench changes ----

    def gateway_sections(self) -> dict[str, dict[str, Any]]:
        """The basic script (greet, ask for digits, read them back), not the published IVR flows."""
        return {"call": {"script": "basic"}}

    def make_service(self, settings: Settings) -> GatewayService:
        return GatewayService(settings, handler=make_basic_flow(settings.call))

    def make_recorder(self, service: GatewayService) -> Recorder:
        assert service.gateway is not None
        return Recorder(service.gateway)

    async def stop(self) -> None:
        if self.sipp is not None:
            await self.sipp.close()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.service is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.service.stop(), 20)
        if self.asterisk is not None:
            await self.asterisk.stop()

    async def measure_idle(self, seconds: float = 2.0) -> None:
        """CPU of the gateway (with the bench's poller) and of Asterisk with no call at all."""
        assert self.asterisk is not None and self.asterisk.pid is not None
        gw0, ast0, t0 = time.process_time(), proc_sample(self.asterisk.pid), time.monotonic()
        await asyncio.sleep(seconds)
        gw1, ast1, t1 = time.process_time(), proc_sample(self.asterisk.pid), time.monotonic()
        self.idle = (100 * (gw1 - gw0) / (t1 - t0), 100 * (ast1.cpu_s - ast0.cpu_s) / (t1 - t0))

    def _outcomes(self) -> dict[str, int]:
        assert self.service is not None and self.service.gateway is not None
        counter = self.service.gateway.metrics.calls_total
        return {outcome: int(counter.labels(outcome=outcome)._value.get()) for outcome in CALL_OUTCOMES}

    async def _wait_idle(self, timeout: float) -> None:
        assert self.service is not None and self.service.gateway is not None
        deadline = time.monotonic() + timeout
        while self.service.gateway.active_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _leftovers(self) -> str:
        assert self.service is not None and self.service.client is not None
        rest = self.service.client.rest
        try:
            channels, bridges = await asyncio.wait_for(asyncio.gather(rest.list_channels(), rest.list_bridges()), 10)
        except Exception as exc:  # report, don't fail the run
            return f"? ({exc!r})"
        return f"{len(channels)}/{len(bridges)}"

    def _ast_log_offset(self) -> int:
        assert self.asterisk is not None
        try:
            return self.asterisk.dirs.messages_log.stat().st_size
        except OSError:
            return 0

    def _ast_log_since(self, offset: int) -> list[str]:
        """Asterisk's WARNING/ERROR lines written since `offset`, grouped: 'count x message'."""
        assert self.asterisk is not None
        try:
            with self.asterisk.dirs.messages_log.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        counts: collections.Counter[str] = collections.Counter()
        for line in text.splitlines():
            match = _AST_LOG_LINE.match(line)
            if match:
                # group by level, source and the message with numbers and ids blanked out
                message = _AST_LOG_NUMBERS.sub("#", match.group("msg")).strip()[:140]
                counts[f"{match.group('level')} {match.group('src')}: {message}"] += 1
        return [f"{n} x {msg}" for msg, n in counts.most_common(8)]

    async def phase(
        self, name: str, scenario: str, *, calls: int, limit: int, per_call_s: float, service: str = "12345"
    ) -> PhaseResult:
        assert self.asterisk is not None and self.asterisk.pid is not None
        assert self.service is not None and self.recorder is not None and self.sipp is not None
        await self._wait_idle(10)
        rec = self.recorder
        rec.reset()
        before = self._outcomes()
        log_offset = self._ast_log_offset()
        gw0, ast0, t0 = time.process_time(), proc_sample(self.asterisk.pid), time.monotonic()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # sipp's CPU lands here once it has exited
        if self.args.profile:
            self.profiler.enable()
        sequential = limit == 1
        timeout = (calls * per_call_s if sequential else per_call_s + calls / max(limit, 1)) * 2 + 30
        rate = 1000 if sequential else limit
        result = await self.sipp.run(scenario, calls=calls, limit=limit, rate=rate, timeout_s=timeout, service=service)
        await self._wait_idle(15)
        if self.args.profile:
            self.profiler.disable()
        gw1, ast1, t1 = time.process_time(), proc_sample(self.asterisk.pid), time.monotonic()
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gw_mem = proc_sample(os.getpid())
        after = self._outcomes()
        traced = list(rec.calls.values())
        return PhaseResult(
            name=name,
            calls=calls,
            sipp=result,
            outcomes={k: after[k] - before[k] for k in after if after[k] - before[k]},
            max_active=rec.max_active,
            call_seconds=rec.call_seconds,
            dtmf=list(rec.dtmf),
            metric_samples=list(rec.metric_samples),
            answer_samples=list(rec.answer_samples),
            digits_ok=sum(1 for trace in traced if trace.digits == EXPECTED_DIGITS),
            traced_calls=len(traced),
            gw_cpu_s=gw1 - gw0,
            sipp_cpu_s=(kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime),
            ast_cpu_s=ast1.cpu_s - ast0.cpu_s,
            gw_rss_mb=gw_mem.rss_mb,
            ast_rss_mb=ast1.rss_mb,
            window_s=t1 - t0,
            ast_log=self._ast_log_since(log_offset),
            leftovers=await self._leftovers(),
        )


# ---------------------------------------------------------------------------------------------- report


def ms(values: list[float], q: float, scale: float = 1.0, digits: int = 1) -> str:
    value = quantile(values, q)
    return "-" if math.isnan(value) else f"{value * scale:.{digits}f}"


def print_report(
    args: argparse.Namespace, bench: Bench, setup: PhaseResult, dtmf: PhaseResult, loads: list[PhaseResult]
) -> None:
    out = print
    out()
    out(f"Telephony benchmark — {os.cpu_count()} CPU cores, sipp load generator, gateway + Asterisk 22 on 127.0.0.1")
    out(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    before, after = args.loadavg_start, os.getloadavg()[0]
    busy = ": other work was running on these cores, it skews the figures" if before > 0.7 else ""
    out(f"load average (1 min) before the run {before:.2f}, at its end {after:.2f} (bench included){busy}")
    out()
    s = setup.sipp
    out(
        f"1. Call set-up, INVITE sent -> 200 OK received (sipp's -trace_msg timestamps), {setup.calls} sequential calls"
    )
    out(
        f"   p50 {ms(s.setup_ms, 0.5, 1, 2)} ms   p95 {ms(s.setup_ms, 0.95, 1, 2)} ms   "
        f"max {ms(s.setup_ms, 1.0, 1, 2)} ms   (n={len(s.setup_ms)}; sipp ok {s.successful} / failed {s.failed}; "
        f"sipp's rtd measure, whole ms: p50 {ms(s.rtd_ms, 0.5)} p95 {ms(s.rtd_ms, 0.95)})"
    )
    out(
        f"   the gateway's answer step (StasisStart received -> POST answer returned; Asterisk sends the 200 OK "
        f"within it): p50 {ms(setup.answer_samples, 0.5, 1000, 2)} ms   "
        f"p95 {ms(setup.answer_samples, 0.95, 1000, 2)} ms"
    )
    clean = [d.seconds for d in dtmf.dtmf if d.clean]
    out()
    out(
        f"2. DTMF received -> next prompt started (ARI ChannelDtmfReceived -> PlaybackStarted, in the gateway), "
        f"{dtmf.calls} sequential calls"
    )
    out(
        f"   p50 {ms(clean, 0.5, 1000, 2)} ms   p95 {ms(clean, 0.95, 1000, 2)} ms   max {ms(clean, 1.0, 1000, 2)} ms   "
        f"(n={len(clean)}; gateway's own dtmf_to_prompt_seconds: p50 {ms(dtmf.metric_samples, 0.5, 1000, 2)} ms, "
        f"p95 {ms(dtmf.metric_samples, 0.95, 1000, 2)} ms, n={len(dtmf.metric_samples)}; "
        f"digits '{EXPECTED_DIGITS}' intact in {dtmf.digits_ok}/{dtmf.traced_calls} calls)"
    )
    out()
    out("3./4. N callers at once through answer -> greeting -> prompt -> DTMF 1 2 3 # -> read-back -> gateway hang-up")
    headers = [
        "N", "sipp ok", "sipp fail", "gw completed", "gw other", "max active", "sipp wall s", "digits ok",
        "setup p50 ms", "setup p95 ms", "dtmf>prompt p50 ms", "dtmf>prompt p95 ms",
        "gw CPU s", "gw %core/call", "ast CPU s", "ast %core/call", "sipp CPU s", "gw RSS MB", "ast RSS MB",
    ]  # fmt: skip
    rows = []
    for r in loads:
        other = {k: v for k, v in r.outcomes.items() if k != "completed"}
        clean_load = [d.seconds for d in r.dtmf if d.clean]
        denom = r.calls * r.sipp.wall_s  # N x wall time, as the issue defines "per active call"
        rows.append([
            str(r.calls), str(r.sipp.successful), str(r.sipp.failed),
            str(r.outcomes.get("completed", 0)), ", ".join(f"{k}={v}" for k, v in other.items()) or "0",
            str(r.max_active), f"{r.sipp.wall_s:.1f}", f"{r.digits_ok}/{r.traced_calls}",
            ms(r.sipp.setup_ms, 0.5, 1, 2), ms(r.sipp.setup_ms, 0.95, 1, 2),
            ms(clean_load, 0.5, 1000, 2), ms(clean_load, 0.95, 1000, 2),
            f"{r.gw_cpu_s:.2f}", f"{100 * r.gw_cpu_s / denom:.2f}" if denom else "-",
            f"{r.ast_cpu_s:.2f}", f"{100 * r.ast_cpu_s / denom:.2f}" if denom else "-", f"{r.sipp_cpu_s:.2f}",
            f"{r.gw_rss_mb:.0f}", f"{r.ast_rss_mb:.0f}",
        ])  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out("   " + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        out("   " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    out()
    out(
        f"   Idle, no calls: gateway {bench.idle[0]:.2f} % of one core (includes the bench's 20 ms poller), "
        f"Asterisk {bench.idle[1]:.2f} %. sipp runs on the same 2 cores (its CPU is not in the gateway's)."
    )
    out("   %core/call = CPU seconds / (N x sipp wall time) x 100. Per active call-second instead (CPU / the")
    out("   integral of the gateway's active calls over the phase):")
    for r in loads:
        if r.call_seconds > 0:
            out(
                f"     N={r.calls}: {r.call_seconds:.0f} call-s; gateway {100 * r.gw_cpu_s / r.call_seconds:.2f} %, "
                f"Asterisk {100 * r.ast_cpu_s / r.call_seconds:.2f} % of one core per active call; "
                f"CPU per call: gateway {1000 * r.gw_cpu_s / r.calls:.0f} ms, "
                f"Asterisk {1000 * r.ast_cpu_s / r.calls:.0f} ms"
            )
    late = sum(1 for r in [dtmf, *loads] for d in r.dtmf if not d.clean)
    if late:
        out(f"   ({late} DTMF samples left out: the key arrived while the greeting still played.)")
    problems = []
    for r in [setup, dtmf, *loads]:
        if r.sipp.failed or r.sipp.timed_out or r.sipp.successful < r.calls:
            problems.append(f"{r.name}: sipp ok {r.sipp.successful}/{r.calls}, failed {r.sipp.failed}")
        problems += [f"{r.name}: sipp: {e}" for e in r.sipp.errors[:5]]
    for r in [setup, dtmf, *loads]:
        if r.leftovers != "0/0":
            problems.append(f"{r.name}: Asterisk still holds channels/bridges {r.leftovers} after the phase")
    for r in loads:
        if r.max_active < r.calls:
            problems.append(f"{r.name}: only {r.max_active} of {r.calls} calls were up at the same time")
    problems += [f"gateway log: {n} x {name}" for name, n in args.log_counter.counts.most_common(10)]
    out()
    out("Problems seen: " + ("none" if not problems else ""))
    for line in problems:
        out(f"  - {line}")
    out("Asterisk warnings/errors (messages.log, grouped) per phase:")
    for r in [setup, dtmf, *loads]:
        out(f"  {r.name}: " + ("none" if not r.ast_log else ""))
        for line in r.ast_log:
            out(f"    {line}")


async def main_async(args: argparse.Namespace) -> int:
    loads_n = [int(n) for n in args.calls.split(",") if n.strip()]
    if args.quick:
        loads_n = loads_n[:1] if args.calls_given else [20]
    setup_calls = args.setup_calls or (10 if args.quick else 50)
    dtmf_calls = args.dtmf_calls or (3 if args.quick else 20)
    capacity = max(loads_n) + 20
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    bench = Bench(args, workdir)
    logging.getLogger().addHandler(args.log_counter)
    try:
        print(f"starting Asterisk and the gateway (work dir {workdir}) ...", flush=True)
        await bench.start(capacity)
        await bench.measure_idle()
        print(f"phase set-up: {setup_calls} sequential calls ...", flush=True)
        setup = await bench.phase("set-up", "uac_setup.xml", calls=setup_calls, limit=1, per_call_s=SETUP_CALL_S)
        print(f"phase dtmf: {dtmf_calls} sequential calls through the flow ...", flush=True)
        dtmf = await bench.phase("dtmf", "uac_ivr.xml", calls=dtmf_calls, limit=1, per_call_s=IVR_CALL_S)
        loads = []
        for n in loads_n:
            print(f"phase load: {n} concurrent callers ...", flush=True)
            loads.append(await bench.phase(f"load N={n}", "uac_ivr.xml", calls=n, limit=n, per_call_s=IVR_CALL_S))
        print_report(args, bench, setup, dtmf, loads)
        if args.profile:
            bench.profiler.dump_stats(args.profile)
            print(f"gateway profile (all phases) written to {args.profile}")
        ok = all(
            r.sipp.successful == r.calls and not r.sipp.failed and r.outcomes.get("completed", 0) == r.calls
            for r in [dtmf, *loads]
        )
        return 0 if ok and setup.sipp.successful == setup.calls else 1
    finally:
        await bench.stop()
        if args.keep:
            print(f"kept {workdir} (sipp runs and traces, Asterisk logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="20,50,100", help="N for the concurrent phases (default 20,50,100)")
    parser.add_argument("--quick", action="store_true", help="short run (< 1 min): 10 set-up, 3 DTMF calls, N=20")
    parser.add_argument("--setup-calls", type=int, default=0, help="sequential calls for the set-up time (50)")
    parser.add_argument("--dtmf-calls", type=int, default=0, help="sequential calls for DTMF -> prompt (20)")
    parser.add_argument(
        "--pcap-dir", default=str(DEFAULT_PCAP_DIR), help="where sipp's g711a.pcap is (the callers' speech)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (sipp runs and traces, Asterisk logs)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the gateway during the phases, stats to FILE")
    parser.add_argument("--log-level", default="WARNING", help="gateway log level on stderr (WARNING)")
    args = parser.parse_args()
    args.calls_given = "--calls" in sys.argv or any(a.startswith("--calls=") for a in sys.argv)
    args.log_counter = LogCounter()
    args.loadavg_start = os.getloadavg()[0]
    configure_logging(args.log_level)
    loop_runner = asyncio.Runner()
    main_task: list[asyncio.Task[int]] = []

    def on_sigterm(*_: object) -> None:
        for task in main_task:
            task.cancel()

    async def runner() -> int:
        main_task.append(asyncio.current_task())  # type: ignore[arg-type]
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
        return await main_async(args)

    with loop_runner:
        try:
            return loop_runner.run(runner())
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
