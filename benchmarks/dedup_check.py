"""CPU of one near-duplicate check (a job's `check_and_add`, one document), before and after.

Usage (from the repository root):
    .venv/bin/python benchmarks/dedup_check.py [--pools 1000,100000] [--checks 2000] [--rounds 5] [--before REV]

For each pool size, two `NearDupIndex`es (in memory, threshold 0.9, 128 permutations) are
seeded with the same pool by `check_and_add_many`: one of the code at `--before REV`
(imported from git as `scale.py index`'s `seed_before` does), one of the working tree.
Then the same fresh documents (variants of pool documents, of seed examples, and new ones,
as `novelty_filter.py` makes them) are checked one at a time by each, in rounds that
alternate before and after; printed: CPU microseconds per check (median of the rounds),
the ratio, and whether every decision was the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from novelty_filter import build_data
from scale import _seed_module

from app.core.filters import dedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="1000,100000")
    parser.add_argument("--checks", type=int, default=2000, help="documents checked per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default="HEAD", help="the revision `before` imports")
    args = parser.parse_args()
    before = _seed_module(args.before)
    print(f"one near-duplicate check (check_and_add of one document), before = {args.before}")
    print(f"{'pool':>8} {'before us':>10} {'after us':>10} {'ratio':>6}  same decisions")
    for size in (int(s) for s in args.pools.split(",") if s):
        pool, fresh = build_data(size, args.checks * args.rounds, seed=1)
        docs = [(f"example:{i}", dedup.example_text(t, "", t[::-1])) for i, t in enumerate(pool)]
        indexes = {name: module.NearDupIndex(threshold=0.9, num_perm=128) for name, module in
                   (("before", before), ("after", dedup))}
        for index in indexes.values():
            index.check_and_add_many(docs)
        times: dict[str, list[float]] = {"before": [], "after": []}
        decisions: dict[str, list[str | None]] = {"before": [], "after": []}
        for r in range(args.rounds):
            batch = fresh[r * args.checks : (r + 1) * args.checks]
            items = [(f"new:{r}:{i}", dedup.example_text(t, "", t[::-1])) for i, t in enumerate(batch)]
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                check = indexes[name].check_and_add
                cpu = time.process_time()
                decisions[name].extend(check(key, text) for key, text in items)
                times[name].append((time.process_time() - cpu) / len(items) * 1e6)
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"{size:>8} {b:>10.1f} {a:>10.1f} {a / b:>6.2f}  {decisions['before'] == decisions['after']}", flush=True)


if __name__ == "__main__":
    main()
