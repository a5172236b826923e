"""A token-capped Self-Instruct job on the embedded model: it stops at the next safe point
after its cap, keeps every accepted example, ends succeeded with the reason, and reports its
tokens per accepted example."""

import pytest
from sqlmodel import select

from app.core import jobs, store
from app.core.budget import TOKEN_BUDGET_REACHED
from app.core.jobs import lifecycle
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instruction, JobStatus
from app.settings import Settings

pytestmark = pytest.mark.integration


def test_a_capped_job_stops_at_its_budget_and_keeps_what_it_accepted(pg_url, llm_base_url, reference_seeds):
    settings = Settings(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)
    fmt, tasks = load_seed_file(reference_seeds)
    cap = 6_000  # far below what target 50 needs
    params = jobs.get("self_instruct").validate_params(
        {"target": 50, "seed": 11, "max_total_tokens": cap, "price_per_million_tokens": 0.2},
        settings.core_config().defaults)
    with session_scope(pg_url) as s:
        seed_set = store.import_seed_set(s, reference_seeds.name, fmt, tasks)
        job = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id)
    job = lifecycle.run_job(pg_url, job.id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    with session_scope(pg_url) as s:
        accepted = s.exec(select(Instruction).where(Instruction.job_id == job.id,
                                                    Instruction.fate == "accepted")).all()
    result, counters = job.result, job.counters
    spent = counters["prompt_tokens"] + counters["completion_tokens"]
    print(f"\ncap {cap}: spent {spent} tokens, {len(accepted)} accepted, result {result}")
    assert result["stopped"] == TOKEN_BUDGET_REACHED
    assert spent >= cap and result["total_tokens"] >= cap
    assert len(accepted) == counters["accepted"] == result["curated"] < 50
    if accepted:
        assert result["tokens_per_accepted"] == pytest.approx(result["total_tokens"] / len(accepted), abs=0.1)
        assert result["cost"] == pytest.approx(result["total_tokens"] * 0.2 / 1e6, abs=1e-6)
