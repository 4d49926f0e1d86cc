"""Ports for the servers tests start. All lie below the kernel's ports for outgoing connections: a client socket
(a server's own connection to the bus, say) can take one of those between our check and the server's bind, and
no check sees it coming (seen in CI: "ARI port already in use"). Each kind of port has a zone of its own, so one
choice never lands on another's, e.g. a cluster node's RTP range on the session Asterisk's."""

from __future__ import annotations

import random
import socket

from hotline.cluster.servers import ephemeral_ports, port_free

ZONES = {
    "cluster": (10000, 11000),  # a test cluster's consecutive ports (database, bus, nodes)
    "single": (11000, 13000),  # one port: an HTTP or SIP listener, sipp's signalling
    "rtp": (13000, 21000),  # a test cluster's media nodes
    "sipp_media": (21000, 29000),
    "asterisk_rtp": (29000, 32700),  # the gateway tests' own Asterisk instances
}


def free_block(size: int, zone: str, kind: int = socket.SOCK_STREAM) -> int:
    """The first of `size` consecutive free ports in `zone`."""
    low, high = ZONES[zone]
    assert high <= ephemeral_ports().start, f"the kernel's outgoing ports begin below {high}"
    for _ in range(100):
        base = random.randrange(low, high - size)
        if all(port_free(port, kind) for port in range(base, base + size)):
            return base
    raise RuntimeError(f"no {size} free ports in {low}-{high}")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    return free_block(1, "single", kind)
