"""Ticket category suggestions against labelled caller lines: top-1 and top-3 accuracy per set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from assist.ticket.catalogue import Catalogue
from assist.ticket.draft import suggest


@dataclass(frozen=True)
class Case:
    set: str
    code: str
    text: str


@dataclass(frozen=True)
class Miss:
    case: Case
    got: list[str]


@dataclass(frozen=True)
class Report:
    cases: int
    top1: int
    top3: int
    misses: list[Miss]

    @property
    def top1_accuracy(self) -> float:
        return self.top1 / self.cases if self.cases else 0.0

    @property
    def top3_accuracy(self) -> float:
        return self.top3 / self.cases if self.cases else 0.0


def load_cases(path: Path) -> list[Case]:
    return [Case(**row) for row in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]]


def evaluate(catalogue: Catalogue, cases: Sequence[Case]) -> Report:
    top1 = top3 = 0
    misses: list[Miss] = []
    for case in cases:
        got = [category.leaf.code for category, _, _ in suggest(case.text, catalogue)]
        top1 += bool(got) and got[0] == case.code
        top3 += case.code in got
        if not got or got[0] != case.code:
            misses.append(Miss(case, got))
    return Report(len(cases), top1, top3, misses)
