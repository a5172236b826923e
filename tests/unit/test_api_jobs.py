"""Jobs over HTTP: creation validated field by field and enqueued on the right queue,
listing with filters and pages, counters and progress, cancel, retry, delete."""

from datetime import timedelta

import pytest

from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Job, utcnow
from tests.service_fixtures import (  # noqa: F401
    api,
    api_settings,
    client,
    other_api,
    queued_tasks,
    store_candidates,
)

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


@pytest.fixture
def seed_set(api):
    return api.ok("post", "/api/v1/seed-sets", 201, json={"name": "eight", "content": SEEDS})["id"]


def new_job(api, seed_set, **params):
    return api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set, "params": params})


def set_job(url, job_id, **values):
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        for key, value in values.items():
            setattr(job, key, value)


def test_a_created_job_is_queued_with_its_validated_params(api, seed_set, redis_url):
    job = new_job(api, seed_set, target=3, seed=7)
    assert job["status"] == "queued" and job["kind"] == "self_instruct" and job["seed_set_id"] == seed_set
    assert job["params"]["target"] == 3 and job["params"]["seed"] == 7
    assert job["params"]["prompt_instructions"] == 8  # the service default filled in
    assert job["progress"] == {"target": 3, "done": 0, "percent": 0.0, "elapsed_s": None, "rate_per_min": None,
                               "eta_s": None}
    assert queued_tasks(redis_url, "generation") == [("sprout.run_job", job["id"])]
    assert queued_tasks(redis_url, "training") == []


@pytest.mark.parametrize(
    "body, where, fragment",
    [
        ({"kind": "magic"}, ["body", "kind"], "unknown job kind 'magic'; known: "),
        ({"kind": "self_instruct", "params": {"target": 3}}, ["body", "seed_set_id"], "needs seed_set_id"),
        ({"params": {}}, ["body", "kind"], "Field required"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"target": "many"}}, ["body", "params", "target"],
         "valid integer"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"target": 10**30}}, ["body", "params", "target"],
         "less than or equal to 1000000"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"target": 0}}, ["body", "params", "target"],
         "greater than or equal to 1"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"temperature": 1e308}},
         ["body", "params", "temperature"], "less than or equal to 2"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"tempreature": 0.5}},
         ["body", "params", "tempreature"], "Extra inputs are not permitted"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"prompt_machine_instructions": 9}},
         ["body", "params"], "prompt_machine_instructions must be smaller"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "priority": 1}, ["body", "priority"], "Extra inputs"),
        ({"kind": "self_instruct", "seed_set_id": 424242}, ["body", "seed_set_id"], "no seed set with id 424242"),
        ({"kind": "self_instruct", "seed_set_id": 2**40}, ["body", "seed_set_id"], "less than or equal to 2147483647"),
        ({"kind": "self_instruct", "seed_set_id": -1}, ["body", "seed_set_id"], "greater than or equal to 1"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "export_id": 1}, ["body", "export_id"], "takes no export_id"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": {"prompt_instructions": 12, "stop_at_item": 20}},
         ["body", "seed_set_id"], "has 8 task(s); a prompt needs 10 human seeds"),
        ({"kind": "self_instruct", "seed_set_id": "SEED", "params": []}, ["body", "params"], "valid dictionary"),
        ({"kind": "sft", "params": {}}, ["body", "source_job_id"], "exactly one of source_job_id or export_id"),
        ({"kind": "sft", "seed_set_id": "SEED"}, ["body", "seed_set_id"], "give source_job_id or export_id"),
        ({"kind": "sft", "source_job_id": 999}, ["body", "source_job_id"], "no job with id 999"),
        ({"kind": "sft", "export_id": 999}, ["body", "export_id"], "no export with id 999"),
        ({"kind": "sft", "source_job_id": "JOB", "params": {"lora_r": 0}}, ["body", "params", "lora_r"],
         "greater than or equal to 1"),
        ({"kind": "sft", "source_job_id": "JOB", "params": {"method": "qlora"}}, ["body", "params", "method"], "'lora'"),
        ({"kind": "sft", "source_job_id": "JOB", "params": {"base_model": "/etc"}}, ["body", "params", "base_model"],
         "'default' or a path inside the service's data directory"),
        ({"kind": "sft", "source_job_id": "JOB", "params": {"eval_tasks": "/etc/passwd"}},
         ["body", "params", "eval_tasks"], "a path inside the service's data directory"),
        ({"kind": "sft", "source_job_id": "JOB", "params": {"model_cache_dir": "/tmp/x"}},
         ["body", "params", "model_cache_dir"], "set by the service"),
        ({"kind": "evol_instruct", "seed_set_id": "SEED",
          "params": {"build": {"dataset_id": 1, "build_job_id": 1, "step": 1, "seed_set_ids": []}}},
         ["body", "params", "build"], "set by the service"),
        ({"kind": "sft", "source_job_id": "JOB", "params": {"epochs": "3", "learning_rate": 5}},
         ["body", "params", "learning_rate"], "less than or equal to 1"),
    ],
)
def test_bad_job_requests_name_the_field(api, seed_set, redis_url, body, where, fragment):
    source = new_job(api, seed_set, target=1)["id"] if "JOB" in body.values() else None
    body = {k: seed_set if v == "SEED" else source if v == "JOB" else v for k, v in body.items()}
    before = api.ok("get", "/api/v1/jobs")["total"]
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert fragment in data["detail"], data
    assert where in [e["loc"] for e in data["errors"]], data
    assert api.ok("get", "/api/v1/jobs")["total"] == before


