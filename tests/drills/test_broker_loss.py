"""Drill: the broker loses its data (Redis restarted without persistence) while a job waits
in the queue behind a busy worker. The job's row says `queued`; no message will ever run
it. The reaper, sent by `sprout beat` on its own queue, finds it and sends it again, and
the job runs once the worker is free — without anyone retrying it by hand."""

import pytest
import redis

from app.db import session_scope
from app.models import Job
from tests.service_fixtures import queued_tasks, service_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.drill]


def job_row(url, job_id):
    with session_scope(url) as session:
        return session.get(Job, job_id)


def test_a_queued_job_lost_by_the_broker_runs_again(api, api_settings, processes, llm_base_url, reference_seeds,
                                                    pg_url, redis_url):
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_REAPER_INTERVAL_S="2")
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    beat = processes(["beat", "--schedule", str(api_settings.data_dir / "beat-schedule")], env, "beat")
    with open(reference_seeds, "rb") as fh:
        seed_set = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})

    def create(target):
        return api.ok("post", "/api/v1/jobs", 201, json={
            "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": target, "seed": 4}})["id"]

    busy = create(500)  # keeps the only worker slot busy
    wait_for(lambda: job_row(pg_url, busy).status == "running", "the first job to start", [worker, beat])
    waiting = create(1)
    assert ("sprout.run_job", waiting) in queued_tasks(redis_url, "generation")

    redis.Redis.from_url(redis_url).flushdb()  # the broker restarts empty
    assert queued_tasks(redis_url, "generation") == []
    api.ok("post", f"/api/v1/jobs/{busy}/cancel", 202)  # the worker becomes free

    ran = wait_for(lambda: (j := job_row(pg_url, waiting)).status != "queued" and j,
                   "the lost job to run again", [worker, beat], hang_guard_s=300)
    assert ran.status in ("running", "succeeded"), (ran.status, ran.error, worker.tail())
    assert f"job {waiting} (self_instruct): queued, but no message" in worker.text()
    done = wait_for(lambda: (j := job_row(pg_url, waiting)).status not in ("queued", "running") and j,
                    "the lost job to finish", [worker, beat])
    assert done.status == "succeeded" and done.attempts == 1, (done.error, worker.tail())
    assert job_row(pg_url, busy).status == "cancelled"
