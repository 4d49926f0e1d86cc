"""The RTP a sipp caller plays (`play_pcap_audio`): A-law speech with RFC 2833 key presses in ONE stream.

A real phone sends its audio and its telephone-events in one RTP stream: one SSRC, one sequence, one clock,
audio paused while a key is down. sipp's shipped DTMF pcaps (dtmf_2833_*.pcap) are separate streams (their own
SSRC and sequence); played next to the audio pcap they interleave two streams on one port, and under load
(N = 200 on 2 cores) Asterisk reported some digits twice ("1223"). This module writes the caller's stream as
one pcap instead: the audio payloads of sipp's g711a.pcap (30 ms PCMA packets), re-stamped, with the key
presses spliced in.

    build_caller_pcap(Path("/usr/share/sip-tester/g711a.pcap"), Path("caller.pcap"), [(2.5, "1"), (2.8, "2")])
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

PT_PCMA = 8
PT_EVENT = 101  # telephone-event, as the scenarios' SDP offers it
RATE = 8000
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
SSRC = 0x12345678


def read_rtp_payloads(pcap: Path) -> list[bytes]:
    """RTP payloads (header stripped) of a classic little-endian pcap of Ethernet/IPv4/UDP packets."""
    data = pcap.read_bytes()
    magic, _vmaj, _vmin, _zone, _sig, _snap, link = struct.unpack("<IHHiIII", data[:24])
    if magic != 0xA1B2C3D4 or link != 1:
        raise ValueError(f"{pcap}: expected a little-endian Ethernet pcap")
    payloads = []
    offset = 24
    while offset + 16 <= len(data):
        _sec, _usec, incl, _orig = struct.unpack("<IIII", data[offset : offset + 16])
        packet = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        ip = packet[14:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        rtp = udp[8:]
        cc = rtp[0] & 0x0F
        payloads.append(rtp[12 + 4 * cc :])
    return payloads


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(rtp: bytes, sport: int = 40000, dport: int = 10000) -> bytes:
    """Ethernet + IPv4 + UDP around an RTP packet (addresses are placeholders: sipp rewrites them)."""
    src, dst = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    udp_len = 8 + len(rtp)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = _checksum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + rtp) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, udp_sum) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + udp


def build_caller_pcap(
    audio_pcap: Path,
    out: Path,
    keys: Sequence[tuple[float, str]],
    *,
    key_ms: int = 120,
    event_interval_ms: int = 20,
    gap_ms: int = 40,
) -> float:
    """Write `out`: the audio of `audio_pcap` from t=0, each (time_s, key) pressed for `key_ms` at time_s.

    While a key is down (and `gap_ms` after its end packets) no audio is sent, as phones do. Each key is
    RFC 4733: a first packet with the marker bit, updates every `event_interval_ms` with the duration so far,
    and the end packet sent three times; all with the event's start timestamp. Returns the stream's length (s).
    """
    payloads = read_rtp_payloads(audio_pcap)
    ptime_ms = len(payloads[0]) * 1000 // RATE  # A-law: one byte per sample
    packets: list[tuple[int, bytes]] = []  # (time in ms, RTP packet)
    seq = 1000
    busy: list[tuple[int, int]] = []

    def rtp(pt: int, marker: bool, timestamp: int, payload: bytes) -> bytes:
        nonlocal seq
        seq = (seq + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, timestamp & 0xFFFFFFFF, SSRC)
        return header + payload

    events: list[tuple[int, int, bool, int, int]] = []  # (time ms, code, end, duration samples, start ts)
    for at_s, key in keys:
        start = round(at_s * 1000)
        code = EVENT_CODES[key.upper()]
        start_ts = start * RATE // 1000
        for t in range(start, start + key_ms, event_interval_ms):
            events.append((t, code, False, (t - start) * RATE // 1000, start_ts))
        events += [(start + key_ms, code, True, key_ms * RATE // 1000, start_ts)] * 3
        busy.append((start, start + key_ms + gap_ms))

    audio_t = 0
    for payload in payloads:
        if not any(lo <= audio_t < hi for lo, hi in busy):
            packets.append((audio_t, b"A" + payload))  # tag: sort audio before events at equal times
        audio_t += ptime_ms
    for order, (t, code, end, duration, start_ts) in enumerate(events):
        body = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)  # volume -10 dBm0
        packets.append((t, b"E" + struct.pack("!IBI", start_ts, duration == 0 and not end, order) + body))
    packets.sort(key=lambda item: (item[0], item[1][:1]))

    records = []
    first_audio = True
    for t, tagged in packets:
        if tagged[:1] == b"A":
            packet = rtp(PT_PCMA, first_audio, t * RATE // 1000, tagged[1:])
            first_audio = False
        else:
            start_ts, first = struct.unpack("!IB", tagged[1:6])
            packet = rtp(PT_EVENT, bool(first), start_ts, tagged[10:])
        frame = _frame(packet)
        records.append(struct.pack("<IIII", t // 1000, (t % 1000) * 1000, len(frame), len(frame)) + frame)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    out.write_bytes(header + b"".join(records))
    return packets[-1][0] / 1000 if packets else 0.0
