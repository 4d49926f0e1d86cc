"""Real ASR worker processes (`hotline asr serve`) on loopback for the tests, and a client that speaks raw frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from asr.settings import ServiceSettings
from tests.support.ports import free_port
from tools.processes import start_until_ready  # below the kernel's outgoing ports (a client cannot take it first)

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "test-worker-token"


class WorkerProcess:
    """One `hotline asr serve` on 127.0.0.1 (packaged Whisper base, one decode thread)."""

    def __init__(
        self, name: str, port: int | None = None, max_streams: int = 8, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.max_streams = max_streams
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> WorkerProcess:
        env = {
            **os.environ,
            "HOTLINE_ASR__SERVICE__TOKEN": TOKEN,
            "HOTLINE_ASR__SECOND_PASS": "false",  # no gazetteer to load: the worker starts in a second
            "HF_HUB_OFFLINE": "1",
            **self.env,
        }
        command = [sys.executable, "-m", "hotline.cli", "asr", "serve", "--port", str(self.port), "--name", self.name]
        command += ["--max-streams", str(self.max_streams)]
        self.proc, self.output = start_until_ready(
            command, lambda line: line.startswith("listening on"), what=f"worker {self.name}", timeout_s=timeout_s,
            env=env, cwd=ROOT,
        )  # fmt: skip
        return self

    def signal(self, number: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(number)

    def kill(self) -> None:
        """kill -9: no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def workers(*names: str, **env: str) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        for name in names:
            started.append(WorkerProcess(name, env=env).start())
        yield started
    finally:
        for worker in started:
            worker.stop()


def pool_settings(urls: list[str], **overrides: object) -> ServiceSettings:
    return ServiceSettings.model_validate({"workers": urls, "token": TOKEN, "retry_s": 0.3, **overrides})
