"""The cluster's own servers on this machine, from Debian's packages: PostgreSQL, nats-server and Kamailio, each a
private instance in a folder of its own, bound to loopback. Each one is a child process we started and stop by
its PID; a system service of the same package is never touched."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import jinja2

from config.paths import write_private
from voice.asterisk.tls import TlsError, self_signed

TEMPLATES = Path(__file__).parent / "templates"
KAMAILIO = Path("/usr/sbin/kamailio")
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")


class ServerError(Exception):
    """A server would not start (missing package, port taken, bad configuration): the message says which."""


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_ports(path: Path = EPHEMERAL_RANGE_FILE) -> range:
    """The ports the kernel gives outgoing connections. A server port in this range can be taken by any client
    socket (a node's own connection to the bus) between our check and the server's bind, and no check sees it."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def port_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Nothing listens on the port (TCP: nothing accepts a connection, so a restart is not refused for the
    TIME_WAIT its own last connections left; UDP: it can be bound)."""
    if kind == socket.SOCK_STREAM:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", port)) != 0
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_tcp(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise ServerError(f"exited with {process.returncode} before listening on {port}") from None
            if time.monotonic() > deadline:
                raise ServerError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def stop_session(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """stop_process for a server started in a session of its own, then whatever of its process group outlives it
    (Kamailio's forked SIP workers exit a moment after the main process): waited for, then SIGKILLed."""
    code = stop_process(process, timeout_s)
    deadline = time.monotonic() + timeout_s
    killed = False
    while _group_alive(process.pid):
        if time.monotonic() > deadline:
            if killed:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + 5
        time.sleep(0.05)
    return code


def _group_alive(group: int) -> bool:
    """Whether a process of this process group still runs (zombies, which wait for whoever reaps them, do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


def _private(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def private_log(path: Path) -> IO[bytes]:
    """A log to append to, readable by its owner only: logs name callers and operators."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


# ---- PostgreSQL ----


def postgres_bindir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise ServerError("PostgreSQL is not installed: run ./scripts/setup.sh (Debian package postgresql)")
    return versions[-1].parent


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: the package's own `postgres` account runs them then.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in `folder` (created on first start, kept after), trust auth on loopback only."""

    folder: Path
    port: int
    user: str = "hotline"
    database: str = "hotline"
    fsync: bool = True

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _pg_ctl(self, *args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[bytes]:
        pg_ctl = [str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]
        return subprocess.run(_as_postgres(pg_ctl), capture_output=True, timeout=timeout_s)

    def start(self) -> None:
        bindir = postgres_bindir()
        if not port_free(self.port):
            raise ServerError(f"PostgreSQL: port {self.port} is taken")
        if not (self.data / "PG_VERSION").exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.data.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                self.folder.chmod(0o755)  # the postgres account must reach its data folder
                shutil.chown(self.data, "postgres", "postgres")
            self.data.chmod(0o700)
            initdb = [str(bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8"]
            if not self.fsync:
                initdb.append("--no-sync")
            done = subprocess.run(_as_postgres(initdb), capture_output=True, timeout=120)
            if done.returncode != 0:
                raise ServerError(f"PostgreSQL initdb failed: {done.stderr.decode(errors='replace')[-500:]}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync={'on' if self.fsync else 'off'}"
        )
        started = self._pg_ctl("-l", str(self.data / "server.log"), "-o", options, "start")
        if started.returncode != 0:
            raise ServerError(f"PostgreSQL did not start: see {self.data / 'server.log'}")
        self._create_database()

    def _create_database(self) -> None:
        psql = [str(postgres_bindir() / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        exists = subprocess.run(
            [*psql, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
            capture_output=True,
            timeout=30,
        )
        if exists.stdout.strip() != b"1":
            subprocess.run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {self.database}"], check=True, timeout=30)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", "fast", "stop")


# ---- NATS ----


@dataclass
class NatsServer:
    """Debian's nats-server on loopback with a token (in a 0600 file, never on the command line)."""

    folder: Path
    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    jetstream: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            raise ServerError("nats-server is not installed: run ./scripts/setup.sh (Debian package nats-server)")
        if not port_free(self.port):
            raise ServerError(f"NATS: port {self.port} is taken")
        _private(self.folder)
        config = self.folder / "nats.conf"
        text = f'listen: 127.0.0.1:{self.port}\nauthorization {{ token: "{self.token}" }}\n'
        if self.jetstream:  # the key-value store of the operators' leases (voice.leases)
            text += f'jetstream {{ store_dir: "{self.folder / "jetstream"}" }}\n'
        write_private(config, text)
        log = private_log(self.folder / "nats.log")
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log, start_new_session=True)
        wait_for_tcp(self.port, 10, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# ---- Kamailio ----

TLS_CONFIG = """# Rendered by `hotline cluster up`: the TLS listener for staff phones.
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = {cert}
private_key = {key}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


@dataclass
class KamailioServer:
    """Kamailio in front of the media nodes (see templates/kamailio.cfg.j2): the entry SIP address on `sip_port`,
    its JSON-RPC over HTTP on `rpc_port` (loopback) for `dispatcher.list`."""

    folder: Path
    sip_port: int
    rpc_port: int
    nodes: list[str]  # sip:127.0.0.1:PORT of each Asterisk node
    phones: dict[str, str] = field(default_factory=dict)  # staff phone id -> SIP password
    sip_tls_port: int = 5061  # staff phones over TLS (TCP), with `tls/sip.crt` made for the address
    ping_interval_s: int = 1
    node_timeout_ms: int = 1000
    children: int = 4
    debug: int = 2
    process: subprocess.Popen[bytes] | None = None

    def render(self) -> Path:
        run = _private(self.folder)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        config = env.get_template("kamailio.cfg.j2").render(
            debug=self.debug,
            children=self.children,
            host="127.0.0.1",
            sip_port=self.sip_port,
            sip_tls_port=self.sip_tls_port,
            rpc_port=self.rpc_port,
            modules_dir=KAMAILIO_MODULES,
            run_dir=run,
            ping_interval_s=self.ping_interval_s,
            node_timeout_ms=self.node_timeout_ms,
            phones=[{"id": phone, "password": password} for phone, password in sorted(self.phones.items())],
        )
        path = run / "kamailio.cfg"
        write_private(path, config)  # the phones' passwords
        cert, key = self.certificate()
        write_private(run / "tls.cfg", TLS_CONFIG.format(cert=cert, key=key))
        # set, destination, flags (0: active), priority, attributes
        (run / "dispatcher.list").write_text(
            "".join(f"1 {uri} 0 0 duid=node{i}\n" for i, uri in enumerate(self.nodes, 1))
        )
        return run / "kamailio.cfg"

    def certificate(self) -> tuple[Path, Path]:
        """The TLS listener's certificate and key (self-signed for the address, made once; the key 0600). Phones
        trust this certificate; a deployment puts one its phones already trust in its place."""
        try:
            return self_signed(self.folder / "tls", "127.0.0.1")
        except TlsError as exc:
            raise ServerError(str(exc)) from exc

    def start(self) -> None:
        if not KAMAILIO.exists():
            raise ServerError("Kamailio is not installed: run ./scripts/setup.sh (Debian package kamailio)")
        if not (KAMAILIO_MODULES / "tls.so").exists():
            raise ServerError("Kamailio's TLS module is missing: run ./scripts/setup.sh (kamailio-tls-modules)")
        taken = [
            f"{port}/{kind}"
            for port, kind, sock in (
                (self.sip_port, "udp", socket.SOCK_DGRAM),
                (self.sip_tls_port, "tcp (TLS)", socket.SOCK_STREAM),
                (self.rpc_port, "tcp", socket.SOCK_STREAM),
            )
            if not port_free(port, sock)
        ]
        if taken:
            raise ServerError(f"Kamailio: port {', '.join(taken)} is taken")
        config = self.render()
        check = subprocess.run([str(KAMAILIO), "-c", "-f", str(config)], capture_output=True, timeout=30)
        if check.returncode != 0:
            raise ServerError(f"Kamailio refused its configuration: {check.stderr.decode(errors='replace')[-800:]}")
        log = private_log(self.folder / "kamailio.log")
        # -DD: stay in the foreground (our child, stopped by PID) but fork its SIP workers
        args = [str(KAMAILIO), "-DD", "-E", "-f", str(config), "-m", "64", "-M", "8", "-Y", str(self.folder)]
        self.process = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        wait_for_tcp(self.rpc_port, 10, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_session(self.process)


__all__ = [
    "KamailioServer",
    "NatsServer",
    "PostgresServer",
    "ServerError",
    "ephemeral_ports",
    "port_free",
    "private_log",
    "stop_process",
    "stop_session",
    "wait_for_tcp",
]
