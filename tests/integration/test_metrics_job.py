"""`/metrics` during a real job: a Celery worker (prefork pool) runs a Self-Instruct job on
the embedded model and writes its metrics to the multiprocess folder it shares with the
API; the API's scrape parses with the Prometheus parser and its counters have moved."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service_fixtures import (  # noqa: F401
    api,
    api_settings,
    client,
    processes,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.integration


def totals(text):
    out: dict[str, float] = {}
    labelled: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
            labelled[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, labelled


def test_metrics_move_during_a_real_job(api, client, api_settings, processes, llm_base_url, reference_seeds,
                                        tmp_path, monkeypatch):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))  # the API reads the workers' files
    before, _ = totals(client.get("/metrics").text)
    assert before.get("sprout_llm_requests_total", 0) == 0

    env = service_env(api_settings, SPROUT_LLM_BASE_URLS=llm_base_url, PROMETHEUS_MULTIPROC_DIR=str(folder))
    worker = processes(["worker", "--queues", "generation", "--concurrency", "1"], env, "worker")
    with open(reference_seeds, "rb") as fh:
        seed_set = api.ok("post", "/api/v1/seed-sets", 201, files={"file": (reference_seeds.name, fh)})
    job = api.ok("post", "/api/v1/jobs", 201, json={
        "kind": "self_instruct", "seed_set_id": seed_set["id"], "params": {"target": 2, "seed": 3}})
    done = wait_for(lambda: (j := api.ok("get", f"/api/v1/jobs/{job['id']}"))["status"]
                    in ("succeeded", "failed", "cancelled") and j, "the job to finish", [worker])
    assert done["status"] == "succeeded", done["error"]

    after, labelled = totals(client.get("/metrics").text)
    c = done["counters"]
    # every answered or failed request; those cancelled when the target was met are neither
    assert 0 < after["sprout_llm_requests_total"] <= c["llm_requests"]
    assert after["sprout_candidates_total"] == c["generated"]
    assert labelled[("sprout_candidates_total", (("fate", "accepted"), ("kind", "self_instruct"), ("rule", "")))] == 2
    assert after["sprout_llm_request_seconds_count"] > 0
    assert labelled[("sprout_llm_tokens_total", (("endpoint", llm_base_url), ("kind", "completion")))] == \
        c["completion_tokens"]
    assert labelled[("sprout_jobs", (("kind", "self_instruct"), ("status", "succeeded")))] == 1
