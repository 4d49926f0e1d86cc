"""Ports for the servers tests start. All lie below the kernel's ports for outgoing connections: a client socket
(a server's own connection to the bus, say) can take one of those between our check and the server's bind, and
no check sees it coming (seen in CI: "ARI port already in use"). Each kind of port has a zone of its own, so one
choice never lands on another's, e.g. a cluster node's RTP range on the session Asterisk's. A block handed out
recently is not handed out again: two servers a test starts together would otherwise get the same port when the
first has not bound it yet by the time the second is given one (seen in CI: the desk role could not listen)."""

from __future__ import annotations

import random
import socket
from collections import defaultdict, deque

from hotline.cluster.servers import ephemeral_ports, port_free

ZONES = {
    "cluster": (10000, 11000),  # a test cluster's consecutive ports (database, bus, nodes)
    "single": (11000, 13000),  # one port: an HTTP or SIP listener, sipp's signalling
    "rtp": (13000, 21000),  # a test cluster's media nodes
    "sipp_media": (21000, 29000),
    "asterisk_rtp": (29000, 32700),  # the gateway tests' own Asterisk instances
}
# Per zone, the blocks handed out last (first port, size), oldest first: at most half of the zone's ports.
_handed: defaultdict[str, deque[tuple[int, int]]] = defaultdict(deque)


def _handed_recently(zone: str, base: int, size: int) -> bool:
    return any(base < first + length and first < base + size for first, length in _handed[zone])


def _remember(zone: str, base: int, size: int) -> None:
    low, high = ZONES[zone]
    recent = _handed[zone]
    recent.append((base, size))
    while sum(length for _, length in recent) > (high - low) // 2:
        recent.popleft()


def free_block(size: int, zone: str, kind: int = socket.SOCK_STREAM) -> int:
    """The first of `size` consecutive free ports in `zone`."""
    low, high = ZONES[zone]
    assert high <= ephemeral_ports().start, f"the kernel's outgoing ports begin below {high}"
    for attempt in range(200):
        base = random.randrange(low, high - size)
        if _handed_recently(zone, base, size):
            if attempt % 10 == 9 and _handed[zone]:  # crowded by big blocks: forget the oldest
                _handed[zone].popleft()
            continue
        if all(port_free(port, kind) for port in range(base, base + size)):
            _remember(zone, base, size)
            return base
    raise RuntimeError(f"no {size} free ports in {low}-{high}")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    return free_block(1, "single", kind)
