"""Scoring the extractor on a labelled test set (used by the tests and by bench/address_bench.py)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assist.address.extract import AddressExtractor
from events.address import AddressCandidates

_UNSCORED = object()


@dataclass(frozen=True)
class Case:
    text: str
    tag: str
    district: str | None
    towns: tuple[str | None, ...] | None  # None: not scored
    community: str | object | None = _UNSCORED
    conflict: bool = False
    partial: str | None = None
    context: tuple[str, ...] = ()
    set: str = "dev"  # dev: written while tuning; holdout: written afterwards, measured as it came

    @property
    def has_address(self) -> bool:
        return self.district is not None


def load_cases(path: Path) -> list[Case]:
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases: list[Case] = []
    for item in raw["cases"]:
        towns: tuple[str | None, ...] | None = None
        if "town" in item:
            value = item["town"]
            towns = tuple(value) if isinstance(value, list) else (value,)
        cases.append(
            Case(
                text=item["text"],
                tag=item.get("tag", ""),
                district=item.get("district"),
                towns=towns,
                community=item.get("community", _UNSCORED),
                conflict=bool(item.get("conflict", False)),
                partial=item.get("partial"),
                context=tuple(item.get("context", ())),
                set=item.get("set", "dev"),
            )
        )
    return cases


@dataclass
class Outcome:
    case: Case
    result: AddressCandidates
    seconds: float
    district_ok: bool
    town_ok: bool | None
    community_ok: bool | None
    conflict_ok: bool

    @property
    def ok(self) -> bool:
        return self.district_ok and self.town_ok is not False and self.community_ok is not False and self.conflict_ok


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)  # seconds per extraction, every run

    def _rate(self, values: list[bool]) -> float:
        return sum(values) / len(values) if values else 1.0

    @property
    def with_address(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.case.has_address]

    @property
    def district_accuracy(self) -> float:
        return self._rate([o.district_ok for o in self.with_address])

    @property
    def town_accuracy(self) -> float:
        return self._rate([o.town_ok for o in self.with_address if o.town_ok is not None])

    @property
    def community_accuracy(self) -> float:
        return self._rate([o.community_ok for o in self.with_address if o.community_ok is not None])

    @property
    def conflict_recall(self) -> float:
        return self._rate([o.conflict_ok for o in self.outcomes if o.case.conflict])

    @property
    def false_positive_rate(self) -> float:
        """Sentences with no address that still got a candidate."""
        return self._rate([bool(o.result.candidates) for o in self.outcomes if not o.case.has_address])

    def tag_accuracy(self, tag: str) -> float:
        return self._rate([o.ok for o in self.outcomes if o.case.tag == tag])

    def timings_ms(self) -> tuple[float, float, float]:
        """p50, p95, max of the resolution time per segment, in milliseconds."""
        times = sorted(s * 1000 for s in (self.samples or [o.seconds for o in self.outcomes]))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        return statistics.median(times), p95, times[-1]

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def run_case(extractor: AddressExtractor, case: Case, segment_id: str = "eval") -> Outcome:
    started = time.perf_counter()
    result = extractor.extract(case.text, segment_id, partial=case.partial, context=case.context)
    seconds = time.perf_counter() - started
    top = result.top
    expected = case.district
    district_ok = top is None if expected is None else (top is not None and top.district == expected)
    town_ok: bool | None = None
    if case.towns is not None and case.district is not None:
        town_ok = top is not None and top.town in case.towns
    community_ok: bool | None = None
    if case.community is not _UNSCORED and case.district is not None:
        community_ok = top is not None and top.community == case.community
    conflict_ok = bool(result.conflicts) == case.conflict if case.has_address else True
    return Outcome(case, result, seconds, district_ok, town_ok, community_ok, conflict_ok)


def evaluate(extractor: AddressExtractor, cases: list[Case], repeat: int = 1) -> Report:
    """Run every case; with `repeat` > 1 the whole set runs that many times and every run's time is a sample."""
    report = Report()
    for round_ in range(max(1, repeat)):
        for n, case in enumerate(cases):
            outcome = run_case(extractor, case, f"eval-{n}")
            report.samples.append(outcome.seconds)
            if round_ == 0:
                report.outcomes.append(outcome)
    return report
