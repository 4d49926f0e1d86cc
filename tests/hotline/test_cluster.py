"""The cluster on one machine (`hotline cluster up`'s Cluster), every server real: PostgreSQL, nats-server, two
Asterisk + gateway nodes, an assist process, two desk API instances, and Kamailio in front. Callers are sipp,
dialling Kamailio's one address; each node's own /metrics says how many calls it took."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from hotline.cluster.servers import port_free
from hotline.cluster.up import Cluster, ClusterPlan, Part
from tests.support.audio import make_tone_wav, tone_level_dbfs
from tests.support.ports import free_block, free_port
from tools.softphone.driver import Softphone, SoftphoneError

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parents[2] / "bench" / "sipp" / "uac_proxy.xml"


def _start_cluster(env: dict[str, str], desks: int = 1) -> Iterator[Cluster]:
    # Not under pytest's 0700 temporary root: PostgreSQL runs as its own account and must reach its folder.
    root = Path(tempfile.mkdtemp(prefix="hotline-cluster-"))
    root.chmod(0o755)
    plan = ClusterPlan(
        root=root,
        nodes=2,
        sip_port=free_port(socket.SOCK_DGRAM),
        sip_tls_port=free_port(socket.SOCK_STREAM),
        desk_ports=tuple(free_port(socket.SOCK_STREAM) for _ in range(desks)),
        port_base=free_block(20, "cluster", socket.SOCK_STREAM),
        rtp_base=free_block(2000, "rtp", socket.SOCK_DGRAM),
    )
    cluster = Cluster(plan, echo=lambda line: None, extra_env={"HOTLINE_ASR__ENABLED": "false", **env})
    cluster.start()
    yield cluster
    cluster.stop()
    if not os.environ.get("KEEP_CLUSTER"):  # KEEP_CLUSTER=1: keep its folder (logs, configuration) for a look
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two nodes running the basic script (answer, greet, ask for digits): load without operators."""
    yield from _start_cluster({"HOTLINE_CALL__SCRIPT": "basic", "HOTLINE_TELEPHONY__MAX_CONCURRENT_CALLS": "150"})


@pytest.fixture(scope="module")
def flow_cluster() -> Iterator[Cluster]:
    """Two nodes running the shipped 12345 flow: callers choose, queue and reach operators; two desk instances."""
    yield from _start_cluster({"HOTLINE_ROUTING__WRAP_UP_S": "1"}, desks=2)


@dataclass
class SippRun:
    returncode: int
    successful: int
    failed: int
    log: str


def sipp(cluster: Cluster, calls: int, *, limit: int, rate: int, hold_ms: int, folder: Path) -> SippRun:
    """`calls` callers dialling 12345 at Kamailio (at most `limit` at once, `rate` new ones a second)."""
    folder.mkdir(parents=True, exist_ok=True)
    stat = folder / "stat.csv"
    args = [
        shutil.which("sipp") or "/usr/bin/sipp", f"127.0.0.1:{cluster.plan.sip_port}",
        "-sf", str(SCENARIO), "-s", "12345",
        "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
        "-mi", "127.0.0.1", "-mp", str(free_block(4 * limit + 8, "sipp_media", socket.SOCK_DGRAM)),
        "-m", str(calls), "-l", str(limit), "-r", str(rate), "-d", str(hold_ms),
        "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_err",
        "-nostdin", "-timeout", "120s", "-timeout_error",
    ]  # fmt: skip
    done = subprocess.run(args, cwd=folder, capture_output=True, timeout=180, start_new_session=True)
    rows = list(csv.reader(stat.read_text(errors="replace").splitlines(), delimiter=";")) if stat.exists() else []
    values = dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}
    errors = "".join(p.read_text(errors="replace")[-2000:] for p in folder.glob("*_errors.log"))
    return SippRun(
        done.returncode,
        int(values.get("SuccessfulCall(C)", 0) or 0),
        int(values.get("FailedCall(C)", 0) or 0),
        done.stdout.decode(errors="replace")[-1500:] + errors,
    )


