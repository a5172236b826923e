"""A real Self-Instruct job against the embedded model, stored in PostgreSQL.

Checks what was stored: accepted instructions with instances, every rejection with a
documented rule, novelty decisions re-checked with rouge-score itself, counters that
agree with the rows, and a resumed job that continues without storing anything twice.
"""

import pytest
from rouge_score import rouge_scorer
from sqlmodel import select

from app.core import jobs, store
from app.core.filters.heuristics import INSTANCE_RULES, INSTRUCTION_RULES
from app.core.jobs import lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instance, Instruction, JobStatus
from app.settings import Settings

pytestmark = pytest.mark.integration


def make_job(url, seeds_path, **params):
    settings = Settings(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)
    fmt, tasks = load_seed_file(seeds_path)
    p = jobs.get("self_instruct").validate_params(params, settings.core_config().defaults)
    with session_scope(url) as s:
        seed_set = store.import_seed_set(s, seeds_path.name, fmt, tasks)
        job = store.create_job(s, "self_instruct", p.model_dump(), seed_set_id=seed_set.id)
    return settings, job.id, [t.instruction for t in tasks]


def rows(url, job_id):
    with session_scope(url) as s:
        ins = s.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
        inst = s.exec(select(Instance).where(Instance.job_id == job_id)).all()
        job = store.get_job(s, job_id)
    return job, ins, inst


def test_job_stores_every_candidate_with_its_fate(pg_url, llm_base_url, reference_seeds):
    settings, job_id, seeds = make_job(pg_url, reference_seeds, target=6, seed=7)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    job, ins, inst = rows(pg_url, job_id)

    accepted = [r for r in ins if r.fate == "accepted"]
    assert len(accepted) == 6
    assert [r.seq for r in ins] == list(range(1, len(ins) + 1))
    by_instruction = {}
    for i in inst:
        by_instruction.setdefault(i.instruction_id, []).append(i)
    for r in accepted:
        kept = [i for i in by_instruction.get(r.id, []) if i.fate == "accepted"]
        assert 1 <= len(kept) <= 5, r.instruction
        assert r.in_pool and r.is_classification is not None
        assert r.max_rouge_l is not None and r.max_rouge_l <= 0.7
        scores = [m["rouge_l"] for m in r.most_similar]
        assert 1 <= len(scores) <= 10 and scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(r.max_rouge_l, abs=1e-6)
    for r in ins:
        if r.fate == "rejected":
            assert r.rule in INSTRUCTION_RULES, r.rule
        if r.rule == "too_similar":
            assert r.max_rouge_l > 0.7 and not r.in_pool
    for i in inst:
        if i.rule:
            assert i.rule in INSTANCE_RULES and i.fate == "rejected"

    # the novelty decisions, re-checked with rouge-score against the pool at that moment
    # (rows are stored in a different order than decided: accepted ones wait for instances)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    decided = sorted((r for r in ins if r.max_rouge_l is not None), key=lambda r: r.detail["novelty_decision"])
    assert [r.detail["novelty_decision"] for r in decided] == list(range(1, len(decided) + 1))
    for r in decided:
        best = max(scorer.score(p, r.instruction)["rougeL"].fmeasure for p in pool)
        assert best == pytest.approx(r.max_rouge_l, abs=1e-9), r.instruction
        assert (best > 0.7) == (r.rule == "too_similar")
        if r.in_pool:
            pool.append(r.instruction)

    c = job.counters
    assert c["generated"] == len(ins)
    assert c["accepted"] == 6
    assert sum(c["rejected"].values()) == len(ins) - 6
    assert c["instances"] == sum(1 for i in inst if i.fate == "accepted")
    assert c["llm_requests"] > 0 and c["prompt_tokens"] > 0 and c["completion_tokens"] > 0
    # streamed answers carry usage; the shared prompt prefixes come from the server's cache
    assert 0 < c["cached_prompt_tokens"] < c["prompt_tokens"]
    assert list(c["llm_concurrency"]) == [llm_base_url] and c["llm_concurrency"][llm_base_url] >= 1
    assert 0 < c["llm_utilisation"] <= c["llm_busy_share"] <= 1

    with session_scope(pg_url) as s:
        data = store.curated_examples(s, job_id)
    assert len({d["id"] for d in data}) == 6 and all(d["output"] for d in data)


def test_a_stopped_job_resumes_without_duplicates(pg_url, llm_base_url, reference_seeds):
    settings, job_id, _ = make_job(pg_url, reference_seeds, target=2, seed=11)
    assert lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url]).status == "succeeded"
    _, first, _ = rows(pg_url, job_id)
    # the same job asked for more, as a worker picking it up again would see it
    with session_scope(pg_url) as s:
        job = store.get_job(s, job_id)
        job.params = {**job.params, "target": 4}
        store.reset_for_retry(job)
    job = lifecycle.run_job(pg_url, job_id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == "succeeded", job.error
    _, after, _ = rows(pg_url, job_id)
    assert [(r.id, r.instruction) for r in after[: len(first)]] == [(r.id, r.instruction) for r in first]
    assert sum(r.fate == "accepted" for r in after) == 4
    assert len({r.seq for r in after}) == len(after)
    pool_texts = [r.instruction for r in after if r.in_pool]
    assert len(pool_texts) == len(set(pool_texts))
    assert job.attempts == 2
