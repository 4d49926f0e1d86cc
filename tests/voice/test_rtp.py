"""RTP receiver: ordering, loss, late and duplicate packets, byte order, header variants, the port pool."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from voice.rtp import PortPoolExhausted, RtpPortPool, RtpReceiver, RtpReorderer, be_to_le


def packet(seq: int, payload: bytes, *, csrc: int = 0, extension: bytes | None = None, pad: int = 0) -> bytes:
    first = 0x80 | csrc | (0x10 if extension is not None else 0) | (0x20 if pad else 0)
    data = struct.pack("!BBHII", first, 118, seq & 0xFFFF, seq * 320, 0x1234) + b"\0\0\0\1" * csrc
    if extension is not None:
        data += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return data + payload + (bytes(pad - 1) + bytes([pad]) if pad else b"")


def frames(emitted: list[bytes]) -> list[int]:
    return [f[0] for f in emitted]


def test_reorders_within_the_window() -> None:
    out: list[bytes] = []
    r = RtpReorderer(out.append, depth=3)
    for seq in (10, 12, 11, 13):
        r.push(seq, bytes([seq]) * 4)
    assert frames(out) == [10, 11, 12, 13]
    assert r.stats.lost == 0


def test_loss_becomes_silence_and_late_packets_are_dropped() -> None:
    out: list[bytes] = []
    r = RtpReorderer(out.append, depth=2)
    for seq in (1, 2, 4, 5, 6):  # 3 never comes
        r.push(seq, bytes([seq]) * 4)
    r.push(3, b"\3" * 4)  # too late now
    assert frames(out) == [1, 2, 0, 4, 5, 6]
    assert (r.stats.lost, r.stats.late) == (1, 1)


def test_duplicates_and_sequence_wrap() -> None:
    out: list[bytes] = []
    r = RtpReorderer(out.append, depth=3)
    for seq in (65534, 65535, 65535, 0, 1):
        r.push(seq, bytes([seq % 256]) * 2)
    assert frames(out) == [254, 255, 0, 1]
    assert r.stats.late == 1  # a copy of a packet already delivered


def test_big_endian_payload_becomes_little_endian() -> None:
    assert be_to_le(struct.pack(">hh", 1000, -2)) == struct.pack("<hh", 1000, -2)


async def test_receiver_over_udp_parses_header_variants() -> None:
    pool = RtpPortPool(40100, 40110)
    sock = pool.acquire()
    port = sock.getsockname()[1]
    got: list[bytes] = []
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(lambda: RtpReceiver(got.append), sock=sock)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sample = struct.pack(">h", 300)
    variants = (
        packet(1, sample),
        packet(2, sample, csrc=2),
        packet(3, sample, extension=b"abcd"),
        packet(4, sample, pad=3),
    )
    for data in variants:
        sender.sendto(data, ("127.0.0.1", port))
    sender.sendto(b"junk", ("127.0.0.1", port))
    for _ in range(50):
        if len(got) == 4 and receiver.stats.malformed == 1:
            break
        await asyncio.sleep(0.01)
    transport.close()
    sender.close()
    pool.release(port)
    assert got == [struct.pack("<h", 300)] * 4
    assert receiver.stats.malformed == 1


def test_port_pool_hands_out_and_takes_back() -> None:
    pool = RtpPortPool(40120, 40122)
    a, b = pool.acquire(), pool.acquire()
    with pytest.raises(PortPoolExhausted):
        pool.acquire()
    pool.release(a.getsockname()[1])
    a.close()
    c = pool.acquire()
    assert pool.in_use == 2
    b.close()
    c.close()
