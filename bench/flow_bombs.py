"""Hostile flow files against the flow loader: time and peak memory to refuse each, beside a real flow.

    .venv/bin/python bench/flow_bombs.py          # in-process loader figures, then the CLI as its own process

The in-process figures are the loader's own cost (tracemalloc peak); the CLI figures are what an administrator
sees (`hotline flows validate FILE`, wall time and the process's peak RSS), with the shipped 12345 flow as the
baseline in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr_flows.loader import load_yaml  # noqa: E402
from tests.ivr_flows.bombs import BOMBS  # noqa: E402

SHIPPED = ROOT / "ivr_flows" / "flows" / "12345.yaml"


def loader_figures(text: str) -> tuple[float, float, str]:
    tracemalloc.start()
    started = time.perf_counter()
    loaded = load_yaml(text, "bench.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    verdict = str(loaded.errors[0]) if loaded.errors else "loaded"
    return elapsed * 1000, peak / 1e6, verdict


def cli_figures(path: Path, database: Path) -> tuple[float, float, int]:
    measure = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True); "
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    hotline = Path(sys.executable).with_name("hotline")
    env = {**os.environ, "HOTLINE_DATABASE__URL": f"sqlite:///{database}"}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", measure, str(hotline), "flows", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    ).stdout.split()
    return time.perf_counter() - started, int(out[1]) / 1024, int(out[0])


def main() -> None:
    inputs = {"shipped 12345.yaml (baseline)": SHIPPED.read_text(encoding="utf-8"), **BOMBS}
    print(f"{'input':32} {'bytes':>8} {'load ms':>8} {'peak MB':>8}  verdict")
    for name, text in inputs.items():
        ms, mb, verdict = loader_figures(text)
        print(f"{name:32} {len(text.encode()):>8} {ms:>8.1f} {mb:>8.2f}  {verdict[:70]}")
    print()
    print(f"{'CLI: hotline flows validate':32} {'wall s':>8} {'RSS MB':>8} {'exit':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "db.sqlite"
        for name, text in inputs.items():
            path = Path(tmp) / f"{name.split()[0]}.yaml"
            path.write_text(text, encoding="utf-8")
            wall, rss, code = cli_figures(path, database)
            print(f"{name:32} {wall:>8.2f} {rss:>8.1f} {code:>5}")


if __name__ == "__main__":
    main()