def calls_taken(node: Part) -> float:
    """Calls the node's gateway has finished, whatever their outcome (its own Prometheus counter)."""
    text = httpx.get(f"{node.base}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("hotline_calls_total{"))


def wait_for(check, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - started


def dispatcher_flags(cluster: Cluster) -> dict[str, str]:
    """Kamailio's own view: node URI -> flags (A active, I inactive; P probing)."""
    assert cluster.kamailio is not None
    url = f"http://127.0.0.1:{cluster.kamailio.rpc_port}/RPC"
    answer = httpx.post(url, json={"jsonrpc": "2.0", "method": "dispatcher.list", "id": 1}, timeout=5).json()
    targets = answer["result"]["RECORDS"][0]["SET"]["TARGETS"]
    return {target["DEST"]["URI"]: target["DEST"]["FLAGS"] for target in targets}


def test_200_callers_through_kamailio_are_all_answered_on_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    before = [calls_taken(node) for node in cluster.nodes]
    run = sipp(cluster, 200, limit=200, rate=40, hold_ms=4000, folder=tmp_path / "load")
    assert (run.returncode, run.successful, run.failed) == (0, 200, 0), run.log
    taken = [calls_taken(node) - was for node, was in zip(cluster.nodes, before, strict=True)]
    assert sum(taken) == 200 and min(taken) >= 80, taken  # round robin: both nodes carry the load


def gauge(node: Part, name: str) -> float:
    text = httpx.get(f"{node.base}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{name} "))


def cluster_status_cli(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    """`hotline cluster status` on this cluster's folder."""
    command = [str(Path(sys.executable).parent / "hotline"), "cluster", "status", "--dir", str(cluster.plan.root)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def login(cluster: Cluster, name: str, role: str, desk: Part | None = None) -> str:
    """A user of this cluster's desk (made once: the database is the cluster's PostgreSQL), logged in."""
    assert cluster.postgres is not None
    env = {**os.environ, "HOTLINE_DATABASE__URL": cluster.postgres.url}
    add = [str(Path(sys.executable).parent / "hotline"), "users", "add", name, "--role", role, "--password-stdin"]
    subprocess.run(add, input=b"pw\n", env=env, capture_output=True)  # refused the second time: it exists
    base = (desk or cluster.desks[0]).base
    answer = httpx.post(f"{base}/api/auth/login", json={"username": name, "password": "pw"}, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["token"])


def supervisor_token(cluster: Cluster) -> str:
    return login(cluster, "sue", "supervisor")


def lost_calls(cluster: Cluster, token: str) -> list[str]:
    """Calls the desk's history says ended with the node that carried them."""
    answer = httpx.get(
        f"{cluster.desks[0].base}/api/history", params={"limit": 200}, headers={"Authorization": f"Bearer {token}"}
    )
    answer.raise_for_status()
    return [call["call_id"] for call in answer.json()["calls"] if call["reason"] == "node_lost"]


def test_the_desk_sees_and_hangs_up_calls_on_every_node(cluster: Cluster, tmp_path: Path) -> None:
    token = supervisor_token(cluster)
    auth = {"Authorization": f"Bearer {token}"}
    desk = cluster.desks[0].base
    with ThreadPoolExecutor(1) as pool:
        callers = pool.submit(sipp, cluster, 10, limit=10, rate=20, hold_ms=6_000, folder=tmp_path / "calls")
        wait_for(lambda: sum(gauge(node, "hotline_active_calls") for node in cluster.nodes) == 10, 10)
        live = httpx.get(f"{desk}/api/supervisor/calls", headers=auth, timeout=10)
        assert live.status_code == 200, live.text
        ids = [call["call_id"] for call in live.json()["calls"]]
        by_node = {name: [i for i in ids if i.startswith(f"{name}-")] for name in ("node1", "node2")}
        assert len(ids) == 10 and all(by_node.values()), ids  # one list, from both nodes
        for name in ("node1", "node2"):  # each hang-up reaches the node that has the call
            done = httpx.post(f"{desk}/api/calls/{by_node[name][0]}/hangup", headers=auth, timeout=10)
            assert done.status_code == 200, done.text
        wait_for(lambda: sum(gauge(node, "hotline_active_calls") for node in cluster.nodes) == 8, 5)
        gone = httpx.post(f"{desk}/api/calls/{by_node['node1'][0]}/hangup", headers=auth, timeout=10)
        assert gone.status_code in (404, 409), gone.text  # asked of every node, had by none
        run = callers.result()
    assert (run.successful, run.failed) == (8, 2), run.log  # the two hung up by the supervisor, the rest intact


def recorded(cluster: Cluster, token: str) -> dict[str, str]:
    """The desk's call history: call id -> how it ended."""
    answer = httpx.get(
        f"{cluster.desks[0].base}/api/history", params={"limit": 200}, headers={"Authorization": f"Bearer {token}"}
    )
    answer.raise_for_status()
    return {call["call_id"]: call["reason"] for call in answer.json()["calls"]}


def test_calls_go_on_while_the_bus_and_then_the_database_restart(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.nats is not None and cluster.postgres is not None
    token = supervisor_token(cluster)
    known = set(recorded(cluster, token))
    with ThreadPoolExecutor(1) as pool:
        callers = pool.submit(sipp, cluster, 30, limit=30, rate=10, hold_ms=3_000, folder=tmp_path / "bus")
        time.sleep(1.0)
        cluster.nats.stop()  # the bus goes away for 4 s (longer than a node's beacons may pause)
        time.sleep(4.0)
        cluster.nats.start()
        run = callers.result()
    assert (run.successful, run.failed) == (30, 0), run.log  # the calls never needed the bus
    # The nodes and the desk found the bus again: control answers, and no node was taken for lost meanwhile.
    wait_for(lambda: no_live_calls(cluster, token), 10)
    after_bus = sipp(cluster, 10, limit=10, rate=10, hold_ms=500, folder=tmp_path / "after-bus")
    assert (after_bus.successful, after_bus.failed) == (10, 0), after_bus.log
    wait_for(lambda: len(set(recorded(cluster, token)) - known) >= 10, 10)  # the desk records calls again
    assert "node_lost" not in recorded(cluster, token).values()
    desk = cluster.desks[0]
    assert gauge(desk, "hotline_nodes_lost_total") == 0  # the bus was away, not the nodes: no call was ended
    assert gauge(desk, "hotline_nodes_up") == 2

    known = set(recorded(cluster, token))
    with ThreadPoolExecutor(1) as pool:
        callers = pool.submit(sipp, cluster, 20, limit=20, rate=10, hold_ms=1_000, folder=tmp_path / "db")
        time.sleep(0.5)
        cluster.postgres.stop()  # the database goes away while calls come and end
        time.sleep(3.0)
        cluster.postgres.start()
        run = callers.result()
    assert (run.successful, run.failed) == (20, 0), run.log
    # The desk held what it could not store and caught up: every one of those calls is in the history.
    wait_for(lambda: len(set(recorded(cluster, token)) - known) == 20, 30)


def no_live_calls(cluster: Cluster, token: str) -> bool:
    """Control answers and lists no call. Until the desk has its bus connection back it answers 503 (the call side
    does not answer, Retry-After): not yet."""
    try:
        return live_call_ids(cluster, token) == []
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 503:
            return False
        raise


def live_call_ids(cluster: Cluster, token: str) -> list[str]:
    answer = httpx.get(
        f"{cluster.desks[0].base}/api/supervisor/calls", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return [call["call_id"] for call in answer.json()["calls"]]


def test_a_node_killed_with_calls_up_ends_them_and_leaves_new_calls_to_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    node1, node2 = cluster.nodes
    node1_uri = f"sip:127.0.0.1:{node1.env['HOTLINE_ASTERISK__SIP_PORT']}"
    assert all(flags.startswith("A") for flags in dispatcher_flags(cluster).values()), dispatcher_flags(cluster)
    token = supervisor_token(cluster)
    healthy = cluster_status_cli(cluster)
    assert healthy.returncode == 0 and healthy.stdout.count("rotation in") == 2, healthy.stdout
    with ThreadPoolExecutor(1) as pool:  # callers on the line across the loss (the basic script ends at ~10 s)
        long_calls = pool.submit(sipp, cluster, 20, limit=20, rate=20, hold_ms=6_000, folder=tmp_path / "long")
        wait_for(lambda: sum(gauge(node, "hotline_active_calls") for node in cluster.nodes) == 20, 10)
        time.sleep(1.5)  # a beacon since the last call came in (calls that published nothing yet are known so)
        up_on_node1 = int(gauge(node1, "hotline_active_calls"))
        before = calls_taken(node2)
        asterisk_pid = int((Path(node1.env["HOTLINE_ASTERISK__RUNTIME_DIR"]) / "run" / "asterisk.pid").read_text())
        assert node1.process is not None
        os.kill(node1.process.pid, signal.SIGKILL)  # the gateway and its Asterisk, as a machine would go
        os.kill(asterisk_pid, signal.SIGKILL)
        # Kamailio's health checks take the node out of rotation within seconds...
        out_after = wait_for(lambda: dispatcher_flags(cluster)[node1_uri].startswith("I"), 5.0)
        # ...the desk side ends the node's calls (their operators' desks clear; the record says why)...
        ended_after = wait_for(lambda: len(lost_calls(cluster, token)) == up_on_node1, 10.0)
        # ...what the person on call sees says so...
        shown = cluster_status_cli(cluster)
        assert shown.returncode == 1, shown.stdout
        node1_line = next(line for line in shown.stdout.splitlines() if line.startswith("node1"))
        assert "rotation OUT" in node1_line and "gateway DOWN" in node1_line, shown.stdout
        # ...and new calls are answered by the other node, none refused.
        run = sipp(cluster, 40, limit=40, rate=20, hold_ms=1000, folder=tmp_path / "after")
        assert (run.returncode, run.successful, run.failed) == (0, 40, 0), run.log
        survivors = long_calls.result()  # node2's long calls went on to their own hang-up
    assert survivors.successful == 20 - up_on_node1, survivors.log
    assert calls_taken(node2) - before == 40 + survivors.successful  # every new call went to node2
    print(
        f"node out of rotation {out_after:.2f} s after kill -9; its {up_on_node1} calls ended as node_lost "
        f"{ended_after:.2f} s later; 40 of 40 new calls answered by node2"
    )


def test_hotline_cluster_up_prints_the_addresses_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="hotline-cluster-cli-"))
    root.chmod(0o755)
    sip, desk = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    base = free_block(20, "cluster", socket.SOCK_STREAM)
    command = [
        str(Path(sys.executable).parent / "hotline"), "cluster", "up", "--nodes", "1", "--sip-port", str(sip),
        "--sip-tls-port", str(free_port(socket.SOCK_STREAM)), "--desk-ports", str(desk), "--port-base", str(base),
        "--rtp-base", str(free_block(1000, "rtp", socket.SOCK_DGRAM)), "--dir", str(root),
    ]  # fmt: skip
    env = {**os.environ, "HOTLINE_ASR__ENABLED": "false"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ready"):
                break
        printed = "".join(lines)
        assert f"sip:12345@127.0.0.1:{sip}" in printed and f"http://127.0.0.1:{desk}/" in printed, printed
        assert httpx.get(f"http://127.0.0.1:{desk}/readyz", timeout=5).status_code == 200
        running = processes_using(root)
        assert len(running) >= 5, running  # PostgreSQL, NATS, a node's gateway and Asterisk, assist, desk, Kamailio
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(60) == 0
        assert processes_using(root) == []  # nothing left behind
        assert port_free(desk) and port_free(sip, socket.SOCK_DGRAM)
    finally:
        if process.poll() is None:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)


def processes_using(root: Path) -> list[str]:
    """Command lines of the processes whose command line or environment names the cluster's folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(root) in cmdline or str(root).encode() in environ:
            found.append(cmdline[:200])
    return found


async def test_callers_on_both_nodes_reach_operators_whose_phones_registered_through_kamailio(
    flow_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = flow_cluster
    kamailio = f"sip:127.0.0.1:{cluster.plan.sip_port}"
    entry = f"sip:12345@127.0.0.1:{cluster.plan.sip_port}"
    async with (
        Softphone.open(log_path=tmp_path / "op1001.log", user="op1001") as op1001,
        Softphone.open(log_path=tmp_path / "op1002.log", user="op1002") as op1002,
        Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller,
    ):
        for phone, name in ((op1001, "op1001"), (op1002, "op1002")):  # once, at the cluster's one address
            await answers_calls(cluster, phone, name)
        with pytest.raises(SoftphoneError, match=r"401|403"):  # a wrong password registers nothing
            async with Softphone.open(log_path=tmp_path / "intruder.log", user="op1001") as intruder:
                await intruder.account(user="op1001", password="guess", registrar=kamailio)
        served: dict[tuple[str, str], str] = {}  # (operator, the phone's call) -> the node that rang it
        phones = {"op1001": op1001, "op1002": op1002}
        for attempt in range(2):  # round robin: the first caller lands on one node, the second on the other
            call = await caller.call(entry)
            await choose_citizens(caller, call)
            answered = None
            for _ in range(200):
                rung = [(name, e["call"]) for name, p in phones.items() for e in p.find("incoming")]
                fresh = [key for key in rung if key not in served]
                if fresh:
                    answered = fresh[0]
                    break
                await asyncio.sleep(0.1)
            assert answered is not None, f"no operator phone rang for caller {attempt + 1}"
            phone = phones[answered[0]]
            await phone.wait_state(answered[1], "CONFIRMED", timeout=5)
            [node] = {str(c["call_id"]).split("-", 1)[0] for c in live_calls(cluster)}  # ids carry the node
            served[answered] = node
            await phone.hangup(answered[1])
            await caller.wait_state(call, "DISCONNECTED", timeout=5)
    assert sorted(served.values()) == ["node1", "node2"], served  # each node rang a phone it never saw register


async def test_an_operator_phone_on_tls_through_kamailio_takes_a_call_from_a_node(
    flow_cluster: Cluster, tmp_path: Path
) -> None:
    """A phone outside the building: it registers over TLS at Kamailio (trusting the cluster's certificate and
    nothing else), the node that takes the caller rings it over that same connection, and the two hear each other
    (the media is RTP between the phone and the node: the nodes offer no SRTP yet)."""
    cluster = flow_cluster
    assert cluster.kamailio is not None
    cert, key = cluster.kamailio.certificate()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    passwords = json.loads((cluster.plan.root / "phones.json").read_text())
    tls_registrar = f"sip:127.0.0.1:{cluster.plan.sip_tls_port};transport=tls"
    wavs = {who: make_tone_wav(tmp_path / f"{who}.wav", freq, 30.0, rate=8000) for who, freq in TONES.items()}
    heard = {who: tmp_path / f"{who}-heard.wav" for who in TONES}
    operator = await Softphone.start(log_path=tmp_path / "op1002.log", user="op1002", tls_ca=cert, srtp="optional")
    try:
        await operator.account(user="op1002", password=passwords["op1002"], registrar=tls_registrar, tls=True)
        await operator.auto_answer(True)
        async with Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller:
            call = await caller.call(f"sip:12345@127.0.0.1:{cluster.plan.sip_port}", record=str(heard["caller"]))
            await choose_citizens(caller, call)
            incoming = await operator.wait_event("incoming", timeout=20)
            assert "transport=tls" in str(incoming["request_line"]).lower(), incoming  # over the phone's connection
            op_call = incoming["call"]
            await operator.wait_state(op_call, "CONFIRMED", timeout=5)
            await operator.record(op_call, heard["operator"])
            await operator.play(op_call, wavs["operator"], loop=True)
            await caller.play(call, wavs["caller"], loop=True)
            await asyncio.sleep(3.0)
            [node] = {str(c["call_id"]).split("-", 1)[0] for c in live_calls(cluster)}
            await operator.hangup(op_call)
            await caller.wait_state(call, "DISCONNECTED", timeout=10)
    finally:
        await operator.close(check=False)
    assert node in ("node1", "node2")
    # each side hears the other's tone (the caller's recording also has the flow's prompts before it)
    assert tone_level_dbfs(heard["caller"], TONES["operator"]) > -30
    assert tone_level_dbfs(heard["operator"], TONES["caller"]) > -30


TONES = {"caller": 440.0, "operator": 1000.0}


def live_calls(cluster: Cluster, desk: Part | None = None) -> list[dict[str, object]]:
    desk = desk or cluster.desks[0]
    token = login(cluster, "sue", "supervisor", desk)
    answer = httpx.get(f"{desk.base}/api/supervisor/calls", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    answer.raise_for_status()
    calls: list[dict[str, object]] = answer.json()["calls"]
    return calls


async def answers_calls(cluster: Cluster, phone: Softphone, name: str) -> None:
    """A staff phone registered at Kamailio (the cluster's one address) that answers whatever rings it."""
    passwords = json.loads((cluster.plan.root / "phones.json").read_text())
    await phone.account(user=name, password=passwords[name], registrar=f"sip:127.0.0.1:{cluster.plan.sip_port}")
    await phone.auto_answer(True)


async def choose_citizens(caller: Softphone, call: str) -> None:
    await caller.wait_event("media_active", call=call, timeout=10)
    for key in ("1", "1"):  # the shipped flow: Mandarin, citizens' service
        await asyncio.sleep(0.6)
        await caller.dtmf(call, key)


async def test_one_operator_is_never_offered_two_calls_at_once_across_nodes(
    flow_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = flow_cluster
    entry = f"sip:12345@127.0.0.1:{cluster.plan.sip_port}"
    async with (
        Softphone.open(log_path=tmp_path / "op1002.log", user="op1002") as operator,
        Softphone.open(log_path=tmp_path / "a.log", user="13800138001") as caller_a,
        Softphone.open(log_path=tmp_path / "b.log", user="13800138002") as caller_b,
    ):
        await answers_calls(cluster, operator, "op1002")
        call_a, call_b = await caller_a.call(entry), await caller_b.call(entry)  # one on each node
        await asyncio.gather(choose_citizens(caller_a, call_a), choose_citizens(caller_b, call_b))
        first = await operator.wait_incoming(timeout=20)
        await operator.wait_state(first, "CONFIRMED", timeout=5)
        nodes = {str(c["call_id"]).split("-", 1)[0] for c in live_calls(cluster)}
        assert nodes == {"node1", "node2"}, nodes  # both callers are in, one on each node
        for _ in range(30):  # 3 s: the other node must not ring the operator's phone meanwhile
            assert len(operator.find("incoming")) == 1, operator.find("incoming")
            await asyncio.sleep(0.1)
        mark = operator.mark()
        await operator.hangup(first)
        second = await operator.wait_incoming(timeout=15, since=mark)  # after the wrap-up: the other caller
        await operator.wait_state(second, "CONFIRMED", timeout=5)
        await operator.hangup(second)
        await caller_a.wait_state(call_a, "DISCONNECTED", timeout=10)
        await caller_b.wait_state(call_b, "DISCONNECTED", timeout=10)


async def test_callers_waiting_on_different_nodes_are_served_in_the_order_they_came(
    flow_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = flow_cluster
    entry = f"sip:12345@127.0.0.1:{cluster.plan.sip_port}"
    async with (
        Softphone.open(log_path=tmp_path / "op1002.log", user="op1002") as operator,
        Softphone.open(log_path=tmp_path / "busy.log", user="13800138000") as talker,
        Softphone.open(log_path=tmp_path / "first.log", user="13800138001") as first,
        Softphone.open(log_path=tmp_path / "second.log", user="13800138002") as second,
    ):
        await answers_calls(cluster, operator, "op1002")
        placed: list[dict[str, str]] = []
        for _ in range(2):  # round robin: the first caller waits on one node, then on the other
            mark = operator.mark()
            busy = await talker.call(entry)
            await choose_citizens(talker, busy)
            talking = await operator.wait_incoming(timeout=20, since=mark)
            await operator.wait_state(talking, "CONFIRMED", timeout=5)
            call_a = await first.call(entry)
            await choose_citizens(first, call_a)
            await asyncio.sleep(1.0)  # the first caller is in the queue well before the second
            call_b = await second.call(entry)
            await choose_citizens(second, call_b)
            await asyncio.sleep(1.0)
            node_of = {str(c["caller_number"]): str(c["call_id"]).split("-", 1)[0] for c in live_calls(cluster)}
            placed.append(node_of)
            assert node_of["13800138001"] != node_of["13800138002"], node_of  # waiting on two nodes

            for expected in ("13800138001", "13800138002"):  # the operator frees up: first come, first served
                mark = operator.mark()
                await operator.hangup(talking)
                talking = await operator.wait_incoming(timeout=15, since=mark)
                await operator.wait_state(talking, "CONFIRMED", timeout=5)
                with_operator = [str(c["caller_number"]) for c in live_calls(cluster) if c["operator_id"] == "op1002"]
                assert with_operator == [expected], (with_operator, node_of)
            await operator.hangup(talking)
            for phone, call in ((talker, busy), (first, call_a), (second, call_b)):
                await phone.wait_state(call, "DISCONNECTED", timeout=10)
            await asyncio.sleep(1.5)  # the operator's wrap-up
        assert placed[0]["13800138001"] != placed[1]["13800138001"], placed  # once on each node


STRAIGHT_TO_THE_QUEUE = """
number: "12345"
name: straight to the citizens' queue (a test version)
default_language: zh
languages: [zh]
start: queue
steps:
  queue:
    type: route
    queue: citizens
    skills: [zh]
    prompts: [please_hold]
    on_no_operator: goodbye
    on_callback: goodbye
  goodbye:
    type: hangup
    prompts: [goodbye]
"""


def admin_token(cluster: Cluster) -> str:
    return login(cluster, "ann", "admin")


async def test_a_flow_published_at_the_desk_runs_on_every_node(flow_cluster: Cluster, tmp_path: Path) -> None:
    cluster = flow_cluster
    auth = {"Authorization": f"Bearer {admin_token(cluster)}"}
    published = await asyncio.to_thread(
        httpx.post,
        f"{cluster.desks[0].base}/api/flows/publish",
        json={"content": STRAIGHT_TO_THE_QUEUE, "comment": "no menu"},
        headers=auth,
        timeout=10,
    )
    assert published.status_code == 201, published.text
    await asyncio.sleep(2.5)  # each node polls the shared database for a new version every second
    entry = f"sip:12345@127.0.0.1:{cluster.plan.sip_port}"
    try:
        async with (
            Softphone.open(log_path=tmp_path / "op1002.log", user="op1002") as operator,
            Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller,
        ):
            await answers_calls(cluster, operator, "op1002")
            nodes = set()
            for _ in range(2):  # one call on each node; nobody presses a key
                mark = operator.mark()
                call = await caller.call(entry)
                incoming = await operator.wait_incoming(timeout=20, since=mark)
                await operator.wait_state(incoming, "CONFIRMED", timeout=5)
                nodes |= {str(c["call_id"]).split("-", 1)[0] for c in live_calls(cluster)}
                await operator.hangup(incoming)
                await caller.wait_state(call, "DISCONNECTED", timeout=5)
                await asyncio.sleep(1.5)  # the operator's wrap-up
            assert nodes == {"node1", "node2"}, nodes
    finally:  # the shipped flow again, for whatever runs next on this cluster
        rollback = f"{cluster.desks[0].base}/api/flows/12345/rollback"
        await asyncio.to_thread(httpx.post, rollback, json={}, headers=auth, timeout=10)


PROMISE_A_CALLBACK = STRAIGHT_TO_THE_QUEUE.replace("    skills: [zh]\n", "    skills: [zh]\n    max_wait_s: 3\n")


async def test_callers_promised_a_callback_on_either_node_are_listed_at_every_desk(
    flow_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = flow_cluster
    first, second = cluster.desks
    admin = {"Authorization": f"Bearer {admin_token(cluster)}"}
    operators = {name: {"Authorization": f"Bearer {login(cluster, name, 'operator')}"} for name in ("op1001", "op1002")}
    entry = f"sip:12345@127.0.0.1:{cluster.plan.sip_port}"
    async with httpx.AsyncClient(timeout=10) as http:
        published = await http.post(
            f"{first.base}/api/flows/publish", json={"content": PROMISE_A_CALLBACK}, headers=admin
        )
        assert published.status_code == 201, published.text
        for auth in operators.values():  # nobody free: every caller waits the queue's 3 s out
            away = await http.put(f"{first.base}/api/me/presence", json={"presence": "away"}, headers=auth)
            assert away.status_code == 200, away.text
        await asyncio.sleep(2.5)  # the nodes take the new flow version from the database
        try:
            async with (
                Softphone.open(log_path=tmp_path / "a.log", user="13800138101") as caller_a,
                Softphone.open(log_path=tmp_path / "b.log", user="13800138102") as caller_b,
            ):
                calls = [await caller_a.call(entry), await caller_b.call(entry)]  # round robin: one on each node
                await caller_a.wait_state(calls[0], "DISCONNECTED", timeout=30)
                await caller_b.wait_state(calls[1], "DISCONNECTED", timeout=30)

            def listed(desk: Part) -> list[dict[str, Any]]:
                answer = httpx.get(f"{desk.base}/api/callbacks", headers=operators["op1002"], timeout=10)
                answer.raise_for_status()
                return [c for c in answer.json()["callbacks"] if c["caller_number"] in ("13800138101", "13800138102")]

            await asyncio.to_thread(wait_for, lambda: len(listed(first)) == 2 and len(listed(second)) == 2, 10)
            callbacks = listed(second)
            assert {c["call_id"].split("-", 1)[0] for c in callbacks} == {"node1", "node2"}, callbacks
            assert listed(first) == callbacks  # the same list at either desk instance
            one = callbacks[0]["id"]
            taken = await http.post(f"{first.base}/api/callbacks/{one}/claim", headers=operators["op1002"])
            assert taken.status_code == 200, taken.text
            refused = await http.post(f"{second.base}/api/callbacks/{one}/claim", headers=operators["op1001"])
            assert refused.status_code == 409 and refused.json()["detail"] == "op1002 is calling them back"
            for callback in callbacks:  # tidy up for whatever runs next
                await http.post(f"{first.base}/api/callbacks/{callback['id']}/claim", headers=operators["op1002"])
                done = await http.post(
                    f"{first.base}/api/callbacks/{callback['id']}/done",
                    json={"outcome": "reached"},
                    headers=operators["op1002"],
                )
                assert done.status_code == 200, done.text
        finally:
            for auth in operators.values():
                await http.put(f"{first.base}/api/me/presence", json={"presence": "available"}, headers=auth)
            await http.post(f"{first.base}/api/flows/12345/rollback", json={}, headers=admin)
            await asyncio.sleep(2.5)


def log_writer(cluster: Cluster) -> Part:
    """The desk instance that writes the event log now (its own /metrics says so)."""
    found: list[Part] = []

    def one_writes() -> bool:
        found[:] = [desk for desk in cluster.desks if part_up(desk) and gauge(desk, "hotline_desk_log_writer") == 1]
        return len(found) == 1

    wait_for(one_writes, 10)
    return found[0]


def part_up(part: Part) -> bool:
    return part.process is not None and part.process.poll() is None


async def read_until(
    ws: websockets.ClientConnection, seen: list[dict[str, Any]], type_: str, call_id: str | None = None
) -> None:
    """Read the desk's stream into `seen` (the numbered messages) until `type_` comes (for `call_id`, if given)."""
    async with asyncio.timeout(30):
        while True:
            message = json.loads(await ws.recv())
            assert message["type"] != "resync", message  # the other instance knows this stream: no starting over
            if "seq" in message:
                seen.append(message)
                if message["type"] == type_ and call_id in (None, message["call_id"]):
                    return


async def test_an_operators_desk_resumes_on_the_other_desk_instance_when_its_own_is_killed(
    flow_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = flow_cluster
    first_desk = log_writer(cluster)  # the harder case: the instance that dies is the one writing the log
    [second_desk] = [desk for desk in cluster.desks if desk is not first_desk]
    token = login(cluster, "op1002", "operator", first_desk)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        me = (await client.get(f"{first_desk.base}/api/me")).json()
    start, epoch = me["last_seq"], me["epoch"]
    entry = f"sip:12345@127.0.0.1:{cluster.plan.sip_port}"
    seen: list[dict[str, Any]] = []
    try:
        async with (
            Softphone.open(log_path=tmp_path / "op1002.log", user="op1002") as operator,
            Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller,
        ):
            await answers_calls(cluster, operator, "op1002")
            url = f"ws://127.0.0.1:{first_desk.http_port}/api/events?token={token}&after={start}&epoch={epoch}"
            async with websockets.connect(url) as ws:
                call = await caller.call(entry)
                await choose_citizens(caller, call)
                incoming = await operator.wait_incoming(timeout=20)
                await operator.wait_state(incoming, "CONFIRMED", timeout=5)
                await read_until(ws, seen, "call.answered")
                first_call = seen[-1]["call_id"]
                assert first_desk.process is not None
                first_desk.process.send_signal(signal.SIGKILL)  # the desk instance dies with the call up
                first_desk.process.wait(10)
                takeover = asyncio.create_task(asyncio.to_thread(wait_for, lambda: log_writer(cluster), 10))
            # While no instance may be writing yet, the caller hangs up and the next caller reaches the operator.
            mark = operator.mark()
            await caller.hangup(call)
            await operator.wait_state(incoming, "DISCONNECTED", timeout=10)
            call = await caller.call(entry)
            await choose_citizens(caller, call)
            incoming = await operator.wait_incoming(timeout=20, since=mark)
            await operator.wait_state(incoming, "CONFIRMED", timeout=5)
            second_call = next(c["call_id"] for c in live_calls(cluster, second_desk))
            # The page reconnects (to the other instance behind the same address) from the last seq it has.
            last = seen[-1]["seq"]
            url = f"ws://127.0.0.1:{second_desk.http_port}/api/events?token={token}&after={last}&epoch={epoch}"
            async with websockets.connect(url) as ws:
                await read_until(ws, seen, "call.answered", str(second_call))
            await operator.hangup(incoming)
            await caller.wait_state(call, "DISCONNECTED", timeout=10)
        seqs = [m["seq"] for m in seen]
        assert seqs == list(range(start + 1, start + 1 + len(seen))), seqs  # no gap, no message twice
        after_kill = [(m["type"], m["call_id"]) for m in seen if m["seq"] > last]
        assert ("call.ended", first_call) in after_kill, after_kill  # stored while the first instance was gone
        assert ("call.offered", second_call) in after_kill and ("call.answered", second_call) in after_kill
        assert log_writer(cluster) is second_desk
        print(
            f"the other desk instance wrote the log {await takeover:.2f} s after kill -9; the operator resumed "
            f"there after seq {last}: {len(after_kill)} messages, none missing or twice"
        )
    finally:  # the cluster whole again for whatever runs next: the instance comes back, following
        first_desk.start()
        first_desk.wait_ready()
