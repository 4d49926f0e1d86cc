"""Starting a server process for tests and benches: wait until it says it is ready, keep reading what it prints."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def start_until_ready(
    command: Sequence[str],
    ready: Callable[[str], bool],
    *,
    what: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `command` (stdout and stderr together) and return once a line of its output passes `ready`. Its
    output goes on being read into the returned list (a full pipe would stall the server). If it exits or
    `timeout_s` passes first, it is killed and RuntimeError carries what it printed."""
    proc = subprocess.Popen(
        list(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if ready(line):
                seen.set()

    threading.Thread(target=read, daemon=True, name=f"{what}-output").start()
    deadline = time.monotonic() + timeout_s
    while not seen.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            raise RuntimeError(f"{what} did not start:\n{''.join(output)}")
    return proc, output
