"""Benchmark: Sprout's near-duplicate index against a per-document MinHash.update loop.

Usage (from the repository root):
    .venv/bin/python benchmarks/dedup.py                     # 30,000 examples, in memory
    .venv/bin/python benchmarks/dedup.py --quick             # 5,000 examples
    .venv/bin/python benchmarks/dedup.py --redis-url redis://127.0.0.1:6379/0   # also time the Redis index

Corpus (deterministic, `--seed`): examples (instruction, input, output) rewritten from the
seed tasks' text, into which near-duplicates are planted at known Jaccard similarity of
word 3-gram sets: exact copies (up to spacing), positives edited word by word down to a
drawn target in [threshold, 1), and hard negatives edited down to [0.5, threshold - 0.05).
The ground truth is the exact Jaccard similarity of the two documents' shingle sets
(Python sets of word 3-grams, no hashing).

Precision: the share of reported (document, earlier document) pairs whose Jaccard is >=
the threshold. Recall: the share of planted pairs with Jaccard >= the threshold whose
later document is reported as a duplicate of the earlier one.

Baseline: for each document a new `MinHash(num_perm)` and one `update()` per shingle
(SHA1 of the shingle), then datasketch's `MinHashLSH(threshold, num_perm)` with its own
band choice, query-then-insert, as a plain datasketch pipeline is usually written.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datasketch import MinHash, MinHashLSH

from app.core.filters.dedup import NearDupIndex, ShingleHasher, example_text, lsh_params

SEED_FILES = [ROOT.parent / "shared" / "reference" / "self_instruct_seed_tasks.jsonl", ROOT / "seeds" / "default.jsonl"]
WORD = re.compile(r"\w+")


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = WORD.findall(text.casefold())
    if 0 < len(words) < n:
        words += [""] * (n - len(words))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


# --- corpus ----------------------------------------------------------------------------------
def seed_tasks() -> tuple[list[tuple[str, str, str]], list[str]]:
    tasks, words = [], []
    for path in SEED_FILES:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                task = json.loads(line)
                for inst in task.get("instances", [])[:1]:
                    tasks.append((task["instruction"], inst.get("input", ""), inst.get("output", "")))
                    words += WORD.findall(" ".join(tasks[-1]).lower())
    if not tasks:
        sys.exit(f"no seed file found: {', '.join(map(str, SEED_FILES))}")
    return tasks, [w for w in words if len(w) > 3]


def rewrite(rng: random.Random, text: str, vocab: list[str], rate: float) -> str:
    return " ".join(rng.choice(vocab) if len(w) > 3 and rng.random() < rate else w for w in text.split())


def edit_down(rng: random.Random, text: str, low: float, high: float, vocab: list[str]) -> tuple[str, float] | None:
    """Replace words one at a time until the Jaccard with `text` falls in [low, high)."""
    base = shingles(text)
    words = text.split()
    target = rng.uniform(low, high)
    for _ in range(len(words)):
        i = rng.randrange(len(words))
        words[i] = rng.choice(vocab) + "x"
        edited = " ".join(words)
        j = jaccard(base, shingles(edited))
        if j < low:
            return None
        if j < high and j <= target + 0.02:
            return edited, j
    return None


def build_corpus(n: int, threshold: float, seed: int) -> tuple[list[str], list[tuple[int, int, float]]]:
    """Documents, and the planted pairs (earlier index, later index, exact Jaccard)."""
    rng = random.Random(seed)
    tasks, vocab = seed_tasks()
    docs: list[str] = []
    planted: list[tuple[int, int, float]] = []
    while len(docs) < n:
        instruction, inp, out = rng.choice(tasks)
        doc = example_text(rewrite(rng, instruction, vocab, 0.6), rewrite(rng, inp, vocab, 0.7), rewrite(rng, out, vocab, 0.7))
        if len(WORD.findall(doc)) < 25:
            continue
        docs.append(doc)
        r = rng.random()
        if r < 0.05:
            planted.append((len(docs) - 1, len(docs), 1.0))
            docs.append("  " + doc.replace(" ", "  "))
        elif r < 0.35:
            low, high = (threshold, 1.0) if r < 0.25 else (0.5, threshold - 0.05)
            made = edit_down(rng, doc, low, high, vocab)
            if made:
                planted.append((len(docs) - 1, len(docs), made[1]))
                docs.append(made[0])
    return docs[:n], [p for p in planted if p[1] < n]


# --- scoring ---------------------------------------------------------------------------------
def score(reported: list[tuple[int, int]], docs_shingles: list[set], planted, threshold: float) -> tuple[float, float]:
    positives = {(a, b) for a, b, j in planted if j >= threshold}
    found = set(reported)
    correct = sum(jaccard(docs_shingles[a], docs_shingles[b]) >= threshold for b, a in reported)
    precision = correct / len(reported) if reported else 1.0
    recall = sum((b, a) in found for a, b in positives) / len(positives) if positives else 1.0
    return precision, recall


def run_sprout(docs: list[str], threshold: float, num_perm: int, redis_url: str | None = None):
    index = NearDupIndex(threshold=threshold, num_perm=num_perm, redis_url=redis_url, namespace="sprout-bench:dedup")
    index.clear()
    t0 = time.perf_counter()
    matches = index.match_and_add_many((str(i), d) for i, d in enumerate(docs))
    elapsed = time.perf_counter() - t0
    if redis_url:
        index.clear()
    return [(i, int(m.key)) for i, m in enumerate(matches) if m is not None], elapsed


def sprout_hashing(docs: list[str], num_perm: int) -> float:
    hasher = ShingleHasher(num_perm)
    t0 = time.perf_counter()
    for start in range(0, len(docs), 4096):
        hasher.signatures(hasher.shingle_sets(docs[start : start + 4096]))
    return time.perf_counter() - t0


def baseline_hashing(docs: list[str], num_perm: int) -> tuple[list[MinHash], float]:
    t0 = time.perf_counter()
    out = []
    for doc in docs:
        m = MinHash(num_perm=num_perm)
        for sh in shingles(doc):
            m.update(" ".join(sh).encode("utf-8"))
        out.append(m)
    return out, time.perf_counter() - t0


def bulk_hashing(docs: list[str], num_perm: int) -> float:
    t0 = time.perf_counter()
    MinHash.bulk(([" ".join(sh).encode("utf-8") for sh in shingles(doc)] for doc in docs), num_perm=num_perm)
    return time.perf_counter() - t0


def run_baseline_lsh(minhashes: list[MinHash], threshold: float, num_perm: int):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    t0 = time.perf_counter()
    reported = []
    for i, m in enumerate(minhashes):
        hits = lsh.query(m)
        if hits:
            reported.append((i, min(hits)))
        else:
            lsh.insert(i, m)
    return reported, time.perf_counter() - t0, (lsh.b, lsh.r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=30000)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of the fast paths (median reported)")
    parser.add_argument("--redis-url", default=None, help="also time the Redis-backed index (namespace sprout-bench:dedup)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="5,000 documents, one pass")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.repeats = 5000, 1
    t, p = args.threshold, args.num_perm

    docs, planted = build_corpus(args.docs, t, args.seed)
    docs_shingles = [shingles(d) for d in docs]
    n_pos = sum(j >= t for _, _, j in planted)
    words = statistics.median(len(WORD.findall(d)) for d in docs)
    print(f"near-duplicate benchmark: {len(docs):,} examples (median {words:.0f} words), threshold {t}, {p} permutations")
    print(f"  planted: {sum(j == 1.0 for _, _, j in planted):,} exact copies, {n_pos:,} pairs with Jaccard >= {t} "
          f"(median {statistics.median(j for _, _, j in planted if t <= j < 1):.3f}), "
          f"{sum(j < t for _, _, j in planted):,} hard negatives with Jaccard in [0.5, {t - 0.05:.2f})")

    base_minhashes, base_hash_s = baseline_hashing(docs, p)
    base_reported, base_lsh_s, (bb, br) = run_baseline_lsh(base_minhashes, t, p)
    base_p, base_r = score(base_reported, docs_shingles, planted, t)
    bulk_s = bulk_hashing(docs, p)
    hash_s = statistics.median(sprout_hashing(docs, p) for _ in range(args.repeats))
    runs = [run_sprout(docs, t, p) for _ in range(args.repeats)]
    reported, _ = runs[-1]
    sprout_s = statistics.median(r[1] for r in runs)
    sp_p, sp_r = score(reported, docs_shingles, planted, t)
    sprout_bands, sprout_rows = lsh_params(t, p)

    n = len(docs)
    print("\n  signatures (hashing only):")
    print(f"    baseline, MinHash.update per shingle:      {n / base_hash_s:>9,.0f} docs/s")
    print(f"    datasketch MinHash.bulk (update_batch):    {n / bulk_s:>9,.0f} docs/s  ({base_hash_s / bulk_s:.1f}x)")
    print(f"    Sprout ShingleHasher (numpy, batched):     {n / hash_s:>9,.0f} docs/s  ({base_hash_s / hash_s:.1f}x)")
    print("  end to end (hash, exact check, LSH query + insert, keep first):")
    print(f"    baseline, update loop + MinHashLSH ({bb} bands x {br} rows): {n / (base_hash_s + base_lsh_s):>8,.0f} docs/s; "
          f"precision {base_p:.3f}, recall {base_r:.3f}")
    print(f"    Sprout NearDupIndex in memory ({sprout_bands} bands x {sprout_rows} rows, "
          f"exact-Jaccard check): {n / sprout_s:>8,.0f} docs/s ({(base_hash_s + base_lsh_s) / sprout_s:.1f}x); "
          f"precision {sp_p:.3f}, recall {sp_r:.3f}")
    if args.redis_url:
        subset = docs[: min(n, 5000)]
        r_reported, r_s = run_sprout(subset, t, p, args.redis_url)
        mem_reported, _ = run_sprout(subset, t, p)
        same = "same reports as in memory" if sorted(r_reported) == sorted(mem_reported) else "REPORTS DIFFER from memory"
        print(f"    Sprout NearDupIndex in Redis (first {len(subset):,} docs): {len(subset) / r_s:>8,.0f} docs/s; {same}")
    print(f"  targets: recall >= 0.95 {'met' if sp_r >= 0.95 else 'NOT met'}, precision >= 0.95 {'met' if sp_p >= 0.95 else 'NOT met'}, "
          f">= 5x the update loop {'met' if base_hash_s / hash_s >= 5 and (base_hash_s + base_lsh_s) / sprout_s >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
