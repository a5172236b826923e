"""A dataset's hand-off over HTTP, on PostgreSQL and Redis: its settings (destinations,
training, gate) checked and scoped to the owner; a version's preflight check, its bundle
as a zip (refused with the report when the check fails), its delivery, its hand-off job
queued; a curated version handed off; an `sft` job on a dataset version, whose use keeps
the version; and a version showing its gated training run."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import pytest

from app.core.datasets import versions as v
from app.core.handoff import training_gate
from app.db import session_scope
from app.models import Job
from tests.dataset_handoff_fixtures import EVAL_TASKS, SKY_ROWS, commit, make_dataset, train_params
from tests.handoff_fixtures import tiny_model_dir  # noqa: F401
from tests.service_fixtures import api, client, other_api, queued_tasks  # noqa: F401


@pytest.fixture
def api_settings(pg_url, redis_url, tmp_path, tiny_model_dir):
    from app.core.handoff.config import HandoffConfig
    from app.settings import Settings

    return Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data",
                    handoff=HandoffConfig(tokenizer=str(tiny_model_dir), max_length=256,
                                          formats=["sharegpt", "messages", "parquet"]))


@pytest.fixture
def sky(pg_url):
    """alice's dataset `sky` with version 1 (8 rows) and version 2 (one row with an empty answer)."""
    with session_scope(pg_url) as session:
        dataset = make_dataset(session, "sky", owner="alice")
        commit(session, dataset, SKY_ROWS[:8])
        commit(session, dataset, [{"instruction": "Say nothing at all.", "input": "", "output": ""}])
        return dataset.id


@pytest.fixture
def model_in_data_dir(api_settings, tiny_model_dir):
    return str(shutil.copytree(tiny_model_dir, api_settings.data_dir / "models" / "tiny"))


def _folder(api, api_settings, name="cluster"):
    path = api_settings.data_dir / "handoff" / "out" / name
    return api.ok("post", "/api/v1/destinations", 201, json={"name": name, "kind": "folder", "path": str(path)})


def test_the_hand_off_settings_are_set_checked_and_the_owners(api, other_api, api_settings, sky, model_in_data_dir):
    dest = _folder(api, api_settings)
    body = {"destination_ids": [dest["id"]], "training": {
        "params": train_params(model_in_data_dir), "gate": {"tag": "prod", "tolerance": {"rouge_l_after": 0.02}},
        "eval_tasks": EVAL_TASKS}}
    got = api.ok("put", "/api/v1/datasets/sky/handoff", json=body)
    assert [d["name"] for d in got["destinations"]] == ["cluster"]
    training = got["training"]
    assert training["gate"] == {"tag": "prod", "tolerance": {"eval_loss_after": 0.05, "rouge_l_after": 0.02}}
    assert training["eval"]["tasks"] == 4 and json.loads(open(training["eval"]["path"]).read()) == EVAL_TASKS
    assert api.ok("get", "/api/v1/datasets/sky/handoff") == got
    # refusals name the field, and change nothing
    theirs = _folder(other_api, api_settings, "bobs")
    for change, loc in [
        ({"destination_ids": [theirs["id"]]}, ["body", "destination_ids", 0]),
        ({"training": {"params": {"lora_r": 0}}}, ["body", "training", "params", "lora_r"]),
        ({"training": {"params": {"base_model": "/etc"}}}, ["body", "training", "params", "base_model"]),
        ({"training": {"params": {"held_out_file": "x.json"}}}, ["body", "training", "params", "held_out_file"]),
        ({"training": {"gate": {"tag": "latest"}}}, ["body", "training", "gate", "tag"]),
        ({"training": {"gate": {"tolerance": {"accuracy": 1}}}}, ["body", "training", "gate", "tolerance", "accuracy"]),
    ]:
        response = api.put("/api/v1/datasets/sky/handoff", json={"destination_ids": [dest["id"]], **change})
        assert response.status_code == 422, (change, response.text)
        assert response.json()["errors"][0]["loc"][:len(loc)] == loc, response.json()
    assert api.ok("get", "/api/v1/datasets/sky/handoff") == got
    assert other_api.get("/api/v1/datasets/sky/handoff").status_code == 404
    cleared = api.ok("put", "/api/v1/datasets/sky/handoff", json={})
    assert cleared == {"destinations": [], "training": None}


