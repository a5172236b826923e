"""Benchmark: CPU per novelty check at a job's pool sizes (the exact path), before and now.

Usage (from the repository root):
    .venv/bin/python benchmarks/novelty_check_cpu.py [--sizes 500,5000,50000] [--before REV]

For each pool size (`novelty_filter.py`'s generator; seeds included), two indexes hold the
same pool, filled by `add` one text at a time as a job's index is: `NoveltyIndex` as it is
now and as it was at `--before` (imported from git). Each candidate is checked by both,
interleaved (the order alternates), and the CPU time of each check (`time.process_time`)
is recorded; the script prints the medians and their ratio. Both indexes use the same seed,
so the mean estimates draw the same samples: every field of every result must be equal,
or the script exits 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from novelty_filter import build_data

from app.core.filters.novelty import NoveltyIndex


def module_at(rev: str) -> object:
    """`app/core/filters/novelty.py` as it was at `rev`, imported from git."""
    source = subprocess.run(["git", "show", f"{rev}:app/core/filters/novelty.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    file = Path(tempfile.mkdtemp()) / "novelty_before.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location("novelty_before", file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["novelty_before"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000,50000")
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="checks of each candidate by each index")
    parser.add_argument("--before", default="0eb1490")
    args = parser.parse_args()
    before_cls = module_at(args.before).NoveltyIndex  # type: ignore[attr-defined]
    wrong = 0
    print(f"{'pool':>8} {'before us':>10} {'now us':>8} {'now/before':>10}")
    for size in map(int, args.sizes.split(",")):
        pool, candidates = build_data(size, args.candidates, seed=1)
        now, before = NoveltyIndex(seed=3), before_cls(seed=3)
        for text in pool:
            now.add(text)
            before.add(text)
        times: dict[str, list[float]] = {"now": [], "before": []}
        for r in range(args.rounds):
            for i, text in enumerate(candidates):
                order = [("now", now), ("before", before)]
                if (i + r) % 2:
                    order.reverse()
                got = {}
                for name, index in order:
                    c0 = time.process_time()
                    got[name] = index.check(text)
                    times[name].append(time.process_time() - c0)
                a, b = got["now"], got["before"]
                wrong += (a.max_rouge_l, a.novel, a.mean_rouge_l, sorted(a.most_similar)) != (
                    b.max_rouge_l, b.novel, b.mean_rouge_l, sorted(b.most_similar))
        mb, mn = (1e6 * statistics.median(times[k]) for k in ("before", "now"))
        print(f"{size:>8,} {mb:>10.0f} {mn:>8.0f} {mn / mb:>10.2f}", flush=True)
    print(f"results differing: {wrong}")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