def test_malformed_bodies_are_422_not_500(api):
    lone_surrogate = b'{"kind": "self_instruct", "seed_set_id": 1, "params": {"blacklist": ["\\ud800"]}}'
    nul = b'{"kind": "self_instruct", "seed_set_id": 1, "params": {"blacklist": ["a\\u0000"]}}'
    for content in (b"{", b"", b"null", b'"job"', b"[]", "{\"kind\": \"\u0000\"}".encode(), lone_surrogate, nul):
        response = api.post("/api/v1/jobs", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (content, response.text)
        assert response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/exports"])
@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"kind": "self_instruct", "params": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}",
         "body: line 1: JSON nested deeper than 64 levels"),
        ('{"kind": "self_instruct",\n "seed_set_id": ' + "1" * 5_000 + "}", "body: line 2: an integer of 5000 digits"),
        ('{"job_id": 1, "format": "alpaca", "n": -' + "9" * 5_000 + "}", "body: line 1: an integer of 5000 digits"),
    ],
)
def test_hostile_json_bodies_are_422_naming_the_line(api, path, content, fragment):
    before = api.ok("get", "/api/v1/jobs")["total"]
    response = api.post(path, content=content.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]
    assert api.ok("get", "/api/v1/jobs")["total"] == before


def test_list_filters_and_pages(api, seed_set, pg_url):
    ids = [new_job(api, seed_set, target=2)["id"] for _ in range(4)]
    set_job(pg_url, ids[0], status="succeeded")
    set_job(pg_url, ids[1], status="failed")
    everything = api.ok("get", "/api/v1/jobs")
    assert everything["total"] == 4 and [j["id"] for j in everything["items"]] == ids[::-1]
    queued = api.ok("get", "/api/v1/jobs?status=queued")
    assert queued["total"] == 2 and {j["id"] for j in queued["items"]} == set(ids[2:])
    assert api.ok("get", "/api/v1/jobs?kind=sft")["total"] == 0
    assert api.ok("get", "/api/v1/jobs?kind=self_instruct&status=failed")["items"][0]["id"] == ids[1]
    pages = [api.ok("get", f"/api/v1/jobs?limit=3&offset={o}") for o in (0, 3)]
    assert [j["id"] for p in pages for j in p["items"]] == ids[::-1] and pages[1]["total"] == 4
    bad = api.get("/api/v1/jobs?status=sleeping")
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "status"]


