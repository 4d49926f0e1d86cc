"""`hotline cluster …`: the cluster on one machine (see hotline.cluster.up)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hotline.cluster.status import cluster_status
from hotline.cluster.up import ClusterPlan, run_cluster
from hotline.settings import PROJECT_ROOT


def _ports(value: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter("comma-separated port numbers, e.g. 8080,8081") from None
    if not ports or any(not 1 <= port <= 65535 for port in ports):
        raise click.BadParameter("ports are 1 to 65535")
    return ports


cluster_dir = click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False, resolve_path=True),
    default=PROJECT_ROOT / "var" / "cluster",
    help="The cluster's folder: data, logs, runtime (default: var/cluster).",
)


@click.group("cluster")
def cluster_group() -> None:
    """A cluster on this machine: Kamailio, NATS, PostgreSQL, media nodes, desks."""


@cluster_group.command("up")
@click.option("--nodes", type=click.IntRange(1, 16), default=2, show_default=True, help="Asterisk + gateway nodes.")
@click.option("--sip-port", type=click.IntRange(1, 65535), default=5060, show_default=True, help="Kamailio (UDP).")
@click.option(
    "--sip-tls-port",
    type=click.IntRange(1, 65535),
    default=5061,
    show_default=True,
    help="Kamailio (TLS, staff phones).",
)
@click.option("--desk-ports", default="8080,8081", show_default=True, help="One desk API instance per port.")
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65000),
    default=15000,
    show_default=True,
    help="Every other port (database, bus, nodes) is taken in order from here.",
)
@click.option(
    "--rtp-base",
    type=click.IntRange(1024, 60000),
    default=16000,
    show_default=True,
    help="Node i's RTP ports start at rtp-base + 1000 i.",
)
@cluster_dir
def up_command(
    nodes: int, sip_port: int, sip_tls_port: int, desk_ports: str, port_base: int, rtp_base: int, root: Path
) -> None:
    """Start the cluster, print the SIP entry address and the desk URLs; Ctrl-C stops everything."""
    try:
        plan = ClusterPlan(
            root=root,
            nodes=nodes,
            sip_port=sip_port,
            sip_tls_port=sip_tls_port,
            desk_ports=_ports(desk_ports),
            port_base=port_base,
            rtp_base=rtp_base,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run_cluster(plan, lambda line: click.echo(line)))


@cluster_group.command("status")
@cluster_dir
def status_command(root: Path) -> None:
    """Each media node as Kamailio and its gateway see it, and the desks; exit 1 when a part is down."""
    lines, healthy = cluster_status(root)
    for line in lines:
        click.echo(line)
    sys.exit(0 if healthy else 1)
