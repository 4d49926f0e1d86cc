#!/usr/bin/env python
"""What the confidence on the address card meant through real calls: per set, how often a card shown at each
confidence was right, from the calls `bench/address_call_bench.py --dump FILE` recorded.

    .venv/bin/python bench/address_call_bench.py --sets dev,holdout,none --dump var/calls.jsonl   # ~65 min
    .venv/bin/python bench/address_calibration.py var/calls.jsonl
    .venv/bin/python bench/address_calibration.py --fit var/dev_a.jsonl var/dev_b.jsonl   # where "sure" should start

A card counts as right when every level it shows is right (a card that stops at the street when a community was
named is incomplete, not wrong), as tools.address_speech.score judges cards shown as sure; a card on a line that
names no place is wrong. The target: cards shown at >= 80 % right at least 95 % of the time. Fit on dev, check on
held-out: the dev rows say where assist/address/calibration.py's map should move. --fit pools the dev cards of
every dump given, reads back the raw score behind each shown confidence, and prints how often the cards at or above
each raw score were right: the lowest raw score from which they stay right >= 95 % is where "sure" should start.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assist.address.calibration import SURE, raw_score, shown_confidence

BUCKETS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01)
TARGET = 0.95  # share of sure cards that must be right
RAW_STEPS = [round(0.5 + i / 100, 2) for i in range(41)]  # raw scores tried as the start of "sure"

Card = tuple[float, bool, dict[str, object]]  # shown confidence, every level shown right, the dumped call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dumps", type=Path, nargs="+", help="JSON lines written by address_call_bench.py --dump")
    parser.add_argument("--wrong", action="store_true", help="list the cards at >= 80 % that were wrong")
    parser.add_argument("--fit", action="store_true", help="where on the raw score the dev cards become sure")
    args = parser.parse_args()
    by_set: dict[str, list[Card]] = defaultdict(list)
    for dump in args.dumps:
        for line in dump.read_text(encoding="utf-8").splitlines():
            call = json.loads(line)
            card = call["card"]
            if card is not None:
                by_set[call["set"]].append((float(card["confidence"]), bool(call["shown_right"]), call))
    if args.fit:
        return fit(by_set["dev"])
    for name, cards in by_set.items():
        print(f"\n{name}: {len(cards)} cards")
        print(f"{'shown':>12}{'cards':>7}{'right':>8}")
        for low, high in itertools.pairwise(BUCKETS):
            inside = [right for confidence, right, _ in cards if low <= confidence < high]
            if inside:
                print(f"{low:>5.2f}-{min(high, 1.0):<5.2f}{len(inside):>8}{sum(inside) / len(inside):>8.1%}")
        sure = [right for confidence, right, _ in cards if confidence >= SURE]
        if sure:
            print(f"  at >= {SURE:.0%}: {len(sure)} cards, {sum(sure) / len(sure):.1%} right")
        if args.wrong:
            for confidence, right, call in cards:
                if confidence >= SURE and not right:
                    print(f"  wrong at {confidence:.2f}: {call['text']} | heard {' | '.join(call['finals'])}")  # type: ignore[arg-type]
                    print(f"      card {call['card']}")
    return 0


def fit(cards: list[Card]) -> int:
    if not cards:
        print("no dev cards in these dumps", file=sys.stderr)
        return 1
    raws = [(raw_score(confidence), right) for confidence, right, _ in cards]
    print(f"{len(raws)} dev cards; the cards at or above each raw score (now shown as)")
    print(f"{'raw':>6}{'shown':>7}{'cards':>7}{'right':>8}{'wrong':>7}")
    shares: dict[float, float] = {}
    for step in RAW_STEPS:
        above = [right for raw, right in raws if raw >= step]
        if above:
            shares[step] = sum(above) / len(above)
            print(
                f"{step:>6.2f}{shown_confidence(step):>7.2f}{len(above):>7}{shares[step]:>8.1%}{above.count(False):>7}"
            )
    steady = [step for step in shares if all(share >= TARGET for higher, share in shares.items() if higher >= step)]
    if steady:
        print(
            f"from raw {min(steady):.2f} up the cards stay right >= {TARGET:.0%}; sure starts now at raw "
            f"{raw_score(SURE):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
