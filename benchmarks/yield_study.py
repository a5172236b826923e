"""Does the data help? The Self-Instruct paper's question at Sprout's scale, with the embedded model.

Usage (from the repository root):
    .venv/bin/python benchmarks/yield_study.py                          # every stage, out/yield_study/
    .venv/bin/python benchmarks/yield_study.py --stages split,generate  # the long generation alone
    .venv/bin/python benchmarks/yield_study.py --stages table          # the table again from the run folder

Stages, each cached in the run folder (`--out`, default `out/yield_study/`); a rerun reuses
every stage whose output is there (delete a stage's folder to run it again):

1. split: the 175 Self-Instruct seed tasks (`../shared/reference/self_instruct_seed_tasks.jsonl`)
   are ordered by the sha256 of their `id` (hex digest of the UTF-8 id, e.g. "seed_task_0")
   and the first `round(175 / 3)` = 58 are held out. That third is fixed by the ids alone: no
   random state, no file order. The held-out tasks' instances are the test set
   (`split/heldout.json`, an Alpaca list); the other 117 are the seeds (`split/train_tasks.jsonl`)
   and, as rows, arm (a)'s training data (`split/seed_rows.json`).
2. generate: a Self-Instruct job from the 117 seed tasks with the embedded model, in this
   process through `lifecycle.run_job` (the path of `sprout generate`), on SQLite in
   `generate/sprout.db`, decontaminated against the held-out instances stored as a benchmark
   set (`decontaminate_against`): a candidate that reproduces a test item is rejected as
   `contaminated`. `--target` curated instructions (each with up to 5 instances: the rows).
   A rerun after a crash resumes the same job (same worker name).
2b. generate_chat: the same job through the chat path, for arm (d): the generator is the
   embedded Gemma base model through `completions` (the chat model, asked for new tasks, copies
   the ones it is shown: docs/guides/chat-models.md), the responder (classification, instances)
   the embedded chat model SmolLM2 135M Instruct through `chat`, instances as text (under a
   JSON schema the 135M model writes placeholders); same seeds, target, seed and
   decontamination; in `generate_chat/`. `--generator-url` / `--responder-url` point the roles
   at servers already running (default: each embedded model started for the job).
3. score: a `score` job on the generation job (the path of `sprout score`): the judge
   (`app.core.scoring.judge.Judge`, here the embedded model) rates every curated row for
   quality and complexity (1-6); the rows with their scores in `score/scored.json`.
4. train: three LoRA runs of `run_training` with the same parameters, seed and budget (the
   same optimizer steps x batch size, i.e. the same number of sequences; trained tokens
   differ with the rows' lengths and are reported): (a) the 117 seed tasks' instances,
   (b) Sprout's curated rows, (c) Sprout's rows kept by judge quality (the top half by
   quality, ties broken by complexity, then by the row's sha256), (d) the chat path's rows.
   The base model is measured once, in the first run of the folder (`eval_before`); every run measures its tuned model on the
   held-out tasks: ROUGE-L F of greedy answers and the loss on the reference answers.
   An interrupted run starts again from scratch.
5. table: `results.json` (every figure) and `table.md` (printed): per run the examples, the
   trained tokens (non-padding tokens of the prompts and answers seen), held-out loss and
   ROUGE-L, and the paired bootstrap of each task's ROUGE-L against the base model's.

Results and their reading: docs/results/yield-study.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED_TASKS = ROOT.parent / "shared" / "reference" / "self_instruct_seed_tasks.jsonl"
STAGES = ("split", "generate", "generate_chat", "score", "train", "table")
ARMS = ("seed", "sprout", "judged", "chat")
WORKER = "yield-study"  # a fixed worker name: a rerun takes the interrupted job back at once


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def write_json(path: Path, data: Any) -> None:
    from app.core import records

    with records.atomic_file(path) as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- 1. split ------------------------------------------------------------------------------
def held_out_ids(ids: Sequence[str], fraction: float = 1 / 3) -> set[str]:
    """The ids of the held-out share: the `round(len(ids) * fraction)` smallest sha256 digests."""
    if len(set(ids)) != len(ids):
        raise ValueError("task ids must be unique")
    ranked = sorted(ids, key=lambda ident: hashlib.sha256(ident.encode("utf-8")).hexdigest())
    return set(ranked[: round(len(ids) * fraction)])


def task_rows(tasks: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Alpaca rows of the tasks' instances that have an output (what trains and what is scored)."""
    return [{"instruction": t["instruction"], "input": inst.get("input") or "", "output": inst["output"]}
            for t in tasks for inst in t.get("instances", []) if inst["output"].strip()]


