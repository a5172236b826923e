"""LLM-judge scores through the service: a real `sprout worker` runs a Self-Instruct job that
scores its examples (`score_with_judge`), then a `score` job asked for over the API scores
that finished job again; the judge is the real embedded model (its completions streamed,
with log-probabilities). The scores are stored with the judge's name, the same judge
replaces its rows, a scoring with nothing left to ask asks nothing, and the results API
filters on the quality score."""

import pytest
from sqlmodel import select

from app.db import session_scope
from app.models import ExampleScore
from tests.service_fixtures import (  # noqa: F401
    api,
    api_settings,
    client,
    processes,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.integration

JUDGE = "gemma-3-270m"  # the embedded model's name, as its server lists it


def finished(api, job_id, worker):
    return wait_for(lambda: (j := api.ok("get", f"/api/v1/jobs/{job_id}"))["status"]
                    in ("succeeded", "failed", "cancelled") and j, f"job {job_id} to finish", [worker])


def stored(pg_url, job_id):
    with session_scope(pg_url) as session:
        return session.exec(select(ExampleScore).where(ExampleScore.job_id == job_id)
                            .order_by(ExampleScore.instance_id, ExampleScore.aspect)).all()


def test_scores_through_a_worker_stored_with_the_judge_and_filtered_by_quality(api, api_settings, processes,
                                                                                llm_base_url, reference_seeds, pg_url):
    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url)
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1", "--log-level", "info"], env, "worker")
    with open(reference_seeds, "rb") as fh:
        seed_set = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})

    # a generation job whose last step is the judge
    job = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"],
        "params": {"target": 2, "seed": 3, "score_with_judge": True}})
    done = finished(api, job["id"], worker)
    assert done["status"] == "succeeded", (done["error"], worker.tail())
    examples = done["counters"]["instances"]
    summary = done["result"]["judge_scores"]
    assert summary["judge"] == JUDGE and summary["examples"] == examples >= 2
    rows = stored(pg_url, job["id"])
    assert len(rows) == 2 * examples and {r.aspect for r in rows} == {"quality", "complexity"}
    assert {(r.judge, r.scoring_job_id) for r in rows} == {(JUDGE, job["id"])}
    for r in rows:  # each answer parsed strictly, or kept as it was
        if r.status == "ok":
            assert 1 <= r.parsed <= 6 and 1 <= r.score <= 6 and r.from_logprobs  # llama.cpp streams log-probs
        else:
            assert r.status == "unparseable" and r.score is None and r.raw
    ok = [r for r in rows if r.status == "ok"]
    assert ok  # the judge answered with a digit at least once
    assert summary["quality"]["unparseable"] + summary["complexity"]["unparseable"] == len(rows) - len(ok)
    assert done["counters"]["judged"] == examples and done["counters"]["judge_llm_requests"] >= 2 * examples

    # the finished job scored again by a `score` job over the API: the same judge replaces its rows
    again = api.ok("post", "/api/v1/jobs", 201, json={"kind": "score", "source_job_id": job["id"],
                                                     "params": {"rescore": True}})
    scored = finished(api, again["id"], worker)
    assert scored["status"] == "succeeded", (scored["error"], worker.tail())
    assert scored["result"]["judge"] == JUDGE and scored["result"]["examples"] == examples
    assert scored["counters"]["judged"] == examples and scored["progress"]["done"] == examples
    rescored = stored(pg_url, job["id"])
    assert len(rescored) == 2 * examples and {r.scoring_job_id for r in rescored} == {again["id"]}
    assert [(r.instance_id, r.aspect) for r in rescored] == [(r.instance_id, r.aspect) for r in rows]

    # a score job with nothing left to ask asks the judge nothing
    idle = api.ok("post", "/api/v1/jobs", 201, json={"kind": "score", "source_job_id": job["id"]})
    nothing = finished(api, idle["id"], worker)
    assert nothing["status"] == "succeeded" and nothing["counters"]["judge_completion_tokens"] == 0
    assert {r.scoring_job_id for r in stored(pg_url, job["id"])} == {again["id"]}

    # the results API filters on the quality score
    quality = {r.instance_id: r.score for r in rescored if r.aspect == "quality" and r.score is not None}
    assert quality, "no quality score to filter on"
    threshold = sorted(quality.values())[len(quality) // 2]
    listed = api.ok("get", f"/api/v1/jobs/{job['id']}/instances?min_quality={threshold}&judge={JUDGE}")
    assert {i["id"] for i in listed["items"]} == {i for i, s in quality.items() if s >= threshold}
    assert all(i["scores"]["quality"]["judge"] == JUDGE and i["scores"]["quality"]["score"] >= threshold
               for i in listed["items"])
    above = api.ok("get", f"/api/v1/jobs/{job['id']}/instances?min_quality={max(quality.values()) + 0.01}")
    assert above["total"] == 0
