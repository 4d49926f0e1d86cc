"""Desktop WebSocket fan-out benchmark (issue 5, "Measure"): N operators connected to one desktop API server.

    .venv/bin/python bench/desktop_bench.py [--operators 750] [--rounds 10] [--burst 20] [--singles 200]

Three processes on 127.0.0.1: the server (the real app: create_app + mount_desktop, uvicorn, the real EventBus,
event log and SQLite database, a stand-in gateway; users made through AuthService with a cheap argon2 setting),
one client process holding all N WebSockets (websockets library), and this driver. Every event carries the
wall-clock time it was published on the bus (`t_pub`); clients take `time.time()` on receipt, so each figure is
bus publish → numbered → stored in SQLite → sent → received and parsed by a client.

Phases:
  1. connect   N operators log in (tokens made in the server) and open their WebSocket.
  2. single    one event at a time to a random operator, 20 ms apart: end-to-end latency on an idle server.
  3. rounds    one event to every operator at once (N events published in one go), --rounds times, 1 s apart:
               fan-out latency p50/p95/max over all deliveries.
  4. burst     --burst rounds back to back (N x burst events): delivered events/s, latency under saturation.
Server CPU (utime+stime from /proc) and RSS are given per phase. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEXT = "我家在海淀区中关村街道科育社区，楼下的路灯坏了三天了"


# ---------------------------------------------------------------- server process


def serve(port: int, db: Path, operators: int, tokens_file: Path) -> None:
    import structlog
    import uvicorn
    from argon2 import PasswordHasher
    from fastapi import FastAPI

    from agent_desktop_api.app import create_app
    from agent_desktop_api.auth import AuthService
    from agent_desktop_api.desktop import mount_desktop
    from config.database import DatabaseSettings, create_engine
    from events.bus import EventBus
    from voice.gateway import CallNotFound

    class BenchControl:
        """No calls and no operator pool: the bench measures the event path only."""

        async def calls(self) -> list[dict[str, object]]:
            return []

        async def operators(self) -> None:
            return None

        async def queues(self) -> list[Any]:
            return []

        async def set_presence(self, operator_id: str, presence: str) -> str:
            raise RuntimeError("no routing in the bench")

        async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
            raise CallNotFound(call_id)

        async def transfer_call(self, call_id: str, target: str) -> bool:
            raise CallNotFound(call_id)

        async def add_interpreter(self, call_id: str, language: str) -> bool:
            raise CallNotFound(call_id)

        async def drop_interpreter(self, call_id: str) -> bool:
            raise CallNotFound(call_id)

    @dataclass
    class BenchService:
        engine: Any
        control: BenchControl = field(default_factory=BenchControl)
        bus: EventBus = field(default_factory=EventBus)

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # no per-socket logs
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{db}"))
    auth = AuthService(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    names = [f"op{i:04d}" for i in range(1, operators + 1)]
    started = time.monotonic()
    tokens = {}
    for name in names:
        auth.add_user(name, "operator", "pw")
        issued = auth.login(name, "pw")
        assert issued is not None
        tokens[name] = issued.token
    tokens_file.write_text(json.dumps(tokens))
    print(f"server: {operators} users and tokens in {time.monotonic() - started:.1f} s", flush=True)

    async def main() -> None:
        service = BenchService(engine)
        app: FastAPI = create_app(auth_service=auth)
        desktop = mount_desktop(app, service)  # inside the loop: consumer starts now, like the gateway's
        bus = service.bus

        @app.post("/bench/publish")
        async def publish(body: dict[str, Any]) -> dict[str, Any]:
            kind, phase = body["kind"], body.get("phase", "")
            targets = body.get("operators") or names
            t0 = time.time()
            count = 0
            for _ in range(int(body.get("rounds", 1))):
                for name in targets:
                    if kind == "offer":
                        bus.emit("call.offered", f"call-{name}", operator_id=name, queue="zh")
                    else:
                        # the contract has no room for the bench's own fields: the phase and the publishing time
                        # travel in the segment id
                        segment_id = f"{phase}|{time.time()!r}|{count}"
                        bus.emit(
                            "transcript.partial",
                            f"call-{name}",
                            segment_id=segment_id,
                            speaker="caller",
                            text=TEXT,
                            start_ms=0,
                        )
                    count += 1
            return {"published": count, "t0": t0}

        @app.get("/bench/stats")
        async def stats() -> dict[str, Any]:
            await desktop.log.settled(60)
            times = os.times()
            status = await asyncio.to_thread(Path("/proc/self/status").read_text)
            mem = {
                k: int(v.split()[0])
                for k, v in (line.split(":", 1) for line in status.splitlines())
                if k in ("VmRSS", "VmHWM")
            }
            return {
                "cpu_s": times.user + times.system,
                "rss_kb": mem["VmRSS"],
                "hwm_kb": mem["VmHWM"],
                "sockets": len(desktop.hub.connections()),
            }

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws_ping_interval=None, backlog=4096
        )
        await uvicorn.Server(config).serve()

    asyncio.run(main())


# ---------------------------------------------------------------- client process


def clients(port: int, tokens_file: Path) -> None:
    import websockets

    tokens: dict[str, str] = json.loads(tokens_file.read_text())
    latencies: dict[str, list[float]] = {}
    last_recv: dict[str, float] = {}
    seqs: dict[str, int] = {}
    errors: list[str] = []
    received = [0]

    async def reader(name: str, ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message.get("type") == "ping":
                continue
            if message["seq"] <= seqs.get(name, 0):
                errors.append(f"{name}: seq {message['seq']} after {seqs[name]}")
            seqs[name] = message["seq"]
            received[0] += 1
            if message.get("type") == "transcript.partial":
                phase, t_pub, _ = message["segment_id"].split("|")
                if phase:
                    latencies.setdefault(phase, []).append(now - float(t_pub))
                    last_recv[phase] = now

    async def main() -> None:
        gate = asyncio.Semaphore(64)
        sockets: list[Any] = []
        tasks = []

        async def connect(name: str, token: str) -> None:
            async with gate:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/api/events?token={token}", ping_interval=None, max_queue=None
                )
            sockets.append(ws)
            tasks.append(asyncio.create_task(reader(name, ws)))

        started = time.monotonic()
        await asyncio.gather(*(connect(name, token) for name, token in tokens.items()))
        print(json.dumps({"ready": len(sockets), "connect_s": time.monotonic() - started}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the driver says when to report
        print(
            json.dumps(
                {"latencies": latencies, "last_recv": last_recv, "errors": errors[:20], "delivered": received[0]}
            ),
            flush=True,
        )
        for ws in sockets:
            await ws.close()

    asyncio.run(main())


# ---------------------------------------------------------------- driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"n={len(ms)} p50={statistics.median(ms):.1f} ms p95={_pct(ms, 0.95):.1f} ms "
        f"p99={_pct(ms, 0.99):.1f} ms max={max(ms):.1f} ms"
    )


def drive(args: argparse.Namespace) -> None:
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="desktop-bench-"))
    port, tokens_file = _free_port(), tmp / "tokens.json"
    me = [sys.executable, str(Path(__file__).resolve())]
    server = subprocess.Popen([*me, "_serve", str(port), str(tmp / "db.sqlite"), str(args.operators), str(tokens_file)])
    client: subprocess.Popen[str] | None = None
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                http.get("/bench/stats")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.2)
        stats = [("start", http.get("/bench/stats").json())]
        client = subprocess.Popen(
            [*me, "_clients", str(port), str(tokens_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert client.stdout is not None and client.stdin is not None
        ready = json.loads(client.stdout.readline())
        stats.append(("connect", http.get("/bench/stats").json()))
        print(
            f"connect: {ready['ready']} WebSockets open in {ready['connect_s']:.2f} s "
            f"(server sees {stats[-1][1]['sockets']})"
        )
        http.post("/bench/publish", json={"kind": "offer"})  # each operator gets a call: later events follow it
        http.get("/bench/stats")  # waits until stored and handed out
        stats.append(("offer", http.get("/bench/stats").json()))
        time.sleep(args.idle)
        stats.append(("idle", http.get("/bench/stats").json()))

        names = list(json.loads(tokens_file.read_text()))
        for _ in range(args.singles):
            http.post(
                "/bench/publish", json={"kind": "partial", "phase": "single", "operators": [random.choice(names)]}
            )
            time.sleep(0.02)
        stats.append(("single", http.get("/bench/stats").json()))
        for _ in range(args.rounds):
            http.post("/bench/publish", json={"kind": "partial", "phase": "rounds"})
            time.sleep(1.0)
        stats.append(("rounds", http.get("/bench/stats").json()))
        burst = http.post("/bench/publish", json={"kind": "partial", "phase": "burst", "rounds": args.burst}).json()
        stats.append(("burst", http.get("/bench/stats").json()))
        time.sleep(1.0)

        client.stdin.write("report\n")
        client.stdin.flush()
        report = json.loads(client.stdout.readline())
        lat = report["latencies"]
        print(f"operators={args.operators} cores={os.cpu_count()} (server, clients and driver share them)")
        print(f"single  (idle, publish -> client): {_summary(lat['single'])}")
        print(f"rounds  ({args.operators} events at once, x{args.rounds}): {_summary(lat['rounds'])}")
        span = report["last_recv"]["burst"] - burst["t0"]
        print(
            f"burst   ({burst['published']} events back to back): {_summary(lat['burst'])}; "
            f"all delivered in {span:.2f} s = {len(lat['burst']) / span:.0f} events/s"
        )
        for (name, after), (_, before) in zip(stats[1:], stats[:-1], strict=True):
            print(
                f"server {name:8s}: cpu {after['cpu_s'] - before['cpu_s']:.2f} s, rss {after['rss_kb'] / 1024:.0f} MiB "
                f"(peak {after['hwm_kb'] / 1024:.0f} MiB)"
            )
        expected = args.singles + args.operators * (1 + args.rounds + args.burst)
        print(f"delivered {report['delivered']} of {expected} messages; order errors: {report['errors'] or 'none'}")
    finally:
        if client is not None:
            client.kill()
            client.wait()
        server.terminate()
        server.wait(10)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_clients":
        clients(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operators", type=int, default=750)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle (measures CPU with N sockets open)")
    drive(parser.parse_args())


if __name__ == "__main__":
    main()
