"""`hotline cluster up`: a hotline-sized cluster on one machine, every part a real server on loopback.

PostgreSQL (the shared database), nats-server (the bus, keeping its events in JetStream), N media nodes (each an
Asterisk of its own under a `hotline serve --role voice` gateway), one assist process, two desk API instances
(either serves any operator; one of them writes the event log, elected: agent_desktop_api.leadership), and
Kamailio in front: the one SIP address callers dial, dispatching new calls across the nodes that answer its health
checks. Everything runs under one folder (`var/cluster` by default: data, logs, each node's Asterisk); Ctrl-C or
SIGTERM stops it all, newest first. The single-box default (`hotline serve`) is unchanged.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from config.paths import write_private
from hotline.cluster.servers import (
    KamailioServer,
    NatsServer,
    PostgresServer,
    ServerError,
    ephemeral_ports,
    port_free,
    private_log,
    stop_process,
)
from hotline.settings import load_settings
from voice.settings import TelephonySettings

Echo = Callable[[str], None]

READY_TIMEOUT_S = 120.0  # a voice node starts its Asterisk and loads the recogniser first


@dataclass(frozen=True)
class ClusterPlan:
    """Where everything listens. Kamailio's SIP port and the desks' ports are the addresses people use; the rest
    is allocated in order from `port_base`, and each node's RTP range from `rtp_base`."""

    root: Path
    nodes: int = 2
    sip_port: int = 5060
    sip_tls_port: int = 5061  # staff phones over TLS
    desk_ports: tuple[int, ...] = (8080, 8081)  # desk API instances: any serves any operator (one writes the log)
    port_base: int = 15000
    rtp_base: int = 16000  # 16 nodes x 1000 ports end below the kernel's outgoing ports (32768)
    rtp_ports_per_node: int = 1000  # max_concurrent_calls (100) x rtp_ports_per_call (8), rounded up

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 16:
            raise ValueError("--nodes: 1 to 16")
        ephemeral = ephemeral_ports()
        ports = self.allocate()
        used = {
            "--sip-port": range(self.sip_port, self.sip_port + 1),
            "--sip-tls-port": range(self.sip_tls_port, self.sip_tls_port + 1),
            "--desk-ports": range(min(self.desk_ports), max(self.desk_ports) + 1),
            "--port-base": range(self.port_base, self.port_base + self.ports_used),
            "--rtp-base": range(self.rtp_base, ports.node_rtp[-1] + self.rtp_ports_per_node),
        }
        for option, span in used.items():
            if span.start <= ephemeral[-1] and ephemeral[0] <= span[-1]:
                raise ValueError(
                    f"{option}: ports {span.start}-{span[-1]} overlap the kernel's ports for outgoing connections "
                    f"({ephemeral[0]}-{ephemeral[-1]}, net.ipv4.ip_local_port_range), where any client may take "
                    "one first; choose ports below or above"
                )

    @property
    def ports_used(self) -> int:
        """How many ports from `port_base` the cluster takes: database, bus, Kamailio's RPC, assist, 3 per node."""
        return 4 + 3 * self.nodes

    def allocate(self) -> ClusterPorts:
        counter = iter(range(self.port_base, self.port_base + self.ports_used))
        return ClusterPorts(
            postgres=next(counter),
            nats=next(counter),
            kamailio_rpc=next(counter),
            assist_http=next(counter),
            node_http=[next(counter) for _ in range(self.nodes)],
            node_ari=[next(counter) for _ in range(self.nodes)],
            node_sip=[next(counter) for _ in range(self.nodes)],
            node_rtp=[self.rtp_base + i * self.rtp_ports_per_node for i in range(self.nodes)],
        )


@dataclass(frozen=True)
class ClusterPorts:
    postgres: int
    nats: int
    kamailio_rpc: int
    assist_http: int
    node_http: list[int]
    node_ari: list[int]
    node_sip: list[int]
    node_rtp: list[int]


