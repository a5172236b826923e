"""The service end to end: the API (TestClient on the test PostgreSQL) enqueues jobs on the
test Redis, real `sprout worker` processes run them against the real embedded model.

A job is driven through HTTP only: upload the Self-Instruct seed file, create a job, poll
it to completion, page through its results, export and download; and a running job is
cancelled, keeping what it accepted.
"""

import json

import pytest
from sqlmodel import select

from app.core import store
from app.db import session_scope
from app.models import Instruction
from tests.service_fixtures import (  # noqa: F401
    api,
    api_settings,
    client,
    processes,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.integration


def start_worker(processes, api_settings, llm_base_url, name="worker"):
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url)
    return processes(["worker", "--queues", "generation", "--concurrency", "1", "--log-level", "info"], env, name)


def upload_reference_seeds(api, reference_seeds):
    with open(reference_seeds, "rb") as fh:
        return api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})


def job_state(api, job_id):
    return api.ok("get", f"/api/v1/jobs/{job_id}")


def test_a_job_end_to_end_through_the_api(api, client, api_settings, processes, llm_base_url, reference_seeds, pg_url):
    worker = start_worker(processes, api_settings, llm_base_url)
    seed_set = upload_reference_seeds(api, reference_seeds)
    assert seed_set["task_count"] == 175
    job = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": 2, "seed": 3}})

    done = wait_for(lambda: (j := job_state(api, job["id"]))["status"] in ("succeeded", "failed", "cancelled") and j,
                    "the job to finish", [worker])
    assert done["status"] == "succeeded", (done["error"], worker.tail())
    c = done["counters"]
    assert c["accepted"] == 2 and c["generated"] == 2 + sum(c["rejected"].values())
    assert c["llm_requests"] > 0 and c["prompt_tokens"] > 0 and c["instances"] >= 2
    assert done["progress"]["done"] == 2 and done["progress"]["percent"] == 100.0 and done["progress"]["eta_s"] is None
    assert done["attempts"] == 1 and done["result"]["curated"] == 2

    # page through every instruction, two at a time
    seen, offset = [], 0
    while True:
        page = api.ok("get", f"/api/v1/jobs/{job['id']}/instructions?limit=2&offset={offset}")
        seen += page["items"]
        offset += 2
        if offset >= page["total"]:
            break
    assert [i["seq"] for i in seen] == list(range(1, c["generated"] + 1))
    accepted = api.ok("get", f"/api/v1/jobs/{job['id']}/instructions?fate=accepted")
    assert accepted["total"] == 2 and all(any(x["fate"] == "accepted" for x in i["instances"]) for i in accepted["items"])
    for rule, n in c["rejected"].items():
        assert api.ok("get", f"/api/v1/jobs/{job['id']}/instructions?fate=rejected&rule={rule}")["total"] == n
    word = accepted["items"][0]["instruction"].split()[0]
    assert accepted["items"][0]["id"] in [i["id"] for i in api.ok("get", f"/api/v1/jobs/{job['id']}/instructions", params={"q": word.upper()})["items"]]

    export = api.ok("post", "/api/v1/exports", 201, json={"job_id": job["id"], "format": "alpaca"})
    file = api.get(export["download_url"])
    assert file.status_code == 200
    rows = json.loads(file.text)
    with session_scope(pg_url) as session:
        curated = store.curated_examples(session, job["id"])
    assert len(rows) == export["rows"] == len(curated) == c["instances"]
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in curated]

    settings = client.app.state.settings
    ready = settings.model_copy(update={"llm": settings.llm.model_copy(update={"base_urls": (llm_base_url,)})})
    client.app.state.settings = ready
    readiness = client.get("/readyz").json()
    assert readiness["status"] == "ready" and readiness["checks"]["llm"]["detail"] == "1 endpoint(s) reachable"


def test_cancel_stops_a_running_job_and_keeps_what_it_accepted(api, api_settings, processes, llm_base_url,
                                                               reference_seeds, pg_url):
    worker = start_worker(processes, api_settings, llm_base_url)
    seed_set = upload_reference_seeds(api, reference_seeds)
    job = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": 500, "seed": 5}})
    wait_for(lambda: job_state(api, job["id"])["counters"]["generated"] >= 1, "the first stored candidate", [worker])

    asked = api.ok("post", f"/api/v1/jobs/{job['id']}/cancel", 202)
    assert asked["cancel_requested"] is True
    ended = wait_for(lambda: (j := job_state(api, job["id"]))["status"] != "running" and j, "the job to stop", [worker])
    assert ended["status"] == "cancelled", (ended["error"], worker.tail())
    assert ended["finished_at"] and ended["counters"]["accepted"] < 500

    with session_scope(pg_url) as session:
        rows = session.exec(select(Instruction).where(Instruction.job_id == job["id"])).all()
        curated = store.curated_examples(session, job["id"])
    assert len(rows) == ended["counters"]["generated"] >= 1
    assert sum(r.fate == "accepted" for r in rows) == ended["counters"]["accepted"]
    assert len({r["id"] for r in curated}) == ended["counters"]["accepted"]
    export = api.ok("post", "/api/v1/exports", 201, json={"job_id": job["id"]})
    assert export["rows"] == len(curated)

    # the worker is free again: a retried job resumes where it stopped
    api.ok("post", f"/api/v1/jobs/{job['id']}/retry", 202)
    wait_for(lambda: job_state(api, job["id"])["attempts"] == 2, "the retry to start", [worker])
    api.ok("post", f"/api/v1/jobs/{job['id']}/cancel", 202)
    again = wait_for(lambda: (j := job_state(api, job["id"]))["status"] == "cancelled" and j, "the retry to stop", [worker])
    assert again["counters"]["generated"] >= ended["counters"]["generated"]
