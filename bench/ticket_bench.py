"""Ticket draft benchmark: category suggestion accuracy (top-1 / top-3) on the labelled caller lines, dev and
held-out apart, and the time to redraft a ticket as a call's lines accumulate.

    .venv/bin/python bench/ticket_bench.py [--repeat 50] [--misses]

Times are wall-clock per `assist.ticket.draft.draft` call on one thread, with 1, 5 and 10 lines of the call so far
(the assistant redrafts after every final line).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assist.ticket.catalogue import load_catalogue  # noqa: E402
from assist.ticket.draft import Line, draft  # noqa: E402
from tools.ticket_eval import evaluate, load_cases  # noqa: E402

CASES = ROOT / "tests" / "assist" / "ticket" / "cases.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--misses", action="store_true", help="List the cases the top guess gets wrong.")
    args = parser.parse_args()
    catalogue = load_catalogue()
    cases = load_cases(CASES)
    print(f"catalogue: {len(catalogue.leaves())} leaf categories; cases: {CASES.relative_to(ROOT)}")
    for name in ("dev", "holdout"):
        report = evaluate(catalogue, [c for c in cases if c.set == name])
        print(f"{name:8} n={report.cases:3}  top-1 {report.top1_accuracy:6.1%}  top-3 {report.top3_accuracy:6.1%}")
        if args.misses:
            for miss in report.misses:
                print(f"    {miss.case.code} {miss.case.text} -> {miss.got}")
    lines = [Line(f"s{i}", case.text) for i, case in enumerate(cases)]
    for count in (1, 5, 10):
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            draft(lines[:count], None, catalogue)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(f"draft with {count:2} lines: p50 {statistics.median(times):.2f} ms  p95 {p95:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
