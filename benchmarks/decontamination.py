"""Benchmark: the decontamination index against the brute-force pairwise check.

Usage (from the repository root):
    .venv/bin/python benchmarks/decontamination.py            # 100,000 candidates, 20,000 benchmark items
    .venv/bin/python benchmarks/decontamination.py --quick    # 20,000 candidates, 5,000 items

Corpus (deterministic, `--seed`): benchmark items (a prompt of 15-50 words and an output
of 5-30 words) drawn from the seed tasks' vocabulary; candidates drawn the same way, of
which `--planted` (default 5%) copy a span of a benchmark item's prompt or output whose
length is drawn around the threshold (so both decisions occur), with case and punctuation
changed and fresh words around it.

Baseline: the pairwise definition, measured in the same run on a sample of candidates:
each candidate against every item (items tokenized and their n-grams listed once, ahead
of time, so the baseline pays only for the comparisons). Its decisions (contaminated or
not, the item, the overlap) must equal the index's on every sampled candidate; the script
exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.filters.decontaminate import FIELDS, BenchmarkItem, DecontaminationIndex, tokens


def vocabulary() -> list[str]:
    words: set[str] = set()
    for path in sorted((ROOT / "seeds").glob("*")):
        if path.is_file():
            words.update(re.findall(r"[A-Za-z]+", path.read_text(encoding="utf-8", errors="ignore")))
    return sorted(words)


def corpus(n_items: int, n_candidates: int, planted: float, seed: int) -> tuple[list[BenchmarkItem], list[tuple[str, str]]]:
    rng = random.Random(seed)
    vocab = vocabulary()

    def text(lo: int, hi: int) -> list[str]:
        return rng.choices(vocab, k=rng.randint(lo, hi))

    items = [BenchmarkItem("bench", f"q{i}", " ".join(text(15, 50)), " ".join(text(5, 30))) for i in range(n_items)]
    candidates = []
    for _ in range(n_candidates):
        prompt, output = text(15, 50), text(5, 30)
        if rng.random() < planted:
            item = rng.choice(items)
            field = rng.choice(FIELDS)
            source = (item.prompt if field == "prompt" else item.output).split()
            length = max(1, round(len(source) * rng.uniform(0.3, 0.8)))
            start = rng.randint(0, len(source) - length)
            span = [w.upper() if rng.random() < 0.2 else w for w in source[start:start + length]]
            span = " ".join(span).replace(" ", ", ", 1)
            if field == "prompt":
                prompt = prompt[:rng.randint(0, 8)] + [span] + prompt[:rng.randint(0, 8)]
            else:
                output = output[:rng.randint(0, 5)] + [span + "."]
        candidates.append((" ".join(prompt), " ".join(output)))
    return items, candidates


class Pairwise:
    """The definition, one item at a time (tokens and n-gram lists precomputed)."""

    def __init__(self, items: list[BenchmarkItem], n: int, threshold: float):
        self.n, self.threshold, self.items = n, threshold, items
        self.fields = {}
        for field in FIELDS:
            rows = []
            for item in items:
                toks = tokens(item.prompt if field == "prompt" else item.output)
                rows.append((toks, [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]))
            self.fields[field] = rows

    def check(self, prompt: str, output: str) -> tuple[str, str, float] | None:
        best = None
        for field, text in (("prompt", prompt), ("output", output)):
            cand = tokens(text)
            if not cand:
                continue
            grams = {tuple(cand[i:i + self.n]) for i in range(len(cand) - self.n + 1)}
            hit = None
            for position, (toks, item_grams) in enumerate(self.fields[field]):
                if not toks:
                    continue
                if len(toks) < self.n:  # no n-gram: an exact match only
                    if toks == cand and (hit is None or hit[2] < 1.0):
                        hit = (self.items[position].item, field, 1.0)
                    continue
                marked = set()
                for i, gram in enumerate(item_grams):
                    if gram in grams:
                        marked.update(range(i, i + self.n))
                overlap = len(marked) / len(toks)
                if marked and overlap > self.threshold and (hit is None or overlap > hit[2]):
                    hit = (self.items[position].item, field, overlap)
            if hit is not None and (best is None or hit[2] > best[2]):
                best = hit
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--planted", type=float, default=0.05)
    parser.add_argument("--sample", type=int, default=300, help="candidates checked by the pairwise baseline too")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of the index (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20,000 candidates against 5,000 items, one pass")
    args = parser.parse_args()
    if args.quick:
        args.items, args.candidates, args.repeats, args.sample = 5_000, 20_000, 1, 100

    items, candidates = corpus(args.items, args.candidates, args.planted, args.seed)
    t0 = time.perf_counter()
    index = DecontaminationIndex(n=args.n, threshold=args.threshold)
    index.add_many(items)
    build_s = time.perf_counter() - t0

    times, cpu_times, decisions = [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        decisions = [index.check(p, o) for p, o in candidates]
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    index_s, index_cpu = statistics.median(times), statistics.median(cpu_times)
    hits = sum(d is not None for d in decisions)

    rng = random.Random(args.seed + 1)
    flagged = [i for i, d in enumerate(decisions) if d is not None]
    sample = sorted(set(rng.sample(range(len(candidates)), min(args.sample // 2, len(candidates)))
                        + rng.sample(flagged, min(args.sample - args.sample // 2, len(flagged)))))
    pairwise = Pairwise(items, args.n, args.threshold)
    t0, c0 = time.perf_counter(), time.process_time()
    reference = [pairwise.check(*candidates[i]) for i in sample]
    pairwise_s, pairwise_cpu = time.perf_counter() - t0, time.process_time() - c0
    mismatches = 0
    for i, want in zip(sample, reference):
        got = decisions[i]
        same = (got is None and want is None) or (
            got is not None and want is not None and (got.item, got.field) == want[:2] and abs(got.overlap - want[2]) < 1e-9)
        mismatches += not same

    index_rate, index_cpu_rate = len(candidates) / index_s, len(candidates) / index_cpu
    pairwise_rate, pairwise_cpu_rate = len(sample) / pairwise_s, len(sample) / pairwise_cpu
    print(f"corpus: {len(candidates):,} candidates (prompt + output), {len(items):,} benchmark items, "
          f"n={args.n}, threshold={args.threshold}, {args.planted:.0%} planted spans")
    print(f"index build: {build_s:.2f} s ({len(items) / build_s:,.0f} items/s)")
    print(f"index check: {index_s:.2f} s wall, {index_cpu:.2f} s CPU (median of {args.repeats}) -> "
          f"{index_rate:,.0f} candidates/s wall, {index_cpu_rate:,.0f} per CPU-second; "
          f"{hits:,} contaminated ({hits / len(candidates):.2%})")
    print(f"pairwise baseline: {len(sample)} sampled candidates in {pairwise_s:.2f} s wall, {pairwise_cpu:.2f} s CPU -> "
          f"{pairwise_rate:,.1f} candidates/s wall, {pairwise_cpu_rate:,.1f} per CPU-second")
    print(f"speed-up (CPU time): {index_cpu_rate / pairwise_cpu_rate:,.0f}x; decisions identical on the sample: "
          f"{len(sample) - mismatches}/{len(sample)} ({sum(r is not None for r in reference)} contaminated in it)")
    target = 20_000
    print(f"target >= {target:,} candidates/s: wall {'met' if index_rate >= target else 'NOT met'}, "
          f"per CPU-second {'met' if index_cpu_rate >= target else 'NOT met'} (wall time counts other load on the machine)")
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