def test_a_versions_check_and_bundle(api, sky, tmp_path):
    report = api.ok("get", "/api/v1/datasets/sky/versions/1/check")
    assert report["ok"] and report["rows"] == 8 and report["version"] == 1
    failed = api.ok("get", "/api/v1/datasets/sky/versions/latest/check")
    assert not failed["ok"] and [(p["check"], p["index"]) for p in failed["problems"]] == [("empty_output", 8)]

    download = api.get("/api/v1/datasets/sky/versions/1/bundle")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert download.headers["x-dataset-version"] == "1"
    with zipfile.ZipFile(io.BytesIO(download.content)) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        card = zf.read("README.md").decode()
    assert {"sharegpt.jsonl", "messages.jsonl", "data/train-00000-of-00001.parquet", "dataset_info.json",
            "axolotl.yaml", "preflight.json", "README.md", "manifest.json"} <= names
    assert manifest["rows"] == 8 and manifest["label"] == "v1" and manifest["preflight"]["ok"]
    assert "| version | 1 |" in card
    only = api.get("/api/v1/datasets/sky/versions/1/bundle", params={"format": "messages"})
    with zipfile.ZipFile(io.BytesIO(only.content)) as zf:
        assert "sharegpt.jsonl" not in zf.namelist() and "messages.jsonl" in zf.namelist()
    refused = api.get("/api/v1/datasets/sky/versions/2/bundle")
    assert refused.status_code == 422 and "not offered for download: preflight failed: empty_output (1)" in \
        refused.json()["detail"]
    assert refused.json()["preflight"]["problems"][0]["index"] == 8
    assert api.get("/api/v1/datasets/sky/versions/7/bundle").status_code == 404


def test_a_version_is_delivered_over_http_and_refusals_name_the_field(api, api_settings, sky):
    dest = _folder(api, api_settings)
    done = api.ok("post", "/api/v1/deliveries", 201, json={"dataset": "sky", "version": 1, "destination_id": dest["id"]})
    assert done["status"] == "done" and done["label"] == "v1" and done["source_kind"] == "dataset_version"
    landed = api_settings.data_dir / "handoff" / "out" / "cluster" / "sky"
    assert (landed / "v1" / "manifest.json").is_file() and (landed / "latest").resolve() == (landed / "v1").resolve()
    blocked = api.ok("post", "/api/v1/deliveries", 201, json={"dataset": "sky", "destination_id": dest["id"]})
    assert blocked["status"] == "blocked" and blocked["preflight"]["problems"][0]["check"] == "empty_output"
    assert not (landed / "v2").exists()
    for body, loc in [({"dataset": "nope", "destination_id": dest["id"]}, ["body", "dataset"]),
                      ({"dataset": "sky", "version": "prod", "destination_id": dest["id"]}, ["body", "version"]),
                      ({"dataset": "sky", "job_id": 1, "destination_id": dest["id"]}, ["body"]),
                      ({"dataset": "sky", "final_only": True, "destination_id": dest["id"]}, ["body"])]:
        response = api.post("/api/v1/deliveries", json=body)
        assert response.status_code == 422 and response.json()["errors"][0]["loc"] == loc, response.text


