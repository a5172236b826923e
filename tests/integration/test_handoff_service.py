"""The hand-off in the running service: a `sprout worker` sends the webhooks of a job that
ends (a real fine-tuning run of the tiny model), and `sprout beat` retries a delivery whose
destination was away until it lands, then sends its `delivery_done`."""

from __future__ import annotations

import json
import socket

import pytest
from pydantic import SecretStr

from app.core.handoff import webhooks
from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Delivery, Destination, Job
from tests.service_fixtures import api, client, processes, service_env, store_candidates, wait_for  # noqa: F401
from tests.training_fixtures import TOY_ROWS, tiny_model_dir  # noqa: F401
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_settings(pg_url, redis_url, tmp_path, tiny_model_dir):
    from app.core.handoff.config import HandoffConfig
    from app.settings import Settings

    return Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path / "data",
                    handoff=HandoffConfig(tokenizer=str(tiny_model_dir), max_length=256, formats=["messages"],
                                          retry_base_s=1, hub_token=SecretStr("hf_not_a_real_token"),
                                          hub_endpoint=f"http://127.0.0.1:{_closed_port()}"))


def _source_job(api, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    source = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    store_candidates(pg_url, source, [
        CandidateRecord(r["instruction"], True, in_pool=True, instances=[InstanceCandidate(r["input"], r["output"])])
        for r in TOY_ROWS
    ])
    with session_scope(pg_url) as session:
        session.get(Job, source).status = "succeeded"
    return source


def test_a_worker_sends_the_webhooks_of_a_training_job_that_ends(api, api_settings, processes, pg_url,
                                                                  tiny_model_dir):
    import shutil

    source = _source_job(api, pg_url)
    base_model = shutil.copytree(tiny_model_dir, api_settings.data_dir / "models" / "tiny")
    with WebhookReceiver() as receiver:
        hook = api.ok("post", "/api/v1/webhooks", 201,
                      json={"url": receiver.url, "events": ["job_finished", "training_finished"]})
        worker = processes(["worker", "--queues", "training", "--concurrency", "1"],
                           service_env(api_settings, OMP_NUM_THREADS="1"), "training-worker")
        job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "source_job_id": source, "params": {
            "base_model": str(base_model), "method": "lora", "max_steps": 2, "batch_size": 4, "eval_fraction": 0.25,
            "eval_max_tasks": 1, "eval_max_new_tokens": 2, "torch_threads": 1}})["id"]
        wait_for(lambda: len(receiver.received) >= 2, "the job's two webhooks", [worker])
    events = {json.loads(r.body)["event"]: (r, json.loads(r.body)) for r in receiver.received}
    assert set(events) == {"job_finished", "training_finished"}
    for received, _ in events.values():
        assert webhooks.verify(hook["secret"], received.body, received.headers["X-Sprout-Signature"])
    _, finished = events["training_finished"]
    assert finished["data"]["job"]["id"] == job and finished["data"]["job"]["status"] == "succeeded"
    assert finished["data"]["metrics"]["steps"] == 2 and "eval_loss_after" in finished["data"]["metrics"]


def test_beat_retries_a_delivery_until_its_destination_is_back(api, api_settings, processes, pg_url):
    source = _source_job(api, pg_url)
    hub = api.ok("post", "/api/v1/destinations", 201, json={"name": "hub", "kind": "hub", "repo_id": "my-org/toy"})
    with WebhookReceiver() as receiver:
        hook = api.ok("post", "/api/v1/webhooks", 201, json={"url": receiver.url, "events": ["delivery_done"]})
        pending = api.ok("post", "/api/v1/deliveries", 201, json={"job_id": source, "destination_id": hub["id"],
                                                                   "name": "toy"})
        assert pending["status"] == "pending" and "Hugging Face Hub at http://127.0.0.1" in pending["last_error"]
        # the destination comes back: here the operator repoints it at a folder
        shared = api_settings.data_dir / "shared"
        with session_scope(pg_url) as session:
            row = session.get(Destination, hub["id"])
            row.kind, row.config = "folder", {"path": str(shared)}
        env = service_env(api_settings, SPROUT_HANDOFF__RETRY_INTERVAL_S="1", SPROUT_HANDOFF__RETRY_BASE_S="1")
        worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
        beat = processes(["beat"], env, "beat")

        def landed():
            with session_scope(pg_url) as session:
                return session.get(Delivery, pending["id"]).status == "done" and receiver.received

        wait_for(landed, "beat to retry the delivery", [worker, beat])
    delivered = api.ok("get", f"/api/v1/deliveries/{pending['id']}")
    assert delivered["attempts"] >= 2 and delivered["attempt_log"][-1]["ok"]
    assert (shared / "toy" / f"job-{source}" / "messages.jsonl").is_file()
    [got] = receiver.received
    assert webhooks.verify(hook["secret"], got.body, got.headers["X-Sprout-Signature"])
    assert json.loads(got.body)["data"]["id"] == pending["id"]
