"""A dataset version's hand-off in the running service, on PostgreSQL, Redis and real worker
processes:

* a build (the real embedded model behind a `sprout worker`) commits version 1, which is
  then delivered to a folder destination and announced by a signed `version_created`
  webhook to a local receiver, by the build's `version_handoff` job on the same worker;
* the train-on-new-version gate with three short real LoRA runs of the tiny model on a
  training worker, on three versions whose data differs (`tests/dataset_handoff_fixtures.py`):
  the first run promotes `prod`, the better second run moves it, the worse third run holds
  it; each run's `training_finished` webhook carries the decision, and the API shows the
  comparison on the version.
"""

from __future__ import annotations

import json
import shutil

import pytest

from app.core.datasets import versions as v
from app.core.handoff import webhooks
from app.db import session_scope
from app.models import Job
from tests.conftest import DEFAULT_SEEDS
from tests.dataset_handoff_fixtures import (
    EVAL_TASKS,
    GARBLED_ROWS,
    GRASS_ROWS,
    SKY_ROWS,
    commit,
    make_dataset,
    train_params,
)
from tests.handoff_fixtures import tiny_model_dir  # noqa: F401
from tests.service_fixtures import api, client, processes, service_env, wait_for  # noqa: F401
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

# small builds: a short response limit keeps the 270M base model from rambling
STEP = {"kind": "self_instruct", "params": {"max_tokens": 320, "seed": 11, "near_duplicate_threshold": 0.8}}


@pytest.fixture
def api_settings(pg_url, redis_url, tmp_path, tiny_model_dir):
    from app.core.handoff.config import HandoffConfig
    from app.settings import Settings

    # the preflight renders rows with the tiny model's tokenizer (Gemma's chat template); its small
    # vocabulary makes long generated answers many tokens, hence the high limit
    return Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data", job_flush_s=0.5,
                    handoff=HandoffConfig(tokenizer=str(tiny_model_dir), max_length=65536,
                                          formats=["sharegpt", "messages", "parquet"]))


def _env(settings, **extra):
    return service_env(settings, SPROUT_HANDOFF__TOKENIZER=str(settings.handoff.tokenizer),
                       SPROUT_HANDOFF__MAX_LENGTH=str(settings.handoff.max_length),
                       SPROUT_HANDOFF__FORMATS=json.dumps(settings.handoff.formats), OMP_NUM_THREADS="1", **extra)


def _folder(api, settings):
    path = settings.data_dir / "handoff" / "out" / "cluster"
    return api.ok("post", "/api/v1/destinations", 201, json={"name": "cluster", "kind": "folder", "path": str(path)})


def test_a_build_delivers_its_version_to_a_folder_and_sends_a_signed_version_created(
        api, api_settings, processes, llm_base_url, pg_url):
    seeds = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "default", "content": DEFAULT_SEEDS.read_text()})
    api.ok("post", "/api/v1/datasets", 201, json={"name": "support", "recipe": {
        "seed_set_ids": [seeds["id"]], "steps": [STEP], "grow_by": 2}})
    dest = _folder(api, api_settings)
    api.ok("put", "/api/v1/datasets/support/handoff", json={"destination_ids": [dest["id"]]})
    with WebhookReceiver() as receiver:
        hook = api.ok("post", "/api/v1/webhooks", 201, json={"url": receiver.url,
                                                              "events": ["version_created", "delivery_done"]})
        worker = processes(["worker", "--queues", "generation", "--concurrency", "1"],
                           _env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url), "worker")
        build = api.ok("post", "/api/v1/datasets/support/builds", 202)
        wait_for(lambda: len(receiver.received) >= 2, "the version's webhooks", [worker], poll_s=1)
    built = api.ok("get", f"/api/v1/jobs/{build['id']}")
    assert built["status"] == "succeeded" and built["result"]["version"] == 1, built
    [handoff_id] = built["result"]["followups"]
    handoff = api.ok("get", f"/api/v1/jobs/{handoff_id}")
    assert handoff["kind"] == "version_handoff" and handoff["status"] == "succeeded", handoff
    [delivery] = handoff["result"]["deliveries"]
    assert delivery["status"] == "done" and delivery["preflight_ok"], delivery
    landed = api_settings.data_dir / "handoff" / "out" / "cluster" / "support"
    version = api.ok("get", "/api/v1/datasets/support/versions/1")
    manifest = json.loads((landed / "v1" / "manifest.json").read_text())
    assert manifest["rows"] == version["row_count"] and manifest["content_hash"] == version["content_hash"]
    assert (landed / "latest").resolve() == (landed / "v1").resolve() and version["handoff_job_id"] == handoff_id
    events = {}
    for received in receiver.received:
        assert webhooks.verify(hook["secret"], received.body, received.headers["X-Sprout-Signature"])
        events[received.headers["X-Sprout-Event"]] = json.loads(received.body)["data"]
    assert events["version_created"]["dataset"]["name"] == "support"
    assert events["version_created"]["version"]["number"] == 1
    assert events["version_created"]["version"]["content_hash"] == version["content_hash"]
    assert events["version_created"]["destinations"] == [{"id": dest["id"], "name": "cluster", "kind": "folder"}]
    assert events["delivery_done"]["location"] == str(landed / "v1")


