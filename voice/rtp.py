"""Receiving the RTP that Asterisk's ExternalMedia channels send us: one UDP port per tapped direction.

Packets are put back in sequence order through a small reorder window; a gap that outlives the window is
counted as loss and filled with silence (so the recogniser's timeline stays true), a packet older than what was
already delivered is counted as late and dropped. Payloads arrive as big-endian 16-bit PCM (slin16) and leave as
little-endian 20 ms frames, the format the ASR engines take.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
FRAME_BYTES = 640  # 20 ms of 16 kHz 16-bit mono
MAX_FILL_PACKETS = 50  # fill at most 1 s of loss with silence


class PortPoolExhausted(RuntimeError):
    pass


class RtpPortPool:
    """UDP ports the gateway owns for taps; each is bound while in use and handed back at the call's end."""

    def __init__(self, start: int, end: int, host: str = "127.0.0.1") -> None:
        if end <= start:
            raise ValueError("the tap port range is empty")
        self.host = host
        self._free = list(range(start, end))
        self._used: set[int] = set()

    def acquire(self) -> socket.socket:
        """A bound socket on a free port of the range (each free port is tried once)."""
        for _ in range(len(self._free)):
            port = self._free.pop(0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError:  # something else holds it: try it again later
                sock.close()
                self._free.append(port)
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
            self._used.add(port)
            return sock
        raise PortPoolExhausted(f"no free tap port ({len(self._used)} in use)")

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        return len(self._used)


@dataclass
class RtpStats:
    received: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    malformed: int = 0


class RtpReorderer:
    """Sequence-number ordering with a window of `depth` packets; emits payloads (or silence for losses)."""

    def __init__(self, emit: Callable[[bytes], None], depth: int = 4) -> None:
        self._emit = emit
        self._depth = depth
        self._expected: int | None = None
        self._pending: dict[int, bytes] = {}
        self._payload_size = FRAME_BYTES
        self.stats = RtpStats()

    def push(self, seq: int, payload: bytes) -> None:
        self.stats.received += 1
        self._payload_size = len(payload) or self._payload_size
        if self._expected is None:
            self._expected = seq
        ahead = (seq - self._expected) & 0xFFFF
        if ahead >= 0x8000:  # behind what we already delivered
            self.stats.late += 1
            return
        if seq in self._pending:
            self.stats.duplicates += 1
            return
        self._pending[seq] = payload
        self._drain()
        while len(self._pending) > self._depth:
            self._skip_gap()

    def _drain(self) -> None:
        assert self._expected is not None
        while self._expected in self._pending:
            self._emit(self._pending.pop(self._expected))
            self._expected = (self._expected + 1) & 0xFFFF

    def _skip_gap(self) -> None:
        """The missing packets are not coming: silence in their place, then go on from the oldest one held."""
        assert self._expected is not None
        expected = self._expected
        nearest = min(self._pending, key=lambda seq: (seq - expected) & 0xFFFF)
        missing = (nearest - expected) & 0xFFFF
        self.stats.lost += missing
        if missing <= MAX_FILL_PACKETS:  # a longer jump is a new stream (restart): no point filling it
            for _ in range(missing):
                self._emit(bytes(self._payload_size))
        self._expected = nearest
        self._drain()

    def flush(self) -> None:
        """Deliver everything held (end of the stream)."""
        while self._pending:
            self._skip_gap()


def be_to_le(pcm: bytes) -> bytes:
    """slin16 from Asterisk is network byte order; the engines take little-endian."""
    if sys.byteorder == "little":
        swapped = bytearray(len(pcm) - len(pcm) % 2)
        swapped[0::2] = pcm[1 : len(swapped) : 2]
        swapped[1::2] = pcm[0 : len(swapped) : 2]
        return bytes(swapped)
    return pcm


class RtpReceiver(asyncio.DatagramProtocol):
    """Hands little-endian PCM payloads, in order, to `on_audio`."""

    def __init__(self, on_audio: Callable[[bytes], None], depth: int = 4) -> None:
        self._on_audio = on_audio
        self.reorderer = RtpReorderer(lambda payload: on_audio(be_to_le(payload)), depth)
        self.source: tuple[str, int] | None = None

    @property
    def stats(self) -> RtpStats:
        return self.reorderer.stats

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < RTP_HEADER.size or data[0] >> 6 != 2:
            self.stats.malformed += 1
            return
        first, _marker_pt, seq, _ts, _ssrc = RTP_HEADER.unpack_from(data)
        offset = RTP_HEADER.size + 4 * (first & 0x0F)
        if first & 0x10:  # header extension: 4-byte header, then its length in 32-bit words
            if len(data) < offset + 4:
                self.stats.malformed += 1
                return
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        end = len(data)
        if first & 0x20:  # padding: the last byte says how much
            end -= data[-1]
        if offset > end:
            self.stats.malformed += 1
            return
        self.source = addr
        self.reorderer.push(seq, data[offset:end])

    def error_received(self, exc: Exception) -> None:
        log.debug("rtp.error", error=str(exc))