def stage_split(out: Path, seed_file: Path) -> dict[str, Any]:
    folder = out / "split"
    done = folder / "split.json"
    if done.is_file():
        return read_json(done)
    lines = [line for line in seed_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = [json.loads(line) for line in lines]
    held = held_out_ids([t["id"] for t in tasks])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_tasks.jsonl").write_text(
        "".join(line + "\n" for line, t in zip(lines, tasks, strict=True) if t["id"] not in held), encoding="utf-8")
    (folder / "heldout_tasks.jsonl").write_text(
        "".join(line + "\n" for line, t in zip(lines, tasks, strict=True) if t["id"] in held), encoding="utf-8")
    write_json(folder / "heldout.json", task_rows([t for t in tasks if t["id"] in held]))
    write_json(folder / "seed_rows.json", task_rows([t for t in tasks if t["id"] not in held]))
    summary = {
        "seed_file": str(seed_file), "sha256": hashlib.sha256(seed_file.read_bytes()).hexdigest(),
        "rule": "the round(n/3) tasks with the smallest sha256(id) hex digests are held out",
        "tasks": len(tasks), "held_out": sorted(held, key=lambda i: int(i.rsplit("_", 1)[-1]) if i[-1].isdigit() else 0),
        "train_tasks": len(tasks) - len(held), "held_out_tasks": len(held),
    }
    write_json(done, summary)
    return summary


# --- 2. generate ---------------------------------------------------------------------------
def generation_settings(out: Path, name: str = "generate", structured: bool = True) -> Any:
    from app.core.llm.embedded import bundled_model_path
    from app.settings import Settings

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    model = Path(os.environ.get("SPROUT_EMBEDDED_MODEL_PATH") or bundled_model_path(Path.home() / ".cache" / "sprout"))
    return Settings(data_dir=folder, database_url=f"sqlite:///{folder / 'sprout.db'}", llm_base_urls=[],
                    llm_model=None, embedded_model_path=model, job_stale_s=5.0, llm_structured_outputs=structured)


def _cancel_after(url: str, job_id: int, seconds: float) -> threading.Timer:
    """Ask the job to stop after `seconds` (it stops at its next heartbeat; what it curated is kept)."""
    from app.core import store
    from app.db import session_scope

    def fire() -> None:
        log(f"generate: {seconds / 60:.0f} minutes are up; stopping the job (its curated rows are kept)")
        with session_scope(url) as session:
            store.request_cancel(store.get_job(session, job_id))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def chat_path_params(args: argparse.Namespace) -> dict[str, Any]:
    """Arm (d)'s job parameters: Gemma generates through `completions`, the chat model answers through `chat`."""
    params: dict[str, Any] = {"dialect": "completions", "responder_model": args.responder_model,
                              "responder_dialect": "chat"}
    if args.responder_url:
        params["responder_base_urls"] = [args.responder_url]
    return params


