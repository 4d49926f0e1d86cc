"""A real Wyoming recognition server for tests and benches: wyoming-faster-whisper (PyPI, a dev dependency) on
loopback, serving the packaged Whisper base model from a folder (the server loads a model folder; nothing is
downloaded)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from asr.whisper_model import packaged_base_files
from tools.processes import start_until_ready


def write_packaged_model(folder: Path) -> Path:
    """The packaged Whisper base model as the folder a server loads."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in packaged_base_files().items():
        (folder / name).write_bytes(data)
    return folder


class WyomingServer:
    """`python -m wyoming_faster_whisper` on 127.0.0.1: int8, beam 1, one thread per decode (as the gateway's own
    engine runs the same model)."""

    def __init__(self, model_dir: Path, data_dir: Path, port: int, cpu_threads: int = 1) -> None:
        self.model_dir = model_dir
        self.data_dir = data_dir
        self.port = port
        self.cpu_threads = cpu_threads
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> WyomingServer:
        command = [sys.executable, "-m", "wyoming_faster_whisper", "--uri", self.uri, "--model", str(self.model_dir)]
        command += ["--data-dir", str(self.data_dir), "--local-files-only", "--stt-library", "faster-whisper"]
        command += ["--language", "zh", "--beam-size", "1", "--cpu-threads", str(self.cpu_threads)]
        command += ["--compute-type", "int8"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc, self.output = start_until_ready(
            command, lambda line: "Ready" in line, what="wyoming server", timeout_s=timeout_s, env=env
        )
        return self

    def signal(self, number: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(number)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a frozen one must be able to end
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
