"""The load-and-faults benchmark's own logic (benchmarks/ledger_service/run.py): the plan and the measures."""

from __future__ import annotations

import pytest

from tests.conftest import load_script

pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def bench():
    return load_script("ledger_service/run.py")


def test_plan_gives_each_client_fresh_targets_duplicates_of_its_own_and_invalid_ones(bench):
    plans = bench.plan_submissions(list(range(1000, 1600)), clients=4, total=200, dup_share=0.1, bad_share=0.05,
                                   seed=3)  # fmt: skip
    assert [len(p) for p in plans] == [50] * 4
    new = [i["body"]["target"] for p in plans for i in p if i["expect"] == "new"]
    assert len(new) == len(set(new)), "two submissions meant as new name the same sample"
    for p in plans:
        seen: set[str] = set()
        for item in p:
            if item["expect"] == "duplicate":
                assert item["body"]["target"] in seen  # a duplicate repeats the client's own earlier request
            elif item["expect"] == "invalid":
                assert item["body"] == {**item["body"], "kind": "class", "target": "42"}
            else:
                seen.add(item["body"]["target"])
    kinds = {i["expect"] for p in plans for i in p}
    assert kinds == {"new", "duplicate", "invalid"}
    assert plans == bench.plan_submissions(list(range(1000, 1600)), 4, 200, 0.1, 0.05, seed=3)  # seeded


def test_percentile_and_longest_stall(bench):
    assert bench.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and bench.percentile([5.0], 95) == 5.0
    samples = [
        {"t": 0, "pending": 3, "running": 0, "done": 0},
        {"t": 1, "pending": 3, "running": 1, "done": 0},
        {"t": 2, "down": True},
        {"t": 4, "pending": 2, "running": 1, "done": 0},
        {"t": 5, "pending": 0, "running": 0, "done": 3},
        {"t": 9, "pending": 0, "running": 0, "done": 3},
    ]
    assert bench.longest_stall(samples) == 4  # 0 → 4 with requests waiting; idle 5 → 9 does not count
