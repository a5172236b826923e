"""The same Self-Instruct job on the embedded chat model, through the chat API and through
the completions API, side by side.

Usage (from the repository root):
    .venv/bin/python benchmarks/dialects.py --target 5 --seed 7
    .venv/bin/python benchmarks/dialects.py --target 5 --model gemma-3-270m   # the base model, both ways

What it does: starts the embedded model (SmolLM2 135M Instruct by default) once, then runs
one Self-Instruct job per variant (`chat`: the chat API with JSON instances, the default;
`chat-text`: the chat API with instances as text; `completions`; same seed tasks
from `seeds/default.jsonl`, same target, same seed; SQLite in a temporary folder; runs
alternate, so a shared machine's load falls on both alike) through Sprout's normal job
path, and prints, per dialect:
- curated per minute (curated instructions / wall minutes of the job),
- acceptance: curated / candidates, and every rejection rule with its count,
- tokens (prompt + completion) per curated example (an accepted instance),
- mean words per output of the curated examples,
- five curated examples.
With `--repeat N`, the table shows the median over N runs per dialect.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import db
from app.core import jobs, store
from app.core.jobs import lifecycle
from app.core.llm.embedded import CHAT_MODEL_ALIAS, EmbeddedServer, embedded_alias
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.settings import Settings

SEEDS = ROOT / "seeds" / "default.jsonl"
# column -> (dialect, structured outputs): the chat API with JSON instances (the default), the
# chat API with instances as text ("Example 1 / Input: / Output:"), the completions API
VARIANTS = {"chat": ("chat", True), "chat-text": ("chat", False), "completions": ("completions", False)}


def run_job(base_url: str, dialect: str, target: int, seed: int, concurrency: int,
            structured: bool = True) -> dict[str, Any]:
    """One Self-Instruct job through `dialect`; its figures and curated examples."""
    with tempfile.TemporaryDirectory(prefix="sprout-dialects-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sprout.db'}"
        db.upgrade(url)
        settings = Settings(data_dir=Path(tmp), database_url=url, llm_base_urls=[], llm_model=None,
                            llm_concurrency=concurrency, llm_timeout_s=600, job_batch_size=4, job_flush_s=0.5,
                            llm_structured_outputs=structured)
        fmt, tasks = load_seed_file(SEEDS)
        params = jobs.get("self_instruct").validate_params({"target": target, "seed": seed, "dialect": dialect},
                                                           settings.core_config().defaults)
        with session_scope(url) as s:
            seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
            job_id = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id).id
        t0 = time.monotonic()
        job = lifecycle.run_job(url, job_id, settings.core_config(), base_urls=[base_url])
        wall = time.monotonic() - t0
        with session_scope(url) as s:
            job = store.get_job(s, job_id)
            curated = store.curated_examples(s, job_id)
    c = job.counters
    tokens = int(c.get("prompt_tokens") or 0) + int(c.get("completion_tokens") or 0)
    words = [len(d["output"].split()) for d in curated]
    return {
        "status": job.status, "error": job.error, "wall_s": wall,
        "generated": int(c.get("generated") or 0), "accepted": int(c.get("accepted") or 0),
        "rejected": dict(c.get("rejected") or {}), "examples": len(curated),
        "curated_per_min": 60 * int(c.get("accepted") or 0) / wall if wall else 0.0,
        "tokens_per_example": tokens / len(curated) if curated else float("nan"),
        "words_per_output": statistics.mean(words) if words else float("nan"),
        "roles": c.get("roles") or {},
        "samples": curated[:5],
    }


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict[str, list[dict[str, Any]]], model: str, target: int, seed: int) -> None:
    print(f"\n### {model}, Self-Instruct target {target}, seed {seed}\n")
    print("| figure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    rows = [("curated per minute", "curated_per_min", "{:.2f}"), ("curated / candidates", None, None),
            ("tokens per curated example", "tokens_per_example", "{:.0f}"),
            ("words per output", "words_per_output", "{:.1f}"), ("wall (s)", "wall_s", "{:.0f}")]
    for label, key, fmt in rows:
        cells = []
        for runs in results.values():
            if key is None:
                cells.append(f"{median(runs, 'accepted'):.0f} / {median(runs, 'generated'):.0f}")
            else:
                cells.append(fmt.format(median(runs, key)))
        print(f"| {label} | " + " | ".join(cells) + " |")
    rules = sorted({rule for runs in results.values() for r in runs for rule in r["rejected"]})
    for rule in rules:
        print(f"| rejected: {rule} | " + " | ".join(
            f"{statistics.median(r['rejected'].get(rule, 0) for r in runs):.0f}" for runs in results.values()) + " |")
    for dialect, runs in results.items():
        print(f"\n{dialect}: five curated examples (first run; status {runs[0]['status']}"
              + (f", {runs[0]['error']}" if runs[0]["error"] else "") + ")")
        for d in runs[0]["samples"]:
            inp = f" | input: {d['input'][:80]!r}" if d["input"] else ""
            print(f"- {d['instruction'][:120]!r}{inp} -> {d['output'][:160]!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--model", default=CHAT_MODEL_ALIAS, help="the embedded model (default: the chat model)")
    ap.add_argument("--threads", type=int, default=0, help="the server's CPU threads (0: all cores)")
    ap.add_argument("--model-cache", type=Path, default=Path.home() / ".cache" / "sprout")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"columns, of {', '.join(VARIANTS)}")
    args = ap.parse_args()
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in chosen}
    server = EmbeddedServer(data_dir=args.model_cache, model=embedded_alias(args.model), parallel=args.concurrency,
                            threads=args.threads)
    with server as url:
        for r in range(args.repeat):
            for variant in chosen:
                dialect, structured = VARIANTS[variant]
                run = run_job(url, dialect, args.target, args.seed, args.concurrency, structured)
                results[variant].append(run)
                print(f"run {r + 1} {variant}: {run['status']} {run['accepted']} curated of {run['generated']} "
                      f"in {run['wall_s']:.0f} s", flush=True)
    report(results, embedded_alias(args.model), args.target, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
