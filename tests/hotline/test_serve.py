"""`hotline serve` as an operator runs it: a separate process with its own embedded Asterisk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.asterisk_fixture import free_ports, make_settings
from tests.support.audio import active_speech_seconds
from tests.voice.conftest import free_tcp_port
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance

pytestmark = pytest.mark.slow

HOTLINE = str(Path(sys.executable).parent / "hotline")


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(overrides)
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"hotline serve exited with {proc.returncode}"
            try:
                if (await client.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("hotline serve never became ready")


async def test_serve_answers_calls_exposes_metrics_and_stops_cleanly(asterisk_install: object, tmp_path: Path) -> None:
    ports = free_ports(make_settings())
    http_port = free_tcp_port()
    runtime = tmp_path / "runtime"
    env = _env(
        HOTLINE_ASTERISK__RUNTIME_DIR=str(runtime),
        HOTLINE_ASTERISK__HTTP_PORT=str(ports.http),
        HOTLINE_ASTERISK__SIP_PORT=str(ports.sip),
        HOTLINE_ASTERISK__RTP_PORT_START=str(ports.rtp_start),
        HOTLINE_HTTP__PORT=str(http_port),
        HOTLINE_CALL__SCRIPT="basic",
        HOTLINE_CALL__FIRST_DIGIT_TIMEOUT_S="1",
        HOTLINE_DATABASE__URL=f"sqlite:///{tmp_path / 'hotline.db'}",
        HOTLINE_LOGGING__FORMAT="json",
    )
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([HOTLINE, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        await _wait_ready(base, proc)
        asterisk_pid = int((runtime / "run" / "asterisk.pid").read_text().strip())
        assert _pid_alive(asterisk_pid)

        recording = tmp_path / "heard.wav"
        async with Softphone.open(log_path=tmp_path / "phone.log") as phone:
            call = await phone.call(f"sip:12345@127.0.0.1:{ports.sip}", record=str(recording))
            await phone.wait_state(call, "DISCONNECTED", timeout=20)
            await phone.wait_recorded(call)
        assert active_speech_seconds(recording) > 2.5

        async with httpx.AsyncClient() as client:
            metrics = (await client.get(base + "/metrics")).text
            health = (await client.get(base + "/healthz")).json()
        assert 'hotline_calls_total{outcome="completed"} 1.0' in metrics
        assert "hotline_active_calls 0.0" in metrics
        assert "hotline_ari_connected 1.0" in metrics
        assert health == {"status": "alive"}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        deadline = time.monotonic() + 5
        while _pid_alive(asterisk_pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not _pid_alive(asterisk_pid), "Asterisk outlived hotline serve"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert '"event": "service.stopped"' in text


def test_wrong_ari_credentials_exit_non_zero_with_a_clear_message(asterisk: AsteriskInstance, tmp_path: Path) -> None:
    env = _env(
        HOTLINE_DATABASE__URL=f"sqlite:///{tmp_path / 'hotline.db'}",
        HOTLINE_ASTERISK__MODE="external",
        HOTLINE_ASTERISK__ARI_URL=asterisk.ari_url,
        HOTLINE_ASTERISK__ARI_PASSWORD="not-the-password",
        HOTLINE_HTTP__PORT=str(free_tcp_port()),
    )
    started = time.monotonic()
    done = subprocess.run([HOTLINE, "serve"], env=env, capture_output=True, timeout=30, text=True)
    assert done.returncode == 3
    assert "ARI refused our credentials" in done.stderr
    assert time.monotonic() - started < 10


def test_invalid_setting_stops_start_up_naming_the_key() -> None:
    env = _env(HOTLINE_TELEPHONY__MAX_CONCURRENT_CALLS="lots")
    done = subprocess.run([HOTLINE, "serve"], env=env, capture_output=True, timeout=30, text=True)
    assert done.returncode == 2
    assert "telephony.max_concurrent_calls" in done.stderr


def test_cli_help_lists_subcommands() -> None:
    done = subprocess.run([HOTLINE, "--help"], capture_output=True, timeout=30, text=True, env=_env())
    assert done.returncode == 0
    for sub in ("serve", "asterisk", "config"):
        assert sub in done.stdout
