"""``request add`` with a long queue: the covered-ids table (schema v3) against replaying the queue (before).

Until schema version 3, every ``request add`` replayed every accepted request to learn which samples they
already cover — one resolution against the dataset per request in the queue, so n submissions cost O(n²).
Now the covered ids live in a table updated on accept (:mod:`ready2unlearn.ledger.covered`) and an add
resolves only the new request. The replay is still there (``Ledger.add_request(..., replay=True)``, the old
add path: scan the queue for duplicates, replay it for the covered ids), so both run side by side here:

1. train a small digits MLP (the base model) and bind a ledger to it;
2. for each queue size N (default 100, 300 and 1000): fill a ledger with N pending sample-id requests, copy
   the file, then time ``add_request`` on the copies — incremental on one, replay on the other — alternating
   which goes first, each add a new request naming ids no earlier request names (so both accept it);
3. check that both copies recorded the same rows and that the table equals the replayed covered ids.

The claim is the ratio replay / incremental of the median add time at each N, both measured in the same
run on the same machine; absolute times are in ``results.json`` for context only.

Re-run with ``python benchmarks/ledger_scale/run.py`` (about a minute on 2 cores); writes ``results.json``
and ``README.md`` beside this script, the ledgers under ``--work``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.data.base import Split
from ready2unlearn.ledger import Ledger
from ready2unlearn.ledger import covered as covered_table
from ready2unlearn.recipes import train as train_recipe

HERE = Path(__file__).resolve().parent


def fill(db: Path, ckpt: Path, split: Split, forgotten: list[int], ids: list[int], per: int) -> None:
    """A ledger bound to ``ckpt`` holding one pending ``samples`` request per ``per`` ids of ``ids``."""
    with Ledger(db) as led:
        led.bind(ckpt)
        for i in range(0, len(ids), per):
            row = led.add_request("samples", ",".join(map(str, ids[i : i + per])), "scale", "bench", split, forgotten)
            if row.status != "pending":
                raise SystemExit(f"setup request #{row.id} was {row.status}: {row.note}")


def time_adds(
    fast_db: Path, slow_db: Path, split: Split, forgotten: list[int], targets: list[str]
) -> tuple[list[float], list[float], bool]:
    """Seconds per ``add_request`` on each copy (incremental, replay) and whether the results agree."""
    fast_s: list[float] = []
    slow_s: list[float] = []
    with Ledger(fast_db) as fast, Ledger(slow_db) as slow:
        for k, target in enumerate(targets):
            # Alternate which path goes first, so neither always meets a warm (or cold) cache.
            order = [(fast, False, fast_s), (slow, True, slow_s)]
            for led, replay, out in order if k % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                row = led.add_request("samples", target, "scale", "bench", split, forgotten, replay=replay)
                out.append(time.perf_counter() - t0)
                if row.status != "pending":
                    raise SystemExit(f"timed request #{row.id} was {row.status}: {row.note}")
        same_rows = [(r.id, r.target, r.status, r.note) for r in fast.requests()] == [
            (r.id, r.target, r.status, r.note) for r in slow.requests()
        ]
        table_is_replay = not covered_table.unfolded(fast.conn) and covered_table.load(fast.conn) == fast.covered(
            split, forgotten, replay=True
        )
    return fast_s, slow_s, same_rows and table_is_replay


def main() -> None:
    """Runs the comparison, prints the ratios, writes results.json and README.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/ledger_scale", help="where the model and ledgers go (not committed)")
    p.add_argument("--out", default=str(HERE), help="where results.json and README.md go")
    p.add_argument("--sizes", default="100,300,1000", help="queue sizes (pending requests) to measure at")
    p.add_argument("--adds", type=int, default=25, help="timed adds per path and size")
    p.add_argument("--ids-per-request", type=int, default=1, help="sample ids named by each request")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t_start = time.perf_counter()

    cfg, _ = train_recipe.load_config("digits-mlp", ["epochs=1", "model.hidden=[16]"])
    train_recipe.run(cfg, work / "base", show_progress=False)
    with Ledger(work / "probe.db") as led:
        led.bind(work / "base")
        split, forgotten = led.load_split()
    pool = split.train.ids.tolist()
    random.Random(args.seed).shuffle(pool)
    per = args.ids_per_request
    need = (max(sizes) + args.adds) * per
    if need > len(pool):
        raise SystemExit(f"{need} ids needed, the training split has {len(pool)}: lower --sizes or --adds")

    rows: list[dict[str, Any]] = []
    for n in sizes:
        queue_ids, new_ids = pool[: n * per], pool[n * per : (n + args.adds) * per]
        fast_db, slow_db = work / f"n{n}-incremental.db", work / f"n{n}-replay.db"
        t0 = time.perf_counter()
        fill(fast_db, work / "base", split, forgotten, queue_ids, per)
        fill_s = time.perf_counter() - t0
        shutil.copyfile(fast_db, slow_db)  # closed, so the WAL is checkpointed into the main file
        targets = [",".join(map(str, new_ids[i : i + per])) for i in range(0, len(new_ids), per)]
        fast_s, slow_s, agree = time_adds(fast_db, slow_db, split, forgotten, targets)
        fast_med, slow_med = statistics.median(fast_s), statistics.median(slow_s)
        rows.append({
            "pending": n,
            "adds": len(targets),
            "incremental_median_s": round(fast_med, 5),
            "replay_median_s": round(slow_med, 5),
            "ratio_replay_over_incremental": round(slow_med / fast_med, 1),
            "results_identical": agree,
            "fill_s": round(fill_s, 2),
            "incremental_s": [round(x, 5) for x in fast_s],
            "replay_s": [round(x, 5) for x in slow_s],
        })  # fmt: skip
        print(f"N={n:5d}  incremental {fast_med * 1e3:8.2f} ms  replay {slow_med * 1e3:8.2f} ms  "
              f"ratio {slow_med / fast_med:6.1f}x  identical={agree}")  # fmt: skip

    results = {
        "benchmark": "ledger_scale",
        "created": now_iso(),
        "command": "python benchmarks/ledger_scale/run.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("work", "out")),
        "dataset": {"name": "digits", "train": len(split.train), "test": len(split.test)},
        "ids_per_request": per,
        "torch_threads": 1,
        "headline": {"pending": rows[-1]["pending"], "ratio": rows[-1]["ratio_replay_over_incremental"]},
        "all_identical": all(r["results_identical"] for r in rows),
        "rows": rows,
        "total_s": round(time.perf_counter() - t_start, 1),
        "versions": versions(),
    }
    out = Path(args.out)
    write_json(out / "results.json", results)
    write_readme(out / "README.md", results)
    print(f"wrote {out / 'results.json'}")
    if not results["all_identical"]:
        raise SystemExit("the incremental and replayed paths disagree")