def test_the_gate_moves_prod_for_a_better_run_and_holds_it_for_a_worse_one(
        api, api_settings, processes, pg_url, tiny_model_dir):
    base_model = shutil.copytree(tiny_model_dir, api_settings.data_dir / "models" / "tiny")
    with session_scope(pg_url) as session:
        dataset_id = make_dataset(session, "sky", owner="alice").id
    dest = _folder(api, api_settings)
    api.ok("put", "/api/v1/datasets/sky/handoff", json={"destination_ids": [dest["id"]], "training": {
        "params": train_params(str(base_model)), "gate": {"tag": "prod"}, "eval_tasks": EVAL_TASKS}})
    env = _env(api_settings)
    workers = [processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker"),
               processes(["worker", "--queues", "training", "--concurrency", "1"], env, "training-worker")]
    decided = {}
    with WebhookReceiver() as receiver:
        hook = api.ok("post", "/api/v1/webhooks", 201, json={"url": receiver.url, "events": ["training_finished"]})
        for number, rows in ((1, GARBLED_ROWS), (2, SKY_ROWS), (3, GRASS_ROWS)):
            with session_scope(pg_url) as session:  # as a build commits a version (no generation model here)
                assert commit(session, v.get_dataset_by_id(session, dataset_id), rows).number == number
            api.ok("post", f"/api/v1/datasets/sky/versions/{number}/handoff", 202)

            def gated(n=number):
                training = api.ok("get", f"/api/v1/datasets/sky/versions/{n}")["training"]
                return training if training and training["gate"]["decided_at"] else None

            decided[number] = wait_for(gated, f"the gated run on version {number}", workers, poll_s=1)
            decided[number]["prod"] = api.ok("get", "/api/v1/datasets/sky")["tags"].get("prod")
        wait_for(lambda: len(receiver.received) >= 3, "three training_finished webhooks", workers)
    first, second, third = decided[1], decided[2], decided[3]
    assert [d["status"] for d in (first, second, third)] == ["succeeded"] * 3
    assert [d["prod"] for d in (first, second, third)] == [1, 2, 2]
    assert first["gate"]["promoted"] and first["gate"]["decision"] == "promoted: the first run on these evaluation tasks"
    assert second["gate"]["promoted"] and second["gate"]["baseline_version"] == 1
    assert second["gate"]["baseline_job_id"] == first["job_id"]
    loss, rouge = second["gate"]["table"]
    assert loss["metric"] == "eval_loss_after" and loss["verdict"] == "better" and loss["new"] < loss["previous"]
    assert rouge["metric"] == "rouge_l_after" and rouge["new"] > rouge["previous"]
    assert not third["gate"]["promoted"] and third["gate"]["baseline_version"] == 2
    assert third["gate"]["decision"].startswith("held: ") and "prod stays on version 2" in third["gate"]["decision"]
    assert "worse" in {row["verdict"] for row in third["gate"]["table"]}
    for run in (first, second, third):  # the same evaluation tasks for every run, held out for the loss
        assert run["metrics"]["held_out_rows"] == len(EVAL_TASKS) and run["metrics"]["steps"] == 20
        assert run["gate"]["eval_sha256"] == first["gate"]["eval_sha256"]
    with session_scope(pg_url) as session:  # each run's version is kept
        jobs = [session.get(Job, d["job_id"]) for d in (first, second, third)]
        assert [j.result["source"]["version"] for j in jobs] == [1, 2, 3]
    assert api.delete("/api/v1/datasets/sky/versions/3").status_code == 409
    by_job = {}
    for received in receiver.received:
        assert webhooks.verify(hook["secret"], received.body, received.headers["X-Sprout-Signature"])
        data = json.loads(received.body)["data"]
        by_job[data["job"]["id"]] = data
    assert [by_job[d["job_id"]]["gate"]["promoted"] for d in (first, second, third)] == [True, True, False]
    assert by_job[third["job_id"]]["dataset"]["version"] == 3
    # each version was delivered as it came; latest follows the versions, prod the gate
    landed = api_settings.data_dir / "handoff" / "out" / "cluster" / "sky"
    assert sorted(p.name for p in landed.iterdir() if p.is_dir() and not p.is_symlink()) == ["v1", "v2", "v3"]
    assert json.loads((landed / "latest.json").read_text())["label"] == "v3"
