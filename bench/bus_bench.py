"""The bus across processes (`hotline serve --role …`) against the bus in one process: what a role split costs.

    .venv/bin/python bench/bus_bench.py [--singles 500] [--burst 5000] [--requests 300]

Starts Debian's nats-server on a free loopback port (token auth, like a deployment) and a second process that
bridges its own EventBus to it, as a desk process does. This process publishes transcript finals on its bus:
  single   one event every 5 ms: publish → the other process's bus subscriber has it, p50/p95/max;
  burst    N events at once: the same latency under load, and events/s delivered;
  control  N call-control requests (RemoteControl.calls → ControlServer in the other process → reply), round trip.
The baseline is the same publish → subscriber path inside one process (the default `hotline serve`). Both
processes share this machine's cores with nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from events.bus import EventBus  # noqa: E402
from events.nats_link import BusBridge, NatsLink  # noqa: E402
from events.settings import BusSettings  # noqa: E402

TEXT = "我家在海淀区中关村街道科育社区，楼下的路灯坏了三天了"
FIELDS = {"speaker": "caller", "start_ms": 0, "end_ms": 900, "confidence": 0.9, "text": TEXT}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quantiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"n={len(ms):5d}  p50 {statistics.median(ms):7.3f} ms  p95 {p95:7.3f} ms  max {ms[-1]:7.3f} ms"


# ---------------------------------------------------------------- the other process (a desk, say)


async def other_process(url: str, token: str, expected: int) -> None:
    from pydantic import SecretStr

    from hotline.control import ControlServer

    class Calls:
        async def calls(self) -> list[dict[str, object]]:
            return [{"call_id": "c1", "caller_number": "13800138000", "operator_id": "op1002"}]

    bus = EventBus()
    link = NatsLink(BusSettings(url=url, token=SecretStr(token)), "bench-other")
    await link.connect()
    bridge = BusBridge(bus, link)
    await bridge.start()
    server = ControlServer(link.nc, link.subject("control"), Calls())  # type: ignore[arg-type]
    await server.start()
    latencies: dict[str, list[float]] = {}
    print("ready", flush=True)
    with bus.subscribed(maxsize=100_000) as events:
        received = 0
        while received < expected:
            event = await events.get()
            now = time.time()
            phase, t_pub, _ = event.body.segment_id.split("|")  # type: ignore[union-attr]
            latencies.setdefault(phase, []).append(now - float(t_pub))
            received += 1
    print(json.dumps(latencies), flush=True)
    await server.stop()
    await bridge.stop()
    await link.close()


# ---------------------------------------------------------------- this process


async def publish(bus: EventBus, phase: str, count: int, spacing_s: float) -> None:
    for i in range(count):
        bus.emit("transcript.final", "c1", segment_id=f"{phase}|{time.time()!r}|{i}", **FIELDS)
        if spacing_s:
            await asyncio.sleep(spacing_s)


async def in_process(singles: int, burst: int) -> dict[str, list[float]]:
    bus = EventBus()
    latencies: dict[str, list[float]] = {}

    async def read() -> None:
        with bus.subscribed(maxsize=100_000) as events:
            for _ in range(singles + burst):
                event = await events.get()
                phase, t_pub, _ = event.body.segment_id.split("|")  # type: ignore[union-attr]
                latencies.setdefault(phase, []).append(time.time() - float(t_pub))

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    await publish(bus, "single", singles, 0.005)
    await publish(bus, "burst", burst, 0)
    await reader
    return latencies


async def across(args: argparse.Namespace, url: str, token: str) -> tuple[dict[str, list[float]], list[float], float]:
    from pydantic import SecretStr

    from hotline.control import RemoteControl

    expected = args.singles + args.burst
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--other", url, token, str(expected), stdout=asyncio.subprocess.PIPE, limit=2**26
    )
    assert child.stdout is not None
    assert (await child.stdout.readline()).strip() == b"ready"
    bus = EventBus()
    link = NatsLink(BusSettings(url=url, token=SecretStr(token)), "bench-this")
    await link.connect()
    bridge = BusBridge(bus, link)
    await bridge.start()
    control = RemoteControl(link.nc, link.subject("control"), 5.0)
    round_trips = []
    for _ in range(args.requests):
        started = time.perf_counter()
        assert (await control.calls())[0]["call_id"] == "c1"
        round_trips.append(time.perf_counter() - started)
    await publish(bus, "single", args.singles, 0.005)
    started = time.time()
    await publish(bus, "burst", args.burst, 0)
    latencies = json.loads(await child.stdout.readline())
    burst_s = max(t + lat for t, lat in [(started, max(latencies["burst"]))]) - started
    await child.wait()
    await bridge.stop()
    await link.close()
    return latencies, round_trips, burst_s


def quiet_logs() -> None:
    """Warnings only, on stderr: the other process's stdout carries its answers."""
    import logging

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def main(args: argparse.Namespace) -> None:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    folder = Path(tempfile.mkdtemp(prefix="hotline-bus-bench-"))
    port, token = free_port(), secrets.token_urlsafe(16)
    config = folder / "nats.conf"
    config.write_text(f'listen: 127.0.0.1:{port}\nauthorization {{ token: "{token}" }}\n')
    config.chmod(0o600)
    server = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        local = await in_process(args.singles, args.burst)
        remote, round_trips, burst_s = await across(args, f"nats://127.0.0.1:{port}", token)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"bus bench: {args.singles} single events 5 ms apart, a burst of {args.burst}, {args.requests} requests")
    for phase in ("single", "burst"):
        print(f"  {phase:<7} one process      {quantiles(local[phase])}")
        print(f"  {phase:<7} two processes    {quantiles(remote[phase])}")
        ratio = statistics.median(remote[phase]) / max(1e-9, statistics.median(local[phase]))
        print(f"  {phase:<7} p50 ratio two/one: {ratio:.1f}x")
    print(f"  burst delivered across processes at {args.burst / burst_s:,.0f} events/s")
    print(f"  control round trip (desk → voice process → desk) {quantiles(round_trips)}")


if __name__ == "__main__":
    quiet_logs()
    if len(sys.argv) > 1 and sys.argv[1] == "--other":
        asyncio.run(other_process(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
