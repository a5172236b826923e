"""Drill: the model server goes away for longer than the client's retries, and comes back.

A fault-injecting proxy sits in front of the real embedded model; stopping it refuses new
connections and cuts open ones, as a restarting server does. The job must not fail: its
requests retry for the outage budget, then the job is paused (back to `queued`, what it
accepted kept, `error` saying why), the reaper sends it again, and once the server is back
the job completes — with no human action."""

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import Instruction, Job
from tests.fault_server import OutageProxy
from tests.service_fixtures import service_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.drill]

TARGET = 3
FINISHED = ("succeeded", "failed", "cancelled")


def job_row(url, job_id):
    with session_scope(url) as session:
        return session.get(Job, job_id)


def rows_of(url, job_id):
    with session_scope(url) as session:
        return session.exec(select(Instruction).where(Instruction.job_id == job_id).order_by(Instruction.seq)).all()


def test_a_job_waits_out_a_model_server_outage_and_completes(api, api_settings, processes, llm_base_url,
                                                              reference_seeds, pg_url):
    proxy = OutageProxy(llm_base_url)
    proxy.start()
    try:
        env = service_env(api_settings, SPROUT_LLM_BASE_URLS=proxy.url, SPROUT_LLM_MAX_RETRIES="1",
                          SPROUT_LLM_BACKOFF_S="0.2", SPROUT_LLM_BACKOFF_MAX_S="1", SPROUT_LLM_OUTAGE_BUDGET_S="4",
                          SPROUT_REAPER_INTERVAL_S="2")
        worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
        beat = processes(["beat", "--schedule", str(api_settings.data_dir / "beat-schedule")], env, "beat")
        with open(reference_seeds, "rb") as fh:
            seed_set = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})
        job_id = api.ok("post", "/api/v1/jobs", 201, json={
            "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": TARGET, "seed": 21}})["id"]
        wait_for(lambda: any(r.fate == "accepted" for r in rows_of(pg_url, job_id)), "a first accepted instruction",
                 [worker, beat], poll_s=0.2)

        proxy.stop()  # the model server goes away
        before = rows_of(pg_url, job_id)

        reasons = set()

        def paused():
            job = job_row(pg_url, job_id)
            assert job.status != "failed", (job.error, worker.tail())
            reasons.add(job.error)
            waiting = job.status == "queued" and (job.error or "").startswith("waiting for the model server")
            return (waiting or job.attempts >= 2) and job

        held = wait_for(paused, "the job to be paused by the outage", [worker, beat], poll_s=0.2)
        assert held.status in ("queued", "running") and held.counters["accepted"] < TARGET, "nothing was tested"
        retried = wait_for(lambda: (j := job_row(pg_url, job_id)).attempts >= 2 and j,
                           "the reaper to send the paused job again", [worker, beat], poll_s=0.2)
        assert retried.status != "failed", retried.error
        reasons.add(retried.error)  # kept while the job runs again, cleared when it ends

        proxy.start()  # the model server is back on the same address
        done = wait_for(lambda: (j := job_row(pg_url, job_id)).status in FINISHED and j,
                        "the job to complete", [worker, beat])
    finally:
        proxy.stop()
    assert done.status == "succeeded" and done.error is None, (done.error, worker.tail())
    assert done.counters["accepted"] == TARGET and done.attempts >= 2
    after = rows_of(pg_url, job_id)
    assert [(r.id, r.seq, r.instruction) for r in after[: len(before)]] == [(r.id, r.seq, r.instruction) for r in before]
    assert [r.seq for r in after] == list(range(1, len(after) + 1))
    assert any(f"waiting for the model server: no answer from the model server at {proxy.url}" in (r or "")
               for r in reasons), reasons
