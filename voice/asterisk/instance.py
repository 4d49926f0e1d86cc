"""Lifecycle of one Asterisk process that the gateway (or a test) owns: configure, start, wait for ARI, stop.

The process is a plain `subprocess.Popen` polled from async code, so an instance is not tied to the event loop
that started it: a session-scoped test fixture can start it in one loop and tests can use it from theirs.
With the embedded install the process runs as `ld-linux-x86-64…` (sid's loader), so it is tracked by PID only.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import errno
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from voice.asterisk.installer import asterisk_command, installed_version, modules_dir
from voice.asterisk.render import (
    AsteriskDirs,
    InstancePorts,
    RenderError,
    asterisk_dirs,
    default_data_dir,
    default_sbin_dir,
    render_asterisk_config,
)
from voice.asterisk.secrets import Secrets, load_or_create_secrets
from voice.asterisk.tls import TlsError
from voice.settings import AsteriskHost

__all__ = ["AsteriskError", "AsteriskInstance", "AsteriskStartError", "InstancePorts", "run_blocking"]

T = TypeVar("T")
_STOP_GRACE_S = 5.0
_POLL_S = 0.05
_LOG_TAIL_LINES = 40
# Asterisk keeps running when it cannot bind these; the start must fail instead.
_FATAL_LOG_PATTERNS = ("Address already in use", "Unable to bind", "could not be started", "Failed to bind")


class AsteriskError(Exception):
    """An operation on a running instance failed."""


class AsteriskStartError(AsteriskError):
    """Asterisk did not come up; the message carries the reason and the tail of its log."""


_live: weakref.WeakSet[AsteriskInstance] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # An interpreter that exits without stop() (a failed test, Ctrl-C) must not leave Asterisk holding ports.
    for instance in list(_live):
        instance.kill_now()


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the parent dies (PR_SET_PDEATHSIG), even on SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _port_in_use(kind: int, port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # Like Asterisk's own bind: connections in TIME_WAIT (after a restart) don't make the port busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES, start: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class AsteriskInstance:
    """One Asterisk process with its own runtime folder and ports.

    `runtime_dir` defaults to settings.asterisk.runtime_dir; `ports` override the settings' ports.
    `secrets` default to the ones kept in `runtime_dir`/secrets.json (generated on first use).
    """

    def __init__(
        self,
        settings: AsteriskHost,
        *,
        runtime_dir: Path | None = None,
        ports: InstancePorts | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        ast = settings.asterisk
        if ast.mode == "external":
            raise ValueError(
                "asterisk.mode is 'external': there is no Asterisk process to manage, use asterisk.ari_url"
            )
        self.settings = settings
        self.runtime_dir = (runtime_dir if runtime_dir is not None else settings.resolve(ast.runtime_dir)).resolve()
        self.ports = ports or InstancePorts(http=ast.http_port, sip=ast.sip_port, rtp_start=ast.rtp_port_start)
        self._secrets = secrets
        if ast.mode == "system":
            assert ast.binary is not None  # the settings validator guarantees it
            self._command = asterisk_command(None, settings.resolve(ast.binary))
            self._prefix: Path | None = None
            mods = (
                settings.resolve(ast.modules_dir)
                if ast.modules_dir
                else _system_modules_dir(settings.resolve(ast.binary))
            )
        else:
            self._prefix = settings.resolve(ast.prefix)
            self._command = []  # resolved at start(): the install may happen after construction
            mods = modules_dir(self._prefix)
        self.dirs: AsteriskDirs = asterisk_dirs(
            self.runtime_dir, mods, default_data_dir(settings), default_sbin_dir(settings)
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._out_offset = 0
        self.startup_seconds: float | None = None  # start() to ARI ready and fully booted, last start

    # ------------------------------------------------------------------ properties
    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}/ari"

    @property
    def ari_username(self) -> str:
        return self.settings.asterisk.ari_username

    @property
    def ari_password(self) -> str:
        return self.secrets.ari_password

    @property
    def secrets(self) -> Secrets:
        if self._secrets is None:
            self._secrets = load_or_create_secrets(self.runtime_dir / "secrets.json", self.settings)
        return self._secrets

    @property
    def sip_port(self) -> int:
        return self.ports.sip

    @property
    def http_port(self) -> int:
        return self.ports.http

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def asterisk_conf(self) -> Path:
        return self.dirs.asterisk_conf

    @property
    def output_log(self) -> Path:
        """Asterisk's stdout/stderr (console messages), appended across restarts."""
        return self.dirs.log / "asterisk.out"

    # ------------------------------------------------------------------ lifecycle
    def _base_command(self) -> list[str]:
        if self._prefix is None:
            return self._command
        if installed_version(self._prefix) is None:
            raise AsteriskStartError(f"no embedded Asterisk in {self._prefix}: run `hotline asterisk install` first")
        return asterisk_command(self._prefix)

    def _check_ports(self) -> None:
        busy = []
        if _port_in_use(socket.SOCK_STREAM, self.ports.http):
            busy.append(f"{self.ports.http}/tcp (ARI HTTP, asterisk.http_port)")
        bind = self.settings.asterisk.sip_bind_address
        if _port_in_use(socket.SOCK_DGRAM, self.ports.sip, bind):
            busy.append(f"{self.ports.sip}/udp on {bind} (SIP, asterisk.sip_port)")
        if busy:
            raise AsteriskStartError(
                "cannot start Asterisk: port " + " and ".join(busy) + " already in use "
                "(another Asterisk or gateway running?)"
            )

    def _log_tail(self) -> str:
        out = _tail(self.output_log, start=self._out_offset)
        return f"--- {self.output_log} (last lines) ---\n{out or '(empty)'}"

    def _fatal_log_line(self) -> str | None:
        text = _tail(self.output_log, lines=10_000, start=self._out_offset)
        for line in text.splitlines():
            if any(pattern in line for pattern in _FATAL_LOG_PATTERNS):
                return line
        return None

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        with self.output_log.open("ab") as out:
            out.write(f"=== {time.strftime('%F %T')} starting Asterisk ===\n".encode())
            out.flush()
            self._out_offset = out.tell()
            main_thread = threading.current_thread() is threading.main_thread()
            return subprocess.Popen(
                [*command, "-f", "-C", str(self.asterisk_conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.runtime_dir,
                # Ctrl-C in a terminal reaches only the gateway, which then stops Asterisk cleanly.
                start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked exits, so only from the main thread.
                preexec_fn=_die_with_parent if main_thread else None,  # only a prctl call: fork-safe
            )

    async def start(self) -> None:
        """Render the configuration, start Asterisk, return once ARI answers (else AsteriskStartError)."""
        if self.running:
            return
        command = self._base_command()
        self._check_ports()
        try:
            render_asterisk_config(
                self.settings,
                self.secrets,
                self.runtime_dir,
                self.dirs.modules,
                self.ports,
                data_dir=self.dirs.data,
            )
        except (RenderError, TlsError) as exc:
            raise AsteriskStartError(f"cannot write Asterisk's configuration: {exc}") from exc
        self.dirs.log.mkdir(parents=True, exist_ok=True)
        self.dirs.control_socket.unlink(missing_ok=True)  # a stale socket would fool `-rx` and the wait below
        self._proc = self._spawn(command)
        _live.add(self)
        started = time.monotonic()
        try:
            await self._wait_ready(started)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    async def _wait_ready(self, started: float) -> None:
        timeout = self.settings.asterisk.startup_timeout_s
        deadline = started + timeout
        auth = (self.ari_username, self.ari_password)
        last_error = "no answer yet"
        async with httpx.AsyncClient(timeout=2.0, auth=auth) as client:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    raise AsteriskStartError(f"Asterisk exited with status {code} while starting\n{self._log_tail()}")
                fatal = self._fatal_log_line()
                if fatal is not None:
                    raise AsteriskStartError(f"Asterisk could not set itself up: {fatal}\n{self._log_tail()}")
                try:
                    reply = await client.get(f"{self.ari_url}/asterisk/info")
                    if reply.status_code == 200:
                        break
                    last_error = f"HTTP {reply.status_code} {reply.text[:200]}"
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise AsteriskStartError(
                        f"ARI did not answer at {self.ari_url} within {timeout:.0f} s ({last_error})\n"
                        + self._log_tail()
                    )
                await asyncio.sleep(_POLL_S)
        # ARI can answer before every module has loaded; wait for "fully booted" (dialplan, PJSIP endpoints).
        remaining = max(1.0, deadline - time.monotonic())
        try:
            await self.rx("core waitfullybooted", timeout_s=remaining)
        except AsteriskError as exc:
            raise AsteriskStartError(f"Asterisk did not finish booting: {exc}\n{self._log_tail()}") from exc
        fatal = self._fatal_log_line()
        if fatal is not None:
            raise AsteriskStartError(f"Asterisk could not set itself up: {fatal}\n{self._log_tail()}")

    async def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL. Safe to call when not running."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            if not await _wait_exit(proc, _STOP_GRACE_S):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await _wait_exit(proc, None)
        self._proc = None
        _live.discard(self)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def start_sync(self) -> None:
        """start() for synchronous callers (session test fixtures, scripts)."""
        run_blocking(self.start())

    def stop_sync(self) -> None:
        run_blocking(self.stop())

    def kill_now(self) -> None:
        """Synchronous last resort (atexit): SIGKILL without waiting for a clean shutdown."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._proc = None

    # ------------------------------------------------------------------ control
    async def rx(self, command: str, *, timeout_s: float = 10.0) -> str:
        """Run a CLI command (`asterisk -rx`) through the instance's control socket; return its output."""
        if not self.running:
            raise AsteriskError(f"Asterisk is not running; cannot run {command!r}")
        argv = [*self._base_command(), "-C", str(self.asterisk_conf), "-rx", command]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AsteriskError(f"`asterisk -rx {command!r}` did not answer within {timeout_s:.0f} s") from None
        text = stdout.decode("utf-8", "replace")
        if proc.returncode != 0 or "Unable to connect to remote asterisk" in text:
            raise AsteriskError(
                f"`asterisk -rx {command!r}` failed ({proc.returncode}): "
                + (text + stderr.decode(errors="replace")).strip()
            )
        return text

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<AsteriskInstance {self.runtime_dir} http={self.ports.http} sip={self.ports.sip} {state}>"


async def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float | None) -> bool:
    """Poll (without blocking the loop) until `proc` exits; False if still running after `timeout_s`."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code.

    A private loop in this thread when none runs here (the thread that starts Asterisk stays its parent, see
    PDEATHSIG above; the current loop of the thread is not touched, unlike asyncio.run), else a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _system_modules_dir(binary: Path) -> Path:
    """Guess a system Asterisk's module folder from its binary's place (else set asterisk.modules_dir)."""
    root = binary.resolve().parent.parent
    candidates = [root / "lib/asterisk/modules", root / "lib64/asterisk/modules"]
    candidates += sorted((root / "lib").glob("*-linux-gnu*/asterisk/modules"))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]
