"""Drill: a sharded job on a real Celery worker: the decider sends its requesters as
`sprout.run_shard` tasks, which other pool children of the worker take.

The model server is the benchmarks' FAKE OpenAI-compatible server (named as such: not a
model), which answers at once; the job-wide guarantee itself is checked against brute
force in `tests/integration/test_sharded_generation.py`.
"""

import importlib.util
from pathlib import Path

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import Instruction, Job
from tests.service_fixtures import service_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.drill]

ROOT = Path(__file__).resolve().parents[2]


def test_a_sharded_job_runs_its_requesters_in_other_pool_children(api, api_settings, processes, pg_url):
    spec = importlib.util.spec_from_file_location("fake_llm_server", ROOT / "benchmarks" / "fake_llm_server.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    with fake.FakeServer() as url:
        env = service_env(api_settings, SPROUT_LLM_BASE_URLS=url, SPROUT_WORKER_CONCURRENCY="3")
        worker = processes(["worker", "--queues", "generation"], env, "worker")
        seeds = ROOT / "seeds" / "default.jsonl"
        with open(seeds, "rb") as fh:
            seed_set = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (seeds.name, fh)})
        job_id = api.ok("post", "/api/v1/jobs", 201, json={
            "kind": "self_instruct", "seed_set_id": seed_set["id"],
            "params": {"target": 20, "seed": 1, "shards": 2}})["id"]

        def finished():
            with session_scope(pg_url) as session:
                job = session.get(Job, job_id)
                return job if job.status in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, "the sharded job to finish", [worker])
        log = worker.text()
    assert job.status == "succeeded", (job.error, worker.tail())
    assert job.counters["accepted"] == 20 and job.counters["llm_requests"] > 0
    assert log.count("sprout.run_shard") >= 2, worker.tail()  # the requesters ran as tasks
    with session_scope(pg_url) as session:
        rows = session.exec(select(Instruction).where(Instruction.job_id == job_id)).all()
    assert rows and {r.detail.get("shard") for r in rows} <= {0, 1}
    assert all(r.detail.get("shard") is not None for r in rows)