def write_readme(path: Path, r: dict[str, Any]) -> None:
    """The Markdown summary of a run."""
    head = r["headline"]
    first, last = r["rows"][0], r["rows"][-1]

    def grow(path: str) -> float:
        return last[f"{path}_median_s"] / first[f"{path}_median_s"]

    lines = [
        "# Ledger scale: `request add` with a long queue",
        "",
        f"`{r['command']}` — measured {r['created'][:10]}, 2 CPU cores shared with other work, one torch thread.",
        "",
        "Every `request add` validates the new request against the data minus what the accepted requests "
        "already cover. Before schema version 3 the ledger replayed every accepted request to learn that "
        "(one resolution against the dataset per queued request: n submissions cost O(n²)); now the covered "
        "ids live in a table kept on accept, and an add resolves only the new request. Both paths run here "
        "in one process on copies of the same ledger, alternating, each add a new valid `samples` request "
        f"({r['ids_per_request']} id) on digits ({r['dataset']['train']} training samples). Times are whole "
        "`Ledger.add_request` calls (transaction and fsync included; the CLI adds a constant: imports, "
        "loading and fingerprinting the dataset).",
        "",
        f"**At {head['pending']} pending requests the replay path takes {head['ratio']}x as long per add as the "
        f"incremental one** (ratio of medians, same run). From {first['pending']} to {last['pending']} pending "
        f"requests the replay's median add grew {grow('replay'):.1f}x and the incremental one's "
        f"{grow('incremental'):.1f}x. What is left of an incremental add is one read of the covered table (linear "
        "in the covered ids, but a single table scan), resolving the new request against the training split, "
        "and the commit's synchronous fsync, which dominates on this disk and moves in steps of a few "
        "milliseconds; so the ratio keeps growing with the queue.",
        "",
        "| pending requests | timed adds per path | replay / incremental (median) | same rows and covered ids |",
        "|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['pending']} | {row['adds']} | {row['ratio_replay_over_incremental']}x | "
                     f"{'yes' if row['results_identical'] else 'NO'} |")  # fmt: skip
    lines += [
        "",
        "*Same rows and covered ids*: both copies recorded identical requests (status, note), and the "
        "incremental table equals the covered ids replayed from scratch. The random-sequence equivalence test "
        "(adds, rejections, serving, failures and retries) is `tests/unit/test_ledger_parts.py`.",
        "",
        "Absolute medians (context, not the claim; they depend on the machine and its load) are in "
        "`results.json` with every timed add.",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
