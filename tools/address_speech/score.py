"""What the operator's address card shows for a call, and whether it is right.

The card is replayed as the map assistant builds it: each caller final is resolved with the earlier finals of the
call as context (the assistant's last three); a second, guided reading of a final (an alternative) may deepen it,
and then stands for its line in the context of later ones;
the card shows the top candidate of the latest resolution that found one. A line with no place is right when no
card appears at all.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from assist.address.calibration import SURE
from assist.address.extract import AddressExtractor
from assist.address.second_reading import SecondReadings
from assist.address_assistant import CONTEXT_LINES
from events.address import AddressCandidate
from tools.address_speech.sentences import SpeechCase
from tools.asr_eval.cer import corpus_cer


@dataclass
class CardOutcome:
    case: SpeechCase
    finals: list[str]
    card: AddressCandidate | None
    resolve_s: list[float]

    @property
    def district_ok(self) -> bool:
        if self.case.district is None:
            return self.card is None
        return self.card is not None and self.card.district == self.case.district

    @property
    def town_ok(self) -> bool | None:
        if self.case.towns is None:
            return None
        return self.card is not None and self.card.town in self.case.towns

    @property
    def community_ok(self) -> bool | None:
        if self.case.community is None:
            return None
        return self.card is not None and self.card.community == self.case.community

    @property
    def right(self) -> bool:
        return self.district_ok and self.town_ok is not False and self.community_ok is not False

    @property
    def shown_right(self) -> bool:
        """Every level the card shows is right (a card that stops at the street when a community was named is
        incomplete, not wrong): what the confidence on the card vouches for."""
        card, case = self.card, self.case
        if card is None or case.district is None:
            return False
        if card.district != case.district:
            return False
        if card.town is not None and (case.towns is None or card.town not in case.towns):
            return False
        return card.community is None or card.community == case.community


def replay_card(
    extractor: AddressExtractor,
    case: SpeechCase,
    segments: Sequence[tuple[str, str, str]],
    *,
    alternatives: bool = True,
) -> CardOutcome:
    """`segments`: (kind, text, segment id) in the order the recogniser gave them, kind "final", "alternative" (a
    second reading of the final with the same id, which may come after the next final) or "suggested" (a second
    reading that is the final with one span put right, scored rather than decoded)."""
    second_readings = SecondReadings(extractor)
    card: AddressCandidate | None = None
    times: list[float] = []
    finals: list[str] = []
    read: list[str] = []  # the finals as context: a second reading that deepened the card replaces its line
    position: dict[str, int] = {}
    reread: dict[str, float] = {}  # as the assistant: of a line's second readings, a later, less sure one is not taken
    for kind, text, segment_id in segments:
        if not text.strip():
            continue
        started = time.perf_counter()
        if kind == "final":
            n = position[segment_id] = len(finals)
            found = extractor.extract(text, f"{case.id}-{n}", context=read[max(0, n - CONTEXT_LINES) :])
            finals.append(text)
            read.append(text)
        elif alternatives and segment_id in position:
            n = position[segment_id]
            context = read[max(0, n - CONTEXT_LINES) : n]
            suggested = kind == "suggested"
            better = second_readings.extract(finals[n], text, f"{case.id}-{n}", context=context, suggested=suggested)
            if better is None or better.top is None or better.top.confidence <= reread.get(segment_id, 0.0):
                continue
            reread[segment_id] = better.top.confidence
            found = better
            read[n] = text
        else:
            continue
        times.append(time.perf_counter() - started)
        if found.candidates:
            card = found.candidates[0]
    return CardOutcome(case, finals, card, times)


def _rate(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class SetScore:
    name: str
    outcomes: list[CardOutcome] = field(default_factory=list)

    @property
    def placed(self) -> list[CardOutcome]:
        return [o for o in self.outcomes if o.case.district is not None]

    def district(self) -> float | None:
        return _rate([o.district_ok for o in self.placed])

    def town(self) -> float | None:
        return _rate([bool(o.town_ok) for o in self.placed if o.town_ok is not None])

    def community(self) -> float | None:
        return _rate([bool(o.community_ok) for o in self.placed if o.community_ok is not None])

    def false_address(self) -> float | None:
        return _rate([o.card is not None for o in self.outcomes if o.case.district is None])

    def sure(self) -> tuple[int, float | None]:
        """Cards shown at confidence >= SURE: how many, and the share of them whose every level is right."""
        sure = [o for o in self.outcomes if o.card is not None and o.card.confidence >= SURE]
        return len(sure), _rate([o.shown_right for o in sure])

    def cer(self) -> float:
        return corpus_cer([(o.case.text, "".join(o.finals)) for o in self.outcomes]).cer

    def resolve_ms(self) -> tuple[float, float]:
        times = sorted(t * 1000 for o in self.outcomes for t in o.resolve_s)
        if not times:
            return 0.0, 0.0
        return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value:6.1%}"


def table(scores: Sequence[SetScore], *, timing: bool = True) -> str:
    lines = [
        f"{'set':<10}{'lines':>6}{'CER':>6}{'district':>9}{'street':>8}{'commun.':>8}{'false':>7}"
        f"{'sure n':>7}{'sure ok':>8}" + (f"{'ms p50':>8}{'ms p95':>8}" if timing else "")
    ]
    for s in scores:
        n_sure, sure_ok = s.sure()
        p50, p95 = s.resolve_ms()
        lines.append(
            f"{s.name:<10}{len(s.outcomes):>6}{s.cer():>6.2f}{_pct(s.district()):>9}{_pct(s.town()):>8}"
            f"{_pct(s.community()):>8}{_pct(s.false_address()):>7}{n_sure:>7}{_pct(sure_ok):>8}"
            + (f"{p50:>8.2f}{p95:>8.2f}" if timing else "")
        )
    return "\n".join(lines)
