"""Login flood against a real `hotline serve` (its own process, embedded Asterisk, SQLite in a temporary folder).

    .venv/bin/python bench/login_flood.py [--logins 500]

While N wrong-password logins are in flight at once (httpx, one client address), the bench samples `/healthz`,
`/readyz` and an operator's `/api/me` every 20 ms and prints p50/p95/max of each, beside the same figures with no
flood (baseline, same run). Two floods: with the default rate limits, and with the limits lifted (a flood from
many addresses: every login reaches argon2). Argon2 runs with its default cost, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOTLINE = Path(sys.executable).with_name("hotline")
PROBES = ("/healthz", "/readyz", "/api/me")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Gateway:
    def __init__(self, work: Path, unlimited: bool) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "HOTLINE_HTTP__PORT": str(self.port),
            "HOTLINE_ASTERISK__HTTP_PORT": str(free_port()),
            "HOTLINE_ASTERISK__SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
            "HOTLINE_ASTERISK__RTP_PORT_START": "46000",
            "HOTLINE_ASTERISK__RUNTIME_DIR": str(work / "asterisk"),
            "HOTLINE_TELEPHONY__MAX_CONCURRENT_CALLS": "10",
            "HOTLINE_DATABASE__URL": f"sqlite:///{work / 'hotline.db'}",
            "HOTLINE_ASR__ENABLED": "false",
            "HOTLINE_LOGGING__LEVEL": "WARNING",
        }
        if unlimited:
            self.env["HOTLINE_AUTH__LOGIN_PER_ADDRESS"] = "1000000/minute"
            self.env["HOTLINE_AUTH__LOGIN_FAILURES_PER_USER"] = "1000000/minute"
            self.env["HOTLINE_AUTH__MAX_PENDING_LOGINS"] = "100000"
        subprocess.run(
            [str(HOTLINE), "users", "add", "op1001", "--role", "operator", "--password-stdin"],
            input="pw\n",
            text=True,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen([str(HOTLINE), "serve"], env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.base) as http:
            for _ in range(300):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the gateway did not become ready in 30 s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def sampler(base: str, token: str, stop: Any, results: Any) -> None:
    """Its own process: the flood's client work must not delay the probes' own event loop."""

    async def loop() -> dict[str, list[float]]:
        times: dict[str, list[float]] = collections.defaultdict(list)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            while not stop.is_set():
                for path in PROBES:
                    started = time.perf_counter()
                    response = await http.get(path, headers=headers if path.startswith("/api") else None)
                    if response.status_code != 200:
                        times[f"{path} non-200"].append(0.0)
                    times[path].append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)
        return dict(times)

    results.put(asyncio.run(loop()))


async def run_phase(gateway: Gateway, logins: int) -> tuple[dict[str, list[float]], collections.Counter[int], float]:
    limits = httpx.Limits(max_connections=logins + 10, max_keepalive_connections=logins + 10)
    async with httpx.AsyncClient(base_url=gateway.base, timeout=120, limits=limits) as flood:
        token = (await flood.post("/api/auth/login", json={"username": "op1001", "password": "pw"})).json()["token"]
        context = multiprocessing.get_context("spawn")
        stop, results = context.Event(), context.Queue()
        probe = context.Process(target=sampler, args=(gateway.base, token, stop, results))
        probe.start()
        await asyncio.sleep(1.0)  # the sampler is up and probing
        started = time.perf_counter()
        if logins:
            bodies = [{"username": f"op{1000 + i % 50}", "password": f"wrong{i}"} for i in range(logins)]
            replies = await asyncio.gather(*(flood.post("/api/auth/login", json=b) for b in bodies))
        else:
            await asyncio.sleep(3)
            replies = []
        elapsed = time.perf_counter() - started
        stop.set()
        times = await asyncio.to_thread(results.get, True, 60)
        probe.join(10)
        return times, collections.Counter(r.status_code for r in replies), elapsed


def report(name: str, times: dict[str, list[float]], codes: collections.Counter[int], elapsed: float) -> None:
    outcome = ", ".join(f"{code}: {count}" for code, count in sorted(codes.items())) or "no logins"
    print(f"\n{name}  ({outcome}; {elapsed:.1f} s)")
    for path in PROBES:
        values = times.get(path, [])
        bad = len(times.get(f"{path} non-200", []))
        print(
            f"  {path:9} n={len(values):4}  p50 {statistics.median(values):7.1f} ms  p95 {pct(values, 0.95):7.1f} ms  "
            f"max {max(values):7.1f} ms  non-200 {bad}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=500)
    args = parser.parse_args()
    for unlimited in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            gateway = Gateway(Path(tmp), unlimited)
            try:
                await gateway.ready()
                label = "limits lifted (every login hashed)" if unlimited else "default rate limits"
                report(f"[{label}] baseline, no flood", *await run_phase(gateway, 0))
                report(f"[{label}] {args.logins} concurrent bad logins", *await run_phase(gateway, args.logins))
            finally:
                gateway.stop()


if __name__ == "__main__":
    asyncio.run(main())
