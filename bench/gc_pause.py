#!/usr/bin/env python
"""How long the garbage collector's full pass holds the event loop in a gateway and in an ASR worker, with what
they load at start (gazetteer, address indexes, place search, the recogniser's decode hints) left to it, and
frozen (`gc.freeze()` once started, as `hotline serve` and `hotline asr serve` do).

    .venv/bin/python bench/gc_pause.py            # 5 full passes each way

A full pass runs on whichever thread allocates at the time, usually the event loop's: for its length no frame is
sent, no segment is read, and a pool link's stall timer runs on (asr/remote/pool.py).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assist.address.hints import PlaceHints  # noqa: E402
from assist.address.search import PlaceSearch  # noqa: E402
from assist.address.service import AddressResolver  # noqa: E402
from hotline.settings import Settings  # noqa: E402


def full_passes(times: int) -> list[float]:
    taken = []
    for _ in range(times):
        began = time.perf_counter()
        gc.collect()
        taken.append((time.perf_counter() - began) * 1000)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    began = time.perf_counter()
    resolver = AddressResolver.from_settings(Settings().address)
    _search = PlaceSearch.from_gazetteer(resolver.extractor.gazetteer)
    hints = PlaceHints(resolver.extractor)
    hints.readings_for("我住在朝阳区望京街道花家地社区")  # builds what the hints build on first use
    print(f"loaded in {time.perf_counter() - began:.1f} s: {len(gc.get_objects()):,} objects the collector tracks")
    left = full_passes(args.passes)
    gc.freeze()
    frozen = full_passes(args.passes)
    print(f"{'heap':<22}{'full pass p50 ms':>18}{'max ms':>10}")
    for name, taken in (("left to the collector", left), ("frozen after start", frozen)):
        print(f"{name:<22}{statistics.median(taken):>18.1f}{max(taken):>10.1f}")


if __name__ == "__main__":
    main()