@dataclass
class Part:
    """One `hotline serve --role R` process of the cluster."""

    name: str
    role: str
    http_port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        if not port_free(self.http_port):
            raise ServerError(f"{self.name}: port {self.http_port} is taken")
        log = private_log(self.log_path)
        command = [sys.executable, "-m", "hotline.cli", "serve", "--role", self.role]
        self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log, start_new_session=True)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode}: {self.last_line()} (see {self.log_path})"
                )
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ServerError(f"{self.name} not ready after {timeout_s:g} s: see {self.log_path}")

    def last_line(self) -> str:
        """The log's last line: a gateway that refuses to start says why there (`hotline serve: …`)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 2000))
                lines = log.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1][-500:] if lines else "nothing logged"

    def stop(self) -> int | None:
        return stop_process(self.process, timeout_s=20) if self.process is not None else None


@dataclass
class Cluster:
    plan: ClusterPlan
    echo: Echo = print
    extra_env: dict[str, str] = field(default_factory=dict)
    postgres: PostgresServer | None = None
    nats: NatsServer | None = None
    kamailio: KamailioServer | None = None
    parts: list[Part] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)  # the phone ids that register through Kamailio
    _stoppers: list[Callable[[], object]] = field(default_factory=list)

    @property
    def nodes(self) -> list[Part]:
        return [part for part in self.parts if part.role == "voice"]

    @property
    def desks(self) -> list[Part]:
        return [part for part in self.parts if part.role == "desk"]

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_BUS__")}
        env.update(self.extra_env)
        assert self.postgres is not None and self.nats is not None
        env.update(
            HOTLINE_DATABASE__URL=self.postgres.url,
            HOTLINE_BUS__URL=self.nats.url,
            HOTLINE_BUS__TOKEN=self.nats.token,
            HOTLINE_BUS__REPLAY_S="3600",  # the bus keeps an hour of events: a desk taking over goes on from them
            HOTLINE_RECORDING__DIR=str(self.plan.root / "recordings"),
            HOTLINE_LOGGING__FORMAT="json",
        )
        return env

    def start(self) -> None:
        """Start everything in dependency order; on any failure stop what started and raise ServerError."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        plan, root = self.plan, self.plan.root
        ports = plan.allocate()
        root.mkdir(parents=True, exist_ok=True)
        logs = root / "logs"
        logs.mkdir(mode=0o700, exist_ok=True)
        self.echo(f"PostgreSQL on 127.0.0.1:{ports.postgres}")
        self.postgres = PostgresServer(root / "postgres", ports.postgres)
        self.postgres.start()
        self._stoppers.append(self.postgres.stop)
        self.echo(f"NATS on 127.0.0.1:{ports.nats}")
        self.nats = NatsServer(root / "nats", ports.nats, token=self._nats_token(root), jetstream=True)
        self.nats.start()
        self._stoppers.append(self.nats.stop)
        env = self._base_env()
        upgrade = subprocess.run(
            [sys.executable, "-m", "hotline.cli", "db", "upgrade"], env=env, capture_output=True, timeout=120
        )
        if upgrade.returncode != 0:
            raise ServerError(f"database upgrade failed: {upgrade.stderr.decode(errors='replace')[-800:]}")

        telephony = load_settings().telephony  # the staff phones of this process's settings
        self.staff = [phone.id for phone in [*telephony.operators, *telephony.supervisors]]
        phones = self._phones(root)
        staff = self._staff_via_kamailio(telephony)
        for i in range(plan.nodes):
            name = f"node{i + 1}"
            node_env = {
                **env,
                **staff,
                "HOTLINE_ASTERISK__MODE": "embedded",
                "HOTLINE_ROUTING__SHARED_OPERATORS": "true",
                "HOTLINE_ASTERISK__SYSTEM_NAME": name,
                "HOTLINE_ASTERISK__RUNTIME_DIR": str(root / name / "asterisk"),
                "HOTLINE_ASTERISK__SIP_PORT": str(ports.node_sip[i]),
                "HOTLINE_ASTERISK__HTTP_PORT": str(ports.node_ari[i]),
                "HOTLINE_ASTERISK__RTP_PORT_START": str(ports.node_rtp[i]),
                "HOTLINE_HTTP__PORT": str(ports.node_http[i]),
            }
            self.parts.append(Part(name, "voice", ports.node_http[i], node_env, logs / f"{name}.log"))
        assist_env = {**env, "HOTLINE_HTTP__PORT": str(ports.assist_http)}
        self.parts.append(Part("assist", "assist", ports.assist_http, assist_env, logs / "assist.log"))
        for i, port in enumerate(plan.desk_ports):
            desk_env = {**env, "HOTLINE_HTTP__PORT": str(port)}
            self.parts.append(Part(f"desk{i + 1}", "desk", port, desk_env, logs / f"desk{i + 1}.log"))
        for part in self.parts:
            self.echo(f"starting {part.name} ({part.role}) on {part.base}")
            part.start()
            self._stoppers.append(part.stop)
        for part in self.parts:
            part.wait_ready()

        self.echo(
            f"Kamailio on udp 127.0.0.1:{plan.sip_port} (staff phones also tls :{plan.sip_tls_port}) "
            f"in front of {plan.nodes} node(s)"
        )
        uris = [f"sip:127.0.0.1:{port}" for port in ports.node_sip]
        self.kamailio = KamailioServer(
            root / "kamailio", plan.sip_port, ports.kamailio_rpc, uris, phones, sip_tls_port=plan.sip_tls_port
        )
        self.kamailio.start()
        self._stoppers.append(self.kamailio.stop)
        self._write_state(ports)

    def _staff_via_kamailio(self, telephony: TelephonySettings) -> dict[str, str]:
        """The operators' and supervisors' phones as every node dials them: through Kamailio, where they register
        (the nodes' Asterisks never see a registration)."""
        contact = f"@127.0.0.1:{self.plan.sip_port}"
        operators = [
            {"id": op.id, "skills": op.skills, "contact": f"sip:{op.id}{contact}"} for op in telephony.operators
        ]
        supervisors = [{"id": sup.id, "contact": f"sip:{sup.id}{contact}"} for sup in telephony.supervisors]
        return {
            "HOTLINE_TELEPHONY__OPERATORS": json.dumps(operators),
            "HOTLINE_TELEPHONY__SUPERVISORS": json.dumps(supervisors),
        }

    def _phones(self, root: Path) -> dict[str, str]:
        """The staff phones' SIP passwords, generated once per cluster (`phones.json`, 0600)."""
        path = root / "phones.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        for phone_id in self.staff:
            stored.setdefault(phone_id, secrets.token_urlsafe(18))
        write_private(path, json.dumps(stored, indent=2))
        return stored

    def _nats_token(self, root: Path) -> str:
        """The bus token, kept across restarts of the cluster (0600, beside the data)."""
        path = root / "nats-token"
        if not path.exists():
            write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def _write_state(self, ports: ClusterPorts) -> None:
        """What is running where, for `hotline cluster status` and for tests (no secrets in it)."""
        assert self.kamailio is not None and self.postgres is not None
        state = {
            "sip": f"sip:12345@127.0.0.1:{self.plan.sip_port}",
            "kamailio_rpc": f"http://127.0.0.1:{ports.kamailio_rpc}/RPC",
            "database": self.postgres.url,
            "desks": [part.base for part in self.desks],
            "nodes": [
                {
                    "name": part.name,
                    "http": part.base,
                    "sip": f"sip:127.0.0.1:{ports.node_sip[i]}",
                    "pid": part.process.pid if part.process else None,
                    "asterisk_runtime": part.env["HOTLINE_ASTERISK__RUNTIME_DIR"],
                }
                for i, part in enumerate(self.nodes)
            ],
        }
        (self.plan.root / "cluster.json").write_text(json.dumps(state, indent=2))

    def describe(self) -> Iterator[str]:
        assert self.kamailio is not None and self.postgres is not None
        yield f"callers dial   sip:12345@127.0.0.1:{self.plan.sip_port}  (Kamailio, {len(self.nodes)} media nodes)"
        for part in self.desks:
            yield f"desk           {part.base}/"
        for part in self.nodes:
            yield f"{part.name:<14} {part.base}/metrics  (log {part.log_path})"
        yield (
            f"staff phones   register to sip:127.0.0.1:{self.plan.sip_port} as {', '.join(self.staff)} "
            f"(passwords in {self.plan.root / 'phones.json'})"
        )
        cert, _ = self.kamailio.certificate()
        yield f"               or over TLS to sip:127.0.0.1:{self.plan.sip_tls_port};transport=tls (trust {cert})"
        yield f"database       {self.postgres.url}"
        yield (
            f"desk users     HOTLINE_DATABASE__URL={self.postgres.url} .venv/bin/hotline users add op1001 "
            "--role operator"
        )

    def stop(self) -> None:
        """Stop what started, newest first (Kamailio stops taking calls before the nodes go)."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception as exc:  # keep stopping the rest
                self.echo(f"stopping: {exc}")


def run_cluster(plan: ClusterPlan, echo: Echo = print) -> int:
    """Start the cluster, print its addresses, wait for Ctrl-C or SIGTERM, stop it."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster = Cluster(plan, echo)
    try:
        cluster.start()
        for line in cluster.describe():
            echo(line)
        echo("ready; Ctrl-C stops everything")
        while not stop.wait(1.0):
            for part in cluster.parts:
                if part.process is not None and part.process.poll() is not None:
                    echo(f"{part.name} exited with {part.process.returncode}: {part.last_line()} (see {part.log_path})")
                    part.process = None
        return 0
    except ServerError as exc:
        echo(f"cluster: {exc}")
        return 1
    finally:
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["Cluster", "ClusterPlan", "run_cluster"]
