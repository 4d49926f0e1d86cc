"""Stopping the cluster's servers leaves nothing of them running."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hotline.cluster.servers import stop_session

# A server whose forked worker outlives it: the worker ignores SIGTERM (Kamailio's exit a moment after the main
# process; this one never would).
_SERVER = """
import os, signal, sys, time
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(os.getpid(), flush=True)
    time.sleep(60)
else:
    time.sleep(60)
"""


def _running(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_server_s_forked_workers_are_gone_when_it_is_stopped() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert server.stdout is not None
    worker = int(server.stdout.readline())
    assert _running(worker)
    started = time.monotonic()
    stop_session(server, timeout_s=1)
    assert not _running(worker)
    assert time.monotonic() - started < 5
