"""Asyncio driver for the softphone program (``tools/softphone/phone.py``), one child process each.

    async with await Softphone.start() as callee, await Softphone.start() as caller:
        await callee.auto_answer()
        call = await caller.call(f"sip:x@127.0.0.1:{callee.sip_port}")
        await caller.wait_state(call, "CONFIRMED")

Every event the child emits is kept in ``phone.events``; ``wait_event`` searches them from ``since``
(default: the beginning), so an event that arrived before the wait is still found. When the child
dies, every pending and later wait raises ``SoftphoneDied`` carrying the child's stderr tail.

Waits take explicit ``timeout`` arguments (ruff ASYNC109 silenced on purpose): a phone that never gets
an event must fail within seconds with its own diagnostics, not at pytest-timeout's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
Event = dict[str, Any]
STDERR_TAIL_LINES = 40


class SoftphoneError(Exception):
    """A command was refused, or an awaited event did not come."""


class SoftphoneDied(SoftphoneError):
    """The softphone process exited while we needed it."""


class Softphone:
    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path | None, log_file: IO[bytes] | None):
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self._log_file = log_file
        self.events: list[Event] = []
        self.sip_port = 0
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._dead: str | None = None  # reason, once the child's stdout closed
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle ------------------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        sip_port: int = 0,
        log_path: str | Path | None = None,
        *,
        log_level: int = 3,
        user: str = "softphone",
        codecs: str = "PCMU,PCMA",
        clock_rate: int = 8000,
        ready_timeout: float = 15.0,
        host: str = "127.0.0.1",
        tls_ca: str | Path | None = None,
        srtp: str = "mandatory",
    ) -> Softphone:
        """Spawn a softphone and wait for its ``ready`` event (``sip_port`` 0: any free port)."""
        args = [
            sys.executable,
            "-m",
            "tools.softphone.phone",
            "--sip-port",
            str(sip_port),
            "--log-level",
            str(log_level),
            "--user",
            user,
            "--codecs",
            codecs,
            "--clock-rate",
            str(clock_rate),
            "--host",
            host,
            *(["--tls-ca", str(tls_ca), "--srtp", srtp] if tls_ca else []),
        ]
        log_file: IO[bytes] | None = None
        lpath = Path(log_path) if log_path is not None else None
        if lpath is not None:
            lpath.parent.mkdir(parents=True, exist_ok=True)
            log_file = lpath.open("ab")
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file if log_file is not None else asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            limit=1 << 20,
        )
        phone = cls(proc, lpath, log_file)
        phone._tasks.append(asyncio.create_task(phone._read_stdout(), name=f"softphone-{proc.pid}-out"))
        if log_file is None:
            phone._tasks.append(asyncio.create_task(phone._read_stderr(), name=f"softphone-{proc.pid}-err"))
        try:
            ready = await phone.wait_event("ready", timeout=ready_timeout)
        except BaseException:
            await phone.close(check=False, timeout=2.0)
            raise
        phone.sip_port = int(ready["sip_port"])
        return phone

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, sip_port: int = 0, log_path: str | Path | None = None, **kw: Any) -> AsyncIterator[Softphone]:
        """``async with Softphone.open() as phone:`` — closes (quit, exit code 0) on the way out."""
        async with await cls.start(sip_port, log_path, **kw) as phone:
            yield phone

    async def __aenter__(self) -> Softphone:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # With an exception in flight, don't let a second one from close() mask it.
        await self.close(check=exc_type is None)

    async def close(self, timeout: float = 5.0, *, check: bool = True, expect_code: int = 0) -> int | None:
        """Quit cleanly, wait for the exit, kill after ``timeout``; assert the exit code if ``check``."""
        killed = False
        if self.proc.returncode is None:
            with contextlib.suppress(OSError, RuntimeError):
                self._write({"cmd": "quit"})
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                killed = True
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2.0)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        code = self.proc.returncode
        if check and (killed or code != expect_code):
            what = "did not exit in time and was killed" if killed else f"exited with code {code}"
            raise SoftphoneError(f"softphone pid {self.pid} {what}\n{self.stderr_tail()}")
        return code

    def kill(self) -> None:
        """SIGKILL the child (tests of the failure path)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc.returncode is None

    # -- I/O ---------------------------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    self._stderr_tail.append(f"[non-JSON stdout] {line!r}")
                    continue
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        finally:
            # EOF: the child exited (or closed stdout). Collect its code for the error message.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 2.0)
            async with self._changed:
                self._dead = f"softphone pid {self.pid} exited (code {self.proc.returncode})"
                self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        if self.log_path is not None:
            try:
                text = self.log_path.read_text("utf-8", "replace").splitlines()[-lines:]
            except OSError as exc:
                text = [f"(cannot read {self.log_path}: {exc})"]
        else:
            text = list(self._stderr_tail)[-lines:]
        return "--- softphone stderr (tail) ---\n" + "\n".join(text)

    def _died(self, waiting_for: str) -> SoftphoneDied:
        # Errors not tied to a command (e.g. "fatal: ..." at start-up) usually say why it died.
        errors = [str(e.get("message")) for e in self.events if e.get("event") == "error" and not e.get("id")]
        last_error = f": {errors[-1]}" if errors else ""
        dead = self._dead or "softphone died"
        return SoftphoneDied(f"{dead}{last_error} while waiting for {waiting_for}\n{self.stderr_tail()}")

    def _write(self, msg: Mapping[str, Any]) -> None:
        if not self.alive or self.proc.stdin is None:
            raise self._died(f"sending {msg.get('cmd')!r}")
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self._died(f"sending {msg.get('cmd')!r}") from exc

    # -- commands and events ----------------------------------------------------------------------------

    async def send(self, cmd: str, *, timeout: float = 10.0, **fields: Any) -> Event:
        """Send a command and return its ``ack``; raise ``SoftphoneError`` on its ``error``."""
        req_id = f"r{next(self._ids)}"
        since = len(self.events)
        self._write({"cmd": cmd, "id": req_id, **fields})
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self.proc.stdin.drain()
        reply = await self._wait(
            lambda e: e.get("id") == req_id and e.get("event") in ("ack", "error"),
            since,
            timeout,
            f"reply to {cmd!r}",
        )
        if reply["event"] == "error":
            raise SoftphoneError(f"{cmd}: {reply.get('message')}")
        return reply

    def mark(self) -> int:
        """Index to pass as ``since`` to wait only for events that arrive from now on."""
        return len(self.events)

    def find(self, event: str, since: int = 0, **match: Any) -> list[Event]:
        return [e for e in self.events[since:] if _matches(e, event, match)]

    async def wait_event(self, event: str, timeout: float = 10.0, since: int = 0, **match: Any) -> Event:
        """First event named ``event`` with fields equal to ``match``, at index ``since`` or later."""
        desc = f"{event} {match}" if match else event
        return await self._wait(lambda e: _matches(e, event, match), since, timeout, desc)

    async def wait_events(
        self,
        event: str,
        count: int,
        timeout: float = 10.0,
        since: int = 0,
        **match: Any,
    ) -> list[Event]:
        """The first ``count`` matching events (e.g. received DTMF digits, in order)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                found = self.find(event, since, **match)
                if len(found) >= count:
                    return found[:count]
                if self._dead is not None:
                    raise self._died(f"{count} x {event} {match} (got {len(found)})")
                left = deadline - loop.time()
                if left <= 0:
                    raise SoftphoneError(
                        f"timeout: {count} x {event} {match} (got {len(found)}) from softphone pid {self.pid}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def _wait(self, pred: Callable[[Event], bool], since: int, timeout: float, desc: str) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                for e in self.events[since:]:
                    if pred(e):
                        return e
                since = len(self.events)
                if self._dead is not None:
                    raise self._died(desc)
                left = deadline - loop.time()
                if left <= 0:
                    raise SoftphoneError(f"timeout after {timeout} s waiting for {desc} from softphone pid {self.pid}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def wait_state(self, call: str, state: str, timeout: float = 10.0, since: int = 0) -> Event:
        """Wait for a call state; fails fast if the call is DISCONNECTED first."""

        def pred(e: Event) -> bool:
            return e.get("event") == "state" and e.get("call") == call and e.get("state") in (state, "DISCONNECTED")

        ev = await self._wait(pred, since, timeout, f"call {call} {state}")
        if ev["state"] != state:
            raise SoftphoneError(f"call {call} ended ({ev.get('code')} {ev.get('reason')}) before {state}")
        return ev

    # -- helpers -----------------------------------------------------------------------------------------

    async def account(
        self,
        user: str,
        password: str = "",
        registrar: str = "",
        *,
        register: bool = True,
        timeout: float = 10.0,
        **kw: Any,
    ) -> Event | None:
        """Add an account (the new default). With a registrar and ``register``: wait for a 2xx."""
        since = self.mark()
        await self.send("account", user=user, password=password, registrar=registrar, register=register, **kw)
        if not (registrar and register):
            return None
        ev = await self.wait_event("registered", timeout=timeout, since=since, account=user)
        if not ev.get("ok"):
            raise SoftphoneError(f"registration of {user} at {registrar} failed: {ev.get('code')} {ev.get('reason')}")
        return ev

    async def auto_answer(self, enabled: bool = True, delay_ms: int = 0, code: int = 200) -> None:
        await self.send("auto_answer", enabled=enabled, delay_ms=delay_ms, code=code)

    async def call(self, uri: str, call: str | None = None, **kw: Any) -> str:
        """Dial ``uri``; returns the call id (``c1``, ``c2``… unless given)."""
        call = call or f"c{next(self._call_ids)}"
        await self.send("call", call=call, uri=uri, **kw)
        return call

    async def answer(self, call: str, code: int = 200) -> None:
        await self.send("answer", call=call, code=code)

    async def wait_incoming(self, timeout: float = 10.0, since: int = 0) -> str:
        return str((await self.wait_event("incoming", timeout=timeout, since=since))["call"])

    async def dtmf(
        self, call: str, digits: str, gap_ms: int = 150, duration_ms: int = 100, *, wait: bool = True
    ) -> None:
        """Send RFC 2833 digits; with ``wait``, return once the last one went out."""
        since = self.mark()
        await self.send("dtmf", call=call, digits=digits, gap_ms=gap_ms, duration_ms=duration_ms)
        if wait:
            timeout = 5.0 + len(digits) * (gap_ms + duration_ms) / 1000
            await self.wait_event("dtmf_done", timeout=timeout, since=since, call=call)

    async def hangup(self, call: str, *, wait: bool = True, timeout: float = 10.0) -> None:
        await self.send("hangup", call=call)
        if wait:
            await self.wait_event("state", timeout=timeout, call=call, state="DISCONNECTED")

    async def record(self, call: str, wav: str | Path) -> None:
        """Record what this phone hears on ``call`` (starts now, or when its audio comes up)."""
        await self.send("record", call=call, wav=str(wav))

    async def stop_record(self, call: str, timeout: float = 5.0) -> Event:
        """Stop recording; returns the ``recorded`` event once the WAV is complete on disk."""
        since = self.mark()
        await self.send("stop_record", call=call)
        return await self.wait_recorded(call, timeout=timeout, since=since)

    async def wait_recorded(self, call: str, timeout: float = 10.0, since: int = 0) -> Event:
        """The ``recorded`` event (sent at stop_record, hang-up or quit)."""
        return await self.wait_event("recorded", timeout=timeout, since=since, call=call)

    async def play(
        self,
        call: str,
        wav: str | Path,
        loop: bool = False,
        *,
        wait: bool = False,
        timeout: float = 60.0,
    ) -> None:
        """Play a WAV into the call; with ``wait``, return at its ``play_done``."""
        since = self.mark()
        await self.send("play", call=call, wav=str(wav), loop=loop)
        if wait:
            await self.wait_event("play_done", timeout=timeout, since=since, call=call)

    async def stop_play(self, call: str) -> None:
        await self.send("stop_play", call=call)


def _matches(e: Event, event: str, match: Mapping[str, Any]) -> bool:
    return e.get("event") == event and all(e.get(k) == v for k, v in match.items())


@contextlib.asynccontextmanager
async def softphones(count: int, **kw: Any) -> AsyncIterator[list[Softphone]]:
    """Start ``count`` softphones concurrently; close them all (exit code checked) on the way out."""
    results = await asyncio.gather(*(Softphone.start(**kw) for _ in range(count)), return_exceptions=True)
    phones = [p for p in results if isinstance(p, Softphone)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for p in phones:
            await p.close(check=False)
        raise failures[0]
    ok = False
    try:
        yield phones
        ok = True
    finally:
        closes = await asyncio.gather(*(p.close(check=ok) for p in phones), return_exceptions=True)
        errors = [c for c in closes if isinstance(c, BaseException)]
        if ok and errors:
            raise errors[0]