def stage_generate(out: Path, target: int, seed: int, minutes: float | None = None, *, name: str = "generate",
                   extra: dict[str, Any] | None = None, base_url: str | None = None,
                   structured: bool = True) -> dict[str, Any]:
    from app import db
    from app.core import jobs, store
    from app.core.benchmark_sets import parse_benchmark
    from app.core.jobs import lifecycle, requests
    from app.core.seeds import load_seed_file
    from app.db import session_scope

    folder = out / name
    done = folder / "generate.json"
    if done.is_file():
        return read_json(done)
    settings = generation_settings(out, name, structured)
    url = settings.resolved_database_url
    db.ensure_database(url)
    id_file = folder / "job_id"
    if id_file.is_file():
        job_id = int(id_file.read_text())
        log(f"generate: resuming job {job_id}")
    else:
        split = out / "split"
        fmt, tasks = load_seed_file(split / "train_tasks.jsonl")
        held_path = split / "heldout_tasks.jsonl"
        bench_fmt, items = parse_benchmark(held_path.read_text(encoding="utf-8"), "heldout", filename=held_path.name)
        defaults = settings.core_config().defaults
        with session_scope(url) as session:  # the seed set, the benchmark set and the job: one transaction
            seed_set = store.import_seed_set(session, "train_tasks.jsonl", fmt, tasks)
            bench = store.import_benchmark_set(session, "heldout", bench_fmt, items)
            params = jobs.get("self_instruct").validate_params(
                {"target": target, "seed": seed, "decontaminate_against": [bench.id], **(extra or {})}, defaults)
            job = requests.create_job(session, jobs.JobRequest("self_instruct", params.model_dump(mode="json"),
                                                               seed_set_id=seed_set.id), defaults)
            job_id = job.id
        id_file.write_text(str(job_id))
        log(f"generate: job {job_id}, Self-Instruct from {len(tasks)} seed tasks, target {target}, "
            f"decontaminated against {len(items)} held-out items")
    last = [0.0]

    def progress(counters: dict[str, Any]) -> None:
        if time.monotonic() - last[0] >= 30:
            last[0] = time.monotonic()
            rejected = ", ".join(f"{k} {v}" for k, v in sorted(counters.get("rejected", {}).items(), key=lambda kv: -kv[1]))
            log(f"{name}: accepted {counters.get('accepted', 0)}/{target}, generated {counters.get('generated', 0)}, "
                f"instances {counters.get('instances', 0)}; rejected: {rejected or 'none'}")

    started = time.monotonic()
    timer = _cancel_after(url, job_id, minutes * 60) if minutes else None
    job = lifecycle.run_job(url, job_id, settings.core_config(), worker=WORKER, progress=progress,
                            base_urls=[base_url] if base_url else None)
    if timer:
        timer.cancel()
    if job.status not in ("succeeded", "cancelled"):  # cancelled: stopped on time, its rows are kept
        raise SystemExit(f"generate: job {job_id} ended {job.status}: {job.error}")
    with session_scope(url) as session:
        rows = store.curated_examples(session, job_id)
    write_json(folder / "curated.json", [{k: r[k] for k in ("id", "instruction", "input", "output")} for r in rows])
    counters, result = job.counters, job.result or {}
    summary = {
        "job_id": job_id, "target": target, "seed": seed, "status": job.status,
        "seconds": (job.finished_at - job.started_at).total_seconds() if job.started_at and job.finished_at else None,
        "this_session_s": round(time.monotonic() - started, 1),
        "curated_instructions": counters.get("accepted", 0), "rows": len(rows),
        "generated": counters.get("generated", 0), "rejected": counters.get("rejected", {}),
        "instances_rejected": counters.get("instances_rejected", {}),
        "prompt_tokens": counters.get("prompt_tokens", 0), "completion_tokens": counters.get("completion_tokens", 0),
        "contamination": result.get("contamination"),
        "contaminated_rejected": counters.get("rejected", {}).get("contaminated", 0),
        "params": extra or {}, "structured_outputs": structured, "roles": counters.get("roles", {}),
    }
    write_json(done, summary)
    log(f"generate: {summary['curated_instructions']} instructions, {len(rows)} rows; "
        f"contaminated {summary['contaminated_rejected']}")
    return summary


