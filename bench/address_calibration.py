#!/usr/bin/env python
"""What the confidence on the address card meant through real calls: per set, how often a card shown at each
confidence was right, from the calls `bench/address_call_bench.py --dump FILE` recorded.

    .venv/bin/python bench/address_call_bench.py --sets dev,holdout,none --dump var/calls.jsonl   # ~65 min
    .venv/bin/python bench/address_calibration.py var/calls.jsonl

A card counts as right when every level it shows is right (a card that stops at the street when a community was
named is incomplete, not wrong), as tools.address_speech.score judges cards shown as sure; a card on a line that
names no place is wrong. The target: cards shown at >= 80 % right at least 95 % of the time. Fit on dev, check on
held-out: the dev rows say where assist/address/calibration.py's map should move.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assist.address.calibration import SURE

BUCKETS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", type=Path, help="JSON lines written by address_call_bench.py --dump")
    parser.add_argument("--wrong", action="store_true", help="list the cards at >= 80 % that were wrong")
    args = parser.parse_args()
    by_set: dict[str, list[tuple[float, bool, dict[str, object]]]] = defaultdict(list)
    for line in args.dump.read_text(encoding="utf-8").splitlines():
        call = json.loads(line)
        card = call["card"]
        if card is not None:
            by_set[call["set"]].append((float(card["confidence"]), bool(call["shown_right"]), call))
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


if __name__ == "__main__":
    sys.exit(main())
