"""Token budgets on the embedded model: a pilot's estimate for a Self-Instruct target, then
the real job with a cap below it. The job stops at the next safe point after its cap, keeps
every accepted example, ends succeeded with the reason, and reports its tokens per accepted
example; the estimate's error against the real run is printed (a pilot is not asserted on)."""

import pytest
from sqlmodel import select

from app.core import jobs, store
from app.core.budget import TOKEN_BUDGET_REACHED
from app.core.jobs import lifecycle
from app.core.jobs.estimate import estimate_self_instruct
from app.core.seeds import load_seed_file
from app.db import session_scope
from app.models import Instruction, JobStatus
from app.settings import Settings

pytestmark = pytest.mark.integration


def test_estimate_then_a_capped_job_that_keeps_what_it_accepted(pg_url, llm_base_url, reference_seeds):
    settings = Settings(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)
    fmt, tasks = load_seed_file(reference_seeds)
    kind = jobs.get("self_instruct")
    planned = kind.validate_params({"target": 8, "seed": 11, "price_per_million_tokens": 0.2},
                                   settings.core_config().defaults)
    est = estimate_self_instruct(planned, tasks, settings.core_config(), base_urls=[llm_base_url], pilot=2)
    assert est.pilot_accepted == 2 and est.expected_total_tokens is not None
    assert est.low_total_tokens <= est.expected_total_tokens <= est.high_total_tokens

    cap = est.expected_total_tokens // 2  # the run cannot reach its target within this
    params = kind.validate_params({**planned.model_dump(), "max_total_tokens": cap}, settings.core_config().defaults)
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
    real_per = spent / len(accepted) if accepted else float("nan")
    print(f"\nestimate for target 8: {est.expected_total_tokens} tokens ({est.low_total_tokens}-{est.high_total_tokens}), "
          f"{est.tokens_per_accepted} per accepted, cost {est.expected_cost}")
    print(f"capped run (cap {cap}): spent {spent} tokens, {len(accepted)} accepted, {real_per:.1f} per accepted "
          f"(estimate's error per accepted: {(est.tokens_per_accepted - real_per) / real_per:+.1%}); result {result}")
    assert result["stopped"] == TOKEN_BUDGET_REACHED
    assert spent >= cap and result["total_tokens"] == spent
    assert len(accepted) == counters["accepted"] == result["curated"] < 8
    if accepted:
        assert result["tokens_per_accepted"] == pytest.approx(spent / len(accepted), abs=0.1)
        assert result["cost"] == pytest.approx(spent * 0.2 / 1e6, abs=1e-6)
