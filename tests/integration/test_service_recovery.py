"""A worker killed with SIGKILL in the middle of a job: a new worker takes the job over
(the reaper, sent by `sprout beat`, re-enqueues it once its heartbeat is stale; `claim`
lets the new worker have it), and the job completes with every accepted instruction
stored once — none lost, none twice."""

import signal

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import Instruction, Job
from tests.service_fixtures import api, api_settings, client, processes, service_env, wait_for  # noqa: F401

pytestmark = pytest.mark.integration

TARGET = 3


def accepted_rows(url, job_id):
    with session_scope(url) as session:
        rows = session.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()
    return rows


def job_row(url, job_id):
    with session_scope(url) as session:
        return session.get(Job, job_id)


def test_a_killed_worker_is_replaced_and_the_job_completes(api, api_settings, processes, llm_base_url,
                                                            reference_seeds, pg_url):
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, SPROUT_JOB_STALE_S="5",
                      SPROUT_REAPER_INTERVAL_S="1")
    worker_args = ["worker", "--queues", "generation", "--concurrency", "1"]
    first = processes(worker_args, env, "worker-1")
    with open(reference_seeds, "rb") as fh:
        seed_set = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})
    job = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": TARGET, "seed": 21}})
    job_id = job["id"]

    # kill the worker once it has committed an accepted instruction, before the job is done
    wait_for(lambda: any(r.fate == "accepted" for r in accepted_rows(pg_url, job_id)), "a first accepted instruction",
             [first], poll_s=0.2)
    first.kill(signal.SIGKILL)
    before = accepted_rows(pg_url, job_id)
    held = job_row(pg_url, job_id)
    assert held.status == "running" and held.attempts == 1, "the job ended before the kill: nothing was tested"
    assert sum(r.fate == "accepted" for r in before) < TARGET

    second = processes(worker_args, env, "worker-2")
    beat = processes(["beat", "--schedule", str(api_settings.data_dir / "beat-schedule")], env, "beat")
    done = wait_for(lambda: (j := job_row(pg_url, job_id)).status in ("succeeded", "failed", "cancelled") and j,
                    "the job to complete on the new worker", [second, beat])
    assert done.status == "succeeded", (done.error, second.tail())
    assert done.attempts == 2 and done.worker != held.worker

    after = accepted_rows(pg_url, job_id)
    # nothing committed before the kill was lost or changed
    assert [(r.id, r.seq, r.instruction, r.fate) for r in after[: len(before)]] == \
        [(r.id, r.seq, r.instruction, r.fate) for r in before]
    # nothing stored twice
    assert [r.seq for r in after] == list(range(1, len(after) + 1))
    pool = [r.instruction for r in after if r.in_pool]
    assert len(pool) == len(set(pool))
    assert sum(r.fate == "accepted" for r in after) == TARGET == done.counters["accepted"]
    assert done.counters["generated"] == len(after)
    assert f"job {job_id} (self_instruct): its worker stopped heartbeating; re-enqueued" in second.text()
