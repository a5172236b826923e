"""On the embedded model: an Evol-Instruct dry run through the API (a pilot of a few lineages,
priced per GPU-hour at its measured tokens/s), a real Evol-Instruct job stopped by its cost
at that price, and a Self-Instruct job on the default seeds checked against the trainer's
evaluation tasks (the same tasks) with every decision held to the pairwise definition."""

import json

import pytest
from sqlmodel import select

from app.core import jobs, store
from app.core.budget import COST_BUDGET_REACHED, PER_GPU_HOUR
from app.core.filters.decontaminate import prompt_text, reference_check
from app.core.jobs import lifecycle
from app.core.jobs.decontamination import eval_task_files, eval_task_items
from app.core.seeds import SeedTaskData, load_seed_file
from app.core.training.evaluate import default_eval_tasks_path
from app.db import session_scope
from app.models import Instance, Instruction, JobStatus
from app.settings import Settings
from tests.service_fixtures import Api, make_key

pytestmark = pytest.mark.integration

POOL = [
    {"instruction": "Convert the given distance from miles to kilometers.",
     "instances": [{"input": "26.2 miles", "output": "About 42.2 kilometers."}]},
    {"instruction": "Explain why the sky is blue.",
     "instances": [{"input": "", "output": "Air scatters blue light more than red light."}]},
    {"instruction": "Give three tips for staying focused while studying.",
     "instances": [{"input": "", "output": "1. Put the phone away. 2. Work in 25-minute blocks. 3. Keep water nearby."}]},
    {"instruction": "Name a fruit that is yellow.", "instances": [{"input": "", "output": "A banana."}]},
]
SMALL = {"rounds": 2, "seed": 3, "max_tokens": 96, "response_max_tokens": 96}


def test_evol_dry_run_then_a_job_stopped_by_its_gpu_hour_cost(pg_url, redis_url, llm_base_url, tmp_path):
    from fastapi.testclient import TestClient

    from app.asgi import create_app

    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data",
                        llm_base_urls=[llm_base_url], llm_concurrency=4, job_batch_size=4, job_flush_s=0.5)
    with TestClient(create_app(settings)) as client:
        api = Api(client, make_key(pg_url, "alice"))
        content = "".join(json.dumps(t) + "\n" for t in POOL)
        seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "pool", "content": content})["id"]
        body = api.ok("post", "/api/v1/jobs", 200, json={
            "kind": "evol_instruct", "seed_set_id": seed_set, "dry_run": True,
            "params": {**SMALL, "price_per_gpu_hour": 3.6, "gpus": 2}})
        est = body["estimate"]
        print(f"\nevol dry run: {est}")
        assert (est["kind"], est["unit"], est["target"], est["basis"]) == ("evol_instruct", "evolutions", 8, "pilot")
        assert len(est["pilot_unit_tokens"]) == 3  # three lineages piloted, every token counted to one of them
        assert sum(est["pilot_unit_tokens"]) == est["pilot_prompt_tokens"] + est["pilot_completion_tokens"] > 0
        assert est["low_total_tokens"] <= est["expected_total_tokens"] <= est["high_total_tokens"]
        assert est["expected_total_tokens"] == round(sum(est["pilot_unit_tokens"]) / 3 * 4)
        assert est["tokens_per_second"] > 0 and est["cost_rate"] == PER_GPU_HOUR
        hours = est["expected_total_tokens"] / est["tokens_per_second"] / 3600
        assert est["expected_cost"] == pytest.approx(hours * 2 * 3.6, rel=1e-3, abs=1e-6)
        assert api.ok("get", "/api/v1/jobs")["total"] == 0

    # a real job priced at 3600 per GPU-hour (1 per second) and capped at 3: it stops at the next
    # decided evolution after 3 s on the model server, keeping what it decided
    kind = jobs.get("evol_instruct")
    params = kind.validate_params({**SMALL, "price_per_gpu_hour": 3600.0, "max_cost": 3.0},
                                  settings.core_config().defaults)
    with session_scope(pg_url) as s:
        seed_set = store.import_seed_set(s, "pool", "self-instruct",
                                         [SeedTaskData(t["instruction"], t["instances"]) for t in POOL])
        job = store.create_job(s, "evol_instruct", params.model_dump(mode="json"), seed_set_id=seed_set.id)
    job = lifecycle.run_job(pg_url, job.id, settings.core_config(), base_urls=[llm_base_url])
    result = job.result
    print(f"capped evol job: {result}; counters wall {job.counters.get('llm_wall_s')}")
    assert job.status == JobStatus.succeeded.value, job.error
    assert result["stopped"] == COST_BUDGET_REACHED and result["cost_rate"] == PER_GPU_HOUR
    assert result["cost"] >= 3.0 and result["cost"] == pytest.approx(result["llm_wall_s"], abs=1e-3)
    assert job.counters["llm_wall_s"] > 0
    made = sum(f["accepted"] for f in job.counters["operations"].values())
    if made:  # per accepted evolution, not per stored row (the roots are stored as accepted)
        assert result["tokens_per_accepted"] == pytest.approx(result["total_tokens"] / made, abs=0.1)


def test_a_job_on_the_default_seeds_is_checked_against_the_trainers_evaluation_tasks(pg_url, llm_base_url):
    settings = Settings(job_batch_size=4, job_flush_s=0.5, llm_concurrency=4)
    fmt, tasks = load_seed_file(default_eval_tasks_path())
    params = jobs.get("self_instruct").validate_params({"target": 2, "seed": 5}, settings.core_config().defaults)
    with session_scope(pg_url) as s:
        seed_set = store.import_seed_set(s, "default", fmt, tasks)
        job = store.create_job(s, "self_instruct", params.model_dump(), seed_set_id=seed_set.id)
        (evals,) = eval_task_files(s, job, params, settings.core_config())
    items = eval_task_items(evals)
    job = lifecycle.run_job(pg_url, job.id, settings.core_config(), base_urls=[llm_base_url])
    assert job.status == JobStatus.succeeded.value, job.error
    with session_scope(pg_url) as s:
        ins = s.exec(select(Instruction).where(Instruction.job_id == job.id)).all()
        inst = s.exec(select(Instance).where(Instance.job_id == job.id)).all()
    report = job.result["contamination"]
    print(f"\n{len(ins)} candidates; report: {report}")
    assert report["eval_tasks"] == [evals.label] and report["benchmark_sets"] == []
    assert set(report["benchmarks"]) <= {evals.label}
    for r in ins:  # each instruction-level decision agrees with the pairwise definition (short outputs not exact)
        if r.rule in ("contaminated", "too_similar") or r.fate == "accepted":
            want = reference_check(items, r.instruction, short_exact=("prompt",))
            assert (want is not None) == any(h["instance"] is None for h in r.detail.get("contamination", []))
    by_id = {r.id: r for r in ins}
    for i in inst:
        if i.rule == "contaminated":
            assert reference_check(items, prompt_text(by_id[i.instruction_id].instruction, i.input), i.output,
                                   short_exact=("prompt",))