def test_a_versions_hand_off_is_queued_and_a_curated_version_is_handed_off(api, api_settings, sky, redis_url):
    dest = _folder(api, api_settings)
    api.ok("put", "/api/v1/datasets/sky/handoff", json={"destination_ids": [dest["id"]]})
    job = api.ok("post", "/api/v1/datasets/sky/versions/1/handoff", 202)
    assert job["kind"] == "version_handoff" and job["params"] == {"dataset_id": sky, "version": 1}
    again = api.ok("post", "/api/v1/datasets/sky/versions/1/handoff", 202)
    assert again["id"] == job["id"]  # one at a time: the one still queued (sent again, which is harmless)
    curated = api.ok("post", "/api/v1/datasets/sky/versions", 201, json={"remove": {"query": {"text": "nothing"}}})
    assert curated["number"] == 3 and curated["handoff_job_id"] is not None
    assert queued_tasks(redis_url, "generation") == [("sprout.run_job", job["id"]), ("sprout.run_job", job["id"]),
                                                      ("sprout.run_job", curated["handoff_job_id"])]
    assert api.ok("get", "/api/v1/datasets/sky/versions/3")["handoff_job_id"] == curated["handoff_job_id"]


def test_an_sft_job_on_a_dataset_version_keeps_the_version(api, other_api, api_settings, sky, model_in_data_dir):
    params = {**train_params(model_in_data_dir), "dataset": "sky", "dataset_version": "latest"}
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "params": params})
    assert job["result"]["source"] == {"job_id": None, "export_id": None, "dataset_id": sky, "dataset": "sky",
                                       "version": 2, "version_id": job["result"]["source"]["version_id"]}
    refused = api.delete("/api/v1/datasets/sky/versions/2")
    assert refused.status_code == 409 and f"used by job(s) {job['id']}" in refused.json()["detail"]
    for body, loc in [({"params": {**params, "dataset_version": 9}}, ["body", "params", "dataset_version"]),
                      ({"params": {**params, "dataset": "nope"}}, ["body", "params", "dataset"]),
                      ({"params": params, "source_job_id": job["id"]}, ["body", "params", "dataset"])]:
        response = api.post("/api/v1/jobs", json={"kind": "sft", **body})
        assert response.status_code == 422 and response.json()["errors"][0]["loc"] == loc, response.text
    assert other_api.post("/api/v1/jobs", json={"kind": "sft", "params": params}).status_code == 422


def test_a_version_shows_its_gated_training_run(api, pg_url, sky):
    with session_scope(pg_url) as session:
        dataset = v.get_dataset_by_id(session, sky)
        version = v.get_version(session, sky, 1)
        job = Job(kind="sft", owner="alice", status="succeeded", result={"metrics": {"eval_loss_after": 2.0}})
        session.add(job)
        session.flush()
        training_gate.record_run(session, dataset, version, job.id, "prod", {"eval_loss_after": 0.05,
                                                                            "rouge_l_after": 0.01}, "c" * 64)
        training_gate.decide(session, job.id, {"eval_loss_after": 2.0, "rouge_l_after": 0.25, "steps": 20})
        job_id = job.id
    shown = api.ok("get", "/api/v1/datasets/sky/versions/1")["training"]
    assert shown["job_id"] == job_id and shown["status"] == "succeeded"
    assert shown["metrics"] == {"eval_loss_after": 2.0, "rouge_l_after": 0.25, "steps": 20}
    assert shown["gate"]["promoted"] and shown["gate"]["tag"] == "prod" and shown["gate"]["eval_sha256"] == "c" * 64
    assert [r["verdict"] for r in shown["gate"]["table"]] == ["first run", "first run"]
    listed = api.ok("get", "/api/v1/datasets/sky/versions")["items"]
    assert [(i["number"], i["training"] is not None) for i in listed] == [(2, False), (1, True)]
    assert api.ok("get", "/api/v1/datasets/sky")["tags"] == {"latest": 2, "prod": 1}
    # and the card of a bundle made after the decision
    with zipfile.ZipFile(io.BytesIO(api.get("/api/v1/datasets/sky/versions/prod/bundle").content)) as zf:
        card = zf.read("README.md").decode()
    assert "## Training gate" in card and f"Training job {job_id} (succeeded)" in card
    assert "promoted: the first run on these evaluation tasks" in card and "c" * 64 in card
    assert "| eval_loss_after | – | 2.0 | – | lower | 0.05 | first run |" in card
