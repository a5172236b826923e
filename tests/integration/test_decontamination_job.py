"""A real Self-Instruct job on the embedded model, decontaminated against the seed tasks' own
instances: a small model copies the instructions it is shown, so copies of seed tasks are
stored as `contaminated` (with the benchmark, the item and the overlap), every decision
agrees with the brute-force pairwise check, and the job's result holds its report."""

import pytest
from sqlmodel import select

from app.core import jobs, store
from app.core.benchmark_sets import parse_benchmark
from app.core.filters.decontaminate import prompt_text, reference_check
from app.core.filters.heuristics import INSTANCE_RULES, INSTRUCTION_RULES
from app.core.jobs import lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instance, Instruction, JobStatus
from app.settings import Settings

pytestmark = pytest.mark.integration


def test_job_rejects_copies_of_benchmark_items_and_reports_them(pg_url, llm_base_url, reference_seeds):
    settings = Settings(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)
    fmt, tasks = load_seed_file(reference_seeds)
    _, items = parse_benchmark(reference_seeds.read_text(encoding="utf-8"), "seed instances",
                               filename=reference_seeds.name)
    with session_scope(pg_url) as s:
        seed_set = store.import_seed_set(s, reference_seeds.name, fmt, tasks)
        bench = store.import_benchmark_set(s, "seed instances", fmt, items)
        params = jobs.get("self_instruct").validate_params(
            # the benchmark set alone: the trainer's evaluation tasks are checked in test_evol_budget_and_eval_tasks.py
            {"target": 3, "seed": 7, "decontaminate_against": [bench.id], "decontaminate_eval_tasks": False},
            settings.core_config().defaults)
        job = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id)
    with session_scope(pg_url) as s:
        items = store.benchmark_items(s, bench.id)  # as the job sees them (named by the set)

    job = lifecycle.run_job(pg_url, job.id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    with session_scope(pg_url) as s:
        ins = s.exec(select(Instruction).where(Instruction.job_id == job.id).order_by(Instruction.seq)).all()
        inst = s.exec(select(Instance).where(Instance.job_id == job.id)).all()

    contaminated = [r for r in ins if r.rule == "contaminated"]
    print(f"\n{len(ins)} candidates, {len(contaminated)} contaminated; report: {job.result['contamination']}")
    assert contaminated, "the model copied no seed task in this run"
    for r in ins:
        if r.fate == "rejected":
            assert r.rule in INSTRUCTION_RULES
        # every instruction-level decision made with the check agrees with the pairwise definition
        if r.rule in ("contaminated", "too_similar") or r.fate == "accepted":
            want = reference_check(items, r.instruction)
            instruction_hits = [h for h in r.detail.get("contamination", []) if h["instance"] is None]
            assert (want is not None) == bool(instruction_hits), r.instruction
            if want is not None:
                assert (instruction_hits[0]["benchmark"], instruction_hits[0]["item"]) == (want.benchmark, want.item)
                assert instruction_hits[0]["overlap"] == pytest.approx(want.overlap, abs=1e-6) and want.overlap > 0.5
    by_id = {r.id: r for r in ins}
    for i in inst:
        assert i.rule is None or i.rule in INSTANCE_RULES
        if i.rule == "contaminated":
            assert reference_check(items, prompt_text(by_id[i.instruction_id].instruction, i.input), i.output)

    report = job.result["contamination"]
    assert report["benchmark_sets"] == [bench.id] and report["n"] == 8 and report["threshold"] == 0.5
    hit_rows = [r for r in ins if r.detail.get("contamination")]
    assert report["candidates_hit"] == len(hit_rows) >= len(contaminated)
    (name, summary), = report["benchmarks"].items()
    assert name == items[0].benchmark
    assert summary["hits"] == sum(len(r.detail["contamination"]) for r in hit_rows)
    assert summary["items_hit"] == len({h["item"] for r in hit_rows for h in r.detail["contamination"]})
    assert job.counters["rejected"]["contaminated"] == len(contaminated)