def test_get_shows_counters_rate_and_eta(api, seed_set, pg_url):
    job = new_job(api, seed_set, target=10)
    set_job(pg_url, job["id"], status="running", started_at=utcnow() - timedelta(minutes=2), heartbeat_at=utcnow())
    store_candidates(pg_url, job["id"], [
        CandidateRecord("Write a haiku about rain.", True, in_pool=True, instances=[InstanceCandidate("", "Rain falls.")]),
        CandidateRecord("Write a haiku about snow.", True, in_pool=True, instances=[InstanceCandidate("", "Snow.")]),
        CandidateRecord("Draw a map.", False, rule="blacklist"),
        CandidateRecord("Write a haiku about rain!", False, rule="too_similar"),
    ])
    got = api.ok("get", f"/api/v1/jobs/{job['id']}")
    c = got["counters"]
    assert (c["generated"], c["accepted"], c["instances"]) == (4, 2, 2)
    assert c["rejected"] == {"blacklist": 1, "too_similar": 1}
    assert {"llm_requests", "llm_errors", "prompt_tokens", "completion_tokens"} <= set(c)
    p = got["progress"]
    assert p["target"] == 10 and p["done"] == 2 and p["percent"] == 20.0
    assert p["rate_per_min"] == pytest.approx(1.0, rel=0.05)  # 2 accepted in 2 minutes
    assert p["eta_s"] == pytest.approx(8 * 60, rel=0.05)
    assert api.get("/api/v1/jobs/0").status_code == 422
    assert api.get("/api/v1/jobs/77777").json()["detail"] == "no job with id 77777"


def test_cancel_retry_and_delete(api, seed_set, pg_url, redis_url):
    job = new_job(api, seed_set, target=2)
    cancelled = api.ok("post", f"/api/v1/jobs/{job['id']}/cancel", 202)
    assert cancelled["status"] == "cancelled" and cancelled["cancel_requested"] is True
    retried = api.ok("post", f"/api/v1/jobs/{job['id']}/retry", 202)
    assert retried["status"] == "queued" and retried["cancel_requested"] is False
    assert [j for _, j in queued_tasks(redis_url, "generation")] == [job["id"], job["id"]]
    refused = api.post(f"/api/v1/jobs/{job['id']}/retry")
    assert refused.status_code == 409 and "only failed or cancelled" in refused.json()["detail"]

    set_job(pg_url, job["id"], status="running", heartbeat_at=utcnow(), worker="w1")
    running_cancel = api.ok("post", f"/api/v1/jobs/{job['id']}/cancel", 202)
    assert running_cancel["status"] == "running" and running_cancel["cancel_requested"] is True
    refused = api.delete(f"/api/v1/jobs/{job['id']}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["detail"]

    set_job(pg_url, job["id"], status="cancelled", finished_at=utcnow())
    store_candidates(pg_url, job["id"], [CandidateRecord("Write a limerick about a cat.", True,
                                                         instances=[InstanceCandidate("", "There once was a cat.")])])
    export = api.ok("post", "/api/v1/exports", 201, json={"job_id": job["id"]})
    trainer = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "source_job_id": job["id"]})
    refused = api.delete(f"/api/v1/jobs/{job['id']}")
    assert refused.status_code == 409 and f"source of job(s) {trainer['id']}" in refused.json()["detail"]
    api.ok("post", f"/api/v1/jobs/{trainer['id']}/cancel", 202)
    assert api.delete(f"/api/v1/jobs/{trainer['id']}").status_code == 204
    assert api.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert api.get(f"/api/v1/exports/{export['id']}").status_code == 404


def test_an_sft_job_goes_to_the_training_queue(api, seed_set, pg_url, redis_url):
    source = new_job(api, seed_set, target=2)
    store_candidates(pg_url, source["id"], [CandidateRecord("Name a colour.", True, instances=[InstanceCandidate("", "Red")])])
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "source_job_id": source["id"],
                                                   "params": {"max_steps": 5, "method": "lora"}})
    assert job["status"] == "queued" and job["source_job_id"] == source["id"]
    assert job["params"]["max_steps"] == 5 and job["params"]["lora_r"] == 16
    assert job["result"] == {"source": {"job_id": source["id"], "export_id": None}}
    assert job["progress"]["target"] is None and job["counters"]["stage"] == "queued"
    assert queued_tasks(redis_url, "training") == [("sprout.run_job", job["id"])]
    export = api.ok("post", "/api/v1/exports", 201, json={"job_id": source["id"], "format": "messages"})
    from_export = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "export_id": export["id"]})
    assert from_export["source_job_id"] == source["id"]
    assert from_export["result"]["source"]["export_id"] == export["id"]
    refused = api.post("/api/v1/jobs", json={"kind": "sft", "source_job_id": job["id"]})
    assert refused.status_code == 422 and "has no curated data" in refused.json()["detail"]


