"""Drills on real worker processes: pool children must not share a database connection.

A prefork worker opens the database in its main process (the migration check, the
reaper at start) and then forks its pool. A connection inherited by two children is one
socket used by two processes: two jobs at once failed with `DuplicatePreparedStatement`,
and so did the job taken by a child forked to replace a killed one. Each process must
get its own engine.
"""

import os
import signal

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import Instruction, Job
from tests.service_fixtures import service_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.drill]

FINISHED = ("succeeded", "failed", "cancelled")


def job_row(url, job_id):
    with session_scope(url) as session:
        return session.get(Job, job_id)


def rows_of(url, job_id):
    with session_scope(url) as session:
        return session.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()


def upload_seeds(api, reference_seeds):
    with open(reference_seeds, "rb") as fh:
        return api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})


def test_two_pool_children_run_three_jobs_at_once(api, api_settings, processes, llm_base_url, reference_seeds, pg_url):
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_WORKER_CONCURRENCY="2")
    worker = processes(["worker", "--queues", "generation"], env, "worker")
    seed_set = upload_seeds(api, reference_seeds)
    ids = [api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": 1, "seed": seed}})["id"]
        for seed in (1, 2, 3)]

    def all_finished():
        assert "raised unexpected" not in worker.text(), worker.tail()  # a crashed task leaves its job running
        rows = [job_row(pg_url, i) for i in ids]
        return all(r.status in FINISHED for r in rows) and rows

    done = wait_for(all_finished, "the three jobs to finish", [worker])
    assert [j.status for j in done] == ["succeeded"] * 3, ([j.error for j in done], worker.tail())
    assert len({j.worker for j in done}) >= 2, "the jobs did not run in two pool children: nothing was tested"
    assert "DuplicatePreparedStatement" not in worker.text()
    for job in done:
        assert job.attempts == 1 and job.counters["accepted"] == 1


def test_a_killed_pool_child_is_replaced_and_its_job_completes(api, api_settings, processes, llm_base_url,
                                                                reference_seeds, pg_url):
    target = 3
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_WORKER_CONCURRENCY="2",
                      SPROUT_JOB_STALE_S="5", SPROUT_REAPER_INTERVAL_S="1")
    worker = processes(["worker", "--queues", "generation"], env, "worker")
    beat = processes(["beat", "--schedule", str(api_settings.data_dir / "beat-schedule")], env, "beat")
    seed_set = upload_seeds(api, reference_seeds)
    job_id = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": target, "seed": 21}})["id"]

    wait_for(lambda: any(r.fate == "accepted" for r in rows_of(pg_url, job_id)), "a first accepted instruction",
             [worker, beat], poll_s=0.2)
    held = job_row(pg_url, job_id)
    child = int(held.worker.rsplit(":", 1)[1])
    assert child != worker.proc.pid, "the job ran in the worker's main process: nothing was tested"
    before = rows_of(pg_url, job_id)
    os.kill(child, signal.SIGKILL)  # the pool child only; the main process forks a new one
    assert held.status == "running" and sum(r.fate == "accepted" for r in before) < target, \
        "the job ended before the kill: nothing was tested"

    def finished():
        assert "raised unexpected" not in worker.text(), worker.tail()
        job = job_row(pg_url, job_id)
        return job.status in FINISHED and job

    done = wait_for(finished, "the job to complete in a new pool child", [worker, beat])
    assert done.status == "succeeded", (done.error, worker.tail())
    assert done.attempts >= 2 and done.worker != held.worker
    assert "DuplicatePreparedStatement" not in worker.text()

    after = rows_of(pg_url, job_id)
    assert [(r.id, r.seq, r.instruction, r.fate) for r in after[: len(before)]] == \
        [(r.id, r.seq, r.instruction, r.fate) for r in before]  # nothing lost or changed
    assert [r.seq for r in after] == list(range(1, len(after) + 1))  # nothing stored twice
    pool = [r.instruction for r in after if r.in_pool]
    assert len(pool) == len(set(pool))
    assert sum(r.fate == "accepted" for r in after) == target == done.counters["accepted"]
