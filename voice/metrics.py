"""Prometheus metrics of the gateway, in a registry of their own so tests and several gateways stay apart."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CALL_OUTCOMES = ("completed", "caller_hangup", "rejected", "error", "gateway_shutdown", "asterisk_lost")


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.active_calls = Gauge("hotline_active_calls", "Calls owned by the gateway now", registry=self.registry)
        self.calls_total = Counter(
            "hotline_calls_total", "Calls ended, by outcome", ["outcome"], registry=self.registry
        )
        for outcome in CALL_OUTCOMES:
            self.calls_total.labels(outcome=outcome)
        self.ari_reconnects = Counter(
            "hotline_ari_reconnects_total", "Reconnections of the ARI event stream", registry=self.registry
        )
        self.ari_connected = Gauge(
            "hotline_ari_connected", "1 while the ARI event stream is connected", registry=self.registry
        )
        self.answer_seconds = Histogram(
            "hotline_call_answer_seconds",
            "StasisStart to answered",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.dtmf_to_prompt_seconds = Histogram(
            "hotline_dtmf_to_prompt_seconds",
            "Last digit of an entry received to the next prompt playing",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