# --- 3. score ------------------------------------------------------------------------------
def stage_score(out: Path) -> dict[str, Any]:
    """A `score` job on the generation job (the path of `sprout score`), the judge being the
    embedded model; the curated rows with their scores go to `score/scored.json`."""
    from app import db
    from app.core import jobs, store
    from app.core.jobs import lifecycle, requests
    from app.core.scoring import storage
    from app.db import session_scope

    folder = out / "score"
    done = folder / "score.json"
    if done.is_file():
        return read_json(done)
    folder.mkdir(parents=True, exist_ok=True)
    generated = read_json(out / "generate" / "generate.json")
    settings = generation_settings(out)
    url = settings.resolved_database_url
    db.ensure_database(url)
    config = settings.core_config()
    id_file = folder / "job_id"
    if id_file.is_file():
        job_id = int(id_file.read_text())
        log(f"score: resuming job {job_id}")
    else:
        with session_scope(url) as session:
            job = requests.create_job(session, jobs.JobRequest("score", {}, source_job_id=generated["job_id"]),
                                      config.defaults)
            job_id = job.id
        id_file.write_text(str(job_id))
        log(f"score: job {job_id}, the judge on the {generated['rows']} curated rows of job {generated['job_id']}")
    last = [0.0]

    def progress(counters: dict[str, Any]) -> None:
        if time.monotonic() - last[0] >= 30:
            last[0] = time.monotonic()
            log(f"score: {counters.get('judged', 0)}/{counters.get('judge_examples', '?')} judged")

    job = lifecycle.run_job(url, job_id, config, worker=WORKER, progress=progress)
    if job.status != "succeeded":
        raise SystemExit(f"score: job {job_id} ended {job.status}: {job.error}")
    with session_scope(url) as session:
        rows = list(storage.with_scores(store.curated_examples(session, generated["job_id"]),
                                        storage.job_example_scores(session, generated["job_id"])))
    write_json(folder / "scored.json", [
        {**{k: r[k] for k in ("id", "instruction", "input", "output")},
         "quality": (r.get("scores") or {}).get("quality"), "complexity": (r.get("scores") or {}).get("complexity")}
        for r in rows])
    summary = {"job_id": job_id, "seconds": (job.finished_at - job.started_at).total_seconds()
               if job.started_at and job.finished_at else None, "result": job.result}
    write_json(done, summary)
    log(f"score: {len(rows)} rows scored")
    return summary


