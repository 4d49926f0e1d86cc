"""Worker pool and lanes (fast)."""

from __future__ import annotations

import threading
import time

from asr.workers import PRIORITY_FINAL, PRIORITY_PARTIAL, Lanes, PriorityPool


def test_finals_run_before_waiting_partials() -> None:
    pool = PriorityPool(1, name="asr-test")
    gate = threading.Event()
    order: list[str] = []
    pool.submit(PRIORITY_PARTIAL, gate.wait)  # occupies the only worker
    for i in range(3):
        pool.submit(PRIORITY_PARTIAL, lambda i=i: order.append(f"p{i}"))
    for i in range(2):
        pool.submit(PRIORITY_FINAL, lambda i=i: order.append(f"f{i}"))
    assert not pool.has_room()
    gate.set()
    pool.close()
    assert order == ["f0", "f1", "p0", "p1", "p2"]


def test_pool_survives_a_failing_job_and_joins_its_threads() -> None:
    before = threading.active_count()
    pool = PriorityPool(2, name="asr-test")
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    pool.submit(PRIORITY_FINAL, boom)
    pool.submit(PRIORITY_FINAL, done.set)
    assert done.wait(5)
    pool.close()
    assert threading.active_count() == before


def test_lanes_keep_order_per_lane() -> None:
    lanes = Lanes(2, name="asr-test-lane")
    seen: dict[int, list[int]] = {0: [], 1: []}
    for i in range(50):
        lane = i % 2
        lanes.submit(lane, lambda lane=lane, i=i: (time.sleep(0.0005), seen[lane].append(i)))
    lanes.close()
    assert seen[0] == list(range(0, 50, 2))
    assert seen[1] == list(range(1, 50, 2))
    assert {lanes.assign() for _ in range(4)} == {0, 1}
