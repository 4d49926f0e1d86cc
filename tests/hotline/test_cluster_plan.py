"""`hotline cluster up`'s plan and start-up errors, without starting a cluster (the quick part of the cluster's
tests; tests/hotline/test_cluster.py starts real ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hotline.cli import main
from hotline.cluster.servers import ServerError, ephemeral_ports, private_log
from hotline.cluster.up import ClusterPlan, Part


def test_the_kernels_outgoing_ports_are_read_from_proc_or_default_to_linuxs(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ephemeral_ports(setting) == range(40000, 50001)
    assert ephemeral_ports(tmp_path / "missing") == range(32768, 61000)


def test_the_default_plan_fits_sixteen_nodes_below_the_outgoing_ports(tmp_path: Path) -> None:
    plan = ClusterPlan(root=tmp_path, nodes=16)
    ports = plan.allocate()
    assert ports.node_rtp[-1] + plan.rtp_ports_per_node <= ephemeral_ports().start
    assert len({ports.postgres, ports.nats, *ports.node_http, *ports.node_ari}) == 2 + 32  # no port twice


@pytest.mark.parametrize(
    ("option", "change"),
    [
        ("--rtp-base", {"rtp_base": 40000}),
        ("--port-base", {"port_base": 33000}),
        ("--desk-ports", {"desk_ports": (40080,)}),
    ],
)
def test_ports_among_the_outgoing_ones_are_refused_with_the_option_to_change(
    tmp_path: Path, option: str, change: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=f"^{option}: ports .* overlap the kernel's ports for outgoing connections"):
        ClusterPlan(root=tmp_path, **change)  # type: ignore[arg-type]


def test_the_cli_says_which_option_overlaps_before_starting_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["cluster", "up", "--rtp-base", "40000", "--dir", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "--rtp-base: ports 40000-41999 overlap" in result.output
    assert not (tmp_path / "c").exists()  # refused before anything was made


def test_a_part_that_exits_at_start_reports_its_logs_last_line(tmp_path: Path) -> None:
    log = tmp_path / "node1.log"
    part = Part("node1", "voice", 1, {}, log)
    with log.open("ab") as out:
        script = "print('starting'); print('hotline serve: port 36228/tcp already in use'); raise SystemExit(1)"
        part.process = subprocess.Popen([sys.executable, "-c", script], stdout=out)
    part.process.wait(10)
    with pytest.raises(ServerError, match=r"node1 exited with 1: hotline serve: port 36228/tcp already in use \(see"):
        part.wait_ready(timeout_s=5)


def test_the_parts_logs_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "node1.log"
    with private_log(path) as log:
        log.write(b"call from 13800138000\n")
    with private_log(path) as log:  # appended on a restart, never truncated
        log.write(b"again\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == b"call from 13800138000\nagain\n"
