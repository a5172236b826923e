"""An `sft` job through the service: created over HTTP from a generation job's curated
data, run by a `sprout worker` on the training queue with the real trainer (a tiny Llama
as the base model, so it takes seconds), with progress in `job.counters` and the metrics
in `job.result`."""

import pytest

from app.core.methods.candidates import CandidateRecord, InstanceCandidate
from app.db import session_scope
from app.models import Job
from tests.service_fixtures import (  # noqa: F401
    api,
    api_settings,
    client,
    processes,
    service_env,
    store_candidates,
    wait_for,
)
from tests.training_fixtures import TOY_ROWS, tiny_model_dir  # noqa: F401

pytestmark = pytest.mark.integration

def in_data_dir(model_dir, settings):
    """The API takes base models from inside the service's data directory only."""
    import shutil

    return shutil.copytree(model_dir, settings.data_dir / "models" / "tiny", dirs_exist_ok=True)


SEEDS = "".join(f'{{"instruction": "Seed task number {i} asks for something."}}\n' for i in range(8))


def test_an_sft_job_trains_on_a_jobs_curated_data(api, api_settings, processes, tiny_model_dir, pg_url):
    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    source = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set,
                                                      "params": {"target": len(TOY_ROWS)}})["id"]
    store_candidates(pg_url, source, [
        CandidateRecord(r["instruction"], True, in_pool=True, instances=[InstanceCandidate(r["input"], r["output"])])
        for r in TOY_ROWS
    ])
    with session_scope(pg_url) as session:
        session.get(Job, source).status = "succeeded"

    worker = processes(["worker", "--queues", "training", "--concurrency", "1"],
                       service_env(api_settings, OMP_NUM_THREADS="1"), "training-worker")
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "source_job_id": source, "params": {
        "base_model": str(in_data_dir(tiny_model_dir, api_settings)), "method": "lora", "max_steps": 6, "batch_size": 4, "eval_fraction": 0.25,
        "eval_max_tasks": 2, "eval_max_new_tokens": 4, "logging_steps": 1, "torch_threads": 1}})
    done = wait_for(lambda: (j := api.ok("get", f"/api/v1/jobs/{job['id']}"))["status"] not in ("queued", "running") and j,
                    "the training job to finish", [worker])
    assert done["status"] == "succeeded", (done["error"], worker.tail())
    metrics = done["result"]["metrics"]
    assert metrics["steps"] == 6 and metrics["train_rows"] + metrics["held_out_rows"] == len(TOY_ROWS)
    assert metrics["eval_loss_before"] is not None and metrics["eval_loss_after"] is not None
    assert done["result"]["source"] == {"job_id": source, "export_id": None}
    run_dir = api_settings.data_dir / "runs" / f"job-{job['id']}"
    assert done["result"]["run_dir"] == str(run_dir)
    assert (run_dir / "adapter").is_dir() and (run_dir / "metrics.json").is_file()
    c = done["counters"]
    assert c["stage"] == "done" and c["step"] == 6 and c["max_steps"] == 6
    assert done["progress"]["done"] == 6 and done["progress"]["target"] == 6


def test_an_sft_job_from_an_export_stops_on_cancel(api, api_settings, tiny_model_dir, pg_url):
    """The training task's body (`lifecycle.run_job`), in a thread as in a worker: it reads the
    export's file, reports steps, and a cancel through the API ends the run within a step."""
    import threading

    from app.core.jobs import lifecycle

    seed_set = api.ok("post", "/api/v1/seed-sets", 201, json={"name": "s", "content": SEEDS})["id"]
    source = api.ok("post", "/api/v1/jobs", 201, json={"kind": "self_instruct", "seed_set_id": seed_set})["id"]
    store_candidates(pg_url, source, [
        CandidateRecord(r["instruction"], True, instances=[InstanceCandidate(r["input"], r["output"])]) for r in TOY_ROWS
    ])
    export = api.ok("post", "/api/v1/exports", 201, json={"job_id": source, "format": "prompt-completion"})
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "sft", "export_id": export["id"], "params": {
        "base_model": str(in_data_dir(tiny_model_dir, api_settings)), "method": "full", "max_steps": 100000, "batch_size": 2, "eval_fraction": 0,
        "eval_max_tasks": 0, "logging_steps": 1, "torch_threads": 1}})
    settings = api_settings.model_copy(update={"jobs": api_settings.jobs.model_copy(update={"flush_s": 0.2})})
    ended = {}
    runner_thread = threading.Thread(target=lambda: ended.update(job=lifecycle.run_job(pg_url, job["id"], settings.core_config())))
    runner_thread.start()
    try:
        wait_for(lambda: not runner_thread.is_alive()
                 or (api.ok("get", f"/api/v1/jobs/{job['id']}")["counters"].get("step") or 0) >= 2, "training steps")
        assert api.ok("post", f"/api/v1/jobs/{job['id']}/cancel", 202)["cancel_requested"] is True
    finally:
        runner_thread.join()
    final = api.ok("get", f"/api/v1/jobs/{job['id']}")
    assert ended["job"].status == final["status"] == "cancelled"
    assert 2 <= final["counters"]["step"] < 100000 and final["counters"]["stage"] == "train"
    assert final["result"] == {"source": {"job_id": source, "export_id": export["id"]}}
    assert api.ok("post", f"/api/v1/jobs/{job['id']}/retry", 202)["status"] == "queued"