def test_an_unreachable_broker_is_503_and_leaves_no_job(pg_url, seed_set, api, tmp_path):
    from fastapi.testclient import TestClient

    from app.asgi import create_app
    from app.settings import Settings

    settings = Settings(database_url=pg_url, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path / "d",
                        readiness_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/jobs", headers=api.headers,
                               json={"kind": "self_instruct", "seed_set_id": seed_set, "params": {"target": 2}})
    assert response.status_code == 503 and "Redis" in response.json()["detail"]
    assert api.ok("get", "/api/v1/jobs")["total"] == 0


def test_evol_instruct_jobs_start_from_a_seed_set_or_a_finished_job(api, seed_set, pg_url, redis_url):
    source = new_job(api, seed_set, target=2)
    body = {"kind": "evol_instruct", "source_job_id": source["id"], "params": {"rounds": 2}}
    refused = api.post("/api/v1/jobs", json=body)
    assert refused.status_code == 422 and "still queued" in refused.json()["detail"]
    set_job(pg_url, source["id"], status="succeeded")
    refused = api.post("/api/v1/jobs", json=body)
    assert refused.status_code == 422 and "has no accepted instructions" in refused.json()["detail"]
    store_candidates(pg_url, source["id"], [CandidateRecord("Name a colour.", True, in_pool=True,
                                                            instances=[InstanceCandidate("", "Red")])])
    evolved = api.ok("post", "/api/v1/jobs", 201, json=body)
    assert evolved["kind"] == "evol_instruct" and evolved["params"]["rounds"] == 2
    assert evolved["source_job_id"] == source["id"] and evolved["seed_set_id"] is None
    from_seeds = api.ok("post", "/api/v1/jobs", 201, json={"kind": "evol_instruct", "seed_set_id": seed_set})
    assert from_seeds["params"]["rounds"] == 4  # the service default
    assert [t for t, _ in queued_tasks(redis_url, "generation")][-2:] == ["sprout.run_job"] * 2
    for bad, fragment in (({"seed_set_id": seed_set, "source_job_id": source["id"]}, "not both"),
                          ({}, "needs seed_set_id or source_job_id"),
                          ({"source_job_id": source["id"], "params": {"rounds": 0}}, "body.params.rounds"),
                          ({"source_job_id": source["id"], "params": {"target": 5}}, "body.params.target")):
        response = api.post("/api/v1/jobs", json={"kind": "evol_instruct", **bad})
        assert response.status_code == 422 and fragment in response.json()["detail"], response.text


def test_a_dry_run_is_judged_like_a_job_and_stores_nothing(api, seed_set):
    before = api.ok("get", "/api/v1/jobs")["total"]
    sft = api.post("/api/v1/jobs", json={"kind": "sft", "source_job_id": 1, "dry_run": True})
    assert sft.status_code == 422 and "dry_run" in sft.text
    bad = api.post("/api/v1/jobs", json={"kind": "self_instruct", "seed_set_id": seed_set, "dry_run": True,
                                         "params": {"max_cost": 1}})
    assert bad.status_code == 422 and "price_per_million_tokens or price_per_gpu_hour" in bad.text
    both = api.post("/api/v1/jobs", json={"kind": "evol_instruct", "seed_set_id": seed_set, "dry_run": True,
                                          "params": {"price_per_million_tokens": 1, "price_per_gpu_hour": 2}})
    assert both.status_code == 422 and "not both" in both.text
    evol = api.post("/api/v1/jobs", json={"kind": "evol_instruct", "seed_set_id": 999, "dry_run": True})
    assert evol.status_code == 422 and "no seed set with id 999" in evol.text
    missing = api.post("/api/v1/jobs", json={"kind": "self_instruct", "seed_set_id": 999, "dry_run": True})
    assert missing.status_code == 422 and "no seed set with id 999" in missing.text
    assert api.ok("get", "/api/v1/jobs")["total"] == before
