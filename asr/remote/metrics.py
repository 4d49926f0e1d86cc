"""A worker's Prometheus metrics (GET /metrics): streams, queue, decode time and real-time factor."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DECODE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.streams = Gauge("hotline_asr_worker_streams", "Streams open on this worker.", registry=r)
        self.capacity = Gauge("hotline_asr_worker_capacity", "Streams this worker takes at most.", registry=r)
        self.queue = Gauge("hotline_asr_worker_queue", "Decodes running or waiting.", registry=r)
        self.draining = Gauge("hotline_asr_worker_draining", "1 while the worker drains before it stops.", registry=r)
        self.connections = Gauge("hotline_asr_worker_connections", "Clients connected.", registry=r)
        self.opened = Counter("hotline_asr_worker_streams_opened", "Streams opened.", registry=r)
        self.refused = Counter("hotline_asr_worker_streams_refused", "Streams refused.", ["reason"], registry=r)
        self.errors = Counter("hotline_asr_worker_protocol_errors", "Bad frames answered.", ["code"], registry=r)
        self.segments = Counter("hotline_asr_worker_segments", "Segments sent.", ["kind"], registry=r)
        self.decode_seconds = Histogram(
            "hotline_asr_worker_decode_seconds", "Wall time of one decode.", buckets=DECODE_BUCKETS, registry=r
        )
        self.audio_seconds = Counter("hotline_asr_worker_decoded_audio_seconds", "Audio decoded.", registry=r)
        self.rtf = Gauge(
            "hotline_asr_worker_real_time_factor", "Decode time over audio time, all decodes so far.", registry=r
        )
        # A count since the worker started, read from the engine when scraped (the engine counts it in its threads).
        self.silent_finals = Gauge(
            "hotline_asr_worker_silent_finals",
            "Utterances of 1 s or more decoded to no text since the worker started: words the desk may have lost.",
            registry=r,
        )
        self.uncovered_rereads = Gauge(
            "hotline_asr_worker_uncovered_rereads",
            "Utterances read again since the worker started because their first reading, aligned to the audio, "
            "left a clause out.",
            registry=r,
        )
        self._lock = threading.Lock()
        self._audio_s = 0.0
        self._decode_s = 0.0

    def decoded(self, audio_s: float, decode_s: float) -> None:
        """Called from decode threads."""
        self.decode_seconds.observe(decode_s)
        self.audio_seconds.inc(audio_s)
        with self._lock:
            self._audio_s += audio_s
            self._decode_s += decode_s
            if self._audio_s > 0:
                self.rtf.set(self._decode_s / self._audio_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
