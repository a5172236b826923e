"""Benchmark sets over HTTP: uploads in every form, bad files refused naming the line and
storing nothing, ownership, a job referencing them (checked at creation), deletion refused
while a queued job uses one, and a job's contamination report."""

from app.core.methods.candidates import CandidateRecord
from tests.service_fixtures import api, api_settings, client, other_api, store_candidates  # noqa: F401

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))
JSONL = ('{"id": "q1", "question": "Natalia sold clips to forty eight of her friends in April", "answer": "72"}\n'
         '{"id": "q2", "question": "Weng earns twelve dollars an hour for babysitting", "answer": "10"}\n')


def test_upload_list_items_and_delete(api, other_api, reference_seeds):
    with open(reference_seeds, "rb") as fh:
        seeds = api.ok("post", "/api/v1/benchmark-sets", 201, files={"file": (reference_seeds.name, fh)})
    assert seeds["source_format"] == "self-instruct" and seeds["item_count"] >= 175
    named = api.ok("post", "/api/v1/benchmark-sets", 201, files={"file": ("gsm.jsonl", JSONL.encode())},
                   data={"name": "gsm", "prompt_field": "question", "output_field": "answer"})
    assert (named["name"], named["source_format"], named["item_count"]) == ("gsm", "jsonl", 2)
    body = api.ok("post", "/api/v1/benchmark-sets", 201, json={"name": "j", "content": JSONL,
                                                               "prompt_fields": ["question"]})
    items = api.ok("get", f"/api/v1/benchmark-sets/{body['id']}/items")
    assert [(i["item"], i["output"]) for i in items["items"]] == [("q1", ""), ("q2", "")]
    listed = api.ok("get", "/api/v1/benchmark-sets", params={"limit": 3})["items"]
    assert [b["id"] for b in listed] == [body["id"], named["id"], seeds["id"]]
    assert other_api.get(f"/api/v1/benchmark-sets/{named['id']}").status_code == 404
    assert named["id"] not in [b["id"] for b in other_api.ok("get", "/api/v1/benchmark-sets")["items"]]
    assert api.delete(f"/api/v1/benchmark-sets/{body['id']}").status_code == 204
    assert api.get(f"/api/v1/benchmark-sets/{body['id']}").status_code == 404


def test_bad_files_are_refused_and_store_nothing(api):
    before = api.ok("get", "/api/v1/benchmark-sets")["total"]
    bad = api.post("/api/v1/benchmark-sets", json={"name": "x", "content": JSONL + '{"answer": "1"}\n',
                                                  "prompt_fields": ["question"]})
    assert bad.status_code == 422 and "line 3: missing field 'question'" in bad.json()["detail"]
    assert api.post("/api/v1/benchmark-sets", json={"name": "x", "format": "parquet", "content": "x"}).status_code == 422
    assert api.post("/api/v1/benchmark-sets", files={"file": ("b.jsonl", b"\xff\xfe")}).status_code == 422
    assert api.ok("get", "/api/v1/benchmark-sets")["total"] == before


def test_jobs_reference_owned_benchmark_sets_and_report_contamination(api, other_api, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "eight", "content": SEEDS})["id"]
    bench = api.ok("post", "/api/v1/benchmark-sets", 201, json={"name": "gsm", "content": JSONL,
                                                                "prompt_fields": ["question"]})["id"]
    theirs = other_api.ok("post", "/api/v1/benchmark-sets", 201, json={"name": "b", "content": JSONL,
                                                                       "prompt_fields": ["question"]})["id"]
    refused = api.post("/api/v1/jobs", json={"kind": "self_instruct", "seed_set_id": seed_set,
                                             "params": {"decontaminate_against": [theirs]}})
    assert refused.status_code == 422 and f"no benchmark set with id {theirs}" in refused.text
    assert "decontaminate_against" in str(refused.json()["errors"][0]["loc"])
    bad_field = api.post("/api/v1/jobs", json={"kind": "self_instruct", "seed_set_id": seed_set,
                                               "params": {"decontaminate_fields": ["answer"]}})
    assert bad_field.status_code == 422
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                    "params": {"decontaminate_against": [bench]}})
    assert job["params"]["decontaminate_n"] == 8 and job["params"]["decontaminate_threshold"] == 0.5
    assert api.delete(f"/api/v1/benchmark-sets/{bench}").status_code == 409
    hit = {"benchmark": f"gsm (#{bench})", "item": "q1", "field": "prompt", "overlap": 1.0, "exact": True, "instance": None}
    store_candidates(pg_url, job["id"], [
        CandidateRecord("Natalia sold clips to forty eight of her friends in April", accepted=False,
                        rule="contaminated", detail={"contamination": [hit]}),
        CandidateRecord("Something clean and new to do today.", accepted=True),
    ])
    report = api.ok("get", f"/api/v1/jobs/{job['id']}/contamination")
    assert report["candidates_hit"] == 1 and report["benchmark_sets"] == [bench]
    assert report["benchmarks"] == {f"gsm (#{bench})": {"items_hit": 1, "hits": 1, "items": {"q1": 1}}}
    rejected = api.ok("get", f"/api/v1/jobs/{job['id']}/instructions", params={"rule": "contaminated"})
    assert rejected["total"] == 1 and rejected["items"][0]["contamination"][0]["item"] == "q1"
    assert other_api.get(f"/api/v1/jobs/{job['id']}/contamination").status_code == 404
