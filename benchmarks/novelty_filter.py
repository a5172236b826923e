"""Benchmark: Sprout's ROUGE-L novelty index against the reference brute force.

Usage (from the repository root):
    .venv/bin/python benchmarks/novelty_filter.py                 # pools of 10K, 50K, 200K
    .venv/bin/python benchmarks/novelty_filter.py --quick         # one 10K pool, fewer candidates
    .venv/bin/python benchmarks/novelty_filter.py --sizes 20000 --candidates 500

Data (deterministic, `--seed`): the instructions of the seed files (the Self-Instruct
reference seeds, and `seeds/default.jsonl` when present) are rewritten into a pool of
machine-like instructions (content words swapped for words drawn from the seed tasks'
text, clauses spliced from other instructions) and a candidate stream: near-threshold
variants of pool entries and seeds (word swaps, insertions, deletions, replacements
sized to land around ROUGE-L 0.7) and fresh instructions.

Reference: for each candidate, `rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
.score(candidate, entry)` against every pool entry on all cores (a process pool that
holds the pool; the paper's code also re-creates the process pool for every candidate,
which is slower still). It takes seconds per candidate at large pools, so it runs on an
evenly spaced sample of the candidates and its candidates/s is extrapolated from that
sample. Sprout: `NoveltyIndex` with its defaults (top-10, mean over a 1000-entry sample).

Checks: on the sample, Sprout's decision, maximum and top-10 scores must equal the
reference's exactly; on every candidate they must equal an exact brute force with the
same tokenizer (rouge.py: rouge-score's tokenizer, rapidfuzz LCS), itself checked
against rouge-score by the unit tests and by the sample here. The script exits 1 on any
disagreement.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from app.core.filters.novelty import NoveltyIndex
from app.core.filters.rouge import f_from_lcs_array, tokenize

SEED_FILES = [ROOT.parent / "shared" / "reference" / "self_instruct_seed_tasks.jsonl", ROOT / "seeds" / "default.jsonl"]
STOP = set(
    ["a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "but", "with", "by", "from", "as", "at", "is", "are", "be", "this", "that", "these", "those", "it", "its", "you", "your", "i", "we", "they", "he", "she", "them", "his", "her", "our", "their", "what", "which", "who", "how", "why", "when", "where", "given", "following", "write", "into", "about", "each", "all", "any", "some", "if", "than", "then", "so", "not", "no", "do", "does", "can", "could", "would", "should"]
)


# --- data ------------------------------------------------------------------------------------
def load_seed_texts() -> tuple[list[str], list[str]]:
    """(instructions, every word of the seed tasks' text) from the seed files present."""
    instructions: list[str] = []
    words: list[str] = []
    for path in SEED_FILES:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            task = json.loads(line)
            instructions.append(task["instruction"])
            words += task["instruction"].split()
            for inst in task.get("instances", []):
                words += (inst.get("input", "") + " " + inst.get("output", "")).split()
    if not instructions:
        sys.exit(f"no seed file found: {', '.join(map(str, SEED_FILES))}")
    content = [w.strip(".,;:!?()\"'").lower() for w in words]
    content = [w for w in content if len(w) > 3 and w.isalpha() and w not in STOP]
    return instructions, content


class Generator:
    def __init__(self, seeds: list[str], vocabulary: list[str], seed: int):
        self.seeds = seeds
        self.vocab = vocabulary
        self.rng = random.Random(seed)

    def fresh(self) -> str:
        """A machine-like instruction: a seed's frame with new content words."""
        rng = self.rng
        words = rng.choice(self.seeds).split()
        if rng.random() < 0.5:  # splice: the head of one instruction, the tail of another
            other = rng.choice(self.seeds).split()
            words = words[: rng.randint(2, max(2, len(words)))] + other[rng.randrange(len(other)) :]
        out = []
        for w in words:
            core = w.strip(".,;:!?()\"'")
            if len(core) > 3 and core.lower() not in STOP and rng.random() < 0.7:
                w = w.replace(core, rng.choice(self.vocab))
            out.append(w)
        return " ".join(out)

    def variant(self, text: str) -> str:
        """Edits sized so that ROUGE-L against `text` lands around 0.55-0.9."""
        rng = self.rng
        words = text.split()
        for _ in range(max(1, round(len(words) * rng.uniform(0.15, 0.75)))):
            op = rng.random()
            if op < 0.3 and len(words) > 1:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
            elif op < 0.55:
                words.insert(rng.randrange(len(words) + 1), rng.choice(self.vocab))
            elif op < 0.8 and len(words) > 2:
                del words[rng.randrange(len(words))]
            else:
                words[rng.randrange(len(words))] = rng.choice(self.vocab)
        return " ".join(words)


def build_data(size: int, n_candidates: int, seed: int) -> tuple[list[str], list[str]]:
    seeds, vocab = load_seed_texts()
    gen = Generator(seeds, vocab, seed)
    pool = list(seeds) + [gen.fresh() for _ in range(size - len(seeds))]
    candidates = []
    for _ in range(n_candidates):
        r = gen.rng.random()
        if r < 0.55:
            candidates.append(gen.variant(gen.rng.choice(pool)))
        elif r < 0.7:
            candidates.append(gen.variant(gen.rng.choice(seeds)))
        else:
            candidates.append(gen.fresh())
    return pool, candidates


# --- the reference ---------------------------------------------------------------------------
_POOL: list[str] = []
_SCORER = None


def _ref_init() -> None:
    global _SCORER
    from rouge_score import rouge_scorer

    _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _ref_chunk(job: tuple[str, int, int]) -> list[float]:
    text, start, end = job
    return [_SCORER.score(text, _POOL[i])["rougeL"].fmeasure for i in range(start, end)]


def reference_scores(workers, text: str, n_procs: int) -> list[float]:
    step = -(-len(_POOL) // (4 * n_procs))
    jobs = [(text, s, min(s + step, len(_POOL))) for s in range(0, len(_POOL), step)]
    return [f for part in workers.map(_ref_chunk, jobs) for f in part]


class BruteForce:
    """Every pool entry scored, with rouge.py's semantics: rouge-score's tokenizer and
    F expression, rapidfuzz LCS (tokens mapped to one character each for speed)."""

    def __init__(self, pool: list[str]):
        self.vocab: dict[str, int] = {}
        self.seqs = [self.encode(tokenize(t)) for t in pool]
        self.lengths = np.array([len(s) for s in self.seqs])

    def encode(self, tokens: list[str]) -> str:
        return "".join(chr(self.vocab.setdefault(t, len(self.vocab))) for t in tokens)

    def scores(self, text: str) -> np.ndarray:
        query = self.encode(tokenize(text))
        if not query:
            return np.zeros(len(self.seqs))
        lcs = process.cdist([query], self.seqs, scorer=LCSseq.similarity, dtype=np.int32, workers=-1)[0]
        return f_from_lcs_array(lcs, len(query), self.lengths)


def top_scores(scores, k: int = 10) -> list[float]:
    return sorted((float(s) for s in scores if s > 0), reverse=True)[:k]


# --- measuring -------------------------------------------------------------------------------
def run_size(size: int, n_candidates: int, ref_sample: int, repeats: int, seed: int, n_procs: int) -> dict:
    global _POOL
    pool, candidates = build_data(size, n_candidates, seed)
    print(f"\n== pool {len(pool):,} instructions, {len(candidates):,} candidates ==", flush=True)

    index = NoveltyIndex()
    t0 = time.perf_counter()
    first = last = 0.0
    for i, text in enumerate(pool):
        if i == 2000:
            first = time.perf_counter() - t0
        if i == len(pool) - 2000:
            t_last = time.perf_counter()
        index.add(text)
    build_s = time.perf_counter() - t0
    last = time.perf_counter() - t_last
    # Memory: the same build again under tracemalloc (numpy reports its buffers to it).
    gc.collect()
    tracemalloc.start()
    twin = NoveltyIndex()
    for text in pool:
        twin.add(text)
    index_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    del twin
    texts_mb = sum(sys.getsizeof(t) for t in pool) / 2**20
    # Adding is O(tokens): the last 2,000 adds cost what the first 2,000 did.
    add_first_us, add_last_us = first / 2000 * 1e6, last / 2000 * 1e6

    sprout_rates, latencies, results = [], [], []
    for _ in range(repeats):
        index._rng = np.random.default_rng(0)
        run = []
        t_all = time.perf_counter()
        for text in candidates:
            t0 = time.perf_counter()
            run.append(index.check(text))
            latencies.append(time.perf_counter() - t0)
        sprout_rates.append(len(candidates) / (time.perf_counter() - t_all))
        results = run
    sprout_rate = statistics.median(sprout_rates)

    # Reference, on an evenly spaced sample.
    sample = sorted({round(i * (len(candidates) - 1) / max(ref_sample - 1, 1)) for i in range(ref_sample)})
    _POOL = pool
    ref_times, mismatches = [], []
    ctx = mp.get_context("fork")
    with ctx.Pool(n_procs, initializer=_ref_init) as workers:
        reference_scores(workers, "warm up", n_procs)
        for i in sample:
            t0 = time.perf_counter()
            ref = reference_scores(workers, candidates[i], n_procs)
            ref_times.append(time.perf_counter() - t0)
            best = max(ref)
            r = results[i]
            if (best > 0.7) == r.novel or best != r.max_rouge_l or top_scores(ref) != [s for _, s in r.most_similar]:
                mismatches.append(("reference", i, best, r.max_rouge_l))
    ref_rate = 1 / statistics.median(ref_times)

    # Every candidate against the exact brute force.
    brute = BruteForce(pool)
    t0 = time.perf_counter()
    for i, text in enumerate(candidates):
        scores = brute.scores(text)
        best = float(scores.max()) if len(scores) else 0.0
        r = results[i]
        if (best > 0.7) == r.novel or best != r.max_rouge_l or top_scores(scores) != [s for _, s in r.most_similar]:
            mismatches.append(("brute force", i, best, r.max_rouge_l))
    brute_rate = len(candidates) / (time.perf_counter() - t0)
    rejected = sum(not r.novel for r in results)
    near = sum(0.6 <= r.max_rouge_l <= 0.8 for r in results)

    print(f"  candidates rejected (ROUGE-L > 0.7): {rejected:,} of {len(candidates):,}; with max ROUGE-L in [0.6, 0.8]: {near:,}")
    print(f"  reference (rouge_scorer, {n_procs} processes): {ref_rate:,.3f} candidates/s "
          f"(median of {len(sample)} sampled candidates, {statistics.median(ref_times):.3f} s each; extrapolated to the stream)")
    print(f"  exact brute force (rapidfuzz over the whole pool): {brute_rate:,.1f} candidates/s")
    print(f"  Sprout NoveltyIndex: {sprout_rate:,.1f} candidates/s (median of {repeats} passes over all candidates; "
          f"median latency {statistics.median(latencies) * 1e3:.2f} ms, p99 {np.percentile(latencies, 99) * 1e3:.2f} ms)")
    print(f"  speedup vs reference: {sprout_rate / ref_rate:,.0f}x")
    print(f"  add: {build_s / len(pool) * 1e6:.1f} us per instruction over the build ({build_s:.2f} s); "
          f"first 2,000 adds {add_first_us:.1f} us each, last 2,000 {add_last_us:.1f} us each")
    print(f"  index memory (tracemalloc): {index_mb:,.1f} MB, plus the {texts_mb:,.1f} MB of instruction strings it refers to")
    agree = not mismatches
    print(f"  agreement: decisions, maxima and top-10 scores identical on {len(sample)}/{len(sample)} reference samples "
          f"and {len(candidates)}/{len(candidates)} brute-force checks" if agree else f"  DISAGREEMENTS: {mismatches[:5]}")
    return {
        "size": len(pool), "ref_rate": ref_rate, "sprout_rate": sprout_rate, "speedup": sprout_rate / ref_rate,
        "add_us": add_last_us, "index_mb": index_mb + texts_mb, "agree": agree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000,200000", help="comma-separated pool sizes")
    parser.add_argument("--candidates", type=int, default=1000, help="candidates per pool size")
    parser.add_argument("--ref-sample", default="20,6,3", help="reference candidates per size (one value, or one per size)")
    parser.add_argument("--repeats", type=int, default=3, help="passes of Sprout over the candidates (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="one 10K pool, 300 candidates, 8 reference samples")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.candidates, args.ref_sample, args.repeats = "10000", 300, "8", 1
    sizes = [int(s) for s in args.sizes.split(",")]
    samples = [int(s) for s in args.ref_sample.split(",")]
    samples = samples + [samples[-1]] * (len(sizes) - len(samples))
    n_procs = os.cpu_count() or 1
    print(f"novelty filter benchmark: {n_procs} cores, seed {args.seed}, threshold 0.7")
    rows = [run_size(s, args.candidates, k, args.repeats, args.seed, n_procs) for s, k in zip(sizes, samples)]
    print("\nsummary")
    print(f"  {'pool':>9} {'reference c/s':>14} {'Sprout c/s':>11} {'speedup':>9} {'add us':>7} {'MB, texts incl.':>16} agree")
    for r in rows:
        print(f"  {r['size']:>9,} {r['ref_rate']:>14.3f} {r['sprout_rate']:>11,.1f} {r['speedup']:>8,.0f}x "
              f"{r['add_us']:>7.1f} {r['index_mb']:>16,.1f} {'yes' if r['agree'] else 'NO'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak:,.0f} MB (pools' texts, the index, and the brute-force check's copy)")
    sys.exit(0 if all(r["agree"] for r in rows) else 1)


if __name__ == "__main__":
    main()