def row_digest(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([row["instruction"], row["input"], row["output"]],
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def judged_top_half(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The top half (rounded up) by judge quality; ties broken by complexity, then by the
    row's sha256; a row the judge could not score ranks last. Kept in the data's order."""
    def key(item: tuple[int, dict[str, Any]]) -> tuple[float, float, str]:
        row = item[1]
        quality, complexity = row.get("quality"), row.get("complexity")
        return (-(quality if quality is not None else float("-inf")),
                -(complexity if complexity is not None else float("-inf")), row_digest(row))

    ranked = sorted(enumerate(rows), key=key)
    keep = sorted(i for i, _ in ranked[: (len(rows) + 1) // 2])
    return [rows[i] for i in keep]


# --- 4. train -------------------------------------------------------------------------------
def arm_rows(out: Path, arm: str) -> list[dict[str, str]]:
    fields = ("instruction", "input", "output")
    if arm == "seed":
        return read_json(out / "split" / "seed_rows.json")
    if arm in ("sprout", "chat"):
        name = "generate" if arm == "sprout" else "generate_chat"
        return [{k: r[k] for k in fields} for r in read_json(out / name / "curated.json")]
    return [{k: r[k] for k in fields} for r in judged_top_half(read_json(out / "score" / "scored.json"))]


def base_arm(out: Path, arms: Sequence[str]) -> str | None:
    """The run that measures the base model: the one of the folder that did, else the first to run."""
    for arm in ARMS:
        if (out / "train" / arm / "eval_before.json").is_file():
            return arm
    return arms[0] if arms else None


def train_params(out: Path, args: argparse.Namespace, arm: str, measure_base: bool = False) -> Any:
    from app.core.training import TrainParams

    held_out = out / "split" / "heldout.json"
    return TrainParams(
        base_model=args.base_model, method="lora", max_steps=args.steps, batch_size=args.batch_size,
        max_length=args.max_length, seed=args.train_seed, held_out_file=held_out, eval_tasks=held_out,
        eval_max_tasks=10_000, eval_max_new_tokens=args.max_new_tokens, eval_batch_size=args.eval_batch_size,
        torch_threads=args.threads, logging_steps=1, save_steps=100_000, report_samples=5,
        eval_before=measure_base,  # the base model is measured once, in the first run of the folder
    )


def stage_train(out: Path, args: argparse.Namespace, arms: Sequence[str]) -> dict[str, Any]:
    import shutil

    from app.core.training import run_training

    results = {}
    measured_in = base_arm(out, arms)
    for arm in arms:
        folder = out / "train" / arm
        if (folder / "metrics.json").is_file():
            results[arm] = read_json(folder / "metrics.json")
            continue
        # An interrupted run starts again. (Resuming from the checkpoint the trainer writes at the
        # last step trained one step more, so two runs would not have the same budget.)
        shutil.rmtree(folder, ignore_errors=True)
        rows = arm_rows(out, arm)
        data = out / "train" / f"{arm}_rows.json"
        write_json(data, rows)
        params = train_params(out, args, arm, measure_base=arm == measured_in)
        log(f"train: {arm}: {len(rows)} rows, {params.max_steps} steps x batch {params.batch_size}")
        def progress(info: dict[str, Any], arm: str = arm, last: list[str] = [""]) -> None:  # noqa: B006
            line = f"{info['stage']} {info.get('step') or 0}/{info.get('max_steps') or '?'}"
            if line != last[0]:
                last[0] = line
                loss = f", loss {info['loss']:.3f}" if info.get("loss") is not None else ""
                log(f"train: {arm}: {line}{loss}")

        results[arm] = run_training(params, data, folder, progress=progress)
        log(f"train: {arm}: held-out loss {results[arm]['eval_loss_after']:.4f}, "
            f"ROUGE-L {results[arm]['rouge_l_after']:.4f}, {results[arm]['train_seconds']:.0f} s")
    return results


# --- 5. table -------------------------------------------------------------------------------
def read_samples(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def paired_bootstrap(base: Sequence[float], tuned: Sequence[float], resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(mean difference, 2.5th, 97.5th percentile) of tuned - base over tasks resampled with replacement."""
    import random

    diffs = [t - b for b, t in zip(base, tuned, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(resamples))
    return sum(diffs) / len(diffs), means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


LABELS = {"base": "base model (Gemma 3 270M, no tuning)", "seed": "(a) the 117 seed tasks alone",
          "sprout": "(b) Sprout's curated data", "judged": "(c) Sprout's data, judge top half by quality",
          "chat": "(d) the chat path: Gemma generates, SmolLM2 Instruct answers"}


def stage_table(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    split = read_json(out / "split" / "split.json")
    generations = {name: read_json(out / name / "generate.json") for name in ("generate", "generate_chat")
                   if (out / name / "generate.json").is_file()}
    scored = read_json(out / "score" / "score.json") if (out / "score" / "score.json").is_file() else None
    measured_in = base_arm(out, [a for a in ARMS if (out / "train" / a / "metrics.json").is_file()])
    if measured_in is None:
        raise SystemExit("table: no training run in the folder yet")
    base_samples = read_samples(out / "train" / measured_in / "samples.jsonl")
    base_by_prompt = {s["prompt"]: s for s in base_samples}
    seed_metrics = read_json(out / "train" / measured_in / "metrics.json")
    rows: list[dict[str, Any]] = [{
        "run": "base", "examples": None, "train_tokens": None, "steps": None, "batch_size": None,
        "train_seconds": None, "eval_loss": seed_metrics["eval_loss_before"], "rouge_l": seed_metrics["rouge_l_before"],
        "eval_tasks": len(base_samples),
        "answer_words": sum(len((s["base"] or "").split()) for s in base_samples) / len(base_samples),
        "data_output_words": None,
        "reference_words": sum(len(s["reference"].split()) for s in base_samples) / len(base_samples),
    }]
    for arm in ARMS:
        folder = out / "train" / arm
        if not (folder / "metrics.json").is_file():
            continue
        m = read_json(folder / "metrics.json")
        config = read_json(folder / "train_config.json")
        samples = read_samples(folder / "samples.jsonl")
        data = read_json(out / "train" / f"{arm}_rows.json")
        base = [base_by_prompt[s["prompt"]]["rouge_l_base"] for s in samples]
        tuned = [s["rouge_l_tuned"] for s in samples]
        diff, low, high = paired_bootstrap(base, tuned)
        rows.append({
            "run": arm, "examples": m["train_rows"], "train_tokens": m["train_tokens"], "steps": m["steps"],
            "batch_size": config["params"]["batch_size"], "epochs": m["epochs"], "train_seconds": m["train_seconds"],
            "train_loss": m["train_loss"], "eval_loss": m["eval_loss_after"], "rouge_l": m["rouge_l_after"],
            "eval_tasks": m["eval_tasks"], "rouge_l_vs_base": {"mean": diff, "ci95": [low, high]},
            "tasks_better": sum(t > b for b, t in zip(base, tuned)), "tasks_worse": sum(t < b for b, t in zip(base, tuned)),
            "answer_words": sum(len(s["tuned"].split()) for s in samples) / len(samples),
            "data_output_words": sum(len(r["output"].split()) for r in data) / len(data),
        })
    results = {"split": split, "generate": generations.get("generate"),
               "generate_chat": generations.get("generate_chat"), "score": scored, "runs": rows,
               "settings": {k: getattr(args, k) for k in ("steps", "batch_size", "max_length", "max_new_tokens",
                                                          "eval_batch_size", "threads", "train_seed", "target",
                                                          "base_model")}}
    write_json(out / "results.json", results)
    table = render_table(results)
    (out / "table.md").write_text(table, encoding="utf-8")
    print(table)
    return results


def _f(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def render_table(results: dict[str, Any]) -> str:
    lines = ["| run | examples | trained tokens | steps x batch | held-out loss | held-out ROUGE-L | "
             "ROUGE-L vs base (95% CI) | tasks better / worse | words per answer | words per output in the data |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        if r["run"] == "base":
            vs, better, budget = "–", "–", "–"
        else:
            d = r["rouge_l_vs_base"]
            vs = f"{d['mean']:+.4f} ({d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f})"
            better = f"{r['tasks_better']} / {r['tasks_worse']}"
            budget = f"{r['steps']} x {r['batch_size']}"
        lines.append(f"| {LABELS[r['run']]} | {_f(r['examples'])} | {_f(r['train_tokens'])} | {budget} | "
                     f"{_f(r['eval_loss'])} | {_f(r['rouge_l'])} | {vs} | {better} | {_f(r['answer_words'], 1)} | "
                     f"{_f(r['data_output_words'], 1)} |")
    base = results["runs"][0]
    lines += ["", f"Held-out test: {base['eval_tasks']} tasks, their references {base['reference_words']:.1f} words "
              "long on average; answers are greedy and cut at the evaluation's token bound."]
    for key, label in (("generate", "Generation"), ("generate_chat", "Generation, chat path (d)")):
        g = results.get(key)
        if not g:
            continue
        hit = (g.get("contamination") or {}).get("benchmarks", {})
        items_hit = sum(b["items_hit"] for b in hit.values())
        lines += ["", f"{label}: job {g['job_id']} ({g.get('status', '?')}), {g['curated_instructions']} curated "
                  f"instructions, {g['rows']} rows, {g['generated']} candidate instructions in {_f(g['seconds'], 0)} s; "
                  f"rejected as contaminated by the held-out tasks: {g['rejected'].get('contaminated', 0)} instructions "
                  f"and {g['instances_rejected'].get('contaminated', 0)} instances ({items_hit} of the held-out items hit)."]
        for role, figures in sorted((g.get("roles") or {}).items()):
            lines.append(f"- {role}: {figures.get('dialect', '?')}, {_f(figures.get('prompt_tokens'))} prompt and "
                         f"{_f(figures.get('completion_tokens'))} completion tokens")
    score = results.get("score")
    if score and score.get("result"):
        judged = score["result"]
        parts = [f"{a} mean {judged[a]['mean']}, median {judged[a]['median']}" for a in ("quality", "complexity")
                 if isinstance(judged.get(a), dict)]
        lines.append(f"Judge ({judged.get('judge', '?')}): " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "yield_study")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"training runs, of {', '.join(ARMS)}")
    ap.add_argument("--seed-file", type=Path, default=SEED_TASKS)
    ap.add_argument("--target", type=int, default=300, help="curated instructions of the Self-Instruct job")
    ap.add_argument("--generate-minutes", type=float, default=None,
                    help="stop the generation job after this long (what it curated is kept)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generation job")
    ap.add_argument("--generator-url", default=None,
                    help="arm (d)'s generator: an OpenAI-compatible endpoint serving the base model "
                         "(default: the embedded Gemma started for the job)")
    ap.add_argument("--responder-url", default=None,
                    help="arm (d)'s responder: an endpoint serving the chat model (default: the embedded one started)")
    ap.add_argument("--responder-model", default="smollm2-135m-instruct", help="arm (d)'s responder model")
    ap.add_argument("--responder-structured", action="store_true",
                    help="arm (d): instances as JSON under a schema (off: as text; the 135M chat model fills a "
                         "schema with placeholders)")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps of every run")
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per step of every run")
    ap.add_argument("--max-length", type=int, default=384, help="tokens per training sequence")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="greedy answer bound in the evaluation")
    ap.add_argument("--eval-batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (on a shared 2-core machine, 2 threads made greedy decoding 10x slower)")
    ap.add_argument("--train-seed", type=int, default=42)
    ap.add_argument("--base-model", default="default",
                    help="the model tuned and evaluated: 'default' (the embedded Gemma 3 270M), a folder or a .gguf")
    args = ap.parse_args(argv)
    args.stage_list = [s.strip() for s in args.stages.split(",") if s.strip()]
    args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = (set(args.stage_list) - set(STAGES)) | (set(args.arm_list) - set(ARMS))
    if unknown:
        ap.error(f"unknown stage(s) or arm(s): {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    stages, out = args.stage_list, args.out
    out.mkdir(parents=True, exist_ok=True)
    if "split" in stages:
        split = stage_split(out, args.seed_file)
        log(f"split: {split['train_tasks']} seed tasks, {split['held_out_tasks']} held out")
    if "generate" in stages:
        stage_generate(out, args.target, args.seed, args.generate_minutes)
    if "generate_chat" in stages:
        stage_generate(out, args.target, args.seed, args.generate_minutes, name="generate_chat",
                       extra=chat_path_params(args), base_url=args.generator_url,
                       structured=args.responder_structured)
    if "score" in stages:
        stage_score(out)
    if "train" in stages:
        stage_train(out, args, args.arm_list)
    if "table" in stages:
        stage_table(out, args)


if __name__ == "__main__":
    main()
