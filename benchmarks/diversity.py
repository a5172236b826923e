"""Benchmark: Self-Instruct, persona, topic-tree and Magpie jobs side by side, on one token budget.

Usage (from the repository root):
    .venv/bin/python benchmarks/diversity.py                       # 20,000 tokens per method
    .venv/bin/python benchmarks/diversity.py --tokens 50000 --methods self_instruct,persona
    .venv/bin/python benchmarks/diversity.py --url http://host:8000/v1   # a running server instead
    .venv/bin/python benchmarks/diversity.py --methods magpie --chat-url http://host:8001/v1
    .venv/bin/python benchmarks/diversity.py --one-model --base-url http://host:8001/v1 --tokens 12000

Each method runs as a real job (`lifecycle.run_job`, SQLite in a temporary folder) against
the same model server (the embedded model unless `--url`), with the same seed set
(`seeds/default.jsonl`) and `max_total_tokens` = `--tokens`: the job stops at the first safe
point past the budget, so every method gets the same spend. A target larger than any
budget can reach keeps them going until then. Printed per method: curated examples, tokens
spent, curated per 10K tokens, acceptance (curated over decided candidates), the rejections
by rule, and the diversity report of the curated instructions (`app.core.diversity`):
distinct-1/2, mean and p90 of each instruction's max ROUGE-L to the rest (within the
method's own data), and verb-noun coverage with the distinct verbs. `--json FILE` writes
everything.

Magpie needs an aligned (instruct) model with raw completions access, so it runs on the
embedded chat model (SmolLM2 135M Instruct) unless `--chat-url` names another server; the
other methods run on `--url` (the embedded Gemma 3 270M base model). Same budget, same
response limit; the model differs, and the table says which.

`--one-model` runs all four on one instruct model, so the rows compare methods and not
models: the server of `--base-url` (alias `--url`), else `--chat-url`, else the embedded chat
model; Self-Instruct, persona and topic tree speak `--dialect` to it (default there: chat,
their chat prompts), and Magpie takes it as it always does (its pre-query template through
completions, answers through chat). `--model` names the model id sent to the server (default:
the first one its `/models` lists). `--no-structured` asks the chat API for plain text instead
of JSON (numbered subtopics, a bare task, text instances), as `SPROUT_LLM_STRUCTURED_OUTPUTS=0`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import db
from app.core import diversity_sources, jobs, store
from app.core.jobs import lifecycle
from app.core.llm.embedded import CHAT_MODEL_ALIAS, EmbeddedServer, bundled_model_path
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.settings import Settings

SEEDS = ROOT / "seeds" / "default.jsonl"
METHODS = ("self_instruct", "persona", "topic_tree", "magpie")
CHAT_METHODS = ("magpie",)  # run on the chat (instruct) model
# the same response limits for every method, so a budget buys comparable examples
PARAMS: dict[str, dict[str, Any]] = {
    "self_instruct": {"max_tokens": 320, "instance_max_tokens": 256},
    "persona": {"max_tokens": 120, "response_max_tokens": 256},
    "topic_tree": {"root": "Everyday tasks people ask an assistant for", "depth": 2, "breadth": 4,
                   "tasks_per_leaf": 4, "max_tokens": 120, "response_max_tokens": 256},
    "magpie": {"max_tokens": 120, "response_max_tokens": 256},
}


def run(method: str, base_url: str, tokens: int, seed: int, tmp: Path,
        model: str | None = None, dialect: str | None = None, structured: bool = True) -> dict[str, Any]:
    url = f"sqlite:///{tmp / f'{method}.db'}"
    db.upgrade(url)
    settings = Settings(data_dir=tmp, database_url=url, llm_base_urls=[], llm_model=model, llm_concurrency=4,
                        llm_structured_outputs=structured, job_batch_size=8, job_flush_s=2.0)
    params = {**PARAMS[method], "target": 100_000, "seed": seed, "max_total_tokens": tokens}
    if dialect and method not in CHAT_METHODS:  # Magpie picks its own APIs per request
        params["dialect"] = dialect
    fmt, tasks = load_seed_file(SEEDS)
    with session_scope(url) as s:
        seed_set = store.import_seed_set(s, SEEDS.name, fmt, tasks)
        validated = jobs.get(method).validate_params(params, settings.core_config().defaults)
        job_id = store.create_job(s, method, validated.model_dump(mode="json"), seed_set_id=seed_set.id).id
    t0 = time.monotonic()
    job = lifecycle.run_job(url, job_id, settings.core_config(), base_urls=[base_url])
    wall = time.monotonic() - t0
    c = job.counters or {}
    spent = int(c.get("prompt_tokens") or 0) + int(c.get("completion_tokens") or 0)
    curated = int(c.get("accepted") or 0)
    decided = int(c.get("generated") or curated + sum((c.get("rejected") or {}).values()))
    with session_scope(url) as s:
        report = diversity_sources.job_report(s, store.get_job(s, job_id)) if curated else None
    return {"method": method, "model": model, "dialect": (c.get("roles") or {}).get("generator", {}).get("dialect"),
            "structured_outputs": structured,
            "status": job.status, "error": job.error, "wall_s": round(wall, 1),
            "curated": curated, "tokens": spent, "per_10k_tokens": round(10_000 * curated / spent, 2) if spent else 0,
            "acceptance": round(curated / decided, 3) if decided else None,
            "rejected": dict(sorted((c.get("rejected") or {}).items(), key=lambda kv: -kv[1])),
            "diversity": report}


def row(r: dict[str, Any]) -> str:
    # a set of one has no "rest" to compare with: its diversity columns stay blank
    d = ((r["diversity"] or {}).get("overall") or {}) if r["curated"] > 1 else {}
    rouge, vn = d.get("max_rouge_l") or {}, d.get("verb_noun") or {}

    def f(x: Any) -> str:
        return "–" if x is None else f"{x:.3f}"

    return (f"| {r['method']} | {r['curated']} | {r['tokens']} | {r['per_10k_tokens']} | {f(r['acceptance'])} "
            f"| {f(d.get('distinct_1'))} | {f(d.get('distinct_2'))} | {f(rouge.get('mean'))} | {f(rouge.get('p90'))} "
            f"| {f(vn.get('coverage'))} | {vn.get('distinct_verbs', '–')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=20_000, help="Token budget per method (prompt + completion).")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--url", "--base-url", dest="url", default=None,
                    help="An OpenAI-compatible server to use instead of the embedded model.")
    ap.add_argument("--chat-url", default=None,
                    help="An instruct model's server for Magpie (raw completions) instead of the embedded chat model.")
    ap.add_argument("--model", default=None, help="The model id sent to the server (default: its first listed).")
    ap.add_argument("--one-model", action="store_true",
                    help="Every method on the one instruct model (--base-url, --chat-url or the embedded chat model).")
    ap.add_argument("--dialect", choices=("auto", "completions", "chat"), default=None,
                    help="The dialect of Self-Instruct, persona and topic tree (default: the service's; chat "
                         "with --one-model).")
    ap.add_argument("--no-structured", action="store_true",
                    help="On the chat API, ask for plain text replies instead of JSON (SPROUT_LLM_STRUCTURED_OUTPUTS=0).")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    dialect = args.dialect or ("chat" if args.one_model else None)
    results = []
    with tempfile.TemporaryDirectory(prefix="sprout-diversity-") as tmp_dir:
        tmp = Path(tmp_dir)
        servers = []
        base_url, chat_url = args.url, args.chat_url
        if args.one_model:
            base_url = chat_url = args.url or args.chat_url
        try:
            if not args.one_model and base_url is None and any(m not in CHAT_METHODS for m in methods):
                model = bundled_model_path(Path.home() / ".cache" / "sprout")  # the GGUF, assembled once
                servers.append(EmbeddedServer(data_dir=tmp, model_path=model, parallel=4))
                base_url = servers[-1].start()
            if chat_url is None and any(m in CHAT_METHODS for m in methods):
                servers.append(EmbeddedServer(data_dir=tmp, model=CHAT_MODEL_ALIAS, parallel=4))
                chat_url = servers[-1].start()
                if args.one_model:
                    base_url = chat_url
            for method in methods:
                result = run(method, chat_url if method in CHAT_METHODS else base_url, args.tokens, args.seed, tmp,
                             model=args.model, dialect=dialect, structured=not args.no_structured)
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "diversity"}), flush=True)
                if args.json:  # after each method, so a long run leaves what it measured
                    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        finally:
            for server in servers:
                server.stop()
    print()
    print("| method | curated | tokens | curated per 10K tokens | acceptance | distinct-1 | distinct-2 "
          "| max ROUGE-L mean | p90 | verb-noun coverage | verbs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(row(r))
    for r in results:
        print(f"{r['method']}: rejected by rule {r['rejected']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
